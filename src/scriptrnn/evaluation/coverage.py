"""Text as the model will score it, with nothing left out unsaid.

``encode_text`` tokenizes a text and keeps the facts a fair score needs: how many tokens the
vocabulary lacks (scored as ``<unk>`` where the vocabulary has one, left out where it has none:
char level, and word models from before every word vocabulary had ``<unk>``), and how many
characters each stretch of tokens covers, so that a loss per token becomes bits per character
of the text: one scale for word and char models and for models with different vocabularies.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

import numpy as np

from ..data.batching import split_ids

UNKNOWN = -1  # a token the vocabulary lacks, before it becomes <unk> or is left out


@dataclass(frozen=True)
class EncodedText:
    """A text's tokens: the ids (UNKNOWN where the vocabulary lacks one) and where each token starts."""

    marked: np.ndarray  # (N,) int64
    starts: np.ndarray  # (N,) int64: each token's first character in the (case-folded) text
    characters: int  # length of the (case-folded) text
    unk_id: int | None  # the vocabulary's <unk>, if it has one

    def tail(self, fraction: float) -> "EncodedText":
        """The held-out end: the last ``fraction`` of the tokens, as training splits them."""
        cut = len(split_ids(self.marked, fraction)[0])
        start = int(self.starts[cut]) if cut < len(self.starts) else self.characters
        return EncodedText(self.marked[cut:], self.starts[cut:] - start, self.characters - start, self.unk_id)

    def coverage(self) -> dict:
        """ids to score and the report's counts: tokens, characters, out of vocabulary, left out."""
        unknown = self.marked == UNKNOWN
        if self.unk_id is not None:
            ids, dropped = np.where(unknown, self.unk_id, self.marked), 0
        else:
            ids, dropped = self.marked[~unknown], int(unknown.sum())
        n = len(self.marked)
        return {"ids": ids, "tokens": n, "characters": self.characters, "out_of_vocabulary": int(unknown.sum()),
                "out_of_vocabulary_share": float(unknown.sum()) / max(1, n), "dropped": dropped}


def encode_text(tokenizer, text: str) -> EncodedText:
    """Every token of ``text``, unknown ones marked, with its character offsets."""
    if tokenizer.level == "char":
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)
        table = {ch: i for i, ch in enumerate(tokenizer.vocab)}
        lookup = np.full(max(map(ord, table)) + 2, UNKNOWN, dtype=np.int64)
        lookup[[ord(ch) for ch in table]] = list(table.values())
        marked = lookup[np.minimum(codes, len(lookup) - 1)]
        return EncodedText(marked, np.arange(len(marked)), len(marked), None)
    if tokenizer.level == "subword":  # byte level: every token known, offsets from the library
        ids, starts = tokenizer.offsets(text)
        return EncodedText(ids, starts, len(text), None)
    folded = text.lower() if tokenizer.lowercase else text
    words = tokenizer.split(text)
    marked = np.fromiter((tokenizer.index.get(w, UNKNOWN) for w in words), dtype=np.int64, count=len(words))
    starts = np.fromiter((m.start() for m in _word_pattern(tokenizer.symbols).finditer(folded)), dtype=np.int64)
    if len(starts) != len(words):  # a text the regular expression splits otherwise: spread the characters evenly
        starts = (np.arange(len(words)) * (len(folded) / max(1, len(words)))).astype(np.int64)
    return EncodedText(marked, starts, len(folded), tokenizer.unk_id)


def _word_pattern(symbols: dict[str, str]) -> re.Pattern:
    """A word-level token as WordTokenizer.split finds it: a symbol alone, or a run of other non-space characters."""
    chars = "".join(re.escape(s) for s in symbols)
    return re.compile(f"[{chars}]|[^\\s{chars}]+" if chars else r"\S+")


def bits_per_char(loss: float, tokens: int, characters: int) -> float | None:
    """Mean nats per token -> bits per character of the text: loss x tokens / characters / ln 2."""
    if characters <= 0 or not math.isfinite(loss):
        return None
    return loss * tokens / characters / math.log(2)


def case_note(tokenizer) -> dict:
    """What a score of a case-folding model must say beside its figures (nothing for the others).

    A model that folds case is scored on the lower-cased text: scoring it on the original would
    charge it for every capital it cannot write, which measures its vocabulary, not what it learnt.
    So its figures are kept, and labelled: they leave out the capitals' cost that a case-keeping
    model pays, and sit a little low beside one.
    """
    if getattr(tokenizer, "lowercase", False) and tokenizer.level == "word":
        return {"scored_on": "lower-cased text (this model folds case and cannot write capitals: its bits "
                             "per character leave out what capitals cost a model that keeps case)"}
    return {}


def dropped_warning(report: dict, level: str) -> str | None:
    """The loud line for tokens the score leaves out (none when every token was scored)."""
    dropped = report.get("dropped", 0)
    if not dropped:
        return None
    what = "characters" if level == "char" else "words"
    return (f"WARNING: {dropped:,} {what} of the text ({report['out_of_vocabulary_share']:.2%}) are not in the "
            "model's vocabulary and have no <unk> to stand for them: they are NOT scored, so the loss leaves "
            "out the hardest tokens and looks better than it is")


def characters_from(tokenizer, text: str, first_token: int) -> int:
    """Characters of ``text`` from its token number ``first_token`` on: the length of a held-out end.

    Reads the text once without keeping per-token arrays, so it costs no memory on a big corpus.
    Char level counts a text's own vocabulary, which has every character of it.
    """
    if tokenizer.level == "char":
        return max(0, len(text) - first_token)
    if tokenizer.level == "subword":
        starts = tokenizer.offsets(text)[1]
        return len(text) - int(starts[first_token]) if first_token < len(starts) else 0
    folded = text.lower() if tokenizer.lowercase else text
    match = next(itertools.islice(_word_pattern(tokenizer.symbols).finditer(folded), first_token, None), None)
    return len(folded) - match.start() if match else 0
