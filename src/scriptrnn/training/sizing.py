"""--size auto: the model sized to the --time-budget and to this machine's measured speed (issue 14).

A ladder of candidate sizes per level (layers x hidden, each with its batch and window). The
probe times a few real training steps of the candidates on this machine, at the run's device,
precision and threads, smallest first: the speed, never the CPU's name, is what is known about
the machine; sizes it has no time left to time (short budgets) get a speed scaled from the last one
timed. From each speed it predicts the tokens a candidate would train on in what is left
of the budget (after the probe and the validation checks' share), from those and the candidate's
parameters its held-out loss (training.config: SIZING_LOSS_PER_E_FOLD, SIZING_TOKEN_TERM, fitted
by benchmarks/sizing.py), and picks the lowest. The probe's seconds count against the budget.

Sizes the user gave always win: they are written into every candidate, so only the others are
chosen. Runs limited by --epochs or --max-steps, fine-tuned and resumed runs keep their sizes; so
does a run under auto as the char-level default (not asked for) that was given any size.
"""

from __future__ import annotations

import math
import time
import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import torch

from ..device import arithmetic, autocast_dtype
from ..model.network import ModelConfig, RNNLanguageModel, state_from_parts, state_parts
from .config import (LONG_RUN_EPOCHS, LONG_RUN_WEIGHT_DROP, SIZING_LOSS_PER_E_FOLD, SIZING_ONE_LAYER_GAIN,
                     SIZING_TOKEN_TERM, TrainConfig)

SIZE_FIELDS = ("num_layers", "hidden_size", "batch_size", "seq_len")  # what sizing may choose
LIMIT_FIELDS = ("epochs", "max_steps")  # given by the user, the run is not limited by time alone

VAL_COST = 1 / 3  # a validation token costs about a third of a training one (forward only); assumed
PAST_BEST = 0.05  # stop probing bigger candidates once one predicts this many nats worse than the best so far
# The smallest candidate is always timed, and not charged to the share below: its first step carries the
# device's one-time start (on a GPU, CUDA's context and libraries: seconds, more than a short budget's share).
PROBE_SHARE = 0.03  # the probe may take this share of the budget for the other candidates...
PROBE_MAX_S = 20.0  # ...and at most this many seconds
TIMED_STEPS = 3  # steps timed per candidate after one warm-up step
TIMED_ENOUGH_S = 1.0  # fewer steps when a candidate's timed steps already took this long
# Then the sizes still in play are timed again, a step each in turn, up to this many rounds in the probe's
# share, and each speed is the median of its steps: a passing slowdown (seen: every size ~25% slow in a run's
# first two seconds, which then trained at full speed) lands on a few steps of each size, not all of one's.
RETIME_ROUNDS = 5


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


def _ladder(rows) -> tuple[Candidate, ...]:
    return tuple(Candidate(*row) for row in rows)


# Cheapest first. Batch and window per size are starting points, not measured per size (only
# 64 x 128 at char level and 32 x 64 at word level are); the biggest take batch 128, which
# used the CPU's arithmetic better in the throughput run (benchmarks/RESULTS.md, section 3).
LADDERS = {
    "char": _ladder([(1, 128, 64, 128), (2, 128, 64, 128), (2, 256, 64, 128), (2, 384, 64, 128),
                     (2, 512, 64, 128), (3, 512, 64, 128), (2, 768, 128, 128), (2, 1024, 128, 128)]),
    "word": _ladder([(1, 128, 32, 64), (2, 128, 32, 64), (2, 256, 32, 64), (2, 384, 32, 64),
                     (2, 512, 32, 64), (2, 768, 64, 64), (2, 1024, 64, 64)]),
}


def predicted_loss(parameters: float, tokens: float, layers: int = 2) -> float:
    """The rule's held-out loss for ``parameters`` in ``layers`` trained on ``tokens``, less the floor E
    that is the same for every size (so only differences mean anything):
    -a ln(N / 1e6) + b (D / 1e7)^-beta - g [one layer]."""
    b, beta = SIZING_TOKEN_TERM
    one_layer = SIZING_ONE_LAYER_GAIN if layers == 1 else 0.0
    return -SIZING_LOSS_PER_E_FOLD * math.log(parameters / 1e6) + b * (max(tokens, 1.0) / 1e7) ** -beta - one_layer


