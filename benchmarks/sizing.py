"""The measurement behind --size auto's rule (issue 14, item 1): which tokens per parameter give
the best held-out loss, across budgets and machine speeds.

    python -m benchmarks.sizing --plan     # the grid: runs and minutes, nothing trained
    python -m benchmarks.sizing            # the grid; results in benchmarks/results/sizing.{json,md}
    python -m benchmarks.sizing --speeds bf16-2 --budgets 1,2 --sizes 2x256,2x384   # a part of it
    python -m benchmarks.sizing --fit      # the rule from the cells saved so far, nothing trained
    python -m benchmarks.sizing --smoke    # the pipeline on a 60 kB text at tiny budgets (~2 min of CPU)

Text: the ~1 MB of the built-in plays (benchmarks/common.shakespeare_1mb), given whole to
``scriptrnn.train``, so its held-out end is the last 10% (the first 90% trained on), scored
whole with the best checkpoint, as every run is. Each run has all four sizes given (layers,
hidden, batch and window from the char-level ladder in training/sizing.py), ``--time-budget``
M minutes with its validation checks included, no epoch limit, defaults otherwise.

Machine speeds: bf16 against fp32 arithmetic and 1 against 2 threads stand in for faster and
slower machines ("bf16-2" is the fastest, "fp32-1" the slowest; bf16 only where it is native).
Budget and speed act together through the tokens a size can see, so the grid does not cross
them all: every budget at the fastest setting, 1-10 minutes at the slowest, 2 and 5 at the two
between. That overlaps in compute (fp32-1 at 10 minutes is about bf16-2 at 2), which is what
tells whether one rule in parameters and tokens serves all speeds.

Sizes per cell: before a speed's first cell, every ladder size is timed at that speed
(probe.Probe, the probe runs use); for each budget the --per-cell sizes (3) around the one the
current rule picks are trained. When the best held-out loss
falls on the smallest or largest of them, the next ladder size beyond it is trained too (at
most --extend, 1, per cell), so that the optimum is bracketed.

The fit: every run its budget ended is a point (N, D, held-out loss; runs the text ended, by the
cool-down or early stopping, are listed apart), N the recurrent layers' parameters and D
the training tokens it saw, whatever its speed and budget; L = c - a ln(N / 1e6) + b (D / 1e7)^-beta
- g [one layer] by least squares (beta on a grid, c, a, b and g linear for each). a is
SIZING_LOSS_PER_E_FOLD, (b, beta) SIZING_TOKEN_TERM and g SIZING_ONE_LAYER_GAIN in training/config.py. In N and D rather than minutes because the
loss a size reaches follows the tokens it sees, not the clock: fp32 at 2 minutes and bf16 at 1
give the same size the same loss for the same tokens. The report lists each cell's best (and the
tokens per parameter there, by a parabola through the best and its neighbours), the fit's error,
and per cell the size the fitted rule picks among those run there and the held-out loss it gives
up against the best. Every run is
saved as it finishes, and a rerun skips the saved ones (--force runs them again), so the grid
can span several sessions; each records its machine (CPU, bf16/AMX flags, torch, threads, date).
"""

from __future__ import annotations

import argparse
import datetime
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

import scriptrnn
from scriptrnn.device import autocast_dtype
from scriptrnn.model.network import ModelConfig
from scriptrnn.training import sizing
from scriptrnn.training.config import TrainConfig
from scriptrnn.training.probe import Probe, rule_parameters

from . import common

SPEEDS = {"bf16-2": ("bf16", 2), "bf16-1": ("bf16", 1), "fp32-2": ("fp32", 2), "fp32-1": ("fp32", 1)}
GRID = {"bf16-2": [1, 2, 5, 10, 30], "fp32-1": [1, 2, 5, 10], "bf16-1": [2, 5], "fp32-2": [2, 5]}
SMOKE_GRID = {"bf16-2": [0.05, 0.1], "fp32-1": [0.05]}
LADDER = {c.name: c for c in sizing.LADDERS["char"]}
SCORE_S = 30  # scoring the held-out tenth and setting a run up, per run, roughly (for --plan)


