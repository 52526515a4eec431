"""The run's clock: its learning-rate schedule, its limits, the cool-down, and where the time went.

Under --time-budget the whole command is the budget: reading and preparing the text, the sizing
probe, training, the validation checks, the final evaluation and saving. The loop counts the
seconds before it in its clock, and stops early enough to leave the final evaluation its time
(``reserve_s``, measured at the checks), so the command ends near the budget; ``TimeSpent`` says
where the seconds went.

A finished run given more time (``scriptrnn train --resume RUN --time-budget 3``) trains a new
segment of the schedule: the budget counts from the resume, the learning rate warms up again
over --warmup-steps to the run's --lr and follows a cosine down to its floor at the new budget's end
(a warm restart, as in SGDR), and the cool-down may fire again. The best checkpoint is replaced
only by a better one, so more time never makes the saved model worse.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import ScriptRNNError
from .config import TrainConfig
from .resume import LoopState

# The cool-down starts on evidence that the text is used up, not on one noisy check: when the best
# of the last COOLDOWN_EVIDENCE_CHECKS checks fails to beat the best before them. (A word-level run on
# Seinfeld cooled on one worse check, and the checks after it improved again: 3.836, then 3.811.)
COOLDOWN_EVIDENCE_CHECKS = 3
# Training this far below the probe's speed (SLOW_SHARE of it) for SLOW_STRETCH of the budget (at
# least SLOW_STRETCH_MIN_S) is said once: another program is using the machine.
SLOW_SHARE = 1 / 3
SLOW_STRETCH = 0.05
SLOW_STRETCH_MIN_S = 10.0
RESERVE_AT_MOST = 0.5  # the final evaluation's reserve never takes more than this share of a budget


@dataclass
class Schedule:
    config: TrainConfig
    windows_per_epoch: int
    reserve_s: float = 0.0  # seconds kept at the budget's end for the final evaluation (set at each check)

    def budget_s(self) -> float:
        """The seconds the loop may train and check in this segment, the final evaluation's kept back."""
        budget = self.config.time_budget * 60
        return budget - min(self.reserve_s, RESERVE_AT_MOST * budget)

    def progress(self, s: LoopState) -> float:
        """Fraction of the run done, by whichever limit is nearest."""
        c = self.config
        parts = [0.0]
        if c.max_steps:
            parts.append(s.step / c.max_steps)
        if c.epochs:
            parts.append((s.epoch + s.window / self.windows_per_epoch) / c.epochs)
        if c.time_budget:
            parts.append((s.elapsed_s - s.segment_s) / self.budget_s())
        return min(1.0, max(parts))

    def learning_rate(self, s: LoopState) -> float:
        c = self.config
        if s.cooldown_from_step >= 0:  # linearly from where the cool-down began to the floor
            done = min(1.0, (s.step - s.cooldown_from_step) / self.cooldown_steps())
            return s.cooldown_from_lr + (c.lr * c.min_lr_ratio - s.cooldown_from_lr) * done
        if s.step - s.segment_step < c.warmup_steps:
            return c.lr * (s.step - s.segment_step + 1) / c.warmup_steps
        cosine = 0.5 * (1 + math.cos(math.pi * self.progress(s)))
        return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * cosine)

    def cooldown_steps(self) -> int:
        return max(1, (self.config.cooldown_checks or 0) * self.config.eval_every)

    def after_check(self, s: LoopState) -> None:
        """A check without a new best: the cool-down starts once COOLDOWN_EVIDENCE_CHECKS checks in a row
        have not beaten the best, in the first half of a --time-budget (TrainConfig.cooldown_checks);
        past half-way the cosine is cooling the rate already."""
        c = self.config
        if (c.cooldown_checks and c.time_budget and s.cooldown_from_step < 0 and self.progress(s) < 0.5
                and s.checks_without_improvement >= COOLDOWN_EVIDENCE_CHECKS):
            s.cooldown_from_lr = self.learning_rate(s)
            s.cooldown_from_step = s.step

    def limit_reached(self, s: LoopState) -> str | None:
        c = self.config
        if c.max_steps and s.step >= c.max_steps:
            return f"reached --max-steps {c.max_steps}"
        if c.epochs and s.epoch + s.window / self.windows_per_epoch >= c.epochs:
            return f"reached --epochs {c.epochs:g}"
        if c.time_budget and s.elapsed_s - s.segment_s >= self.budget_s():
            return f"reached --time-budget {c.time_budget:g} min"
        if s.cooldown_from_step >= 0 and s.step >= s.cooldown_from_step + self.cooldown_steps():
            return (f"cooled down: validation stopped improving (no new best in {COOLDOWN_EVIDENCE_CHECKS} checks) "
                    f"at step {s.cooldown_from_step}, and the learning rate fell to its floor over "
                    f"{c.cooldown_checks} more checks")
        if c.patience and s.checks_without_improvement >= c.patience:
            return f"early stop: no better validation loss in {c.patience} checks"
        return None


