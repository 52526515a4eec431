"""--size auto: the model sized to the --time-budget and to this machine's measured speed (issue 14).

A ladder of candidate sizes per level (layers x hidden, each with its batch and window). The
probe (probe.py) times the run's own training step for the candidates on this machine, at the run's
device, precision and threads, interleaved and checked against their arithmetic so that load elsewhere
cannot make one size look slow: the speed, never the CPU's name, is what is known about the machine;
sizes it has no time left to time (short budgets) get a speed scaled from a timed one. From each
speed it predicts the tokens a candidate would train on in what is left of the budget (after the
preparation, the probe and the validation checks' share), from those and the candidate's parameters
its held-out loss (training.config: SIZING_LOSS_PER_E_FOLD, SIZING_TOKEN_TERM, fitted by
benchmarks/sizing.py), with reread tokens counting for less on a short text (SIZING_PASSES_SCALE), and
picks the lowest. Other programs on the run's cores are looked for first and measured throughout
(load.py). The probe's seconds count against the budget.

Sizes the user gave always win: they are written into every candidate, so only the others are
chosen. Runs limited by --epochs or --max-steps, fine-tuned and resumed runs keep their sizes; so
does a run under auto as the char-level default (not asked for) that was given any size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Callable

import torch

from ..device import autocast_dtype
from ..model.network import ModelConfig
from .config import (SIZING_LOSS_PER_E_FOLD, SIZING_ONE_LAYER_GAIN, SIZING_PASSES_SCALE, SIZING_TOKEN_TERM,
                     USED_UP_WEIGHT_DROP, TrainConfig)
from .load import BusyCores
from .probe import MIN_ROUNDS, Candidate, Measured, Probe, probe

SIZE_FIELDS = ("num_layers", "hidden_size", "batch_size", "seq_len")  # what sizing may choose
LIMIT_FIELDS = ("epochs", "max_steps")  # given by the user, the run is not limited by time alone

VAL_COST = 1 / 3  # a validation token costs about a third of a training one (forward only); assumed
PAST_BEST = 0.05  # stop probing bigger candidates once one predicts this many nats worse than the best so far


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


def effective_tokens(tokens: float, parameters: float, unique_tokens: float | None) -> float:
    """The tokens a run learns from when it rereads a text of ``unique_tokens``: the first pass counts
    whole, and repeats count for less the more the model can memorise, saturating at k U^2 / N
    (SIZING_PASSES_SCALE = k): a small model gains from its 40th pass over a 1 MB text, a big one has
    used the text up in 10. None: a text too big to reread in the run (every token new)."""
    if not unique_tokens:
        return tokens
    scale = SIZING_PASSES_SCALE * unique_tokens * (unique_tokens / parameters)
    return scale * -math.expm1(-tokens / scale)


# Beyond the CPU ladder, for a GPU: its arithmetic makes bigger sizes cheap, and only its memory bounds
# them (probe.fits checks each before it is built, and a size that runs out of memory ends the ladder).
GPU_RUNGS = _ladder([(3, 1024, 128, 128), (2, 1536, 128, 128), (2, 2048, 128, 128), (3, 2048, 128, 128)])


def predicted_loss(parameters: float, tokens: float, layers: int = 2, unique_tokens: float | None = None) -> float:
    """The rule's held-out loss for ``parameters`` in ``layers`` trained on ``tokens`` of a text of
    ``unique_tokens`` (reread as often as it takes), less the floor E that is the same for every size
    (so only differences mean anything): -a ln(N / 1e6) + b (D_eff / 1e7)^-beta - g [one layer]."""
    b, beta = SIZING_TOKEN_TERM
    one_layer = SIZING_ONE_LAYER_GAIN if layers == 1 else 0.0
    seen = effective_tokens(max(tokens, 1.0), parameters, unique_tokens)
    return -SIZING_LOSS_PER_E_FOLD * math.log(parameters / 1e6) + b * (max(seen, 1.0) / 1e7) ** -beta - one_layer


def candidates(level: str, asked: dict, *, processes: int = 1, corpus_tokens: int | None = None,
               gpu: bool = False) -> list[Candidate]:
    """The ladder with the sizes the user gave written in, duplicates dropped, cheapest first;
    without those whose batch cannot split over the processes or that need more text than there is.
    On a GPU the ladder goes on (GPU_RUNGS) as far as its memory allows (the probe checks each)."""
    fixed = {k: asked[k] for k in SIZE_FIELDS if k in asked}
    seen, out = set(), []
    rungs = LADDERS.get(level, LADDERS["word"])  # subword: word level's rungs (windows of tokens)
    for rung in rungs + (GPU_RUNGS if gpu else ()):
        c = replace(rung, **fixed)
        if c in seen or c.batch_size % processes:
            continue
        if corpus_tokens is not None and c.batch_size * (c.seq_len + 1) + 1 > 0.9 * corpus_tokens:
            continue
        seen.add(c)
        out.append(c)
    return out


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
            max_tokens: float = math.inf, unique_tokens: float | None = None) -> Choice:
    """What ``m`` would see in ``seconds_left`` (``max_tokens``: what --epochs lets a run see) of a text of
    ``unique_tokens`` training tokens, and the loss predicted."""
    seconds = training_seconds(seconds_left, m.candidate, eval_every, eval_tokens)
    tokens = min(m.tokens_per_s * seconds, max_tokens)
    return Choice(m, tokens, max(tokens, 1.0) / m.parameters,
                  predicted_loss(m.parameters, tokens, m.candidate.num_layers, unique_tokens))


def choose(measured: list[Measured], seconds_left: float, *, eval_every: int, eval_tokens: int,
           max_tokens: float = math.inf, unique_tokens: float | None = None) -> Choice:
    """The candidate with the lowest predicted held-out loss; on a tie the cheaper.
    Pure: the same speeds give the same choice."""
    ranked = sorted((predict(m, seconds_left, eval_every=eval_every, eval_tokens=eval_tokens, max_tokens=max_tokens,
                             unique_tokens=unique_tokens)
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


def _faster(m: Measured, factor: float) -> Measured:
    """``m`` as it would have run without the other programs' work the probe saw (load.py)."""
    if factor == 1:
        return m
    return replace(m, step_s=m.step_s / factor, tokens_per_s=m.tokens_per_s * factor,
                   fastest_s=m.fastest_s and m.fastest_s / factor)


