"""Turning text into token ids and back, at character, word or subword level.

The tokenizers share one small interface (``encode``, ``decode``, ``decoder``,
``to_dict``/``from_dict``) and are saved as JSON beside every model, so a
checkpoint always carries the exact vocabulary it was trained with.

Word level follows the course projects: lower-case the text, replace each
punctuation symbol by a token name (``token_lookup``), split on white space, and
order the vocabulary by frequency (``create_lookup_tables``). Decoding puts the
punctuation back where a reader expects it: ``jerry: what? i don't know.``

Subword level (byte-pair tokens learnt with Hugging Face ``tokenizers``) lives in subword.py,
imported only when a subword vocabulary is made or read, so char and word models need no
``tokenizers`` install.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from ..errors import ScriptRNNError

UNK = "<unk>"

# The ten symbols of the course projects, each to a name with no punctuation or
# space in it. The "xx" prefix (fastai's convention) keeps them apart from words.
_COURSE_SYMBOLS = {
    ".": "xxperiod",
    ",": "xxcomma",
    '"': "xxquote",
    ";": "xxsemicolon",
    "!": "xxexclaim",
    "?": "xxquestion",
    "(": "xxlparen",
    ")": "xxrparen",
    "-": "xxdash",
    "\n": "xxnewline",
}
# Symbols this tool also splits off: the colon after a speaker's name and the
# brackets around stage directions, so "jerry" and "[exit]" are ordinary words.
_EXTRA_SYMBOLS = {":": "xxcolon", "[": "xxlbracket", "]": "xxrbracket"}


def token_lookup() -> dict[str, str]:
    """The course projects' punctuation table: ten symbols to space-free token names."""
    return dict(_COURSE_SYMBOLS)


def create_lookup_tables(words: Iterable[str]) -> tuple[dict[str, int], dict[int, str]]:
    """Vocabulary tables as the course projects build them: most frequent word first.

    Ties keep the order in which words first appear, so the tables are repeatable.
    """
    counts = Counter(words)
    ordered = [word for word, _ in counts.most_common()]
    vocab_to_int = {word: i for i, word in enumerate(ordered)}
    int_to_vocab = {i: word for word, i in vocab_to_int.items()}
    return vocab_to_int, int_to_vocab


def _ids_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned type that holds every id (keeps big corpora compact)."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


class CharTokenizer:
    """Every distinct character of the corpus is a token, in code-point order."""

    level = "char"

    def __init__(self, vocab: Sequence[str]):
        self.vocab = list(vocab)
        self.index = {ch: i for i, ch in enumerate(self.vocab)}
        # A code point -> id table makes encoding a single numpy gather; its last entry (-1)
        # stands for every code point beyond the vocabulary's largest.
        codes = np.array([ord(ch) for ch in self.vocab], dtype=np.int64)
        self._table = np.full(int(codes.max()) + 2 if len(codes) else 1, -1, dtype=np.int32)
        self._table[codes] = np.arange(len(codes))

    @classmethod
    def fit(cls, text: str) -> "CharTokenizer":
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def reserved_ids(self) -> tuple[int, ...]:
        """Tokens that score text but are never written (generation masks them): none at char level."""
        return ()

    def encode(self, text: str, *, strict: bool = True) -> np.ndarray:
        # surrogatepass: a lone surrogate (possible in a str from JSON) is just an unknown character.
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        ids = self._table[np.minimum(codes, len(self._table) - 1)]  # (n,) int32, -1 where unknown
        unknown = ids < 0
        if unknown.any():
            if strict:
                chars = sorted({text[i] for i in np.flatnonzero(unknown)[:10_000]})
                raise ScriptRNNError(
                    f"characters not in the model's vocabulary: {''.join(chars)!r}; "
                    "remove them from the prime"
                )
            ids = ids[~unknown]
        return ids.astype(_ids_dtype(self.vocab_size))

    def decoder(self) -> "_CharDecoder":
        return _CharDecoder(self.vocab)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def token_id(self, token: str) -> int | None:
        return self.index.get(token)

    def to_dict(self) -> dict:
        return {"level": "char", "vocab": self.vocab}


