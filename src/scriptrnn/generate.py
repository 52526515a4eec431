"""Writing text: run the prime once, then one step per new token, streamed.

A ``Generation`` is one request: its prime, its sampling settings and where each of
its sequences stands. ``step_together`` advances any number of generations with one
forward pass, so the terminal (one generation) and the server (many, joining and
leaving between steps) share a single implementation of how text is made.

No PyTorch here: the model is the PyTorch ``RNNLanguageModel`` or
``scriptrnn.runtime.OnnxModel``, anything with the two methods below (and a torch
module's ``to``, ``eval`` and ``parameter_count``), and scores are numpy arrays.

    prefill(ids (P,), n) -> scores (n, V), state      the prime run once, for n sequences
    step(tokens (B,), states) -> scores (B, V), states one token for each of several
                                                      generations' sequences; their states
                                                      (opaque to this module) in and out
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterator

import numpy as np

from .errors import ScriptRNNError
from .sampling import SamplingConfig, Uniforms, draw, next_tokens, probabilities, random_seed
from .tokenizer import UNK


class ScriptModel:
    """A trained model with its tokenizer and run facts, ready to write."""

    def __init__(self, model, tokenizer, config: dict, device="cpu"):
        self.model = model.to(device).eval()  # an RNNLanguageModel or a runtime.OnnxModel
        self.tokenizer = tokenizer
        self.config = config
        self.device = device
        corpus = config.get("corpus", {})
        self.speakers: list[str] = list(corpus.get("speakers", []))
        self.newline_id = tokenizer.token_id("\n")

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

    def encode_prime(self, prime: str) -> tuple[np.ndarray, int]:
        """Prime ids with a leading line break for context, and how many ids are context only."""
        ids = self.tokenizer.encode(self.prime_text(prime))
        if prime.strip() and len(ids) == 0:
            raise ScriptRNNError(f"nothing in the prime {prime!r} is in the model's vocabulary")
        unk = getattr(self.tokenizer, "unk_id", None)
        if unk is not None and len(ids) and (ids == unk).all() and UNK not in prime:
            # <unk> for every word would be no prime at all, silently.
            raise ScriptRNNError(f"none of the words in the prime {prime!r} is in the model's vocabulary; "
                                 "use words from the corpus")
        if self.newline_id is None:
            if len(ids) == 0:
                raise ScriptRNNError("this model needs a prime: give --prime with some text")
            return ids.astype(np.int64), 0
        # Generation starts as if at the start of a line, where speakers' names come.
        return np.concatenate([[self.newline_id], ids]).astype(np.int64), 1

    # ------------------------------------------------------------ writing

    def start(self, prime: str = "", config: SamplingConfig | None = None, **settings) -> "Generation":
        """A new request, its prime already run through the network."""
        config = replace(config or SamplingConfig(), **settings).validate()
        generation = Generation(self, prime, config)
        generation.prefill()
        return generation

    def stream(self, prime: str = "", config: SamplingConfig | None = None, **settings) -> Iterator[list[str]]:
        """Yield, step by step, the text each of the N sequences adds ('' once it has stopped).

        The first item is the prime as the model read it, so that joining all items
        of a sequence gives its whole text.
        """
        generation = self.start(prime, config, **settings)
        yield [generation.prime_text] * generation.n
        while True:
            yield generation.sample()
            if generation.done:
                return
            step_together(self.model, [generation])

    def generate(self, prime: str = "", config: SamplingConfig | None = None, **settings) -> list[str]:
        """The whole text of each sequence (prime included)."""
        pieces = list(self.stream(prime, config, **settings))
        return ["".join(column) for column in zip(*pieces)]


class Generation:
    """One request's N sequences: sampling state, text so far, and why each stopped."""

    def __init__(self, script_model: ScriptModel, prime: str, config: SamplingConfig):
        self.owner = script_model
        self.config = config
        self.n = config.num_return_sequences
        ids, context = script_model.encode_prime(prime)
        self.prime_ids = ids
        self.decoders = [script_model.tokenizer.decoder() for _ in range(self.n)]
        texts = ["".join(d.step(int(i)) for i in ids[context:]) for d in self.decoders]
        self.prime_text = texts[0]
        # What the model read beyond the caller's prime ('jerry' was read as 'jerry:'): an API
        # answer that continues the caller's text must start with it.
        rewritten, typed = script_model.prime_text(prime), prime.rstrip()
        self.continuation_prefix = rewritten[len(typed):] if rewritten.lower().startswith(typed.lower()) else ""
        self.prompt_tokens = len(ids) - context
        self.texts = [""] * self.n  # generated text of each sequence (prime excluded)
        self.tokens: list[list[int]] = [[] for _ in range(self.n)]
        self.pieces: list[list[str]] = [[] for _ in range(self.n)]  # the text each token added
        self.finish_reasons: list[str | None] = [None] * self.n  # "length" or "stop"
        self.processors, self.greedy = config.processors(), config.greedy
        self.seed = config.seed if config.seed is not None else random_seed()
        self.generator = Uniforms(self.seed)
        self.seen = np.zeros((self.n, script_model.tokenizer.vocab_size), dtype=bool)  # (N, V)
        # The leading line break is context we added, not text to penalise repeating.
        self.seen[:, ids[context:]] = True
        self.lines = [0] * self.n
        self.state = None  # recurrent state, the model's own kind: (L, N, H), a pair for an LSTM
        self.scores: np.ndarray | None = None  # (N, V) scores for the next token
        self.last_tokens: np.ndarray | None = None  # (N,) the tokens drawn at the last step

    @property
    def done(self) -> bool:
        return all(reason is not None for reason in self.finish_reasons)

    def prefill(self) -> None:
        """Run the prime once for all N sequences."""
        self.scores, self.state = self.owner.model.prefill(self.prime_ids, self.n)  # (N, V)
        if self.config.max_new_tokens == 0:
            self.finish_reasons = ["length"] * self.n

    def sample(self) -> list[str]:
        """Pick each running sequence's next token; return the text each one adds."""
        return self.accept(next_tokens(self.scores, self.seen, self.processors, self.greedy, self.generator))

    @property
    def sampling_key(self) -> tuple:
        """Generations with equal keys transform scores the same way (see ``sample_together``)."""
        c = self.config
        return (id(self.owner.model), self.greedy, c.temperature, c.top_k, c.top_p, c.repetition_penalty)

    def accept(self, token: np.ndarray) -> list[str]:
        """Record the drawn tokens (N,); return the text each running sequence adds."""
        self.last_tokens = token
        self.seen[np.arange(self.n), token] = True
        pieces = []
        for i, t in enumerate(token.tolist()):
            if self.finish_reasons[i] is not None:
                pieces.append("")
                continue
            piece = self.decoders[i].step(t)
            self.tokens[i].append(t)
            self.pieces[i].append(piece)
            self.texts[i] += piece
            pieces.append(piece)
            self.finish_reasons[i] = self._finish_reason(i, t)
        return pieces

    def _finish_reason(self, i: int, token: int) -> str | None:
        config = self.config
        if token == self.owner.newline_id:
            self.lines[i] += 1
            if config.stop_after_lines and self.lines[i] >= config.stop_after_lines:
                return "stop"
        if config.stop and any(s in self.texts[i][-(len(s) + 64):] for s in config.stop):
            return "stop"
        if len(self.tokens[i]) >= config.max_new_tokens:
            return "length"
        return None