def used_up_weight_drop(tokens: float, parameters: float, unique_tokens: float) -> float:
    """Weight drop for a run that will see ``tokens`` of a text of ``unique_tokens``: none while most of
    what it reads is new, rising with the share the rule counts as used up (1 - D_eff / D) to its most
    (config.USED_UP_WEIGHT_DROP)."""
    start, full, most = USED_UP_WEIGHT_DROP
    used_up = 1 - effective_tokens(tokens, parameters, unique_tokens) / max(tokens, 1.0)
    return round(most * min(1.0, max(0.0, (used_up - start) / (full - start))), 2)


def _short(n: float) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g}{unit}".replace(".0" + unit, unit)
    return f"{n:.0f}"


def record(choice: Choice, measured: list[Measured], probe_s: float, line: str) -> dict:
    """config.json's "sizing": the choice, its reason and every speed the probe measured."""
    return {"choice": asdict(choice.measured.candidate), "reason": line, "probe_s": round(probe_s, 2),
            "predicted_tokens": round(choice.tokens), "predicted_loss_above_floor": round(choice.loss, 4),
            "measured": [{**asdict(m.candidate), "name": m.candidate.name, "parameters": m.parameters,
                          "tokens_per_s": round(m.tokens_per_s, 1), "step_s": round(m.step_s, 4),
                          "steps_timed": m.steps_timed, "estimated_from": m.estimated_from,
                          "capped_by": m.capped_by}
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
    ladder = candidates(train.level, asked, processes=processes, corpus_tokens=corpus_tokens,
                        gpu=device.type == "cuda")
    if not ladder:
        line = "sizing: fixed sizes, no candidate size fits this corpus and these settings"
        say(line)
        return model_settings, train, {"choice": None, "reason": line}
    autocast = autocast_dtype(train.precision, device)
    run = Probe(ModelConfig(**{**model_settings, "vocab_size": vocab_size}), device, autocast, train, processes)
    budget_s = train.time_budget * 60
    unique = corpus_tokens - held_out  # the training part: what a run rereads
    epochs_tokens = train.epochs * unique if train.epochs else math.inf  # the default's limit
    cores = BusyCores.look(device.type)  # other programs on the run's cores (load.py)

    def losses(measured: list[Measured], seconds_left: float) -> list[float]:
        factor = cores.correction()
        return [predict(_faster(m, factor), seconds_left, eval_every=train.eval_every, eval_tokens=eval_tokens,
                        max_tokens=epochs_tokens, unique_tokens=unique).loss for m in measured]

    with cores.timing():
        measured, probe_s = probe(ladder, run, budget_s - cores.glanced_s, losses, PAST_BEST)
        factor = cores.correction()
    probe_s += cores.glanced_s
    measured = [_faster(m, factor) for m in measured]
    choice = choose(measured, budget_s - probe_s, eval_every=train.eval_every, eval_tokens=eval_tokens,
                    max_tokens=epochs_tokens, unique_tokens=unique)
    line = reason(choice, "bf16" if autocast is not None else "fp32", train.time_budget, processes)
    line += cores.said(factor)
    c = choice.measured.candidate
    model_settings = {**model_settings, "num_layers": c.num_layers, "hidden_size": c.hidden_size}
    epochs = choice.tokens / max(1, unique)
    drop = used_up_weight_drop(choice.tokens, choice.measured.parameters, unique)
    with_drop = None
    if drop and "weight_drop" not in asked and not model_settings.get("weight_drop"):
        model_settings["weight_drop"] = drop  # the text will be used up: weight drop keeps the loss falling
        # the step the run will take has weight drop in it: the chosen size timed again with it
        began = run.clock()
        with cores.timing():  # as the probe timed: the same correction holds
            with_drop = replace(run, model=replace(run.model, weight_drop=drop), _trials={},
                                _times={}).time_steps(c, MIN_ROUNDS)
        with_drop = _faster(with_drop, factor)
        probe_s += run.clock() - began
        line += (f"; weight drop {drop:g}, as it will read the text ~{epochs:.0f} times "
                 f"({_short(with_drop.tokens_per_s)} tokens/s with it)")
    say(line)
    train = replace(train, batch_size=c.batch_size, seq_len=c.seq_len).validate()
    sized = record(choice, measured, probe_s, line)
    sized["busy_elsewhere_cores"], sized["speeds_scaled_by"] = round(cores.others(), 2), round(factor, 3)
    if with_drop is not None:
        sized["weight_drop_tokens_per_s"] = round(with_drop.tokens_per_s, 1)
    return model_settings, train, sized


def probe_speed(record: dict) -> float | None:
    """The chosen size's speed as the probe measured it (config.json's "sizing"), or None."""
    if record.get("weight_drop_tokens_per_s"):
        return record["weight_drop_tokens_per_s"]
    choice = record.get("choice")
    for m in record.get("measured", []) if choice else []:
        if all(m.get(k) == v for k, v in choice.items()):
            return m["tokens_per_s"]
    return None
