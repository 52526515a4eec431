"""A loaded model as a writer: its tokenizer, run facts, styles and speakers, and how a prime is read.

``ScriptModel.start`` makes a ``Generation`` (generation.py), whose single token loop
writes the text; ``stream`` and ``generate`` are that loop for one request, as the
terminal and the Python API use it. The network behind it is the PyTorch
``RNNLanguageModel`` or the onnxruntime ``OnnxModel`` (scriptrnn.model), anything with
``prefill`` and ``step``; this module imports neither.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import cached_property
from typing import Iterator

import numpy as np

from ..data.styles import model_styles, style_name, style_speakers, style_tag
from ..data.tokenizer import UNK
from ..errors import ScriptRNNError
from .constraints import SuppressTokens
from .generation import Generation
from .sampling import SamplingConfig
from .speakers import cast_mask, resolve_cast, resolve_speaker, speaker_prime, turn_taking


class ScriptModel:
    """A trained model with its tokenizer and run facts, ready to write."""

    def __init__(self, model, tokenizer, record, device="cpu"):
        self.model = model.to(device).eval()  # an RNNLanguageModel or a model.onnx.OnnxModel
        self.tokenizer = tokenizer
        self.config = record  # the run's config.json, typed and checked (model.record.RunRecord)
        self.device = device
        self.speakers: list[str] = list(record.corpus.speakers)
        self.newline_id = tokenizer.token_id("\n")
        self.styles: dict[str, str] = model_styles(record.corpus.styles, tokenizer)  # style name -> its tag

    @property
    def level(self) -> str:
        return self.tokenizer.level

    # ------------------------------------------------------------ prime

    def prime_text(self, prime: str) -> str:
        """A bare speaker name becomes the start of that speaker's line: 'jerry' -> 'jerry:'."""
        stripped = prime.strip()
        by_lower = {s.lower(): s for s in self.speakers}
        if stripped and "\n" not in stripped and stripped.lower() in by_lower:
            return by_lower[stripped.lower()] + ":"
        return prime

    def encode_prime(self, prime: str, style: str | None = None) -> tuple[np.ndarray, int]:
        """Prime ids after context (the style's tag, a line break), and how many ids are context only."""
        ids = self.tokenizer.encode(self.prime_text(prime))
        if prime.strip() and len(ids) == 0:
            raise ScriptRNNError(f"nothing in the prime {prime!r} is in the model's vocabulary")
        unk = getattr(self.tokenizer, "unk_id", None)
        if unk is not None and len(ids) and (ids == unk).all() and UNK not in prime:
            # <unk> for every word would be no prime at all, silently.
            raise ScriptRNNError(f"none of the words in the prime {prime!r} is in the model's vocabulary; "
                                 "use words from the corpus")
        context = []
        if style is not None:
            # In training a tag comes after the blank line that ends the chunk before; the same
            # few tokens here put a state that starts from nothing closer to the one it had there.
            tag = self.tokenizer.token_id(style_tag(self.styles, style))
            context = [tag] if self.newline_id is None else [self.newline_id, self.newline_id, tag]
        if self.newline_id is None:
            if len(ids) == 0 and not context:
                raise ScriptRNNError("this model needs a prime: give --prime with some text")
        else:
            context.append(self.newline_id)  # start as at the start of a line, where speakers' names come
        return np.concatenate([context, ids]).astype(np.int64), len(context)

    # ------------------------------------------------------------ writing

    def start(self, prime: str = "", config: SamplingConfig | None = None, *, style: str | None = None,
              speaker: str | None = None, cast=None, **settings) -> "Generation":
        """A new request, its prime already run through the network.

        ``style`` writes in one of the model's styles; ``speaker`` starts with that speaker's
        line (the prime, if any, is what they say first); ``cast`` ('jerry,george' or a list)
        keeps every generated line to those speakers.
        """
        config = replace(config or SamplingConfig(), **settings).validate()
        if style is not None and speaker is None and cast is None and not prime.strip():
            # The tag alone steers a state that starts from nothing only weakly (measured: the held-out
            # loss barely depends on it), so the script opens with the style's own leading speaker.
            known = {s.lower() for s in self.speakers}
            named = style_speakers(self.config.corpus.styles, style_name(self.styles, style))
            leading = [s for s in named if s.lower() in known]
            speaker = leading[0] if leading else None
        if speaker is not None:
            prime = speaker_prime(resolve_speaker(speaker, self.speakers), prime)
        generation = Generation(self, prime, config, style=style, rules=self.rules(cast))
        generation.prefill()
        return generation

    def rules(self, cast=None) -> list:
        """The hard rules on next tokens (constraints.py): never a reserved token or a style tag; the cast
        if one is given; turns as a script takes them (no speaker twice in a row, no direction to oneself).

        Reserved tokens (``<unk>``: the tokenizer's ``reserved_ids``) score text but are never written, and
        a style tag is the prime's choice, not the model's. Masked first, before the sampling transforms
        (and in greedy decoding too), so the probability the model gave them is shared out among the other
        tokens in proportion, never handed to one fixed word.
        """
        rules: list = []
        banned = [*self.tokenizer.reserved_ids, *(self.tokenizer.token_id(tag) for tag in self.styles.values())]
        if banned:
            rules.append(SuppressTokens(banned, self.tokenizer.vocab_size))
        if cast is not None:
            rules.append(cast_mask(self.tokenizer, resolve_cast(cast, self.speakers)))
        if self.turn_rule is not None:
            rules.append(self.turn_rule)
        return rules

    @cached_property
    def turn_rule(self):
        """The TurnTaking rule for this model's speakers, or None: built once (each generation keeps its own state)."""
        return turn_taking(self.tokenizer, self.speakers) if self.speakers else None

    def stream(self, prime: str = "", config: SamplingConfig | None = None, **settings) -> "TextStream":
        """Yield, step by step, the text each of the N sequences adds ('' once it has stopped).

        The first item is the prime as the model read it, so that joining all items
        of a sequence gives its whole text. With ``whole_lines`` the text comes a whole
        line at a time, and a last line cut short by ``max_new_tokens`` never comes,
        unless no line was whole: then the text as written, cut at a word end, comes
        last, and the returned stream's ``cut`` says so.
        """
        return TextStream(self.start(prime, config, **settings))

    def generate(self, prime: str = "", config: SamplingConfig | None = None, **settings) -> list[str]:
        """The whole text of each sequence (prime included)."""
        pieces = list(self.stream(prime, config, **settings))
        return ["".join(column) for column in zip(*pieces)]