def grid(args) -> dict[str, list[float]]:
    """Speed setting -> budgets in minutes: the default grid, or --speeds with --budgets for each."""
    base = SMOKE_GRID if args.smoke else GRID
    speeds = [s for s in (args.speeds or base) if common.bf16_native() or not s.startswith("bf16")]
    return {s: list(args.budgets) if args.budgets else list(base.get(s, [])) for s in speeds}


# ------------------------------------------------------------ the store: one JSON, written per run

class Store(common.JsonStore):
    def __init__(self, path: Path):
        super().__init__(path, {"runs": {}, "speeds": {}})

    @staticmethod
    def key(speed: str, minutes: float, size: str) -> str:
        return f"{speed}/{minutes:g}/{size}"


# ------------------------------------------------------------ speeds, sizes, runs

def time_ladder(speed: str, vocab_size: int, longest_s: float, at_least: int = 3) -> dict[str, float]:
    """tokens/s of each ladder size at this speed setting, smallest first; stops (after ``at_least``)
    once a size predicts 0.2 nats worse than the best so far in the longest budget."""
    precision, threads = SPEEDS[speed]
    torch.set_num_threads(threads)
    probe = Probe(ModelConfig(vocab_size=vocab_size), torch.device("cpu"),
                  autocast_dtype(precision, torch.device("cpu")), TrainConfig(lr=3e-3))  # the run's own step
    speeds = {}
    for c in sizing.LADDERS["char"]:
        m = probe.time_steps(c)  # a warm-up step, then probe.ROUNDS timed ones: their median
        speeds[c.name] = round(m.tokens_per_s, 1)
        losses = [predicted(n, v, longest_s / 60) for n, v in speeds.items()]
        if len(speeds) >= at_least and losses[-1] > min(losses) + 0.2:
            break
    return speeds


def predicted(name: str, tokens_per_s: float, minutes: float) -> float:
    """The rule's loss (above its floor) for ``name`` at ``tokens_per_s`` for ``minutes``."""
    tokens = tokens_per_s * sizing.training_seconds(minutes * 60, LADDER[name], 200, 100_000)
    return sizing.predicted_loss(parameters(name), tokens, LADDER[name].num_layers)


def parameters(name: str) -> int:
    c = LADDER[name]
    return rule_parameters(ModelConfig(vocab_size=2, num_layers=c.num_layers, hidden_size=c.hidden_size))