class _CharDecoder:
    """Streaming decoder: one id in, the text it adds out."""

    def __init__(self, vocab: list[str]):
        self.vocab = vocab

    def step(self, token_id: int) -> str:
        return self.vocab[token_id]


class WordTokenizer:
    """Course-style word tokens: lower-cased words, punctuation as tokens of its own."""

    level = "word"

    def __init__(self, vocab: Sequence[str], *, lowercase: bool = True, symbols: dict[str, str] | None = None):
        self.vocab = list(vocab)
        self.index = {tok: i for i, tok in enumerate(self.vocab)}
        self.lowercase = lowercase
        self.symbols = dict(symbols) if symbols is not None else {**_COURSE_SYMBOLS, **_EXTRA_SYMBOLS}
        self.names = {name: sym for sym, name in self.symbols.items()}
        self._spacing = str.maketrans({sym: f" {name} " for sym, name in self.symbols.items()})
        self.unk_id = self.index.get(UNK)

    @classmethod
    def fit(cls, text: str, *, lowercase: bool = True, min_count: int = 1) -> "WordTokenizer":
        """The vocabulary of ``text``: words seen at least ``min_count`` times, and always ``<unk>``
        (``from_counts`` says how)."""
        tok = cls([], lowercase=lowercase)
        return cls.from_counts(Counter(tok.split(text)), lowercase=lowercase, min_count=min_count)

    @classmethod
    def from_counts(cls, counts: Counter, *, lowercase: bool = True, min_count: int = 1) -> "WordTokenizer":
        """The vocabulary of tokens counted in order of first appearance (``split``'s), most frequent first.

        Rare words fold into ``<unk>``, which takes its place in the frequency order; so new
        text's unknown words have a token that training has seen, and every word of it is
        scored. With ``min_count`` 1 (this function's default; a run's is TrainConfig.min_count)
        nothing folds and ``<unk>`` is last, never trained on.
        """
        if min_count < 1:
            raise ScriptRNNError(f"--min-count must be at least 1, got {min_count}")
        counts = Counter(counts)
        literal = counts.pop(UNK, 0)  # "<unk>" written in the text is the same token
        kept = [w for w, c in counts.most_common() if c >= min_count]  # ties: first seen first (stable sort)
        folded = literal + sum(c for w, c in counts.items() if c < min_count)
        kept = sorted(kept + [UNK], key=lambda w: -(counts[w] if w != UNK else folded))  # stable: ties keep order
        return cls(kept, lowercase=lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def reserved_ids(self) -> tuple[int, ...]:
        """Tokens that score text but are never written (generation masks them): ``<unk>``."""
        return () if self.unk_id is None else (self.unk_id,)

    def split(self, text: str) -> list[str]:
        """Text -> word and symbol-name tokens (before mapping to ids)."""
        if self.lowercase:
            text = text.lower()
        return text.translate(self._spacing).split()

    def encode(self, text: str, *, strict: bool = True) -> np.ndarray:
        ids = []
        for word in self.split(text):
            i = self.index.get(word, self.unk_id)
            if i is None:
                if strict:
                    raise ScriptRNNError(
                        f"the word {word!r} is not in the model's vocabulary; "
                        "choose another word (see the corpus); models trained now always have <unk>"
                    )
                continue
            ids.append(i)
        return np.asarray(ids, dtype=_ids_dtype(self.vocab_size))

    def decoder(self) -> "_WordDecoder":
        return _WordDecoder(self)

    def decode(self, ids: Iterable[int]) -> str:
        decoder = self.decoder()
        return "".join(decoder.step(int(i)) for i in ids)

    def token_id(self, token: str) -> int | None:
        return self.index.get(self.symbols.get(token, token))

    def to_dict(self) -> dict:
        return {"level": "word", "vocab": self.vocab, "lowercase": self.lowercase, "symbols": self.symbols}


# How punctuation sits against its neighbours when text is put back together.
_NO_SPACE_BEFORE = set(".,;!?)]:\n-")
_NO_SPACE_AFTER = set("([\n-")


class _WordDecoder:
    """Streaming detokenizer: one id in, the text it adds (with its leading space) out.

    ``decode`` is this run over all ids, so the terminal, the API and files see
    the same text whether it streamed or not.
    """

    def __init__(self, tok: WordTokenizer):
        self.tok = tok
        self.prev = "\n"  # the start reads like the start of a line: no leading space
        self.quote_open = False

    def step(self, token_id: int) -> str:
        token = self.tok.vocab[token_id]
        text = self.tok.names.get(token, token)
        glue_left = text in _NO_SPACE_BEFORE or self.prev in _NO_SPACE_AFTER
        if text == '"':
            # Quotes alternate: an opening one hugs the next word, a closing one the last.
            glue_left = self.quote_open or self.prev in _NO_SPACE_AFTER
            self.quote_open = not self.quote_open
        elif self.prev == '"' and self.quote_open:
            glue_left = True
        self.prev = text
        return text if glue_left else " " + text


def tokenizer_from_dict(data: dict):
    """Rebuild a tokenizer saved with ``to_dict`` (checked: it comes from a file)."""
    if not isinstance(data, dict):
        raise ScriptRNNError("tokenizer.json must hold a JSON object")
    level = data.get("level")
    if level == "subword":
        from .subword import SubwordTokenizer

        return SubwordTokenizer.from_dict(data)
    vocab = data.get("vocab")
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab) or not vocab:
        raise ScriptRNNError("tokenizer.json has no valid 'vocab' list")
    if len(set(vocab)) != len(vocab):
        raise ScriptRNNError("tokenizer.json: the 'vocab' list repeats a token")
    _check_encodable(vocab, "vocab")
    if level == "char":
        if not all(len(t) == 1 for t in vocab):
            bad = next(t for t in vocab if len(t) != 1)
            raise ScriptRNNError(f"tokenizer.json: char-level vocab entry {bad!r} is not one character")
        return CharTokenizer(vocab)
    if level == "word":
        symbols = data.get("symbols")
        lowercase = data.get("lowercase", True)
        if not isinstance(symbols, dict) or not all(
            isinstance(k, str) and len(k) == 1 and isinstance(v, str) and v and not any(c.isspace() for c in v)
            for k, v in symbols.items()
        ) or len(set(symbols.values())) != len(symbols):
            raise ScriptRNNError("tokenizer.json has no valid 'symbols' table (one character -> a distinct name)")
        _check_encodable([*symbols, *symbols.values()], "symbols")
        if not isinstance(lowercase, bool):
            raise ScriptRNNError(f"tokenizer.json: 'lowercase' must be true or false, got {lowercase!r}")
        return WordTokenizer(vocab, lowercase=lowercase, symbols=symbols)
    raise ScriptRNNError(f"tokenizer.json has unknown level {level!r} (expected 'char', 'word' or 'subword')")


