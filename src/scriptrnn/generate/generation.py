"""Writing text: run the prime once, then one step per new token: the single token loop.

A ``Generation`` is one request: its prime, its sampling settings and where each of
its sequences stands. ``advance`` is one turn of the loop for any number of generations
(draw every next token, then one forward pass per model), and it is the only one: the
terminal and the Python API drive it through ``Generation.steps``, the serverless
handler through ``Generation.run``, and the server's batcher calls it with every
running request, joining and leaving between turns.

No PyTorch here: the model is the PyTorch ``RNNLanguageModel`` or
``scriptrnn.model.onnx.OnnxModel``, anything with the two methods below (and a torch
module's ``to``, ``eval`` and ``parameter_count``), and scores are numpy arrays.

    prefill(ids (P,), n) -> scores (n, V), state      the prime run once, for n sequences
    step(tokens (B,), states) -> scores (B, V), states one token for each of several
                                                      generations' sequences; their states
                                                      (opaque to this module) in and out
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from .sampling import SamplingConfig, Uniforms, draw, next_tokens, probabilities, random_seed
from .stops import StopMatcher


class Generation:
    """One request's N sequences: sampling state, text so far, and why each stopped."""

    def __init__(self, script_model, prime: str, config: SamplingConfig, *, style: str | None = None,
                 rules: list | None = None):
        self.owner = script_model
        self.config = config
        self.n = config.num_return_sequences
        ids, context = script_model.encode_prime(prime, style)
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
        self.stops = StopMatcher(config.stop)  # one automaton; each sequence carries its state in it
        self.stop_states = [0] * self.n
        self.processors, self.greedy = config.processors(), config.greedy
        self.seed = config.seed if config.seed is not None else random_seed()
        self.generator = Uniforms(self.seed)
        self.seen = np.zeros((self.n, script_model.tokenizer.vocab_size), dtype=bool)  # (N, V)
        # The leading line break is context we added, not text to penalise repeating.
        self.seen[:, ids[context:]] = True
        self.lines = [0] * self.n
        # For max_lines / max_scenes: lines with words, scenes ended, and whether the current
        # line and scene have words yet (the prime's count).
        self.script_lines = [0] * self.n
        self.scenes = [0] * self.n
        self.line_has_words = [bool(self.prime_text.rsplit("\n", 1)[-1].strip())] * self.n
        self.scene_has_words = [bool(self.prime_text.strip())] * self.n
        # No rules given (the server builds generations itself): the model's own, so tags never come out.
        self.rules = list(rules) if rules is not None else script_model.rules()
        self.rule_states = []
        for rule in self.rules:  # each rule follows the context and prime, token by token
            state = rule.start(self.n)
            for token in ids.tolist():
                state = rule.advance(state, [token] * self.n)
            self.rule_states.append(state)
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

    def steps(self) -> Iterator[list[str]]:
        """The prime's text for each sequence, then what each adds per turn of the loop, until all stop."""
        yield [self.prime_text] * self.n
        while True:
            yield advance([self])[0]
            if self.done:
                return

    def run(self) -> None:
        """Write the whole text: prime once, then turns of the loop until every sequence stops."""
        self.prefill()
        while not self.done:
            advance([self])

    def sample(self) -> list[str]:
        """Pick each running sequence's next token; return the text each one adds."""
        return self.accept(next_tokens(self.ruled_scores(), self.seen, self.processors, self.greedy, self.generator))

    def ruled_scores(self) -> np.ndarray:
        """The next token's scores (N, V) with what the rules forbid at -inf."""
        scores = self.scores
        for rule, state in zip(self.rules, self.rule_states):
            scores = rule(state, scores)
        return scores

    @property
    def sampling_key(self) -> tuple:
        """Generations with equal keys transform scores the same way (see ``sample_together``)."""
        c = self.config
        return (id(self.owner.model), self.greedy, c.temperature, c.top_k, c.top_p, c.repetition_penalty)

    def accept(self, token: np.ndarray) -> list[str]:
        """Record the drawn tokens (N,); return the text each running sequence adds."""
        self.last_tokens = token
        self.seen[np.arange(self.n), token] = True
        drawn = token.tolist()
        self.rule_states = [rule.advance(state, drawn) for rule, state in zip(self.rules, self.rule_states)]
        pieces = []
        for i, t in enumerate(drawn):
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
            if self._script_done(i):
                return "stop"
        elif self.pieces[i][-1].strip():
            self.line_has_words[i] = True
        if self.stops:
            self.stop_states[i], hit = self.stops.feed(self.stop_states[i], self.pieces[i][-1])
            if hit:
                return "stop"
        if len(self.tokens[i]) >= config.max_new_tokens:
            return "length"
        return None

    def _script_done(self, i: int) -> bool:
        """Count the line that just ended (a blank line ends a scene); True when a script limit is met."""
        config = self.config
        if self.line_has_words[i]:
            self.script_lines[i] += 1
            self.scene_has_words[i], self.line_has_words[i] = True, False
            return bool(config.max_lines and self.script_lines[i] >= config.max_lines)
        if self.scene_has_words[i]:
            self.scenes[i] += 1
            self.scene_has_words[i] = False
            return bool(config.max_scenes and self.scenes[i] >= config.max_scenes)
        return False


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
        scores = np.concatenate([g.ruled_scores() for g in group])  # (ΣN, V)
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


def advance(generations: list[Generation], on_sampled: Callable[[list[list[str]]], None] | None = None
            ) -> list[list[str]]:
    """One turn of the token loop: each generation's next tokens, then its network step; the text each adds.

    The tokens are drawn together (``sample_together``) and handed to ``on_sampled`` before
    the forward pass, so a server can send them while the network runs; then the
    generations still writing advance with one forward pass per model.
    """
    pieces = sample_together(generations)
    if on_sampled is not None:
        on_sampled(pieces)
    by_model: dict[int, list[Generation]] = {}
    for g in generations:
        if not g.done:
            by_model.setdefault(id(g.owner.model), []).append(g)
    for group in by_model.values():
        step_together(group[0].owner.model, group)
    return pieces
