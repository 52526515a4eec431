"""Files of a model directory that need no PyTorch: atomic writes, reading JSON, config checks.

Shared by checkpoints (``checkpoint.py``), exported models (``runtime``) and the CLI.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from ..errors import ScriptRNNError

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"

# Reading the umask means setting it; done once at import, before any thread of ours runs.
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old file or the new, never half."""
    write_atomic_with(path, lambda f: f.write(data))


def write_atomic_with(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """``write_atomic`` for files too big to hold as one bytes object: ``fill`` writes (and may seek)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def remove_temporaries(directory: Path) -> list[str]:
    """Delete the temporary files ``write_atomic`` leaves when its process is killed mid-write."""
    removed = []
    for path in Path(directory).glob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def _fsync_dir(directory: Path) -> None:
    # The rename itself is only durable once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ScriptRNNError(f"{path.parent}: missing {path.name} ({what}); is this a complete scriptrnn run?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ScriptRNNError(f"{path}: not valid JSON ({e}); the file is damaged") from None
    if not isinstance(data, dict):
        raise ScriptRNNError(f"{path}: expected a JSON object")
    return data


def check_sections(path: Path, config: dict) -> None:
    """The parts other modules read must have the types they expect (the file may be hand-edited)."""
    for section in ("model", "training", "corpus", "metrics"):
        if section in config and not isinstance(config[section], dict):
            raise ScriptRNNError(f"{path}: '{section}' must be a JSON object")
    speakers = config.get("corpus", {}).get("speakers", [])
    if not isinstance(speakers, list) or not all(isinstance(s, str) for s in speakers):
        raise ScriptRNNError(f"{path}: corpus 'speakers' must be a list of names")
