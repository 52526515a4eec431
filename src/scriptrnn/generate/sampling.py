"""Sampling as a pipeline of small transforms ``(seen, scores) -> scores``, on numpy arrays.

The order follows Hugging Face's ``generate``: repetition penalty, then
temperature, top-k, top-p. Each transform checks its own argument and names
the parameter in its error, so the CLI, the Python API and a server all give the
same message for the same mistake.

Numpy, not PyTorch: the PyTorch model and the onnxruntime one (``scriptrnn.runtime``,
installed without PyTorch) hand their scores here, so both write the same text for
the same scores and seed.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import numpy as np

from ..errors import ScriptRNNError

# seen: (N, V) bool, True where a token already occurs in that sequence (prime included).
# scores: (N, V) float logits.


class RepetitionPenalty:
    """CTRL's penalty: make tokens already seen less likely (divide positive scores, multiply negative)."""

    def __init__(self, penalty: float):
        if not (penalty > 0 and math.isfinite(penalty)):
            raise ScriptRNNError(f"repetition_penalty must be a positive number, got {penalty}")
        self.penalty = penalty

    def __call__(self, seen: np.ndarray, scores: np.ndarray) -> np.ndarray:
        penalised = np.where(scores > 0, scores / self.penalty, scores * self.penalty)
        return np.where(seen, penalised, scores)