def rule_parameters(model: ModelConfig) -> int:
    """The rule's parameter count: the recurrent layers' weights (what the ladder changes; the
    embedding and output layer are fixed by the vocabulary)."""
    E, H = model.embedding_size, model.hidden_size
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[model.cell]
    return sum(gates * H * ((E if i == 0 else H) + H + 2) for i in range(model.num_layers))


def candidates(level: str, asked: dict, *, processes: int = 1, corpus_tokens: int | None = None) -> list[Candidate]:
    """The ladder with the sizes the user gave written in, duplicates dropped, cheapest first;
    without those whose batch cannot split over the processes or that need more text than there is."""
    fixed = {k: asked[k] for k in SIZE_FIELDS if k in asked}
    seen, out = set(), []
    for rung in LADDERS.get(level, LADDERS["word"]):  # subword: word level's rungs (windows of tokens)
        c = replace(rung, **fixed)
        if c in seen or c.batch_size % processes:
            continue
        if corpus_tokens is not None and c.batch_size * (c.seq_len + 1) + 1 > 0.9 * corpus_tokens:
            continue
        seen.add(c)
        out.append(c)
    return out


@dataclass
class Measured:
    """One candidate as the probe found it."""

    candidate: Candidate
    parameters: int  # the rule's N (rule_parameters)
    tokens_per_s: float  # training tokens per second, all processes together
    step_s: float  # seconds per timed step
    estimated_from: str | None = None  # not timed (the probe's share ran out): scaled from this timed size
    steps_timed: int = 0


def training_seconds(seconds_left: float, c: Candidate, eval_every: int, eval_tokens: int) -> float:
    """Of ``seconds_left``, the part spent training rather than in validation checks."""
    per_check = eval_every * c.batch_size * c.seq_len  # training tokens between two checks
    return seconds_left / (1 + eval_tokens * VAL_COST / per_check)


@dataclass
class Choice:
    measured: Measured
    tokens: float  # predicted training tokens in the budget
    ratio: float  # tokens / parameters
    loss: float  # predicted_loss: comparable between candidates only
    runner_up: "Choice | None" = None  # the next best candidate, for the printed reason


def predict(m: Measured, seconds_left: float, *, eval_every: int, eval_tokens: int,
            max_tokens: float = math.inf) -> Choice:
    """What ``m`` would see in ``seconds_left`` (``max_tokens``: what --epochs lets a run see) and the loss predicted."""
    seconds = training_seconds(seconds_left, m.candidate, eval_every, eval_tokens)
    tokens = min(m.tokens_per_s * seconds, max_tokens)
    return Choice(m, tokens, max(tokens, 1.0) / m.parameters,
                  predicted_loss(m.parameters, tokens, m.candidate.num_layers))


def choose(measured: list[Measured], seconds_left: float, *, eval_every: int, eval_tokens: int,
           max_tokens: float = math.inf) -> Choice:
    """The candidate with the lowest predicted held-out loss; on a tie the cheaper.
    Pure: the same speeds give the same choice."""
    ranked = sorted((predict(m, seconds_left, eval_every=eval_every, eval_tokens=eval_tokens, max_tokens=max_tokens)
                     for m in measured), key=lambda c: round(c.loss, 12))  # stable: cheaper first on a tie
    return replace(ranked[0], runner_up=ranked[1] if len(ranked) > 1 else None)


def reason(choice: Choice, precision: str, minutes: float, processes: int = 1) -> str:
    """The one line a run prints, and records: what was chosen and why."""
    m, where = choice.measured, f"{processes} processes" if processes > 1 else "here"
    how = f"estimated from {m.estimated_from}'s speed" if m.estimated_from else "measured"
    ratio = f"{choice.ratio:.{1 if choice.ratio >= 1 else 2}f}"
    other = choice.runner_up
    versus = (f"; next best {other.measured.candidate.name}, {other.loss - choice.loss:+.3f} predicted"
              if other else "")
    return (f"sizing: {m.candidate.describe()}: {_short(m.tokens_per_s)} tokens/s {how} {where} in {precision}, "
            f"~{_short(choice.tokens)} tokens in {minutes:g} min = {ratio} per parameter ({_short(m.parameters)}): "
            f"the lowest predicted held-out loss{versus}")


