"""Subword tokens: a byte-level byte-pair vocabulary learnt from the corpus with Hugging Face ``tokenizers``.

Byte level: the 256 bytes are the first tokens, so every Unicode text encodes (nothing is unknown,
no ``<unk>``) and decodes back to itself exactly; merges learnt from the training text make the
common words and names single tokens. Case is kept: the corpus's own spelling is what is learnt.

Pre-tokenization (where merges may not cross): every line break is a token of its own, then
GPT-2's byte-level rule (a word with the space before it; runs of digits, of punctuation, of
spaces apart). So a speaker's name at the start of a line ("JERRY" after the line break) is a
word of its own, split from its colon, and a frequent one becomes one token: merges learn the
speakers as they learn any frequent word, without a fixed list that would match inside other
words and that a fine-tuning corpus could not extend. The line break standing alone also makes
encoding piece by piece (cut after a line break) give exactly the ids of the whole text, which
streaming preparation relies on, and makes ``token_id("\\n")`` one id for whole-line generation.

Saved inside scriptrnn's own ``tokenizer.json`` as ``{"level": "subword", "tokenizer": {...}}``:
the inner object is the ``tokenizers`` library's own JSON, so one loader reads every level and the
file stays readable by ``tokenizers.Tokenizer.from_str`` for anyone who wants it.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from functools import lru_cache

import numpy as np

from ..errors import ScriptRNNError

MIN_VOCAB = 256  # the bytes themselves; every merge adds one token


@lru_cache(maxsize=1)
def _byte_of_char() -> dict[str, int]:
    """GPT-2's printable stand-in character for each byte, reversed (what ByteLevel tokens are spelt in)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def _library():
    try:
        import tokenizers
    except ImportError:
        raise ScriptRNNError("subword models need the 'tokenizers' package: pip install tokenizers "
                             "(it comes with scriptrnn[train] and scriptrnn[runtime])") from None
    return tokenizers


