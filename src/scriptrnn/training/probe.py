"""--size auto's probe: each candidate size's speed on this machine, measured so that load elsewhere
cannot fool it (issue 25).

Each candidate trains a few real steps of the run's own step (step.py: its optimizer, clipping,
arithmetic and the model's regularisation) on random tokens. A busy machine makes steps slow in
bursts, so no size is timed all at once: after one warm-up step each (cheapest first, while the
bigger sizes may still be chosen), the sizes are timed in rounds, one step of each per round in
alternating order, and each speed is the median of its steps; a burst lands on a step or two of
every size, not on all of one's. Then the speeds are checked against the sizes' arithmetic: a
size with more arithmetic per step cannot really be faster than a smaller one, so a smaller size
measured slower than a bigger one is timed again and, if it still is, given the bigger one's step
time. Sizes there was no time to time get a step time scaled from the nearest timed one by
arithmetic. The whole probe keeps to its share of the budget, and every second of it is counted.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from ..model.network import ModelConfig, RNNLanguageModel
from .config import TrainConfig
from .step import TrainStep

# The smallest candidate's warm-up step is not charged to the share below: it carries the device's
# one-time start (on a GPU, CUDA's context and libraries: seconds, more than a short budget's share).
PROBE_SHARE = 0.03  # the probe may take this share of the budget, every other second of it counted...
PROBE_MAX_S = 20.0  # ...and at most this many seconds
ROUNDS = 5  # timed steps per size, one per round: a median of 5 outvotes two slow ones
MIN_ROUNDS = 3  # a size timed fewer times than this has its speed scaled from a timed one instead
# A smaller size measured this much slower a step than a bigger one is timed again (noise between two
# sizes whose steps cost nearly the same, fixed costs dominating, stays under it).
SLOWER_THAN_BIGGER = 1.2
MEMORY_SHARE = 0.6  # a candidate's step may need at most this share of the GPU's free memory (the estimate is rough)


@dataclass(frozen=True)
class Candidate:
    num_layers: int  # L
    hidden_size: int  # H
    batch_size: int  # B
    seq_len: int  # T

    @property
    def name(self) -> str:
        return f"{self.num_layers}x{self.hidden_size}"

    def describe(self) -> str:
        return f"{self.name} (batch {self.batch_size}, window {self.seq_len})"


@dataclass
class Measured:
    """One candidate as the probe found it."""

    candidate: Candidate
    parameters: int  # the rule's N (rule_parameters)
    tokens_per_s: float  # training tokens per second, all processes together
    step_s: float  # seconds per timed step
    estimated_from: str | None = None  # not timed (the probe's share ran out): scaled from this timed size
    steps_timed: int = 0
    capped_by: str | None = None  # measured slower than this bigger size even when timed again: its step time
    fastest_s: float | None = None  # its fastest timed step: load elsewhere only ever slows a step down


def step_bytes(model: ModelConfig, c: Candidate, half: bool, processes: int = 1) -> int:
    """A training step's memory, roughly and on the high side: the weights with their gradients and Adam's
    two moments (16 bytes a parameter), and what the backward pass keeps per token: every layer's gates
    and states, the embeddings, and the output scores with their gradient."""
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[model.cell]
    tokens = c.batch_size // max(processes, 1) * c.seq_len
    width = 2 if half else 4
    per_token = (model.num_layers * (gates + 3) * model.hidden_size + model.embedding_size) * width \
        + 3 * model.vocab_size * 4  # scores, softmax and their gradient, in fp32
    return 16 * model.parameter_count() + tokens * per_token


def rule_parameters(model: ModelConfig) -> int:
    """The sizing rule's parameter count: the recurrent layers' weights (what the ladder changes; the
    embedding and output layer are fixed by the vocabulary)."""
    E, H = model.embedding_size, model.hidden_size
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[model.cell]
    return sum(gates * H * ((E if i == 0 else H) + H + 2) for i in range(model.num_layers))


@dataclass
class Probe:
    """What the probe needs of the run: how to build a candidate's model, where and how it trains."""

    model: ModelConfig  # the run's model settings; a candidate's layers and hidden size go in
    device: torch.device
    autocast: torch.dtype | None  # the run's arithmetic (device.autocast_dtype)
    train: TrainConfig  # the run's optimizer settings and clipping
    processes: int = 1  # torchrun: this process times its share of the batch; the rest assumed alike
    clock: Callable[[], float] = time.perf_counter
    _trials: dict = field(default_factory=dict, repr=False)  # Candidate -> _Trial
    _times: dict = field(default_factory=dict, repr=False)  # Candidate -> its timed steps (seconds)

    def config(self, c: Candidate) -> ModelConfig:
        return replace(self.model, num_layers=c.num_layers, hidden_size=c.hidden_size).validate()

    def fits(self, c: Candidate) -> bool:
        """Whether the candidate's training step fits the device's free memory (always, off a GPU):
        known before it is built, so that the probe never runs a GPU out of memory."""
        if self.device.type != "cuda":
            return True
        free, _ = torch.cuda.mem_get_info(self.device)
        return step_bytes(self.config(c), c, self.autocast is not None, self.processes) <= MEMORY_SHARE * free

    def warm_up(self, c: Candidate) -> None:
        """Builds the candidate's model and takes one step, untimed (it warms caches and kernels up)."""
        self._trials[c] = trial = _Trial.start(self.config(c), c, self.processes, self.device, self.autocast,
                                               self.train)
        self._step(trial)
        self._times.setdefault(c, [])

    def time_again(self, c: Candidate) -> Measured:
        """One more timed step of a candidate ``warm_up`` built; its speed from all its steps."""
        self._times[c].append(self._step(self._trials[c]))
        return self.measured(c)

    def time_steps(self, c: Candidate, steps: int = ROUNDS) -> Measured:
        """A warm-up step, then ``steps`` timed ones in a row (benchmarks on a quiet machine)."""
        self.warm_up(c)
        for _ in range(steps):
            self.time_again(c)
        return self.measured(c)

    def measured(self, c: Candidate) -> Measured:
        step_s = statistics.median(self._times[c])
        return Measured(c, rule_parameters(self.config(c)), c.batch_size * c.seq_len / step_s, step_s,
                        steps_timed=len(self._times[c]), fastest_s=min(self._times[c]))

    def cost(self, c: Candidate) -> float:
        """Arithmetic per step, roughly: the weights every token passes through, times the tokens."""
        config = self.config(c)
        return (config.parameter_count() - config.vocab_size * config.embedding_size) * c.batch_size * c.seq_len

    def release(self) -> None:
        """Frees the candidates' models before the run builds its own."""
        self._trials.clear()

    def _step(self, trial: "_Trial") -> float:
        start = self.clock()
        trial()  # one real training step
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return self.clock() - start