class Temperature:
    """Divide scores by T: below 1 sharper and safer, above 1 wilder."""

    def __init__(self, temperature: float):
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ScriptRNNError(
                f"temperature must be a positive number, got {temperature} (use temperature 0 or "
                "do_sample=False for greedy text)"
            )
        self.temperature = temperature

    def __call__(self, seen: np.ndarray, scores: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # overflow to inf is handled by safe_softmax
            return scores / self.temperature


class TopK:
    """Keep the k best tokens of each row."""

    def __init__(self, top_k: int):
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ScriptRNNError(f"top_k must be a whole number of at least 1, got {top_k!r}")
        self.top_k = top_k

    def __call__(self, seen: np.ndarray, scores: np.ndarray) -> np.ndarray:
        V = scores.shape[-1]
        k = min(self.top_k, V)
        kth = np.partition(scores, V - k, axis=-1)[..., V - k : V - k + 1]  # (N, 1): the k-th best
        return np.where(scores < kth, -np.inf, scores)


class TopP:
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches p."""

    def __init__(self, top_p: float):
        if not 0 < top_p <= 1:
            raise ScriptRNNError(f"top_p must be in (0, 1], got {top_p}")
        self.top_p = top_p

    def __call__(self, seen: np.ndarray, scores: np.ndarray) -> np.ndarray:
        order = np.argsort(-scores, axis=-1, kind="stable")  # (N, V) best first
        probs = safe_softmax(np.take_along_axis(scores, order, axis=-1))
        cumulative = probs.cumsum(axis=-1)
        # Drop a token when the ones before it already reach p; the best token always stays.
        drop_sorted = (cumulative - probs) >= self.top_p
        drop = np.empty_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)
        return np.where(drop, -np.inf, scores)


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
    # stream()/generate(): drop a last line cut short by max_new_tokens; with no whole line at all, the
    # text as written comes instead, cut at a word end (never nothing; script_model.TextStream)
    whole_lines: bool = False

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


def safe_softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis that is a probability distribution for any scores (float64).

    Plain softmax gives NaN for a row holding +inf (inf - inf) or only -inf (0 / 0),
    and the draw then fails. Here NaN counts as -inf, a row with +inf entries
    shares its mass among them (they are the limit of very large scores), and a row
    with nothing above -inf is uniform.
    """
    scores = np.asarray(scores, dtype=np.float64)
    scores = np.where(np.isnan(scores), -np.inf, scores)
    top = scores.max(axis=-1, keepdims=True)  # (N, 1)
    special = ~np.isfinite(top)  # (N, 1): rows that softmax cannot handle
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # special rows are replaced below
        exp = np.exp(scores - np.where(special, 0.0, top))
        probs = exp / exp.sum(axis=-1, keepdims=True)
        if special.any():
            winners = np.where(np.isposinf(top), np.isposinf(scores), np.isneginf(top))  # (N, V)
            probs = np.where(special, winners / winners.sum(axis=-1, keepdims=True), probs)
    return probs


def _process(scores: np.ndarray, seen: np.ndarray, processors: list) -> tuple[np.ndarray, np.ndarray]:
    """(raw, processed) scores, NaN read as -inf; a row the transforms left all -inf keeps its raw scores."""
    # float64: large float32 logits over a small temperature stay finite and ordered.
    raw = np.asarray(scores, dtype=np.float64)
    raw = np.where(np.isnan(raw), -np.inf, raw)
    processed = raw
    for process in processors:
        processed = process(seen, processed)
    processed = np.where(np.isnan(processed), -np.inf, processed)
    # Large scores over a small temperature (or times a penalty) can overflow to -inf
    # everywhere; the untransformed scores are then the best guide left.
    nothing_left = np.isneginf(processed).all(axis=-1, keepdims=True)  # (N, 1)
    return raw, np.where(nothing_left, raw, processed)


def probabilities(scores: np.ndarray, seen: np.ndarray, processors: list) -> np.ndarray:
    """(N, V) sampling distribution after the transforms; finite, non-negative, rows sum to 1."""
    return safe_softmax(_process(scores, seen, processors)[1])


def draw(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling: row i takes the token where its cumulative probability passes u_i.

    Drawing the uniforms separately lets every request keep its own seeded generator
    while the server samples all requests of a step in one call.
    """
    cdf = np.cumsum(probs, axis=-1, dtype=np.float64)  # (N, V)
    x = np.asarray(uniforms, dtype=np.float64).reshape(-1, 1) * cdf[:, -1:]  # (N, 1)
    # The first token whose cumulative mass exceeds x (a right-sided search): zero-probability
    # tokens never win. Counting is the search, row by row, as cdf never decreases.
    return np.minimum((cdf <= x).sum(axis=-1), probs.shape[-1] - 1)


class Uniforms:
    """One request's random numbers in [0, 1), repeatable from its seed.

    Mersenne Twister seeded the way PyTorch seeds its CPU generator, with PyTorch's
    53-bit doubles: the numbers ``torch.rand(n, dtype=torch.float64)`` gives after
    ``manual_seed(seed)``, which earlier versions drew with. So a seed writes the same
    text as before, with or without PyTorch installed.
    """

    def __init__(self, seed: int):
        self.bits = np.random.MT19937()
        self.bits.state = {"bit_generator": "MT19937", "state": {"key": _mt19937_key(seed), "pos": 624}}

    def __call__(self, n: int) -> np.ndarray:
        raw = self.bits.random_raw(2 * n).reshape(n, 2)  # (n, 2): 32-bit outputs, high half first
        return (((raw[:, 0] & 0x1FFFFF) << 32) | raw[:, 1]).astype(np.float64) * 2.0**-53


def _mt19937_key(seed: int) -> np.ndarray:
    """The generator's state after the reference ``init_genrand`` of the seed's low 32 bits (as PyTorch)."""
    key = np.empty(624, dtype=np.uint32)
    x = key[0] = seed & 0xFFFFFFFF
    for i in range(1, 624):
        x = (1812433253 * (x ^ (x >> 30)) + i) & 0xFFFFFFFF
        key[i] = x
    return key


def random_seed() -> int:
    """A seed for a request that gave none (reported back, so its text can be repeated)."""
    return secrets.randbits(62)


def next_tokens(scores: np.ndarray, seen: np.ndarray, processors: list, greedy: bool,
                generator: Uniforms | None) -> np.ndarray:
    """One token per row (N,) from scores (N, V), after the transforms (``SamplingConfig.processors()``).

    Any scores are accepted, NaN and infinities included (a damaged or diverged
    model must not crash the sampler).
    """
    if greedy:
        return _process(scores, seen, processors)[1].argmax(axis=-1)
    probs = probabilities(scores, seen, processors)
    return draw(probs, (generator or Uniforms(random_seed()))(len(probs)))