def _short(n: float) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g}{unit}".replace(".0" + unit, unit)
    return f"{n:.0f}"


# ------------------------------------------------------------ the probe

@dataclass
class Probe:
    """What the probe needs of the run: how to build a candidate's model and where it runs."""

    model: ModelConfig  # the run's model settings; a candidate's layers and hidden size go in
    device: torch.device
    autocast: torch.dtype | None  # the run's arithmetic (device.autocast_dtype)
    lr: float
    processes: int = 1  # torchrun: this process times its share of the batch; the rest assumed alike
    clock: Callable[[], float] = time.perf_counter
    _trials: dict = field(default_factory=dict, repr=False)  # Candidate -> _Trial
    _times: dict = field(default_factory=dict, repr=False)  # Candidate -> its timed steps (seconds)

    def config(self, c: Candidate) -> ModelConfig:
        return replace(self.model, num_layers=c.num_layers, hidden_size=c.hidden_size).validate()

    def time_steps(self, c: Candidate, enough_s: float = TIMED_ENOUGH_S) -> Measured:
        """One warm-up step, then up to TIMED_STEPS real training steps timed (fewer past ``enough_s``).
        The candidate's model is kept, so ``time_again`` can time more of its steps."""
        self._trials[c] = trial = _Trial.start(self.config(c), c, self.processes, self.device, self.lr)
        self._step(trial)  # the first step warms caches and kernels up: not timed
        times = self._times.setdefault(c, [])
        while len(times) < TIMED_STEPS and sum(times) < enough_s:
            times.append(self._step(trial))
        return self.measured(c)

    def time_again(self, c: Candidate) -> Measured:
        """One more timed step of a candidate ``time_steps`` timed; its speed from all its steps."""
        self._times[c].append(self._step(self._trials[c]))
        return self.measured(c)

    def measured(self, c: Candidate) -> Measured:
        step_s = statistics.median(self._times[c])
        return Measured(c, rule_parameters(self.config(c)), c.batch_size * c.seq_len / step_s, step_s,
                        steps_timed=len(self._times[c]))

    def release(self) -> None:
        """Frees the candidates' models before the run builds its own."""
        self._trials.clear()

    def _step(self, trial: "_Trial") -> float:
        start = self.clock()
        trial.step(self.device, self.autocast)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return self.clock() - start


@dataclass
class _Trial:
    """A candidate's model, optimizer, batch and carried state: one real training step at a time."""

    model: RNNLanguageModel
    optimizer: torch.optim.Optimizer
    ids: torch.Tensor  # (B, T+1) random tokens: the speed does not depend on which
    hidden: object = None

    @classmethod
    def start(cls, config: ModelConfig, c: Candidate, processes: int, device: torch.device, lr: float) -> "_Trial":
        model = RNNLanguageModel(config).to(device).train()
        rows = c.batch_size // processes  # torchrun: this process times its share of the batch
        ids = torch.randint(0, config.vocab_size, (rows, c.seq_len + 1), device=device)
        return cls(model, torch.optim.AdamW(model.parameters(), lr=lr), ids)

    def step(self, device: torch.device, autocast) -> None:
        with arithmetic(device, autocast):
            loss, hidden = self.model(self.ids[:, :-1], self.hidden, targets=self.ids[:, 1:])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.hidden = state_from_parts(h.detach().float() for h in state_parts(hidden))  # as the loop does


