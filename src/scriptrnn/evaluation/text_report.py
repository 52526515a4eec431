"""Read the text, not only the loss: score generated samples against the corpus.

``text_report(samples, train_text, heldout_text, level)`` measures what a loss figure
cannot say: whether the speakers are the corpus's own, whether the words are real,
whether the text repeats itself, whether it is copied from the training text, whether
its lines are as long as people's, and whether its turns read like a script's (a speaker
following himself, a direction addressed to the one speaking). The same measures are taken on a piece of
the held-out human text as long as the samples, scored as if it were a sample: that
row is the baseline (people repeat themselves too, and a held-out scene shares short
spans with the training text by chance).

Pure Python and numpy, no PyTorch: it reads strings, whoever wrote them.

Copy detection hashes every window of the training text with a polynomial rolling
hash mod 2**64 (prefix sums, so windows of any length cost three array operations),
and looks the training windows up among the samples' (few) windows with a sorted
search: O(N log m) for N training positions and m sample windows. The longest copied
span is a binary search on its length over the same test; the span found is checked
against the training text itself, so a hash collision cannot report a copy.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Iterable, Sequence

import numpy as np

from ..data.corpus import find_speakers, speaker_name, speech_heads

COPY_WINDOW = {"char": 40, "word": 8, "subword": 40}  # span length whose share found in the training text is reported
LAYOUT_SHARE = 0.2  # below this share of speaker lines, the training text is prose: no speaker measures
SHOWN_COPY_CHARS = 120  # how much of the longest copied span the report quotes

# A word: letters, with inner apostrophes ("don't", "o'er"); digits and punctuation are not words.
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
# A direction addressed to someone: "(to elaine)", "(to jerry and george, pointing)"; the addressee phrase.
_ADDRESSED = re.compile(r"\(\s*to\s+([^(),;]*)", re.IGNORECASE)
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible mod 2**64
_BASE_INVERSE = np.uint64(pow(int(_BASE), -1, 2**64))
_BITMAP_SIZE = 1 << 22  # the prefilter of _found: 4 MB, small enough to stay in cache
_BITMAP_MASK = np.uint64(_BITMAP_SIZE - 1)


@dataclass
class TextMeasures:
    """One row of the report: the samples, or the held-out reference. None: does not apply."""

    name: str  # "samples" or "held-out"
    characters: int  # all characters scored, line ends included
    words: int  # words as _WORD finds them
    lines: int  # non-blank lines
    speaker_lines: float | None  # share of non-blank lines in the "Name: line" layout (None: prose corpus)
    known_speakers: float | None  # share of those lines whose speaker the training text knows
    # Of speeches right after another speech (blank lines between allowed, any other line breaks the
    # pair), the share by the same speaker: "jerry: ...", "jerry: ...". Few scripts do it (Seinfeld: 3%).
    same_speaker: float | None
    self_addressed: float | None  # share of speeches holding a direction to their own speaker: "elaine: (to elaine)"
    real_words: float | None  # char and subword level: share of words (occurrences) that are words of the training text
    distinct_1: float | None  # unique words / words
    distinct_2: float | None  # unique word pairs / word pairs (never across samples)
    distinct_3: float | None  # the same for three words
    longest_copy_chars: int  # longest span found verbatim in the training text, in characters
    longest_copy_words: int | None  # word level: longest run of words found in the training text in order
    longest_copy: str  # the start of that span, to read
    copied_share: float | None  # share of copy windows (40 chars / 8 words) found in the training text
    mean_line_chars: float | None  # characters per non-blank line
    median_line_chars: float | None
    line_length_distance: float | None  # Kolmogorov-Smirnov distance to the held-out text's line lengths (0..1)


@dataclass
class TextReport:
    """The samples' measures beside the held-out reference's, and how they were taken."""

    level: str  # "char", "word" or "subword" (subword text is measured as char text: it can spell new words)
    copy_window: str  # "40 characters" or "8 words"
    samples: TextMeasures
    reference: TextMeasures | None  # a piece of the held-out text as long as the samples (None: none held out)
    sample_count: int

    def to_dict(self) -> dict:
        return {"level": self.level, "copy_window": self.copy_window, "sample_count": self.sample_count,
                "samples": asdict(self.samples), "reference": asdict(self.reference) if self.reference else None}

    def columns(self) -> dict:
        """The samples' figures flat, named as column_names() says, for a table of runs (a sweep's results)."""
        return {f"text_{k}": v for k, v in asdict(self.samples).items() if k not in _NOT_COLUMNS}

    def table(self) -> str:
        return format_table(self)


_NOT_COLUMNS = {"name", "longest_copy"}  # words, not figures


def column_names() -> list[str]:
    """The columns TextReport.columns() fills, in order."""
    return [f"text_{f.name}" for f in fields(TextMeasures) if f.name not in _NOT_COLUMNS]


# ---------------------------------------------------------------- the report


def text_report(samples: Sequence[str], train_text: str, heldout_text: str, level: str,
                speakers: Iterable[str] | None = None) -> TextReport:
    """Score ``samples`` against the text the model trained on and the text held out from it.

    ``speakers``: the names the corpus knows (default: those of ``train_text``). Speaker
    measures apply only where the training text is in the "Name: line" layout.
    """
    if level not in COPY_WINDOW:
        raise ValueError(f"level must be 'char' or 'word', got {level!r}")
    corpus = _Corpus(train_text, level, speakers)
    target = _line_lengths(heldout_text)
    row = _measure("samples", list(samples), corpus, target)
    reference = None
    if heldout_text.strip():
        piece = _leading_lines(heldout_text, sum(len(s) for s in samples))
        reference = _measure("held-out", [piece], corpus, target)
    window = COPY_WINDOW[level]
    return TextReport(level, f"{window} {'words' if level == 'word' else 'characters'}", row, reference,
                      len(samples))


class _Corpus:
    """What the measures need of the training text, worked out once for both rows."""

    def __init__(self, text: str, level: str, speakers: Iterable[str] | None):
        self.level = level
        found = find_speakers(text)
        lines = _nonblank(text)
        self.layout = bool(lines) and sum(found.values()) / len(lines) >= LAYOUT_SHARE
        self.speakers = {_key(s) for s in (found if speakers is None else speakers)}
        words = _words(text)
        self.vocabulary = set(words)
        self.chars = _HashedText(_char_codes(text))
        self.word_ids: dict[str, int] = {}
        self.words = _HashedText(self.ids(words)) if level == "word" else None

    def ids(self, words: list[str]) -> np.ndarray:
        """Words as integers (1 up), the same word the same number in the training text and samples."""
        table = self.word_ids
        return np.fromiter((table.setdefault(w, len(table) + 1) for w in words), dtype=np.uint64, count=len(words))


def _measure(name: str, texts: list[str], corpus: _Corpus, target: np.ndarray) -> TextMeasures:
    words = [_words(t) for t in texts]
    flat = [w for ws in words for w in ws]
    joined = "\n".join(texts)
    lengths = _line_lengths(joined)
    codes = [_char_codes(t) for t in texts]
    char_span, char_start = _longest_copy(corpus.chars, codes)
    at = _flat_start(texts, char_start)
    shown = joined[at:at + min(char_span, SHOWN_COPY_CHARS)] if char_span else ""
    word_ids = [corpus.ids(ws) for ws in words] if corpus.words else None
    window = COPY_WINDOW[corpus.level]
    copied = _found_share(corpus.words, word_ids, window) if word_ids is not None else \
        _found_share(corpus.chars, codes, window)
    return TextMeasures(
        name=name, characters=sum(len(t) for t in texts), words=len(flat), lines=len(lengths),
        **_speaker_shares(texts, corpus),
        real_words=(sum(w in corpus.vocabulary for w in flat) / len(flat)) if corpus.level != "word" and flat else None,
        distinct_1=distinct_n(words, 1), distinct_2=distinct_n(words, 2), distinct_3=distinct_n(words, 3),
        longest_copy_chars=char_span,
        longest_copy_words=_longest_copy(corpus.words, word_ids)[0] if word_ids is not None else None,
        longest_copy=shown, copied_share=copied,
        mean_line_chars=float(lengths.mean()) if len(lengths) else None,
        median_line_chars=float(np.median(lengths)) if len(lengths) else None,
        line_length_distance=ks_distance(lengths, target),
    )


def _speaker_shares(texts: list[str], corpus: _Corpus) -> dict:
    if not corpus.layout:
        return {"speaker_lines": None, "known_speakers": None, "same_speaker": None, "self_addressed": None}
    text = "\n".join(texts)
    found = find_speakers(text)
    speeches, lines = sum(found.values()), len(_nonblank(text))
    known = sum(n for name, n in found.items() if _key(name) in corpus.speakers)
    return {"speaker_lines": speeches / lines if lines else None,
            "known_speakers": known / speeches if speeches else None, **turn_taking(texts)}


def turn_taking(texts: Sequence[str]) -> dict:
    """``same_speaker`` and ``self_addressed`` (see TextMeasures) over ``texts``; None where nothing counts.

    A speech follows the one before it in its own text only, never the last of another sample.
    """
    pairs, repeats, speeches, self_addressed = 0, 0, 0, 0
    for text in texts:
        previous = None
        for line in _nonblank(text):
            heads = speech_heads(line)
            if not heads:
                previous = None  # a direction or heading between two speeches: no turn from one to the other
                continue
            name = _key(speaker_name(heads[0]))
            speeches += 1
            if previous is not None:
                pairs, repeats = pairs + 1, repeats + (name == previous)
            previous = name
            self_addressed += _addresses(line, name)
    return {"same_speaker": repeats / pairs if pairs else None,
            "self_addressed": self_addressed / speeches if speeches else None}


def _addresses(line: str, name: str) -> bool:
    """Does a direction in ``line`` address ``name`` (a whole word, not 'jerry's')?"""
    own = re.compile(rf"(?<![\w'\u2019]){re.escape(name)}(?![\w'\u2019])")
    return any(own.search(_key(phrase)) for phrase in _ADDRESSED.findall(line))


# ---------------------------------------------------------------- small measures


def distinct_n(texts_words: Sequence[Sequence[str]], n: int) -> float | None:
    """Unique n-grams / n-grams, over the words of all texts (an n-gram never spans two texts)."""
    grams = Counter(tuple(ws[i:i + n]) for ws in texts_words for i in range(len(ws) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else None


def ks_distance(a: np.ndarray, b: np.ndarray) -> float | None:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two CDFs (0 = alike, 1 = apart)."""
    if len(a) == 0 or len(b) == 0:
        return None
    a, b = np.sort(a), np.sort(b)
    points = np.concatenate([a, b])
    gap = np.searchsorted(a, points, side="right") / len(a) - np.searchsorted(b, points, side="right") / len(b)
    return float(np.abs(gap).max())


def _key(name: str) -> str:
    return " ".join(name.split()).lower()  # as speakers.py matches names


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _nonblank(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


def _line_lengths(text: str) -> np.ndarray:
    return np.array([len(line) for line in _nonblank(text)], dtype=np.int64)


def _leading_lines(text: str, chars: int) -> str:
    """Whole lines from the start of ``text``, about ``chars`` long (all of it when chars is 0)."""
    if chars <= 0 or chars >= len(text):
        return text
    end = text.find("\n", chars)
    return text if end < 0 else text[:end + 1]


def _flat_start(texts: list[str], where: tuple[int, int] | None) -> int:
    """(text index, offset) -> offset in the texts joined with '\\n'."""
    if where is None:
        return 0
    i, offset = where
    return sum(len(t) + 1 for t in texts[:i]) + offset


# ---------------------------------------------------------------- copy detection


def _char_codes(text: str) -> np.ndarray:
    """Code points + 1 (so that no symbol hashes like an empty one), as uint64."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64) + 1


class _HashedText:
    """Prefix sums of c[j] * BASE**j (mod 2**64): the hash of any window in O(1) per position."""

    def __init__(self, codes: np.ndarray):
        self.codes = codes  # (n,) uint64, none 0
        rest = max(0, len(codes) - 1)
        powers = np.concatenate([[np.uint64(1)], np.cumprod(np.full(rest, _BASE, np.uint64))])  # BASE**j, wrapping
        self.prefix = np.concatenate([[np.uint64(0)], np.cumsum(codes * powers[:len(codes)], dtype=np.uint64)])
        self.inverse = np.concatenate([[np.uint64(1)], np.cumprod(np.full(rest, _BASE_INVERSE, np.uint64))])

    def windows(self, length: int) -> np.ndarray:
        """(n - length + 1,) hashes of every window of ``length`` symbols."""
        n = len(self.codes)
        if length > n:
            return np.zeros(0, dtype=np.uint64)
        return (self.prefix[length:] - self.prefix[:n - length + 1]) * self.inverse[:n - length + 1]


def _found(seen: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Which of ``hashes`` (the samples' few windows) are among ``seen`` (the N training windows): a bool mask.

    A bitmap of the wanted hashes' low bits first drops almost every training window with one
    gather; only the few left are searched for among the sorted wanted hashes.
    """
    if len(hashes) == 0:
        return np.zeros(0, dtype=bool)
    wanted = np.unique(hashes)  # (m',) sorted
    bitmap = np.zeros(_BITMAP_SIZE, dtype=bool)
    bitmap[wanted & _BITMAP_MASK] = True
    maybe = seen[bitmap[seen & _BITMAP_MASK]]  # all true matches, and ~N * m / _BITMAP_SIZE others
    at = np.minimum(np.searchsorted(wanted, maybe), len(wanted) - 1)
    present = np.zeros(len(wanted), dtype=bool)
    present[at[wanted[at] == maybe]] = True
    return present[np.searchsorted(wanted, hashes)]


def _sample_windows(texts: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All windows of every text: hashes, and which text and offset each starts at."""
    hashed = [_HashedText(codes).windows(length) for codes in texts]
    which = np.concatenate([np.full(len(h), i) for i, h in enumerate(hashed)] or [np.zeros(0, int)])
    offset = np.concatenate([np.arange(len(h)) for h in hashed] or [np.zeros(0, int)])
    return np.concatenate(hashed or [np.zeros(0, np.uint64)]), which, offset


def _found_share(train: _HashedText, texts: list[np.ndarray], length: int) -> float | None:
    hashes, _, _ = _sample_windows(texts, length)
    return float(_found(train.windows(length), hashes).mean()) if len(hashes) else None


def _copied_at(train: _HashedText, texts: list[np.ndarray], length: int) -> tuple[int, int] | None:
    """(text, offset) of a window of ``length`` that truly occurs in the training text, or None."""
    hashes, which, offset = _sample_windows(texts, length)
    seen = train.windows(length)
    for i in np.flatnonzero(_found(seen, hashes))[:8]:
        # Checked against the text itself, so a hash collision (all but impossible) cannot count as a copy.
        span = texts[which[i]][offset[i]:offset[i] + length]
        if any(np.array_equal(train.codes[p:p + length], span) for p in np.flatnonzero(seen == hashes[i])[:8]):
            return int(which[i]), int(offset[i])
    return None


def _longest_copy(train: _HashedText, texts: list[np.ndarray]) -> tuple[int, tuple[int, int] | None]:
    """The length of the longest span of any text found verbatim in training, and where it starts."""
    lo, hi, where = 0, max((len(t) for t in texts), default=0), None
    while lo < hi:  # "some span of length L is copied" holds for every L up to the answer
        mid = (lo + hi + 1) // 2
        found = _copied_at(train, texts, mid)
        if found is None:
            hi = mid - 1
        else:
            lo, where = mid, found
    return lo, where


# ---------------------------------------------------------------- the table

_ROWS = [  # (label, field, format): percentages for shares
    ("characters", "characters", ",d"), ("words", "words", ",d"), ("lines", "lines", ",d"),
    ("speaker lines", "speaker_lines", "%"), ("known speakers", "known_speakers", "%"),
    ("same speaker twice in a row", "same_speaker", "%"), ("directions to the speaker himself", "self_addressed", "%"),
    ("real words", "real_words", "%"),
    ("distinct-1", "distinct_1", ".3f"), ("distinct-2", "distinct_2", ".3f"), ("distinct-3", "distinct_3", ".3f"),
    ("longest copy (chars)", "longest_copy_chars", ",d"), ("longest copy (words)", "longest_copy_words", ",d"),
    ("copied {window} spans", "copied_share", "%"),
    ("mean line (chars)", "mean_line_chars", ".1f"), ("median line (chars)", "median_line_chars", ".1f"),
    ("line length distance (KS)", "line_length_distance", ".3f"),
]


def _cell(value, spec: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" if spec == "%" else format(value, spec)


def format_table(report: TextReport) -> str:
    """Measures down, the samples and the held-out reference across, aligned for a terminal."""
    rows = [r for r in (report.samples, report.reference) if r is not None]
    head = ["measure"] + [f"samples ({report.sample_count})" if r.name == "samples" else "held-out (reference)"
                          for r in rows]
    body = [[label.format(window=report.copy_window)] + [_cell(getattr(r, key), spec) for r in rows]
            for label, key, spec in _ROWS if any(getattr(r, key) is not None for r in rows)]
    widths = [max(len(line[i]) for line in [head] + body) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
             for line in [head] + body]
    for r in rows:
        if r.longest_copy:
            lines.append(f"longest copy in the {r.name}: {r.longest_copy!r}")
    return "\n".join(lines)