def sample_together(generations: list[Generation]) -> list[list[str]]:
    """``g.sample()`` for each generation, with one transform-and-draw per group of equal settings.

    Each generation still draws its own uniforms from its own seeded generator, so its
    text is the same as when it is sampled alone.
    """
    groups: dict[tuple, list[Generation]] = {}
    for g in generations:
        groups.setdefault(g.sampling_key, []).append(g)
    chosen: dict[int, np.ndarray] = {}
    for group in groups.values():
        first = group[0]
        scores = np.concatenate([g.scores for g in group])  # (ΣN, V)
        seen = np.concatenate([g.seen for g in group])
        if first.greedy:
            tokens = next_tokens(scores, seen, first.processors, True, None)
        else:
            probs = probabilities(scores, seen, first.processors)
            tokens = draw(probs, np.concatenate([g.generator(g.n) for g in group]))
        for g, part in zip(group, np.split(tokens, np.cumsum([g.n for g in group])[:-1])):
            chosen[id(g)] = part
    return [g.accept(chosen[id(g)]) for g in generations]


def step_together(model, generations: list[Generation]) -> None:
    """Feed each generation's last tokens through ``model`` in one batch; store new scores and states."""
    tokens = np.concatenate([g.last_tokens for g in generations])  # (ΣN,)
    scores, states = model.step(tokens, [g.state for g in generations])  # (ΣN, V)
    start = 0
    for g, state in zip(generations, states):
        g.scores, g.state = scores[start:start + g.n], state
        start += g.n