def probe(ladder: list[Candidate], run: Probe, budget_s: float, *, eval_every: int, eval_tokens: int,
          max_tokens: float = math.inf) -> tuple[list[Measured], float]:
    """Time candidates, cheapest first, while they may still be chosen and the probe's share allows.

    Returns what was measured and the seconds the probe took (all of them, the first size's too)."""
    began, limit = run.clock(), min(PROBE_MAX_S, PROBE_SHARE * budget_s)
    measured: list[Measured] = [run.time_steps(ladder[0], min(TIMED_ENOUGH_S, limit / 2))]
    start = run.clock()  # the share's clock: the first size's timing, with the device's start, is not in it
    for i, c in enumerate(ladder[1:], start=1):
        if _past_best(measured, budget_s - (run.clock() - began), eval_every, eval_tokens, max_tokens):
            break  # bigger candidates would see fewer tokens still
        last = measured[-1]
        guess = last.step_s * _cost(run, c) / _cost(run, last.candidate) * (TIMED_STEPS + 1)
        if run.clock() - start + guess > limit:
            measured += _estimates(ladder[i:], measured, run, budget_s - (run.clock() - began), eval_every,
                                   eval_tokens, max_tokens)
            break
        measured.append(run.time_steps(c, min(TIMED_ENOUGH_S, limit / 2)))
    measured = _retime(measured, run, start, limit, budget_s - (start - began), eval_every, eval_tokens, max_tokens)
    run.release()
    return measured, run.clock() - began


def _retime(measured: list[Measured], run: Probe, start: float, limit: float, budget_s: float,
            eval_every: int, eval_tokens: int, max_tokens: float) -> list[Measured]:
    """The timed sizes still in play (within PAST_BEST of the best predicted) timed again, a step each
    in turn, for up to RETIME_ROUNDS rounds while the probe's share lasts."""
    def in_play() -> list[int]:
        losses = _losses(measured, budget_s - (run.clock() - start), eval_every, eval_tokens, max_tokens)
        return [i for i, m in enumerate(measured) if not m.estimated_from and losses[i] <= min(losses) + PAST_BEST]

    for _ in range(RETIME_ROUNDS):
        chosen = in_play()
        if run.clock() - start + sum(measured[i].step_s for i in chosen) > limit:
            break
        for i in chosen:
            measured[i] = run.time_again(measured[i].candidate)
    return measured


def _estimates(rest: list[Candidate], timed: list[Measured], run: Probe, seconds_left: float,
               eval_every: int, eval_tokens: int, max_tokens: float) -> list[Measured]:
    """The sizes the probe had no time to time (short budgets), their speed scaled from the last timed
    one by arithmetic per step. Small models spend a larger share of a step on fixed costs, so the
    scaling slows bigger ones more than they really are: the estimate errs toward the smaller size."""
    last, out = timed[-1], []
    for c in rest:
        step_s = last.step_s * _cost(run, c) / _cost(run, last.candidate)
        tokens_per_s = c.batch_size * c.seq_len / step_s
        out.append(Measured(c, rule_parameters(run.config(c)), tokens_per_s, step_s, last.candidate.name))
        if _past_best(timed + out, seconds_left, eval_every, eval_tokens, max_tokens):
            break
    return out


def _past_best(measured: list[Measured], seconds_left: float, eval_every: int, eval_tokens: int,
               max_tokens: float) -> bool:
    """Whether the newest (biggest) candidate predicts PAST_BEST worse than the best so far: on the
    ladder each bigger size sees fewer tokens, so the ones after it would do worse still."""
    losses = _losses(measured, seconds_left, eval_every, eval_tokens, max_tokens)
    return losses[-1] > min(losses) + PAST_BEST


def _losses(measured: list[Measured], seconds_left: float, eval_every: int, eval_tokens: int,
            max_tokens: float) -> list[float]:
    return [predict(m, seconds_left, eval_every=eval_every, eval_tokens=eval_tokens, max_tokens=max_tokens).loss
            for m in measured]


def _cost(run: Probe, c: Candidate) -> float:
    """Arithmetic per step, roughly: the weights every token passes through, times the tokens."""
    config = run.config(c)
    return (config.parameter_count() - config.vocab_size * config.embedding_size) * c.batch_size * c.seq_len


def record(choice: Choice, measured: list[Measured], probe_s: float, line: str) -> dict:
    """config.json's "sizing": the choice, its reason and every speed the probe measured."""
    return {"choice": asdict(choice.measured.candidate), "reason": line, "probe_s": round(probe_s, 2),
            "predicted_tokens": round(choice.tokens), "predicted_loss_above_floor": round(choice.loss, 4),
            "measured": [{**asdict(m.candidate), "name": m.candidate.name, "parameters": m.parameters,
                          "tokens_per_s": round(m.tokens_per_s, 1), "step_s": round(m.step_s, 4),
                          "steps_timed": m.steps_timed, "estimated_from": m.estimated_from}
                         for m in measured]}