def _check_encodable(tokens: list[str], field: str) -> None:
    # JSON can spell a lone surrogate ("\ud800"), which no UTF-8 output can carry: every answer,
    # page or file holding it would fail, so the vocabulary is refused when it loads.
    for token in tokens:
        try:
            token.encode("utf-8")
        except UnicodeEncodeError:
            raise ScriptRNNError(f"tokenizer.json: '{field}' entry {token!r} is not valid Unicode "
                                 "(a lone surrogate); the file is damaged") from None


def fit_tokenizer(text: str, level: str, *, lowercase: bool = True, min_count: int = 1,
                  vocab_size: int | None = None, keep_whole: Iterable[str] = ()):
    """Build the tokenizer for a corpus at the chosen level (subword: ``vocab_size`` tokens, ``keep_whole`` kept whole)."""
    if level == "char":
        return CharTokenizer.fit(text)
    if level == "word":
        return WordTokenizer.fit(text, lowercase=lowercase, min_count=min_count)
    if level == "subword":
        from .subword import SubwordTokenizer

        if vocab_size is None:
            raise ScriptRNNError("a subword vocabulary needs its size (--vocab-size)")
        return SubwordTokenizer.fit([text], vocab_size=vocab_size, keep_whole=keep_whole)
    raise ScriptRNNError(f"--level must be 'char', 'word' or 'subword', got {level!r}")