@dataclass
class _Trial:
    """A candidate's model and the run's step for it, a batch and the carried state."""

    step: TrainStep
    ids: torch.Tensor  # (B, T+1) random tokens: the speed does not depend on which
    hidden: object = None

    @classmethod
    def start(cls, config: ModelConfig, c: Candidate, processes: int, device: torch.device, autocast,
              train: TrainConfig) -> "_Trial":
        model = RNNLanguageModel(config).to(device).train()
        rows = c.batch_size // processes  # torchrun: this process times its share of the batch
        ids = torch.randint(0, config.vocab_size, (rows, c.seq_len + 1), device=device)
        return cls(TrainStep.build(model, train, device, autocast), ids)

    def __call__(self) -> None:
        self.hidden = self.step(self.ids[:, :-1], self.ids[:, 1:], self.hidden).hidden


def probe(ladder: list[Candidate], run: Probe, budget_s: float,
          losses: Callable[[list[Measured], float], list[float]], past_best: float) -> tuple[list[Measured], float]:
    """Speeds of the sizes on ``ladder`` (cheapest first) that may be chosen, and the seconds the probe took
    (all of them). ``losses(measured, seconds_left)``: the rule's predicted losses; a size predicted
    ``past_best`` worse than the best so far ends the ladder (bigger ones would see fewer tokens still)."""
    began, limit = run.clock(), min(PROBE_MAX_S, PROBE_SHARE * budget_s)
    run.warm_up(ladder[0])
    start = run.clock()  # the share's clock: the first warm-up, with the device's start, is not in it

    def spent() -> float:
        return run.clock() - start

    def left() -> float:
        return budget_s - (run.clock() - began)

    timed = [run.time_again(ladder[0])]
    for c in ladder[1:]:
        if _past_best(losses(_optimistic(timed, run), left()), past_best):
            break
        guess = min(_scaled(m, c, run) for m in timed)
        if spent() + sum(m.step_s for m in timed) * (ROUNDS - 1) + guess * (ROUNDS + 1) > limit:
            break  # no room for its rounds: it and the rest are scaled by arithmetic below
        if not run.fits(c) or not _warmed_up(run, c):
            ladder = ladder[:len(timed)]  # it, and every bigger size, would not fit the GPU's memory
            break
        timed.append(run.time_again(c))
    timed = _rounds(timed, run, lambda: spent() > limit, lambda ms: losses(ms, left()), past_best)
    timed = _by_arithmetic(timed, run, lambda need: spent() + need > limit)
    rest = [c for c in ladder[len(timed):] if run.fits(c)]  # estimated sizes must fit too
    reliable = [m for m in timed if m.steps_timed >= MIN_ROUNDS] or timed[:1]
    if rest and not _past_best(losses(timed, left()), past_best):
        timed += _estimates(rest, timed, reliable[-1], run, lambda ms: losses(ms, left()), past_best)
    run.release()
    return timed, run.clock() - began


