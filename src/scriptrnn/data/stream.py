"""A corpus read in pieces of bounded size, so that a corpus larger than memory can still be prepared.

``read_corpus`` (corpus.py) returns the whole text as one string; ``corpus_pieces`` yields
the very same text, in order, as pieces of about ``chunk_bytes()`` bytes of file each, so
the run's fingerprint, vocabulary and token ids are made without ever holding it all.
Joined, the pieces equal ``read_corpus(...).text`` exactly (tests/test_stream.py checks it
with chunks of a few bytes). Where a piece may end:

- never inside a multi-byte character: an incremental decoder keeps a partial UTF-8 (or
  any other encoding's) sequence back for the next read;
- never inside a line's trailing whitespace nor between '\\r' and '\\n': reading normalises
  line ends and strips trailing whitespace, so a piece ends after a character that is not
  white space, or after a '\\n'; the white space after it waits for what follows.

Pieces may end inside a word or a line; ``Recut`` cuts them again where a consumer needs
whole words (the word-level tokenizer) or whole lines (speakers).

What streams: plain text and "Name: line" dialogue files (the big ones) chunk by chunk.
CSV files and Fountain screenplays are converted one whole file at a time (a CSV field may
span lines and its quoting needs the csv module's own reader; Fountain gives meaning to
what precedes and follows a line), and the built-in plays (about 5 MB) are one piece.
Styles are not streamed at all: they are cut into scenes, tagged and shuffled as a whole
(sources.py keeps their old path).
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ScriptRNNError
from .corpus import (PathLike, TextFormat, _check_encoding, _corpus_name, _files_to_read, _normalise, _read_file,
                     as_path_list)

CHUNK_BYTES_ENV = "SCRIPTRNN_CHUNK_BYTES"  # tests set it small, so a modest corpus crosses many chunk edges
DEFAULT_CHUNK_BYTES = 8 << 20  # 8 MiB a read: ~100 MB of working memory at char level, flat in corpus size


def chunk_bytes() -> int:
    """Bytes read from a file at a time: $SCRIPTRNN_CHUNK_BYTES, else DEFAULT_CHUNK_BYTES."""
    raw = os.environ.get(CHUNK_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_CHUNK_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ScriptRNNError(f"{CHUNK_BYTES_ENV} must be a whole number of bytes >= 1, got {raw!r}")
    return value


@dataclass(frozen=True)
class StreamedCorpus:
    """A corpus that can be read, start to end, as many times as needed without holding it."""

    name: str  # as Corpus.name
    pieces: Callable[[], Iterator[str]]  # each call reads the text again from its start


def streamed_files(paths: PathLike | Iterable[PathLike], *, encoding: str = TextFormat.encoding,
                   speaker_column: str = TextFormat.speaker_column,
                   dialogue_column: str = TextFormat.dialogue_column) -> StreamedCorpus:
    """read_corpus's corpus as a stream; missing, binary and empty-folder paths are refused now, as there."""
    path_list = as_path_list(paths)
    if not path_list:
        raise ScriptRNNError("no corpus files given; pass a file or a folder of text files")
    _check_encoding(encoding)
    files = [file for path in path_list for file in _files_to_read(path, encoding)]

    def read(file: Path) -> Iterator[str]:
        if file.suffix.lower() in (".csv", ".fountain"):
            yield _read_file(file, encoding, speaker_column, dialogue_column)  # whole: see the docstring
        else:
            yield from file_pieces(file, encoding)

    def pieces() -> Iterator[str]:
        seen = False
        for piece in _join_files(files, read):
            seen = True
            yield piece
        if not seen:
            shown = ", ".join(str(p) for p in path_list)
            raise ScriptRNNError(f"the corpus is empty: {shown} holds no text; point at files with some text in them")

    return StreamedCorpus(_corpus_name(path_list), pieces)


def _join_files(files: list[Path], read: Callable[[Path], Iterator[str]]) -> Iterator[str]:
    """Files joined as read_corpus joins them: a blank line between files, each ending in '\\n', empty ones left out."""
    any_text = False
    for file in files:
        blank = 0  # line ends before the file's first text: kept only if some text follows
        last = ""
        for piece in read(file):
            if not piece:
                continue
            if not last:
                if not piece.strip():  # normalised, so only '\n's
                    blank += len(piece)
                    continue
                if any_text:
                    yield "\n"
                piece = "\n" * blank + piece
            yield piece
            last = piece
        if last:
            any_text = True
            if not last.endswith("\n"):
                yield "\n"


def file_pieces(file: Path, encoding: str) -> Iterator[str]:
    """One file's normalised text (corpus._normalise) in pieces that end at safe places (see the docstring)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    size, offset, carry, start = chunk_bytes(), 0, "", True
    try:
        f = open(file, "rb")
    except OSError as err:
        raise ScriptRNNError(f"cannot read {file}: {err.strerror or err}") from None
    with f:
        while True:
            try:
                data = f.read(size)
            except OSError as err:
                raise ScriptRNNError(f"cannot read {file}: {err.strerror or err}") from None
            text = _decode(decoder, data, offset, file, encoding)
            offset += len(data)
            if start and text:  # a byte-order mark is not text (dropped once, as corpus._decode does)
                text, start = text[1:] if text.startswith("\ufeff") else text, False
            text = carry + text
            if not data:  # end of file: the carry is the last line's trailing white space and line ends
                text = _normalise(text)
                if text:
                    yield text
                return
            cut = max(len(text.rstrip()), text.rfind("\n") + 1)
            carry = text[cut:]
            if cut:
                yield _normalise(text[:cut])


def _decode(decoder, data: bytes, offset: int, file: Path, encoding: str) -> str:
    """Decode the next bytes (b'' at the end); a bad byte is named by its offset in the file."""
    held = len(decoder.getstate()[0])  # bytes of a partial character from the last read
    try:
        return decoder.decode(data, final=not data)
    except UnicodeDecodeError as err:
        at = offset - held + err.start
        bad = err.object[err.start]
        raise ScriptRNNError(
            f"{file}: byte 0x{bad:02x} at offset {at} is not valid {encoding}; "
            "pass --encoding (e.g. --encoding latin-1) if the file uses another encoding"
        ) from None


class Recut:
    """Holds back the unfinished end of each piece, so that what it gives out ends at a whole word or line."""

    def __init__(self, at: str):
        if at not in ("word", "line"):
            raise ValueError(f"Recut at 'word' or 'line', not {at!r}")
        self.at = at
        self.tail = ""

    def feed(self, piece: str) -> str:
        text = self.tail + piece
        cut = self._cut(text)
        self.tail = text[cut:]
        return text[:cut]

    def flush(self) -> str:
        text, self.tail = self.tail, ""
        return text

    def _cut(self, text: str) -> int:
        if self.at == "line":
            return text.rfind("\n") + 1
        if not text or text[-1].isspace():
            return len(text)
        last = text.rsplit(maxsplit=1)  # the last word, found from the end (cheap)
        return len(text) - len(last[-1]) if last else 0