def sizes_for(speeds: dict[str, float], minutes: float, per_cell: int) -> list[str]:
    """The ``per_cell`` timed sizes around the one the rule picks, in ladder order."""
    names = list(speeds)
    nearest = min(names, key=lambda n: predicted(n, speeds[n], minutes))
    i = names.index(nearest)
    lo = max(0, min(i - per_cell // 2, len(names) - per_cell))
    return names[lo: lo + per_cell]


def train_one(text: Path, speed: str, minutes: float, name: str, work: Path, train_tokens: int) -> dict:
    precision, threads = SPEEDS[speed]
    torch.set_num_threads(threads)
    c = LADDER[name]
    started = time.perf_counter()
    result = scriptrnn.train(text, work / f"{speed}-{minutes:g}-{name}", overwrite=True, progress=False,
                             num_layers=c.num_layers, hidden_size=c.hidden_size, batch_size=c.batch_size,
                             seq_len=c.seq_len, time_budget=minutes, epochs=None, precision=precision)
    tokens, n = result.steps * c.batch_size * c.seq_len, parameters(name)
    return {"speed": speed, "precision": precision, "threads": threads, "minutes": minutes, "size": name,
            **asdict(c), "held_out": round(result.metrics["loss"], 4), "steps": result.steps, "tokens": tokens,
            "parameters": n, "unique_tokens": train_tokens, "tokens_per_parameter": round(tokens / n, 3), "epochs": round(tokens / train_tokens, 2),
            "tokens_per_s": round(tokens / max(result.elapsed_s, 1e-9)), "train_s": round(result.elapsed_s, 1),
            "wall_s": round(time.perf_counter() - started, 1), "stopped_because": result.stopped_because,
            "machine": common.machine(),
            "date": datetime.date.today().isoformat()}


def run_cell(store: Store, text: Path, speed: str, minutes: float, sizes: list[str], args, train_tokens: int):
    """The cell's sizes, then one more beyond whichever end holds the best loss (up to --extend)."""
    names, todo, extended = list(store.data["speeds"][speed]), list(sizes), 0
    while todo:
        for name in todo:
            key = Store.key(speed, minutes, name)
            if key in store.data["runs"] and not args.force:
                continue
            print(f"{key}: training {minutes:g} min", flush=True)
            store.data["runs"][key] = train_one(text, speed, minutes, name, args.work, train_tokens)
            store.save()
            print(f"{key}: held-out {store.data['runs'][key]['held_out']:.4f}", flush=True)
        done = [n for n in names if Store.key(speed, minutes, n) in store.data["runs"]]
        losses = [store.data["runs"][Store.key(speed, minutes, n)]["held_out"] for n in done]
        best = done[int(np.argmin(losses))]
        edge = {done[0]: -1, done[-1]: +1}.get(best) if len(done) > 1 else None
        beyond = names.index(best) + edge if edge else -1
        todo = []
        if edge and 0 <= beyond < len(names) and extended < args.extend and not args.sizes:
            todo, extended = [names[beyond]], extended + 1


# ------------------------------------------------------------ the fit

def cells(runs: dict) -> dict[tuple[str, float], list[dict]]:
    out: dict = {}
    for r in runs.values():
        out.setdefault((r["speed"], r["minutes"]), []).append(r)
    return {k: sorted(v, key=lambda r: r["tokens_per_parameter"]) for k, v in sorted(out.items())}


def best_ratio(rows: list[dict]) -> tuple[float, str]:
    """(tokens per parameter at the optimum, "" or "<"/">" when the best size is at an edge: a bound)."""
    losses = [r["held_out"] for r in rows]
    i = int(np.argmin(losses))
    x = [math.log(r["tokens_per_parameter"]) for r in rows]
    if len(rows) < 3 or i in (0, len(rows) - 1):
        return rows[i]["tokens_per_parameter"], ("" if len(rows) == 1 else "<" if i == 0 else ">")
    a, b, _ = np.polyfit(x[i - 1: i + 2], losses[i - 1: i + 2], 2)
    vertex = -b / (2 * a) if a > 0 else x[i]
    return math.exp(min(max(vertex, x[i - 1]), x[i + 1])), ""


BETAS = np.round(np.arange(0.05, 1.5001, 0.005), 3)  # the token exponent's grid
PASSES_SCALES = (None, 5, 10, 15, 20, 30, 50, 100)  # k's grid (None: rereading costs nothing)


def unique_tokens(row: dict) -> float:
    """The training part of the run's text, in tokens (runs from before the field: tokens / epochs)."""
    return row.get("unique_tokens") or row["tokens"] / row["epochs"]


def _saturated(row: dict, k: float) -> float:
    scale = k * unique_tokens(row) ** 2 / row["parameters"]
    return scale * -math.expm1(-row["tokens"] / scale)


def fit_surface(rows: list[dict], scales=PASSES_SCALES) -> dict | None:
    """L = c - a ln(N / 1e6) + b (D_eff / 1e7)^-beta - g [one layer] by least squares over ``rows`` (g = 0
    without one-layer runs), D_eff the tokens saturated by rereading with scale k (training/sizing.py).
    beta and k on grids, c, a, b and g linear for each; of the fits that favour both more parameters and
    more tokens, the one whose picks give up the least held-out loss in the cells (what the rule is for),
    then the lowest error. None when no fit does."""
    n = np.array([r["parameters"] for r in rows], float) / 1e6
    one = np.array([r["num_layers"] == 1 for r in rows], float)
    loss = np.array([r["held_out"] for r in rows])
    best = None
    for k in scales:
        d = np.array([r["tokens"] if k is None else _saturated(r, k) for r in rows], float) / 1e7
        for beta in BETAS:
            x = np.stack([np.ones_like(n), -np.log(n), d ** -beta, -one], axis=1)
            (c, a, b, g), *_ = np.linalg.lstsq(x, loss, rcond=None)
            if a > 0 and b > 0:
                error = float(np.sqrt(np.mean((x @ np.array([c, a, b, g]) - loss) ** 2)))
                rule = {"c": round(float(c), 4), "a": round(float(a), 4), "b": round(float(b), 4),
                        "beta": float(beta), "g": round(float(g), 4), "k": k, "rmse": round(error, 4)}
                rule["given_up"] = round(sum(given_up(rule, cell) for cell in cells_of(rows).values()), 4)
                if best is None or (rule["given_up"], error) < (best["given_up"], best["rmse"]):
                    best = rule
    return best


def surface_loss(rule: dict, row: dict) -> float:
    d = row["tokens"] if rule.get("k") is None else _saturated(row, rule["k"])
    return (rule["c"] - rule["a"] * math.log(row["parameters"] / 1e6) + rule["b"] * (d / 1e7) ** -rule["beta"]
            - rule["g"] * (row["num_layers"] == 1))


def given_up(rule: dict, cell: list[dict]) -> float:
    """The held-out loss lost in a cell by training the size the rule ranks first instead of the best."""
    pick = min(cell, key=lambda r: surface_loss(rule, r))
    return pick["held_out"] - min(r["held_out"] for r in cell)


def cells_of(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault((r["speed"], r["minutes"]), []).append(r)
    return out


def limited_by_text(run: dict) -> bool:
    """Ended before its budget because the text ran out (the cool-down or early stopping): such a run
    says where rereading stops paying. Runs from before the field was recorded all ran to their budget."""
    return not run.get("stopped_because", "reached --time-budget").startswith("reached --time-budget")


def fit(runs: dict) -> dict:
    """The surface over every run (those the text ended too: the rereading term is fitted on them), its
    error left one run out, and per cell the best and the rule's pick."""
    rows = list(runs.values())
    rule = fit_surface(rows) if len(rows) >= 4 else None
    if rule:
        held = [fit_surface(rows[:i] + rows[i + 1:], (rule["k"],)) for i in range(len(rows))]
        rule["rmse_left_out"] = round(float(np.sqrt(np.mean(
            [(surface_loss(h, r) - r["held_out"]) ** 2 for h, r in zip(held, rows) if h]))), 4)
        rule["runs"] = len(rows)
    table = []
    for (speed, minutes), cell in cells(runs).items():
        ratio, bound = best_ratio(cell)
        best = min(cell, key=lambda r: r["held_out"])
        t = {"speed": speed, "minutes": minutes, "best_size": best["size"], "held_out": best["held_out"],
             "r_star": round(ratio, 3), "bound": bound, "epochs": best["epochs"], "sizes": len(cell)}
        if rule:  # the rule compares sizes by the tokens each saw in the run
            pick = min(cell, key=lambda r: surface_loss(rule, r))
            t["rule_size"], t["given_up"] = pick["size"], round(pick["held_out"] - best["held_out"], 4)
        table.append(t)
    return {"cells": table, "rule": rule}


def markdown(data: dict, command: str) -> str:
    runs, result = data["runs"], data["fit"]
    m = next(iter(runs.values()))["machine"] if runs else common.machine()
    lines = [f"# Sizing: tokens per parameter against held-out loss ({datetime.date.today().isoformat()})", "",
             f"    {command}", "",
             f"Machine: {m['cpu']} ({', '.join(m.get('flags', [])) or 'no bf16/AMX flags'}), {m['cores']} cores, "
             f"torch {m['torch']}. Text: {data.get('text', '')}, last 10% held out.", "",
             "## Every run", "",
             common.table(["speed", "min", "size", "batch x window", "held-out", "tokens/s", "tokens", "parameters",
                           "tokens/param", "epochs"],
                          [[r["speed"], f"{r['minutes']:g}", r["size"], f"{r['batch_size']}x{r['seq_len']}",
                            f"{r['held_out']:.4f}", f"{r['tokens_per_s']:,}", f"{r['tokens']:,}",
                            f"{r['parameters']:,}", r["tokens_per_parameter"], r["epochs"]]
                           for rows in cells(runs).values() for r in rows]), "",
             "## The best tokens per parameter per cell", "",
             common.table(["speed", "min", "best size", "held-out", "tokens/param at the best", "epochs",
                           "rule's size", "loss given up"],
                          [[t["speed"], f"{t['minutes']:g}", t["best_size"], f"{t['held_out']:.4f}",
                            f"{t['bound']}{t['r_star']}", t["epochs"], t.get("rule_size", ""), t.get("given_up", "")]
                           for t in result["cells"]]), "",
             '"<" or ">": the best size was the smallest or largest run in its cell, so only a bound.', ""]
    rule = result["rule"]
    if not rule:
        lines.append("Too few runs, or none that favour both more parameters and more tokens: no rule fitted.")
    else:
        lines.append(f"**Rule**: L(N, D) = {rule['c']} - {rule['a']} ln(N / 1e6) + {rule['b']} (D_eff / 1e7)^-{rule['beta']} "
                     f"- {rule['g']} [one layer], D_eff = S (1 - exp(-D / S)), S = {rule['k']} U^2 / N (U: the text's "
                     f"training tokens), over {rule['runs']} runs (rmse {rule['rmse_left_out']} nats/char with "
                     f"each run left out of the fit in turn, {rule['rmse']} in it; {rule['given_up']} nats given up "
                     f"over the cells): SIZING_LOSS_PER_E_FOLD = {rule['a']}, "
                     f"SIZING_TOKEN_TERM = ({rule['b']}, {rule['beta']}), SIZING_ONE_LAYER_GAIN = {rule['g']}, "
                     f"SIZING_PASSES_SCALE = {rule['k']} (training/config.py).")
    apart = [r for r in runs.values() if limited_by_text(r)]
    if data.get("no_cooldown"):
        lines += ["", "Left out of the fit: " + "; ".join(f"{k}, {r['held_out']:.4f}: {r.get('why_apart', '')}"
                                                        for k, r in data["no_cooldown"].items())]
    if apart:
        lines += ["", "## Ended by the text, not the budget (in the fit: they place the rereading term)", "",
                  common.table(["speed", "min", "size", "held-out", "steps", "epochs", "train s", "why it ended"],
                               [[r["speed"], f"{r['minutes']:g}", r["size"], f"{r['held_out']:.4f}", f"{r['steps']:,}",
                                 r["epochs"], r["train_s"], r.get("stopped_because", "")] for r in apart])]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------ plan, arguments, main

def plan(g: dict[str, list[float]], args) -> str:
    per = len(args.sizes) if args.sizes else args.per_cell
    extra = 0 if args.sizes else args.extend
    cells_n = sum(len(b) for b in g.values())
    minutes = sum(sum(b) for b in g.values())
    runs_n, train_min = cells_n * per, minutes * per
    rows = [[speed, ", ".join(f"{m:g}" for m in budgets), len(budgets) * per, f"{sum(budgets) * per:g}"]
            for speed, budgets in g.items()]
    overhead = runs_n * (3 if args.smoke else SCORE_S) / 60 + len(g) * 1.5  # scoring and set-up per run; timing the ladder per speed
    return (common.table(["speed", "budgets (min)", "runs", "training min"], rows) + "\n\n"
            f"{cells_n} cells x {per} sizes = {runs_n} runs, {train_min:g} min of training "
            f"+ ~{overhead:.0f} min scoring and timing = ~{(train_min + overhead) / 60:.1f} h; "
            f"up to {extra} more size(s) per cell when its best is at an edge "
            f"(worst case +{minutes * extra:g} min).")


def _list(kind):
    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
    return parse


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--plan", action="store_true", help="print the runs and minutes the grid takes; train nothing")
    p.add_argument("--fit", action="store_true", help="fit and write the report from the saved runs; train nothing")
    p.add_argument("--smoke", action="store_true", help="a 60 kB text, tiny budgets: proves the pipeline only")
    p.add_argument("--speeds", type=_list(str), help=f"speed settings, of {', '.join(SPEEDS)} (default: the grid's)")
    p.add_argument("--budgets", type=_list(float), help="minutes, for every speed chosen (default: the grid's)")
    p.add_argument("--sizes", type=_list(str), help=f"ladder sizes to train in every cell, of {', '.join(LADDER)} "
                                                     "(default: the --per-cell around the current rule's pick)")
    p.add_argument("--per-cell", type=int, default=3, help="sizes per cell (default 3)")
    p.add_argument("--extend", type=int, default=1, help="sizes added beyond an edge best, per cell (default 1)")
    p.add_argument("--force", action="store_true", help="train runs that are saved already again")
    p.add_argument("--out", type=Path, help="results without suffix (default benchmarks/results/sizing)")
    p.add_argument("--work", type=Path, default=common.WORK / "sizing", help="run directories (not kept)")
    args = p.parse_args(argv)
    bad = [s for s in (args.speeds or []) if s not in SPEEDS] + [s for s in (args.sizes or []) if s not in LADDER]
    if bad:
        p.error(f"unknown speed setting or size: {', '.join(bad)}")
    if args.out is None:
        args.out = (common.WORK / "sizing-smoke") if args.smoke else common.RESULTS / "sizing"
    if args.smoke:
        args.work = common.WORK / "sizing-smoke-runs"
        args.extend = 0
    return args


def smoke_text() -> Path:
    path = common.WORK / "shakespeare_60k.txt"
    text = common.shakespeare_1mb().read_text(encoding="utf-8")
    path.write_text(text[: text.rfind("\n", 0, 60_000) + 1], encoding="utf-8")
    return path


def main(argv=None) -> int:
    args = parse_args(argv)
    g = grid(args)
    print(plan(g, args))
    if args.plan:
        return 0
    store = Store(args.out.with_suffix(".json"))
    text = smoke_text() if args.smoke else common.shakespeare_1mb()
    tokenizer, train_ids, _ = common.token_split(common.Corpus("sizing", "char", text))
    store.data["text"] = f"{text.name} ({len(train_ids) + len(_):,} characters)"
    if not args.fit:
        for speed, budgets in g.items():
            if speed not in store.data["speeds"] or args.force:
                print(f"{speed}: timing the ladder", flush=True)
                store.data["speeds"][speed] = time_ladder(speed, tokenizer.vocab_size, max(budgets) * 60,
                                                          args.per_cell)
                store.save()
            for minutes in budgets:
                sizes = args.sizes or sizes_for(store.data["speeds"][speed], minutes, args.per_cell)
                run_cell(store, text, speed, minutes, sizes, args, len(train_ids))
    store.data["fit"] = fit(store.data["runs"])
    store.save()
    command = "python -m benchmarks.sizing" + (" --smoke" if args.smoke else "")
    report = markdown(store.data, command)
    args.out.with_suffix(".md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