def new_segment(s: LoopState, spent_s: float) -> None:
    """A finished run given a new --time-budget: the budget, the warm-up and the cosine start again
    here (``spent_s``: this command's seconds before the loop, which the new budget counts)."""
    s.segment_s, s.segment_step = s.elapsed_s, s.step
    s.elapsed_s += spent_s
    s.cooldown_from_step, s.cooldown_from_lr = -1, 0.0
    s.checks_without_improvement = 0


def finished(record) -> bool:
    """Whether a run's record (config.json, model/record.py) says it ended (not interrupted, not killed before
    its final result)."""
    stopped = record.metrics.stopped_because if record.metrics is not None else None
    return isinstance(stopped, str) and not stopped.startswith("interrupted")


class NothingToTrain(ScriptRNNError):
    """A resumed run that has ended and was given no more to do: the CLI says so and exits 0, so
    that the same command with --resume, run again after it finished (a crash-recovery script), is
    not a failure."""


def nothing_to_train(reason: str, config: TrainConfig, out) -> str:
    """The one line a resumed run that would train nothing says instead: what to do."""
    more = (f"give it more time with --time-budget MINUTES (scriptrnn train --resume {out} --time-budget 3 "
            "trains 3 more minutes, a new segment of the schedule)" if config.time_budget else
            "give a larger --max-steps or --epochs than where it stopped")
    return f"--resume: the run has ended ({reason}), so there is nothing to train; {more}"


@dataclass
class TimeSpent:
    """Where a command's seconds went."""

    prepare: float = 0.0  # reading the text, the vocabulary, the token cache (or, resumed, checking them)
    probe: float = 0.0  # --size auto's probe
    train: float = 0.0  # training steps
    checks: float = 0.0  # validation checks, samples, checkpoints
    final: float = 0.0  # the final evaluation on the whole held-out text
    save: float = 0.0  # the run's files at the end

    def record(self) -> dict:
        return {k: round(v, 2) for k, v in asdict(self).items()}

    def line(self, budget_min: float | None) -> str:
        total = sum(asdict(self).values())
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in
                          (("prepare", self.prepare), ("probe", self.probe), ("train", self.train),
                           ("checks", self.checks), ("final evaluation", self.final), ("save", self.save)))
        if not budget_min:
            return f"time: {total:.1f} s: {parts}"
        over = total / (budget_min * 60) - 1
        return f"time: {total:.1f} s of a {budget_min * 60:.0f} s budget ({over:+.0%}): {parts}"


class SlowWatch:
    """Says once when training runs far below what the probe measured for a sustained stretch."""

    def __init__(self, probe_tokens_per_s: float | None, budget_s: float | None, device: str):
        self.expected = probe_tokens_per_s
        self.stretch_s = max(SLOW_STRETCH_MIN_S, SLOW_STRETCH * (budget_s or 0.0))
        self.device = "GPU" if device == "cuda" else device.upper()
        self.since: float | None = None
        self.said: dict | None = None  # what was said, for config.json's metrics

    def update(self, tokens_per_s: float, now_s: float, step: int) -> str | None:
        """The message, the one time the rate has stayed below SLOW_SHARE of the probe's for the stretch."""
        if not self.expected or self.said is not None:
            return None
        if tokens_per_s >= SLOW_SHARE * self.expected:
            self.since = None
            return None
        if self.since is None:
            self.since = now_s
        if now_s - self.since < self.stretch_s:
            return None
        self.said = {"step": step, "tokens_per_s": round(tokens_per_s, 1),
                     "probe_tokens_per_s": round(self.expected, 1)}
        return (f"training is running at {_k(tokens_per_s)} tokens/s, the probe measured {_k(self.expected)}: another "
                f"program is using the {self.device}; the run will see fewer tokens than planned")


def _k(n: float) -> str:
    return f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"