class TextStream:
    """``stream()``'s iterator over one generation's pieces, whole lines only when its config asks.

    ``cut[i]`` is True once sequence i has ended without one whole line with words in it
    and its text as written came instead (the first run of a model whose first speech is
    longer than the token budget still shows that speech, never nothing). ``generation``
    is the request itself: its finish reasons, seed and tokens.
    """

    def __init__(self, generation: Generation):
        self.generation = generation
        self.cut = [False] * generation.n
        self._pieces = self._whole_lines() if generation.config.whole_lines else generation.steps()

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> list[str]:
        return next(self._pieces)

    def _whole_lines(self) -> Iterator[list[str]]:
        """Hold each sequence's text back until its line ends; what is left over at the end is dropped,
        unless nothing with words came out: then it comes, cut at a word end."""
        n = self.generation.n
        pending, shown = [""] * n, [False] * n
        for step in self.generation.steps():
            out = []
            for i, piece in enumerate(step):
                pending[i] += piece
                cut = pending[i].rfind("\n") + 1
                out.append(pending[i][:cut])
                shown[i] = shown[i] or bool(out[-1].strip())
                pending[i] = pending[i][cut:]
            yield out
        tails = ["" if shown[i] else self._tail(i, pending[i]) for i in range(n)]
        self.cut = [bool(tail) for tail in tails]
        if any(tails):
            yield tails

    def _tail(self, i: int, text: str) -> str:
        """An unfinished last line as the reader gets it: at char and subword level a word the budget cut in
        two is dropped (a word-level token is a whole word already)."""
        if self.generation.finish_reasons[i] == "length" and self.generation.owner.level != "word":
            words = re.match(r"(.*\S)\s+\S*$", text, re.S)  # up to the end of the last whole word
            text = words.group(1) if words else text
        return text if text.strip() else ""
