"""Files read safely and written atomically, with no PyTorch: atomic writes, bounded reads, JSON, config checks.

The ground floor: shared by checkpoints (``model/checkpoint.py``), exported models (``runtime``),
the token cache (``data/``), the server, sweeps and the CLI, so it imports nothing of the
package but the other ground-floor modules (errors.py, safe_json.py).
"""

from __future__ import annotations

import math
import os
import stat
import tempfile
from dataclasses import dataclass
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
# A safetensors header's limit (the safetensors library's own): names, shapes and offsets only.
MAX_HEADER_BYTES = 100 * 2**20
# safetensors' element types and their sizes in bytes.
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}

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
    with _open_regular(path, what) as f:
        # The size stat gave, plus one byte to notice a file that grew (f.read(n) would allocate n).
        data = f.read(min(os.fstat(f.fileno()).st_size, max_bytes) + 1)
    if len(data) > max_bytes:
        raise ScriptRNNError(f"{path} ({what}) holds more than {max_bytes:,} bytes")
    return data


def _open_regular(path: Path, what: str) -> BinaryIO:
    """``path`` opened without blocking (a FIFO swapped in after ``check_regular``), and regular once open."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ScriptRNNError(f"{path}: cannot read {what} ({e.strerror})") from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise ScriptRNNError(f"{path} ({what}) is not a regular file")
    return f


def read_json(path: Path, what: str) -> dict:
    data = read_regular(path, what, MAX_JSON_BYTES)
    try:
        data = safe_json.loads(data)
    except safe_json.JSONLimitError as e:
        raise ScriptRNNError(f"{path}: {e}; the file is damaged") from None
    if not isinstance(data, dict):
        raise ScriptRNNError(f"{path}: expected a JSON object")
    return data


# ---------------------------------------------------------------- safetensors headers


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as a safetensors header describes it (nothing of its data read)."""

    dtype: str  # safetensors' name: "F32", "I64", ...
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPE_BYTES[self.dtype]


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: dict[str, TensorEntry]
    metadata: dict[str, str]
    size: int  # of the whole file, which is exactly header + data

    @property
    def data_bytes(self) -> int:
        return sum(e.nbytes for e in self.tensors.values())


def read_safetensors_header(path: Path, what: str, max_data_bytes: int = MAX_WEIGHTS_BYTES) -> SafetensorsHeader:
    """A safetensors file's header, checked, and the file's size checked against it; no tensor data is read.

    The file is 8 bytes of header length (little-endian), the JSON header, then the tensors
    back to back. A file longer than its header says (``truncate -s 10G``), tensors that overlap
    or leave gaps, or more data than ``max_data_bytes`` (the caller's bound from config.json)
    are refused here, in one line, before a caller reads the rest.
    """
    path = Path(path)
    size = check_regular(path, what, MAX_WEIGHTS_BYTES)
    with _open_regular(path, what) as f:
        start = f.read(10)
        length = int.from_bytes(start[:8], "little") if len(start) == 10 else -1
        if not (2 <= length <= min(MAX_HEADER_BYTES, size - 8)) or start[8:9] != b"{":
            _refuse_non_safetensors(path, start)
        f.seek(8)
        raw = f.read(length)
    try:
        header = safe_json.loads(raw)
    except safe_json.JSONLimitError as e:
        raise ScriptRNNError(f"{path}: damaged safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise ScriptRNNError(f"{path}: damaged safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ScriptRNNError(f"{path}: damaged safetensors header (its metadata is not text)")
    tensors, spans = {}, []
    for name, entry in header.items():
        tensors[name], span = _tensor_entry(path, name, entry)
        spans.append(span)
    end = 0
    for begin, stop in sorted(spans):
        if begin != end:
            raise ScriptRNNError(f"{path}: damaged safetensors header (its tensors overlap or leave gaps)")
        end = stop
    if 8 + length + end != size:
        raise ScriptRNNError(f"{path} ({what}): the header describes {8 + length + end:,} bytes but the file holds "
                             f"{size:,}; the file is damaged or padded")
    if end > max_data_bytes:
        raise ScriptRNNError(f"{path} ({what}): its tensors hold {end:,} bytes, more than the {max_data_bytes:,} "
                             "the model in config.json can need; the files do not belong together")
    return SafetensorsHeader(tensors, metadata, size)


def _tensor_entry(path: Path, name: str, entry) -> tuple[TensorEntry, tuple[int, int]]:
    def whole(values) -> bool:
        return isinstance(values, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                for v in values)

    if not (isinstance(entry, dict) and entry.get("dtype") in DTYPE_BYTES and whole(entry.get("shape"))
            and whole(entry.get("data_offsets")) and len(entry["data_offsets"]) == 2):
        raise ScriptRNNError(f"{path}: damaged safetensors header (tensor {name[:80]!r})")
    tensor = TensorEntry(entry["dtype"], tuple(entry["shape"]))
    begin, end = entry["data_offsets"]
    if end - begin != tensor.nbytes:
        raise ScriptRNNError(f"{path}: damaged safetensors header (tensor {name[:80]!r}: its offsets do not fit "
                             "its shape)")
    return tensor, (begin, end)


def _refuse_non_safetensors(path: Path, start: bytes) -> None:
    if start[:1] == b"\x80" or start[:2] == b"PK":
        raise ScriptRNNError(
            f"{path}: this is a pickle/PyTorch file, not safetensors; scriptrnn never loads pickles "
            "because they can run code"
        )
    if len(start) < 10:
        raise ScriptRNNError(f"{path}: damaged or truncated safetensors file ({len(start)} bytes)")
    raise ScriptRNNError(f"{path}: not a safetensors file, or truncated")
