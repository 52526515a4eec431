"""Paths the user names, made absolute with every link followed: the one place that does it.

Path.resolve raises a RuntimeError on a link loop (``ln -s L L``) on Python 3.11-3.12 and
quietly returns the loop on 3.13+; either way the user gets a traceback or a misleading
"missing" later. Corpora (data/), model directories (model/directory.py), the server's model
names and the sweep all resolve through ``real_path``, so a loop is one line in every command.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .errors import ScriptRNNError


def real_path(path) -> Path:
    """``path`` absolute, links followed; a link loop (or a chain of links too long to follow) is one line."""
    try:
        resolved = Path(path).resolve()
        os.stat(resolved)
    except RuntimeError:  # Python < 3.13: the loop itself
        raise ScriptRNNError(_loop(path)) from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ScriptRNNError(_loop(path)) from None
        return resolved  # missing or unreadable: the caller's own check says so, in its words
    return resolved


def check_no_loop(path) -> None:
    """Refuse a link loop at ``path`` in one line (a missing path is the caller's to report)."""
    real_path(path)


def _loop(path) -> str:
    return (f"{path} is a symbolic link that leads back to itself (a link loop); point it at a real file "
            "or folder")