# ------------------------------------------------------------ a run's sizing (training.setup calls this)

def rough_tokens(characters: int, level: str) -> int:
    """The corpus's length in tokens before it is tokenized: exact at char level; at word level a
    low guess (Seinfeld's scripts have 3.6 characters a word, punctuation counted as words)."""
    return characters if level == "char" else characters // 6


def fixed_because(train: TrainConfig, asked: dict, fine_tuning: bool = False) -> str | None:
    """Why a --size auto run keeps its sizes, or None when they are to be chosen."""
    if fine_tuning:
        return "a fine-tuned run keeps its parent's shape"
    if not train.time_budget:
        return "the run has no --time-budget"
    given = [k for k in LIMIT_FIELDS if asked.get(k) is not None]
    if given:
        return f"the run is limited by --{given[0].replace('_', '-')} too"
    if all(k in asked for k in SIZE_FIELDS):
        return "every size was given"
    if "size" not in asked and any(k in asked for k in SIZE_FIELDS):
        # auto as the default, not asked for: a size the user set means they are choosing the shape
        # (a sweep varying --hidden-size compares like with like); --size auto chooses the rest.
        return "a size was given (--size auto chooses the others)"
    return None


def auto_size(model_settings: dict, train: TrainConfig, asked: dict, vocab_size: int, *, corpus_tokens: int,
              device: torch.device, processes: int = 1, say: Callable[[str], None] = print,
              fine_tuning: bool = False) -> tuple[dict, TrainConfig, dict]:
    """--size auto: (model settings, TrainConfig, config.json's "sizing") with the chosen sizes in.

    ``asked`` is what the user gave (those sizes win); ``corpus_tokens`` the corpus's length in
    tokens, roughly (candidates that need more text are left out)."""
    why = fixed_because(train, asked, fine_tuning)
    if why:
        line = f"sizing: fixed sizes, {why}"
        if asked.get("size") == "auto" and train.time_budget:  # auto asked for under a budget, and not given
            say(line)
        return model_settings, train, {"choice": None, "reason": line}
    held_out = max(1, int(corpus_tokens * train.val_fraction))
    eval_tokens = min(train.eval_tokens or held_out, held_out)
    ladder = candidates(train.level, asked, processes=processes, corpus_tokens=corpus_tokens)
    if not ladder:
        line = "sizing: fixed sizes, no candidate size fits this corpus and these settings"
        say(line)
        return model_settings, train, {"choice": None, "reason": line}
    autocast = autocast_dtype(train.precision, device)
    run = Probe(ModelConfig(**{**model_settings, "vocab_size": vocab_size}), device, autocast, train.lr, processes)
    budget_s = train.time_budget * 60
    epochs_tokens = train.epochs * (corpus_tokens - held_out) if train.epochs else math.inf  # the default's limit
    measured, probe_s = probe(ladder, run, budget_s, eval_every=train.eval_every, eval_tokens=eval_tokens,
                              max_tokens=epochs_tokens)
    choice = choose(measured, budget_s - probe_s, eval_every=train.eval_every, eval_tokens=eval_tokens,
                    max_tokens=epochs_tokens)
    line = reason(choice, "bf16" if autocast is not None else "fp32", train.time_budget, processes)
    c = choice.measured.candidate
    model_settings = {**model_settings, "num_layers": c.num_layers, "hidden_size": c.hidden_size}
    epochs = choice.tokens / max(1, corpus_tokens - held_out)
    if epochs > LONG_RUN_EPOCHS and "weight_drop" not in asked and not model_settings.get("weight_drop"):
        model_settings["weight_drop"] = LONG_RUN_WEIGHT_DROP  # the text will be used up (config.LONG_RUN_EPOCHS)
        line += f"; weight drop {LONG_RUN_WEIGHT_DROP:g}, as it will read the text ~{epochs:.0f} times"
    say(line)
    train = replace(train, batch_size=c.batch_size, seq_len=c.seq_len).validate()
    return model_settings, train, record(choice, measured, probe_s, line)
