"""Sampling as a pipeline of small transforms ``(ids, scores) -> scores``.

The order follows Hugging Face's ``generate``: repetition penalty, then
temperature, top-k, top-p. Each transform checks its own argument and names
the parameter in its error, so the CLI, the Python API and a server all give the
same message for the same mistake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import ScriptRNNError

# seen: (N, V) bool, True where a token already occurs in that sequence (prime included).
# scores: (N, V) float logits.


class RepetitionPenalty:
    """CTRL's penalty: make tokens already seen less likely (divide positive scores, multiply negative)."""

    def __init__(self, penalty: float):
        if not (penalty > 0 and math.isfinite(penalty)):
            raise ScriptRNNError(f"repetition_penalty must be a positive number, got {penalty}")
        self.penalty = penalty

    def __call__(self, seen: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        penalised = torch.where(scores > 0, scores / self.penalty, scores * self.penalty)
        return torch.where(seen, penalised, scores)


class Temperature:
    """Divide scores by T: below 1 sharper and safer, above 1 wilder."""

    def __init__(self, temperature: float):
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ScriptRNNError(
                f"temperature must be a positive number, got {temperature} (use temperature 0 or "
                "do_sample=False for greedy text)"
            )
        self.temperature = temperature

    def __call__(self, seen: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores / self.temperature


class TopK:
    """Keep the k best tokens of each row."""

    def __init__(self, top_k: int):
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ScriptRNNError(f"top_k must be a whole number of at least 1, got {top_k!r}")
        self.top_k = top_k

    def __call__(self, seen: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        k = min(self.top_k, scores.shape[-1])
        kth = torch.topk(scores, k, dim=-1).values[..., -1:]  # (N, 1)
        return scores.masked_fill(scores < kth, -math.inf)


class TopP:
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches p."""

    def __init__(self, top_p: float):
        if not 0 < top_p <= 1:
            raise ScriptRNNError(f"top_p must be in (0, 1], got {top_p}")
        self.top_p = top_p

    def __call__(self, seen: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        sorted_scores, order = torch.sort(scores, dim=-1, descending=True)
        probs = safe_softmax(sorted_scores)
        cumulative = probs.cumsum(dim=-1)
        # Drop a token when the ones before it already reach p; the best token always stays.
        drop_sorted = (cumulative - probs) >= self.top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        return scores.masked_fill(drop, -math.inf)


@dataclass
class SamplingConfig:
    """Generation settings, named as in Hugging Face's ``generate``."""

    max_new_tokens: int = 500
    do_sample: bool = True  # False (or temperature 0): always take the most likely token
    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    num_return_sequences: int = 1
    seed: int | None = None
    stop_after_lines: int | None = None  # stop each sequence after this many new lines
    stop: list[str] | None = None  # stop a sequence once its new text contains one of these
    # Script-shaped stops: lines with words in them (speeches, directions), and scenes, which
    # a blank line ends (the layout of the plays and of Fountain screenplays read here).
    max_lines: int | None = None
    max_scenes: int | None = None
    whole_lines: bool = False  # stream()/generate(): drop a last line cut short by max_new_tokens

    def validate(self) -> "SamplingConfig":
        if not isinstance(self.max_new_tokens, int) or not 0 <= self.max_new_tokens <= 1_000_000:
            raise ScriptRNNError(f"max_new_tokens must be a whole number from 0 to 1,000,000, got {self.max_new_tokens!r}")
        if not isinstance(self.num_return_sequences, int) or not 1 <= self.num_return_sequences <= 1024:
            raise ScriptRNNError(f"num_return_sequences must be from 1 to 1024, got {self.num_return_sequences!r}")
        if self.temperature is not None and self.temperature < 0:
            raise ScriptRNNError(f"temperature must be 0 (greedy) or positive, got {self.temperature}")
        if self.seed is not None and not (isinstance(self.seed, int) and not isinstance(self.seed, bool)
                                          and 0 <= self.seed < 2**64):
            raise ScriptRNNError(f"seed must be a whole number from 0 to 2**64 - 1, got {self.seed!r}")
        if self.stop_after_lines is not None and self.stop_after_lines < 1:
            raise ScriptRNNError(f"stop_after_lines must be at least 1, got {self.stop_after_lines}")
        for name in ("max_lines", "max_scenes"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ScriptRNNError(f"{name} must be a whole number of at least 1, got {value!r}")
        if not isinstance(self.whole_lines, bool):
            raise ScriptRNNError(f"whole_lines must be true or false, got {self.whole_lines!r}")
        if self.stop is not None and (not isinstance(self.stop, (list, tuple)) or
                                      not all(isinstance(s, str) and s for s in self.stop)):
            raise ScriptRNNError(f"stop must be a list of non-empty strings, got {self.stop!r}")
        # Each transform checks its own argument, even those greedy decoding leaves out.
        for value, make in ((self.temperature, Temperature), (self.top_k, TopK), (self.top_p, TopP)):
            if value is not None and not (make is Temperature and value == 0):
                make(value)
        self.processors()
        return self

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0

    def processors(self) -> list:
        """The transforms in Hugging Face's order; greedy decoding needs only the penalty."""
        steps: list = []
        if self.repetition_penalty is not None and self.repetition_penalty != 1.0:
            steps.append(RepetitionPenalty(self.repetition_penalty))
        if self.greedy:
            return steps
        if self.temperature is not None and self.temperature != 1.0:
            steps.append(Temperature(self.temperature))
        if self.top_k is not None:
            steps.append(TopK(self.top_k))
        if self.top_p is not None and self.top_p != 1.0:
            steps.append(TopP(self.top_p))
        return steps


def safe_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis that is a probability distribution for any scores.

    Plain softmax gives NaN for a row holding +inf (inf - inf) or only -inf (0 / 0),
    and torch.multinomial then fails. Here NaN counts as -inf, a row with +inf
    entries shares its mass among them (they are the limit of very large scores),
    and a row with nothing above -inf is uniform.
    """
    if scores.dtype != torch.float64:
        scores = scores.float()
    scores = scores.masked_fill(torch.isnan(scores), -math.inf)
    top = scores.amax(dim=-1, keepdim=True)  # (N, 1)
    probs = torch.softmax(scores, dim=-1)
    winners = torch.where(torch.isposinf(top), torch.isposinf(scores), torch.isneginf(top).expand_as(scores))
    special = ~torch.isfinite(top)  # (N, 1): rows that softmax cannot handle
    if special.any():
        uniform = winners.float() / winners.float().sum(dim=-1, keepdim=True)
        probs = torch.where(special, uniform, probs)
    return probs


def _process(scores: torch.Tensor, seen: torch.Tensor, processors: list) -> tuple[torch.Tensor, torch.Tensor]:
    """(raw, processed) scores, NaN read as -inf; a row the transforms left all -inf keeps its raw scores."""
    # float64: large float32 logits over a small temperature stay finite and ordered.
    raw = scores.double().masked_fill(torch.isnan(scores), -math.inf)
    processed = raw
    for process in processors:
        processed = process(seen, processed)
    processed = processed.masked_fill(torch.isnan(processed), -math.inf)
    # Large scores over a small temperature (or times a penalty) can overflow to -inf
    # everywhere; the untransformed scores are then the best guide left.
    nothing_left = torch.isneginf(processed).all(dim=-1, keepdim=True)  # (N, 1)
    return raw, torch.where(nothing_left, raw, processed)


def probabilities(scores: torch.Tensor, seen: torch.Tensor, processors: list) -> torch.Tensor:
    """(N, V) sampling distribution after the transforms; finite, non-negative, rows sum to 1."""
    return safe_softmax(_process(scores, seen, processors)[1])


def draw(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: row i takes the token where its cumulative probability passes u_i.

    Drawing the uniforms separately lets every request keep its own seeded generator
    while the server samples all requests of a step in one call.
    """
    cdf = probs.double().cumsum(dim=-1)  # (N, V)
    x = uniforms.double().reshape(-1, 1) * cdf[:, -1:]  # (N, 1)
    # right=True: the first token whose cumulative mass exceeds x, so zero-probability tokens never win.
    return torch.searchsorted(cdf, x, right=True).squeeze(-1).clamp_(max=probs.shape[-1] - 1)


def uniforms(n: int, generator: torch.Generator | None, device) -> torch.Tensor:
    return torch.rand(n, dtype=torch.float64, generator=generator, device=device)


def next_tokens(scores: torch.Tensor, seen: torch.Tensor, processors: list, greedy: bool,
                generator: torch.Generator | None) -> torch.Tensor:
    """One token per row (N,) from scores (N, V), after the transforms (``SamplingConfig.processors()``).

    Any scores are accepted, NaN and infinities included (a damaged or diverged
    model must not crash the sampler).
    """
    if greedy:
        return _process(scores, seen, processors)[1].argmax(dim=-1)
    probs = probabilities(scores, seen, processors)
    return draw(probs, uniforms(len(probs), generator, probs.device))