def _warmed_up(run: Probe, c: Candidate) -> bool:
    """``run.warm_up(c)``, or False when the device ran out of memory (the size is dropped, its memory freed)."""
    try:
        run.warm_up(c)
        return True
    except torch.OutOfMemoryError:
        run._trials.pop(c, None)
        run._times.pop(c, None)
        if run.device.type == "cuda":
            torch.cuda.empty_cache()
        return False


def _scaled(m: Measured, c: Candidate, run: Probe) -> float:
    """``c``'s step time scaled from ``m``'s by arithmetic. A smaller size spends more of its step on fixed
    costs, so scaled from a smaller size it is too slow; scaled from a bigger one, too fast."""
    return m.step_s * run.cost(c) / run.cost(m.candidate)


def _optimistic(timed: list[Measured], run: Probe) -> list[Measured]:
    """Each size at the fastest of its fastest step, its step scaled from a smaller size and a bigger
    size's step: steps slowed by load elsewhere must not put a size out of play (or end the ladder)
    before the rounds have timed it again."""
    out = []
    for i, m in enumerate(timed):
        step_s = min([m.fastest_s or m.step_s] + [_scaled(smaller, m.candidate, run) for smaller in timed[:i]]
                     + [bigger.step_s for bigger in timed[i + 1:]])
        out.append(replace(m, step_s=step_s, tokens_per_s=m.candidate.batch_size * m.candidate.seq_len / step_s))
    return out


def _rounds(timed: list[Measured], run: Probe, over: Callable[[], bool], losses, past_best: float) -> list[Measured]:
    """Up to ROUNDS - 1 more timed steps of each size still in play (within ``past_best`` of the best
    predicted, or timed fewer than MIN_ROUNDS times: one or two slow steps do not judge a size), one step
    of each per round, forward and backward in turn, while the share lasts."""
    for r in range(ROUNDS - 1):
        predicted = losses(_optimistic(timed, run))  # a size slowed in its one step so far stays in play
        in_play = [i for i, p in enumerate(predicted)
                   if p <= min(predicted) + past_best or timed[i].steps_timed < MIN_ROUNDS]
        for i in (in_play if r % 2 else in_play[::-1]):
            if over():
                return timed
            timed[i] = run.time_again(timed[i].candidate)
    return timed


def _by_arithmetic(timed: list[Measured], run: Probe, no_room: Callable[[float], bool]) -> list[Measured]:
    """A size cannot be faster a step than a smaller one: a smaller size measured SLOWER_THAN_BIGGER
    slower than a bigger one (load during its steps) is timed again while the share allows; then each
    size's step time is at most the fastest bigger size's."""
    order = sorted(range(len(timed)), key=lambda i: run.cost(timed[i].candidate))
    for rank, i in enumerate(order):
        for _ in range(ROUNDS):
            bigger = [timed[j] for j in order[rank + 1:]]
            fastest = min(bigger, key=lambda m: m.step_s, default=None)
            if fastest is None or timed[i].step_s <= fastest.step_s * SLOWER_THAN_BIGGER:
                break
            if no_room(timed[i].step_s):
                break
            timed[i] = run.time_again(timed[i].candidate)
        bigger = [timed[j] for j in order[rank + 1:]]
        fastest = min(bigger, key=lambda m: m.step_s, default=None)
        if fastest is not None and timed[i].step_s > fastest.step_s:
            c = timed[i].candidate
            timed[i] = replace(timed[i], step_s=fastest.step_s, tokens_per_s=c.batch_size * c.seq_len / fastest.step_s,
                               capped_by=fastest.candidate.name)
    return timed


def _estimates(rest: list[Candidate], timed: list[Measured], base: Measured, run: Probe, losses,
               past_best: float) -> list[Measured]:
    """The sizes the probe had no time to time (short budgets), their step time scaled from ``base`` (the
    biggest size timed MIN_ROUNDS times) by arithmetic per step. Small models spend a larger share of a
    step on fixed costs, so the scaling slows bigger ones more than they really are: the estimate errs
    toward the smaller size."""
    out: list[Measured] = []
    for c in rest:
        step_s = _scaled(base, c, run)
        out.append(Measured(c, rule_parameters(run.config(c)), c.batch_size * c.seq_len / step_s, step_s,
                            base.candidate.name))
        if _past_best(losses(timed + out), past_best):
            break
    return out


def _past_best(predicted: list[float], margin: float) -> bool:
    """Whether the newest (biggest) size predicts ``margin`` worse than the best so far."""
    return predicted[-1] > min(predicted) + margin
