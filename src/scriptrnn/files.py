"""Files read safely and written atomically, with no PyTorch: atomic writes, bounded reads, JSON, config checks.

The ground floor: shared by checkpoints (``model/checkpoint.py``), exported models (``runtime``),
the token cache (``data/``), the server, sweeps and the CLI, so it imports nothing of the
package but the other ground-floor modules (errors.py, safe_json.py).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from . import safe_json
from .errors import ScriptRNNError

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
# The most a JSON file of a model directory may hold: a 1M-word vocabulary is about 20 MB.
MAX_JSON_BYTES = 256 * 2**20
# The most weights may hold: far beyond any model here (the built-in one is 2 MB), short of a disk.
MAX_WEIGHTS_BYTES = 64 * 2**30

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


def check_regular(path: Path, what: str, max_bytes: int) -> int:
    """The size of ``path`` if it is a regular file of at most ``max_bytes``; one line otherwise.

    A model directory's files may be anything a link points at: /dev/zero never ends, a FIFO
    blocks the first read forever, a directory cannot be read. os.stat follows the link and
    says what is at the end without opening it.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ScriptRNNError(f"{path.parent}: missing {path.name} ({what}); is this a complete scriptrnn run?") \
            from None
    except OSError as e:
        raise ScriptRNNError(f"{path}: cannot read {what} ({e.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a device, pipe or socket"
        raise ScriptRNNError(f"{path} ({what}) is {kind}, not a regular file")
    if info.st_size > max_bytes:
        raise ScriptRNNError(f"{path} ({what}) holds {info.st_size:,} bytes; at most {max_bytes:,} are read")
    return info.st_size


def read_regular(path: Path, what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (``check_regular``), never blocking.

    Opened with O_NONBLOCK and checked again once open, so a file swapped for a FIFO or a
    device between the check and the open is refused too; reads stop at ``max_bytes``.
    """
    check_regular(path, what, max_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ScriptRNNError(f"{path}: cannot read {what} ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ScriptRNNError(f"{path} ({what}) is not a regular file")
        # The size stat gave, plus one byte to notice a file that grew (f.read(n) would allocate n).
        data = f.read(min(os.fstat(fd).st_size, max_bytes) + 1)
    if len(data) > max_bytes:
        raise ScriptRNNError(f"{path} ({what}) holds more than {max_bytes:,} bytes")
    return data


def read_json(path: Path, what: str) -> dict:
    data = read_regular(path, what, MAX_JSON_BYTES)
    try:
        data = safe_json.loads(data)
    except safe_json.JSONLimitError as e:
        raise ScriptRNNError(f"{path}: {e}; the file is damaged") from None
    if not isinstance(data, dict):
        raise ScriptRNNError(f"{path}: expected a JSON object")
    return data
