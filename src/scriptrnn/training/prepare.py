"""A run's text made ready to train on: learnt in one pass, encoded in another, never held whole.

Files and the built-in corpus stream (data/stream.py): the first pass (data/scan.py)
fingerprints the text, finds its speakers and counts its vocabulary; the second encodes it
piece by piece straight into the run's token cache, so preparing 5 GB takes the memory
preparing 5 MB does. Styles are the exception: they are cut into scenes, tagged and
interleaved as a whole (data/styles.py), so they load whole as before.

Subword level learns its byte pairs from the text before the held-out end, so that end is cut
in characters (data/subword.py: ``held_out_start``), before any token exists, and the two parts
are encoded apart; it reads the text four times (scan, learn, count, encode), never whole.

Both kinds answer the same questions (``name``, ``sha256``, ``characters``, ``speakers``,
``tokenizer``, ``train_tokens``, ``ids``), which is all setup.py asks of a corpus.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator

import numpy as np

from ..data.batching import split_ids, tokens_needed
from ..evaluation.coverage import characters_from
from ..data.corpus import find_speakers
from ..data.scan import CorpusScan
from ..data.sources import CorpusSource
from ..data.stream import Recut, StreamedCorpus
from ..data.styles import StyledCorpus
from ..data.subword import SubwordTokenizer, after, cut_at_lines, held_out_start, until
from ..data.tokenizer import fit_tokenizer
from ..evaluation.val_data import ValData
from ..errors import ScriptRNNError
from .config import TrainConfig


def open_text(source: CorpusSource, level: str | None, lowercase: bool = True):
    """The source's text, learnt: streamed (one pass now) or, for styles, whole. level None: no vocabulary."""
    streamed = source.streamed()
    if streamed is None:
        return WholeText(source.load())
    return StreamedText(streamed, level, lowercase)


def fingerprint(text: str) -> str:
    """The SHA-256 of the text as UTF-8: what guards --resume (CorpusScan computes the same piece by piece)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class StreamedText:
    """Files or the built-in corpus, read twice in pieces: to learn them, then to encode them."""

    styled = None

    def __init__(self, streamed: StreamedCorpus, level: str | None, lowercase: bool):
        self.name, self._pieces = streamed.name, streamed.pieces
        self.scan = CorpusScan.of(streamed.pieces(), level=None if level == "subword" else level,
                                  lowercase=lowercase)
        self.sha256, self.characters = self.scan.sha256, self.scan.characters
        self.speakers: Counter = self.scan.speakers

    def tokenizer(self, train_config: TrainConfig, *, val: ValData | None = None):
        if train_config.level == "subword":  # learnt from the training part only (a second pass)
            cut = self._subword_cut(train_config, val)
            return SubwordTokenizer.fit(cut_at_lines(until(self._pieces(), cut)),
                                        vocab_size=train_config.subword_vocab_size)
        return self.scan.tokenizer(min_count=train_config.min_count)

    def _subword_cut(self, train_config: TrainConfig, val: ValData | None) -> int:
        """Where the held-out end starts, in characters (all of DATA trains beside --val-data)."""
        return self.characters if val is not None else held_out_start(self.characters, train_config.val_fraction)

    def train_tokens(self, tokenizer, train_config: TrainConfig, tokens: int | None = None, *,
                     val: ValData | None = None) -> int:
        """How many ids are trained on (the rest is held out); a corpus too small for one batch is refused.

        With --val-data (``val``) all of DATA trains and the files, put after it, validate.
        """
        if tokenizer.level == "subword":
            return self._subword_train_tokens(tokenizer, train_config, val)
        n = self.scan.tokens if tokens is None else tokens
        B, T, fraction = train_config.batch_size, train_config.seq_len, train_config.val_fraction
        if val is not None:
            if n < B * (T + 1) + 1:  # one (B, T+1) batch
                too_small("DATA", n, "", B * (T + 1) + 1, B, T, tokenizer)
            return n
        need = tokens_needed(B * (T + 1) + 1, fraction)  # one (B, T+1) batch to train on, after the split
        if n < need:
            too_small("the corpus", n, f" with {fraction:.0%} held out", need, B, T, tokenizer)
        return len(split_ids(range(n), fraction)[0])  # a range: the split of n ids without holding them

    def _subword_train_tokens(self, tokenizer, train_config: TrainConfig, val: ValData | None) -> int:
        """Subword level: the training part's tokens, counted by encoding it (a pass), the held-out end's too."""
        cut = self._subword_cut(train_config, val)
        n_train = sum(len(ids) for ids in tokenizer.encode_pieces(until(self._pieces(), cut)))
        n_val = sum(len(ids) for ids in tokenizer.encode_pieces(after(self._pieces(), cut))) if val is None else 2
        B, T = train_config.batch_size, train_config.seq_len
        if n_train < B * (T + 1) + 1 or n_val < 2:
            too_small("the corpus", n_train + n_val, f" with {train_config.val_fraction:.0%} held out",
                      B * (T + 1) + 1 + 2, B, T, tokenizer)
        return n_train

    def _subword_ids(self, tokenizer, train_config: TrainConfig, val: ValData | None) -> Iterator[np.ndarray]:
        """The training part's ids, then the held-out end's, encoded apart (the cut is a token boundary)."""
        cut = self._subword_cut(train_config, val)
        yield from tokenizer.encode_pieces(until(self._pieces(), cut))
        yield from tokenizer.encode_pieces(after(self._pieces(), cut))
        self.val_characters = self.characters - cut

    def ids(self, tokenizer, train_config: TrainConfig, *, val: ValData | None = None,
            val_start: int | None = None) -> Iterator[np.ndarray]:
        """The second pass: the ids, piece by piece (at word level cut again so that no word is split),
        then --val-data's. On the way it counts the held-out part's characters (``val_characters``,
        None where ``val_start`` is not known yet) and ``val``'s tokens (``val_tokens``)."""
        if tokenizer.level == "subword":
            yield from self._subword_ids(tokenizer, train_config, val)
            self.val_tokens = 0
            if val is not None:
                val_ids, self.val_characters = val.encoded(tokenizer)
                self.val_tokens = len(val_ids)
                yield val_ids
            return
        words = Recut("word") if tokenizer.level == "word" else None
        held = _HeldOut(tokenizer, None if val is not None else val_start)
        for piece in self._pieces():
            text = words.feed(piece) if words else piece
            if text:
                yield held.count(text, tokenizer.encode(text, strict=False))
        if words and words.tail:
            text = words.flush()
            yield held.count(text, tokenizer.encode(text, strict=False))
        self.val_characters, self.val_tokens = held.characters, 0
        if val is not None:
            val_ids, self.val_characters = val.encoded(tokenizer)
            self.val_tokens = len(val_ids)
            yield val_ids


