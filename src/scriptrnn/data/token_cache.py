"""The token ids of a corpus, written once to a file and memory-mapped for training.

Tokenizing a big corpus costs time and memory; holding its ids as int64 costs eight
bytes a token, in every process that trains. So the ids are written once, as compact
unsigned integers (uint16 when the vocabulary allows, else uint32), and training reads
them through ``numpy.memmap``: a process's memory no longer grows with the corpus, and
the processes of a multi-process run share one copy in the operating system's page
cache. Batches convert only the window they read to int64.

The file is a standard safetensors file holding one 1-D tensor ``ids``, so any
safetensors reader can open it; its metadata holds a key made from the corpus
fingerprint and the tokenizer, and a file whose key does not match is rebuilt, never
used. The header has a fixed size so that the ids can be streamed to disk in chunks
(the count goes in last), and the data starts 8-byte aligned.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import BinaryIO, Iterable

import numpy as np

from ..version import __version__
from ..files import write_atomic_with
from ..errors import ScriptRNNError

TOKENS_FILE = "tokens.safetensors"
FORMAT_NAME = "scriptrnn-tokens"
FORMAT_VERSION = 1
HEADER_BYTES = 1024  # JSON header, padded with spaces; 8 + 1024 keeps the data 8-byte aligned
_SAFETENSORS_DTYPES = {np.dtype(np.uint16): "U16", np.dtype(np.uint32): "U32"}


def ids_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id (0 .. V-1) fits in it, i.e. V <= 65,536; else uint32."""
    if not 1 <= vocab_size <= 1 << 32:
        raise ScriptRNNError(f"a vocabulary of {vocab_size:,} tokens cannot be cached as token ids")
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def cache_key(corpus_sha256: str, tokenizer) -> str:
    """What the ids depend on: the exact text, the vocabulary and how text is split (this version's code)."""
    facts = {"corpus": corpus_sha256, "tokenizer": tokenizer.to_dict(), "scriptrnn": __version__,
             "format_version": FORMAT_VERSION}
    return hashlib.sha256(json.dumps(facts, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def write_cache(path: Path, chunks: Iterable[np.ndarray], *, key: str, vocab_size: int) -> int:
    """Write the ids (given as one or more 1-D chunks) atomically; returns how many were written."""
    dtype = ids_dtype(vocab_size)
    written = 0

    def fill(f: BinaryIO) -> None:
        nonlocal written
        f.write(b"\0" * (8 + HEADER_BYTES))  # the header needs the count: written last, below
        for chunk in chunks:
            chunk = np.asarray(chunk).reshape(-1)
            if chunk.size and (chunk.min() < 0 or chunk.max() >= vocab_size):
                raise ValueError(f"token ids outside 0..{vocab_size - 1} cannot be cached")
            f.write(chunk.astype(dtype.newbyteorder("<"), copy=False).tobytes())
            written += chunk.size
        f.seek(0)
        f.write(_header(written, dtype, key, vocab_size))

    write_atomic_with(Path(path), fill)
    return written


def _header(count: int, dtype: np.dtype, key: str, vocab_size: int) -> bytes:
    header = {
        "__metadata__": {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION), "key": key,
                         "vocab_size": str(vocab_size)},
        "ids": {"dtype": _SAFETENSORS_DTYPES[dtype], "shape": [count], "data_offsets": [0, count * dtype.itemsize]},
    }
    text = json.dumps(header).encode("utf-8")
    if len(text) > HEADER_BYTES:
        raise ValueError("token cache header does not fit its fixed size")
    return HEADER_BYTES.to_bytes(8, "little") + text.ljust(HEADER_BYTES, b" ")


def open_cache(path: Path, key: str) -> np.memmap | None:
    """The cached ids as a read-only (n,) memmap, or None when the file is absent, stale or damaged."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8 + HEADER_BYTES)
        size = path.stat().st_size
    except OSError:
        return None
    found = _read_header(head)
    if found is None or found[2] != key:
        return None
    count, dtype, _ = found
    if count < 1 or size != 8 + HEADER_BYTES + count * dtype.itemsize:
        return None  # truncated, or padded by something else: rebuild rather than trust it
    return np.memmap(path, dtype=dtype.newbyteorder("<"), mode="r", offset=8 + HEADER_BYTES, shape=(count,))


def _read_header(head: bytes) -> tuple[int, np.dtype, str] | None:
    """(count, dtype, key) from a file's first bytes, or None if they are not our header."""
    if len(head) != 8 + HEADER_BYTES or int.from_bytes(head[:8], "little") != HEADER_BYTES:
        return None
    try:
        header = json.loads(head[8:])
        meta, ids = header["__metadata__"], header["ids"]
        dtype = {v: k for k, v in _SAFETENSORS_DTYPES.items()}[ids["dtype"]]
        (count,) = ids["shape"]
        whole = isinstance(count, int) and not isinstance(count, bool)
        if not whole or set(header) != {"__metadata__", "ids"} or meta["format"] != FORMAT_NAME \
                or meta["format_version"] != str(FORMAT_VERSION) or ids["data_offsets"] != [0, count * dtype.itemsize]:
            return None
        return int(count), dtype, str(meta["key"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
