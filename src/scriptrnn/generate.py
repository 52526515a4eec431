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

from .constraints import SuppressTokens
from .errors import ScriptRNNError
from .sampling import SamplingConfig, Uniforms, draw, next_tokens, probabilities, random_seed
from .speakers import cast_mask, resolve_cast, resolve_speaker, speaker_prime
from .stops import StopMatcher
from .styles import model_styles, style_name, style_speakers, style_tag
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
        self.styles: dict[str, str] = model_styles(config, tokenizer)  # style name -> its tag character

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
            leading = [s for s in style_speakers(self.config, style_name(self.styles, style)) if s.lower() in known]
            speaker = leading[0] if leading else None
        if speaker is not None:
            prime = speaker_prime(resolve_speaker(speaker, self.speakers), prime)
        generation = Generation(self, prime, config, style=style, rules=self.rules(cast))
        generation.prefill()
        return generation

    def rules(self, cast=None) -> list:
        """The hard rules on next tokens (constraints.py): never a style tag; the cast if one is given."""
        rules: list = []
        if self.styles:
            tags = [self.tokenizer.token_id(tag) for tag in self.styles.values()]
            rules.append(SuppressTokens(tags, self.tokenizer.vocab_size))
        if cast is not None:
            rules.append(cast_mask(self.tokenizer, resolve_cast(cast, self.speakers)))
        return rules

    def stream(self, prime: str = "", config: SamplingConfig | None = None, **settings) -> Iterator[list[str]]:
        """Yield, step by step, the text each of the N sequences adds ('' once it has stopped).

        The first item is the prime as the model read it, so that joining all items
        of a sequence gives its whole text. With ``whole_lines`` the text comes a whole
        line at a time, and a last line cut short by ``max_new_tokens`` never comes.
        """
        generation = self.start(prime, config, **settings)
        steps = self._steps(generation)
        yield from _whole_lines(steps, generation.n) if generation.config.whole_lines else steps

    def _steps(self, generation: "Generation") -> Iterator[list[str]]:
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


def _whole_lines(steps: Iterator[list[str]], n: int) -> Iterator[list[str]]:
    """Hold each sequence's text back until its line ends; what is left over at the end is dropped."""
    pending = [""] * n
    for step in steps:
        out = []
        for i, piece in enumerate(step):
            pending[i] += piece
            cut = pending[i].rfind("\n") + 1
            out.append(pending[i][:cut])
            pending[i] = pending[i][cut:]
        yield out


class Generation:
    """One request's N sequences: sampling state, text so far, and why each stopped."""

    def __init__(self, script_model: ScriptModel, prime: str, config: SamplingConfig, *, style: str | None = None,
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