def new_bpe():
    """An untrained byte-level BPE with this module's pre-tokenization (see the docstring)."""
    tk = _library()
    tokenizer = tk.Tokenizer(tk.models.BPE())
    tokenizer.pre_tokenizer = tk.pre_tokenizers.Sequence([
        tk.pre_tokenizers.Split(tk.Regex("\n"), behavior="isolated"),
        tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tokenizer.decoder = tk.decoders.ByteLevel()
    return tokenizer


def _clean(text: str) -> str:
    """A lone surrogate (possible in a str from JSON) is no Unicode text and cannot cross into Rust: dropped."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "ignore").decode("utf-8")


class SubwordTokenizer:
    """Byte-level BPE ids and text; the interface of the char and word tokenizers (data/tokenizer.py)."""

    level = "subword"
    lowercase = False  # the corpus's own case, always
    unk_id = None  # every byte is a token: nothing is unknown

    def __init__(self, hf):
        self.hf = hf
        self.vocab_size = hf.get_vocab_size()
        added = {t.content for t in hf.get_added_tokens_decoder().values()}
        byte_of = _byte_of_char()
        self._bytes: list[bytes] = []  # id -> the bytes it writes, for streaming decoding
        for i in range(self.vocab_size):
            token = hf.id_to_token(i)
            if token is None:
                raise ScriptRNNError(f"tokenizer.json: subword id {i} has no token; the file is damaged")
            if token in added:
                self._bytes.append(token.encode("utf-8"))
            elif all(ch in byte_of for ch in token):
                self._bytes.append(bytes(byte_of[ch] for ch in token))
            else:
                raise ScriptRNNError(f"tokenizer.json: subword token {token!r} is not byte-level; "
                                     "the file is damaged or not scriptrnn's")

    @classmethod
    def fit(cls, texts: Iterable[str], *, vocab_size: int, keep_whole: Iterable[str] = ()) -> "SubwordTokenizer":
        """Learn ``vocab_size`` tokens (bytes, merges, then ``keep_whole``: style tags) from ``texts``, in order."""
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB:
            raise ScriptRNNError(f"--vocab-size must be a whole number of at least {MIN_VOCAB}, got {vocab_size!r}")
        tk = _library()
        hf = new_bpe()
        trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, special_tokens=[],
                                         initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
        hf.train_from_iterator((_clean(t) for t in texts), trainer)
        if keep_whole:
            hf.add_tokens(sorted(set(keep_whole)))  # plain added tokens: printed, never split
        return cls(hf)

    @property
    def reserved_ids(self) -> tuple[int, ...]:
        """Ids generation must never write: none (no <unk>, no printable special tokens)."""
        return ()

    def encode(self, text: str, *, strict: bool = True) -> np.ndarray:
        clean = _clean(text)
        if strict and clean != text:
            raise ScriptRNNError("the text holds a lone surrogate, which is not Unicode text; remove it from the prime")
        dtype = np.uint16 if self.vocab_size <= 1 << 16 else np.uint32
        return np.asarray(self.hf.encode(clean, add_special_tokens=False).ids, dtype=dtype)

    def encode_pieces(self, pieces: Iterable[str]) -> Iterator[np.ndarray]:
        """The ids of the joined pieces, a chunk at a time (cut after line breaks: exactly the whole text's)."""
        for text in cut_at_lines(pieces):
            yield self.encode(text, strict=False)

    def offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids, each token's first character) of ``text``."""
        encoding = self.hf.encode(_clean(text), add_special_tokens=False)
        return (np.asarray(encoding.ids, dtype=np.int64),
                np.asarray([start for start, _ in encoding.offsets], dtype=np.int64))

    def decoder(self) -> "_SubwordDecoder":
        return _SubwordDecoder(self._bytes)

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(self._bytes[int(i)] for i in ids).decode("utf-8", "replace")

    def token_id(self, token: str) -> int | None:
        """The id of ``token`` if the text is one token, else None (line breaks and style tags are)."""
        ids = self.hf.encode(_clean(token), add_special_tokens=False).ids
        return ids[0] if len(ids) == 1 and token else None

    def to_dict(self) -> dict:
        return {"level": "subword", "tokenizer": json.loads(self.hf.to_str())}

    @classmethod
    def from_dict(cls, data: dict) -> "SubwordTokenizer":
        inner = data.get("tokenizer")
        if not isinstance(inner, dict) or not isinstance(inner.get("model"), dict) \
                or inner["model"].get("type") != "BPE":
            raise ScriptRNNError("tokenizer.json: a subword vocabulary needs a 'tokenizer' object holding a BPE model")
        try:
            hf = _library().Tokenizer.from_str(json.dumps(inner))
        except ScriptRNNError:
            raise
        except Exception as e:  # the library's own errors: a damaged file
            raise ScriptRNNError(f"tokenizer.json: not a subword vocabulary the tokenizers library reads "
                                 f"({str(e).splitlines()[0][:200]})") from None
        return cls(hf)


class _SubwordDecoder:
    """Streaming decoder: a token may end inside a character's UTF-8 bytes, which wait for the rest."""

    def __init__(self, table: list[bytes]):
        self.table = table
        self.utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def step(self, token_id: int) -> str:
        return self.utf8.decode(self.table[token_id])


# A text with no line break for this long is cut before a single space between two words instead,
# which is also a boundary the pre-tokenizer always makes, so a book without line breaks stays bounded.
MAX_HELD_CHARS = 1 << 20


def cut_at_lines(pieces: Iterable[str]) -> Iterator[str]:
    """The joined pieces again, each cut where pre-tokenization always cuts: after a line break."""
    tail = ""
    for piece in pieces:
        text = tail + piece
        cut = text.rfind("\n") + 1
        if not cut and len(text) > MAX_HELD_CHARS:
            cut = _space_cut(text)
        tail = text[cut:]
        if cut:
            yield text[:cut]
    if tail:
        yield tail


def _space_cut(text: str) -> int:
    """Where a single space sits between two non-spaces, from the end (0: none)."""
    at = len(text) - 1
    while (at := text.rfind(" ", 0, at)) > 0:
        if not text[at - 1].isspace() and at + 1 < len(text) and not text[at + 1].isspace():
            return at
    return 0


def held_out_start(characters: int, fraction: float) -> int:
    """Where a subword run's held-out end starts, in characters: the last ``fraction`` of the text.

    The split is made in characters, before the vocabulary exists, so the byte pairs are learnt
    from the training part only; the two parts are encoded apart (char level holds out the same text).
    """
    return characters - int(characters * fraction)


def until(pieces: Iterable[str], cut: int) -> Iterator[str]:
    """The pieces' text before character ``cut``."""
    seen = 0
    for piece in pieces:
        if seen >= cut:
            return
        yield piece[:cut - seen]
        seen += len(piece)


def after(pieces: Iterable[str], cut: int) -> Iterator[str]:
    """The pieces' text from character ``cut`` on."""
    seen = 0
    for piece in pieces:
        if seen + len(piece) > cut:
            yield piece[max(0, cut - seen):]
        seen += len(piece)
