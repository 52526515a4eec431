"""Fine-tuning from the ready model against training from scratch, on a small corpus (issue 15, item 3).

The question: on a user's own small corpus (the first ~300 KB of Seinfeld_Scripts.txt, char
level, its last 10% held out), does `scriptrnn train DATA --init-from builtin` reach in 1 minute
what a run from scratch reaches in 5? And which fine-tuning learning rate should be the default
(training.config.FINETUNE_DEFAULTS, set from this script's --lrs run)?

Each cell is one whole run with `--time-budget M` (the schedule follows the budget, so a 1-minute
run is a complete run, not the first minute of a longer one), scored by the run's own final
evaluation on the whole held-out end. Both kinds of run see the same text and score every
held-out character: a fine-tuned run's vocabulary is the parent's plus the corpus's new
characters, a superset of the scratch run's, which can only cost it.

Run it alone on an idle machine (timings):

    python -m benchmarks.finetune                              # finetune and scratch at 1, 2, 5 min (~16 min)
    python -m benchmarks.finetune --lrs 3e-4,1e-3,3e-3 --minutes 1,2 --methods finetune   # the learning rates, ~10 min

Results go to benchmarks/results/finetune.json and .md, written after every cell; a rerun skips
the cells already there (--redo to run them again). `--smoke` runs every cell for a few seconds
on a small slice, into a scratch folder, to check the script itself: its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import scriptrnn
from scriptrnn.training.config import FINETUNE_DEFAULTS

from .common import RESULTS, SHARED_DATA, WORK, machine

CORPUS_BYTES = 300_000
METHODS = {
    # name: the settings that make it, over the char-level defaults
    "finetune": {"init_from": "builtin"},
    "scratch": {},  # the char-level defaults: what a new user gets (2x512)
    "scratch-2x256": {"hidden_size": 256},  # the parent's own shape, from random weights
}
TARGET = "fine-tuned at 1 minute reaches scratch's 5-minute held-out loss"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=SHARED_DATA / "Seinfeld_Scripts.txt",
                   help="the corpus; its first --bytes are used (default ../shared/data/Seinfeld_Scripts.txt)")
    p.add_argument("--bytes", type=int, default=CORPUS_BYTES, help="how much of it, cut at a line end")
    p.add_argument("--minutes", default="1,2,5", help="time budgets, comma-separated")
    p.add_argument("--methods", default="finetune,scratch", help=f"any of {', '.join(METHODS)}")
    p.add_argument("--lrs", default=str(FINETUNE_DEFAULTS["lr"]),
                   help="fine-tuning peak learning rates to try (scratch keeps its own default)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for finetune.json and finetune.md")
    p.add_argument("--redo", action="store_true", help="run cells again even when the results hold them")
    p.add_argument("--smoke", action="store_true", help="seconds per cell on a small slice: checks the script only")
    args = p.parse_args(argv)
    if args.smoke:
        args.bytes, args.minutes = min(args.bytes, 40_000), "0.03,0.06"
        args.out = args.out if args.out != RESULTS else WORK / "finetune-smoke"
    return args


def corpus_slice(args) -> Path:
    """The first --bytes of the corpus, cut at a line end (the same file for every cell)."""
    if not args.data.exists():
        raise SystemExit(f"no corpus at {args.data}; pass --data")
    text = args.data.read_bytes()[: args.bytes].decode("utf-8", "ignore")
    path = WORK / f"finetune-{args.data.stem}-{args.bytes}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text[: text.rfind("\n") + 1], encoding="utf-8")
    return path


def cells(args) -> list[tuple[str, dict]]:
    """(key, settings) of every run, in the order they run."""
    out = []
    for minutes in [float(m) for m in args.minutes.split(",")]:
        for method in args.methods.split(","):
            if method not in METHODS:
                raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
            lrs = [float(lr) for lr in args.lrs.split(",")] if method == "finetune" else [None]
            for lr in lrs:
                key = f"{method}{'' if lr is None else f' lr={lr:g}'} {minutes:g}min"
                settings = {**METHODS[method], "time_budget": minutes, **({} if lr is None else {"lr": lr})}
                out.append((key, settings))
    return out


def run_cell(data: Path, key: str, settings: dict, smoke: bool) -> dict:
    run_dir = WORK / "finetune-runs" / key.replace(" ", "_")
    if smoke:
        settings = {**settings, "eval_every": 5, "eval_tokens": 2_000, "batch_size": 8, "seq_len": 32}
    started = time.perf_counter()
    result = scriptrnn.train(data, run_dir, overwrite=True, progress=False, level="char", **settings)
    return {"method": key.rsplit(" ", 1)[0], "minutes": settings["time_budget"], "settings": settings,
            "held_out_loss": result.metrics["loss"], "bits_per_char": result.metrics["bits_per_char"],
            "steps": result.steps, "train_s": round(result.elapsed_s, 1),
            "wall_s": round(time.perf_counter() - started, 1), "stopped_because": result.stopped_because}


def markdown(results: dict) -> str:
    rows = sorted(results["cells"].values(), key=lambda r: (r["method"], r["minutes"]))
    lines = [f"# Fine-tuning from the ready model against scratch ({results['corpus']})", "",
             f"{results['machine']['cpu']}, {results['machine']['cores']} cores, torch {results['machine']['torch']}, "
             f"{results['machine']['date']}{' (SMOKE: figures mean nothing)' if results['smoke'] else ''}.", "",
             f"Command: `{results['command']}`", "",
             "| method | minutes | held-out nats/char | bits/char | steps |", "|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['minutes']:g} | {r['held_out_loss']:.4f} | {r['bits_per_char']:.3f} | "
              f"{r['steps']:,} |" for r in rows]
    lines += ["", f"Target: {TARGET}: {verdict(results['cells'])}", ""]
    return "\n".join(lines)


def verdict(cells: dict) -> str:
    """Met, missed, or not measured yet (the best fine-tuning learning rate at 1 minute against scratch at 5)."""
    tuned = [r["held_out_loss"] for r in cells.values() if r["method"].startswith("finetune") and r["minutes"] == 1]
    scratch = [r["held_out_loss"] for r in cells.values() if r["method"] == "scratch" and r["minutes"] == 5]
    if not tuned or not scratch:
        return "not measured yet (needs finetune at 1 minute and scratch at 5)"
    best, goal = min(tuned), scratch[0]
    return f"{'met' if best <= goal else 'missed'} ({best:.4f} against {goal:.4f} nats/char)"


def main(argv=None) -> None:
    args = parse_args(argv)
    data = corpus_slice(args)
    path = args.out / "finetune.json"
    results = json.loads(path.read_text()) if path.exists() else {"cells": {}}
    results.update({"corpus": f"first {args.bytes:,} bytes of {args.data.name}, char level, last 10% held out",
                    "machine": machine(), "smoke": args.smoke,
                    "command": "python -m benchmarks.finetune " + " ".join(argv if argv is not None else sys.argv[1:])})
    args.out.mkdir(parents=True, exist_ok=True)
    for key, settings in cells(args):
        if key in results["cells"] and not args.redo:
            print(f"{key}: done before, skipped", flush=True)
            continue
        results["cells"][key] = run_cell(data, key, settings, args.smoke)
        print(f"{key}: held-out {results['cells'][key]['held_out_loss']:.4f} nats/char", flush=True)
        path.write_text(json.dumps(results, indent=2) + "\n")  # after every cell: a rerun skips it
        (args.out / "finetune.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
