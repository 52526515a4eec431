"""One pass over a corpus's pieces: what a run records about its text, and what its vocabulary needs.

``CorpusScan`` is fed the pieces of a corpus in order (stream.py) and keeps only running
figures: the SHA-256 fingerprint that guards ``--resume`` (the same digest as hashing the
whole text), the character count, the speakers, and either the characters seen (char
level) or the word tokens counted in order of first appearance (word level), from which
the tokenizer is fitted exactly as ``fit_tokenizer`` would fit it on the whole text, ties
included. Its memory is the vocabulary's and the speakers', not the corpus's.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable

import numpy as np

from .corpus import CorpusStats, speaker_name, speech_heads
from .stream import Recut
from .tokenizer import CharTokenizer, WordTokenizer

# A line longer than this (characters) is looked at for a speaker's name by its start only, so
# that one enormous line (a book without line breaks) cannot grow the scan's memory.
MAX_LINE_CHARS = 1 << 20
_CODE_POINTS = 0x110000


class CorpusScan:
    """Running figures over a corpus fed piece by piece (``add``), complete after ``finish``."""

    def __init__(self, *, level: str | None = None, lowercase: bool = True, stats: bool = False):
        self.level, self.lowercase = level, lowercase
        self._sha = hashlib.sha256()
        self.characters = 0
        self.speakers: Counter = Counter()  # name -> speeches, as find_speakers counts them
        self.lines = 0  # non-blank lines (stats=True)
        self._lines = _Lines(self)
        self._seen = np.zeros(_CODE_POINTS, dtype=bool) if level == "char" else None
        self.word_counts: Counter = Counter()  # word level: the tokenizer's tokens, first seen first
        self._splitter = WordTokenizer([], lowercase=lowercase) if level == "word" else None
        self._stats = stats  # also whitespace-separated words, as corpus_stats counts them
        self.words = 0
        self._unique: set[str] = set()
        self._words = Recut("word") if level == "word" or stats else None

    def add(self, piece: str) -> None:
        self._sha.update(piece.encode("utf-8", "surrogatepass"))
        self.characters += len(piece)
        self._lines.feed(piece)
        if self._seen is not None:
            self._seen[np.frombuffer(piece.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)] = True
        if self._words is not None:
            self._count_words(self._words.feed(piece))

    def finish(self) -> "CorpusScan":
        self._lines.finish()
        if self._words is not None:
            self._count_words(self._words.flush())
        return self

    @classmethod
    def of(cls, pieces: Iterable[str], **kwargs) -> "CorpusScan":
        scan = cls(**kwargs)
        for piece in pieces:
            scan.add(piece)
        return scan.finish()

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    @property
    def tokens(self) -> int:
        """How many ids the corpus encodes to at the scanned level (every character or word has one)."""
        return self.characters if self.level == "char" else sum(self.word_counts.values())

    def tokenizer(self, *, min_count: int = 1):
        """The tokenizer fit_tokenizer would fit on the whole text, at the scanned level."""
        if self.level == "char":
            return CharTokenizer([chr(c) for c in np.flatnonzero(self._seen)])  # code-point order
        return WordTokenizer.from_counts(self.word_counts, lowercase=self.lowercase, min_count=min_count)

    def stats(self, name: str = "") -> CorpusStats:
        """corpus_stats's figures (scan with stats=True)."""
        return CorpusStats(characters=self.characters, unique_words=len(self._unique), lines=self.lines,
                           speakers=len(self.speakers), words_per_line=self.words / self.lines if self.lines else 0.0,
                           words=self.words, top_speakers=tuple(self.speakers.most_common(5)), name=name)

    def _count_words(self, text: str) -> None:
        if self._splitter is not None:
            self.word_counts.update(self._splitter.split(text))
        if self._stats:
            words = text.split()
            self.words += len(words)
            self._unique.update(words)


class _Lines:
    """Whole lines out of the pieces: speeches (and with stats, non-blank lines) counted into the scan."""

    def __init__(self, scan: CorpusScan):
        self.scan = scan
        self.tail = ""  # the line still being read
        self.skipping = False  # the rest of an over-long line, already counted by its start
        self.heads: Counter = Counter()  # speaker parts as written, first seen first (names made at the end)

    def feed(self, piece: str) -> None:
        text = self.tail + piece
        cut = text.rfind("\n") + 1
        self.tail = text[cut:]
        if cut:
            start = 0
            if self.skipping:
                start, self.skipping = text.index("\n") + 1, False
            self._count(text[start:cut])
        if len(self.tail) > MAX_LINE_CHARS:
            if not self.skipping:
                self._count(self.tail[:MAX_LINE_CHARS])
            self.tail, self.skipping = "", True

    def finish(self) -> None:
        if not self.skipping:
            self._count(self.tail)
        self.tail, self.skipping = "", False
        # Names in the order their first speech came, so ties among them sort as find_speakers sorts them.
        for head, count in self.heads.items():
            self.scan.speakers[speaker_name(head)] += count
        self.heads.clear()

    def _count(self, lines: str) -> None:
        """Whole lines (the last may lack its '\n' at the very end of the text)."""
        self.heads.update(speech_heads(lines))
        if self.scan._stats:
            self.scan.lines += sum(1 for line in lines.split("\n") if line.strip())