class _HeldOut:
    """Characters of the text from token number ``start`` on, counted piece by piece (bits per character)."""

    def __init__(self, tokenizer, start: int | None):
        self.tokenizer, self.start, self.seen = tokenizer, start, 0
        self.characters: int | None = 0 if start is not None else None

    def count(self, text: str, ids: np.ndarray) -> np.ndarray:
        if self.start is not None and self.seen + len(ids) > self.start:
            self.characters += characters_from(self.tokenizer, text, max(0, self.start - self.seen))
        self.seen += len(ids)
        return ids


class WholeText:
    """A styled corpus, in memory: each style holds out its own end, so its ids are not in text order."""

    def __init__(self, corpus: StyledCorpus):
        self.styled = corpus
        self.name, self.characters = corpus.name, len(corpus.text)
        self.sha256, self.speakers = fingerprint(corpus.text), find_speakers(corpus.text)
        self._encoded: tuple[list[np.ndarray], int] | None = None

    def tokenizer(self, train_config: TrainConfig, *, val: ValData | None = None):
        if train_config.level == "subword":  # the styles' training parts only; each tag one whole token
            return fit_tokenizer(self.styled.split(train_config.val_fraction).train, "subword",
                                 vocab_size=train_config.subword_vocab_size, keep_whole=self.styled.styles.values())
        return fit_tokenizer(self.styled.text, train_config.level, lowercase=train_config.lowercase,
                             min_count=train_config.min_count)

    def train_tokens(self, tokenizer, train_config: TrainConfig, tokens: int | None = None, *,
                     val: ValData | None = None) -> int:
        return self._encode(tokenizer, train_config)[1]  # styles refuse --val-data (setup._val_data)

    def ids(self, tokenizer, train_config: TrainConfig, *, val: ValData | None = None,
            val_start: int | None = None) -> Iterator[np.ndarray]:
        yield from self._encode(tokenizer, train_config)[0]

    def _encode(self, tokenizer, train_config: TrainConfig) -> tuple[list[np.ndarray], int]:
        """Training text first, then every style's held-out end, and where the held-out part starts."""
        if self._encoded is None:
            B, T = train_config.batch_size, train_config.seq_len
            split = self.styled.split(train_config.val_fraction)
            train_ids = tokenizer.encode(split.train, strict=False)
            if len(train_ids) < B * (T + 1) + 1:  # one (B, T+1) batch
                too_small("the styles' training text", len(train_ids), "", B * (T + 1) + 1, B, T, tokenizer)
            self._encoded = [train_ids, tokenizer.encode(split.val, strict=False)], len(train_ids)
            self.val_characters, self.val_tokens = characters_from(tokenizer, split.val, 0), 0
        return self._encoded


def too_small(what: str, have: int, condition: str, need: int, B: int, T: int, tokenizer):
    unit = "characters" if tokenizer.level == "char" else "tokens"
    raise ScriptRNNError(
        f"{what} has {have:,} {unit} but --batch-size {B} x --seq-len {T}{condition} needs at least {need:,}; "
        "use a bigger corpus or a smaller --batch-size/--seq-len"
    )
