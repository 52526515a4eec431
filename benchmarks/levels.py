"""Token levels side by side: word (case kept), word (folded), subword and char, on the same texts.

Each cell is the real command a user runs (`scriptrnn train TEXT --level L --time-budget M`), then
`scriptrnn evaluate RUN --samples 4 --json`: held-out loss in the level's own unit and in bits per
character of the original held-out text (every token scored), and the text report of four samples
(no `<unk>`, speakers, a speaker following himself, diversity, line lengths).

Cells can run several at once, each pinned to its own cores (`--parallel 6 --cores-per-run 2` on a
16-core machine): the methods of one table then share one machine, one day and one split, which is
what a side-by-side comparison needs; the cores' speed is that machine's, written beside the table.

    python -m benchmarks.levels --text seinfeld=../shared/data/Seinfeld_Scripts.txt \
        --text plays-1mb=/tmp/scriptrnn-bench/shakespeare_1mb.txt --budgets 5 --parallel 1

(`python -c 'from benchmarks.common import shakespeare_1mb; print(shakespeare_1mb())'` writes the
~1 MB of the plays the other benchmarks read.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .common import core_slots, machine, pinned

# name -> the train flags that make it (each with its level's own defaults otherwise)
METHODS = {
    "word": ["--level", "word"],
    "word-folded": ["--level", "word", "--lowercase"],
    "subword": ["--level", "subword"],
    "char": ["--level", "char"],
}


def run_cell(text: str, path: str, method: str, budget: float, work: Path, cores: list[int] | None,
             extra: list[str]) -> dict:
    """Train and score one cell; its record (figures, report, a sample's opening) as a dict."""
    run_dir = work / f"{text}-{method}-{budget:g}min"
    prefix, env = pinned(cores)
    train = prefix + [sys.executable, "-m", "scriptrnn", "train", path, *METHODS[method], *extra,
                      "--time-budget", f"{budget:g}", "--out", str(run_dir), "--overwrite", "--quiet"]
    started = time.perf_counter()
    done = subprocess.run(train, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    record = {"text": text, "method": method, "budget_min": budget, "wall_s": round(wall, 1),
              "train_rc": done.returncode, "train_log": (done.stdout + done.stderr)[-3000:]}
    if done.returncode != 0:
        return record
    scored = subprocess.run(prefix + [sys.executable, "-m", "scriptrnn", "evaluate", str(run_dir), "--samples", "4",
                                      "--seed", "0", "--json", "--write-samples", str(run_dir / "samples.txt")],
                            env=env, capture_output=True, text=True)
    record["evaluate_rc"] = scored.returncode
    if scored.returncode == 0:
        record["evaluate"] = json.loads(scored.stdout)
    else:
        record["evaluate_log"] = (scored.stdout + scored.stderr)[-2000:]
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    record["config"] = {k: config.get(k) for k in ("model", "training", "sizing", "metrics")}
    samples = run_dir / "samples.txt"
    record["sample"] = samples.read_text(encoding="utf-8")[:1500] if samples.exists() else ""
    return record


def row(r: dict) -> str:
    ev = r.get("evaluate", {})
    samples = ev.get("text", {}).get("samples") or {}
    reference = ev.get("text", {}).get("reference") or {}

    def shown(value) -> str:
        return "" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))

    def pair(key: str) -> str:  # the samples' figure (the held-out text's)
        return f"{shown(samples.get(key))} ({shown(reference.get(key))})" if key in samples else ""

    figures = [shown(ev.get("loss")), shown(ev.get("bits_per_char")), pair("distinct_2"), pair("same_speaker"),
               pair("known_speakers"), pair("mean_line_chars")]
    return f"| {r['text']} | {r['method']} | {r['budget_min']:g} | " + " | ".join(figures) + f" | {r['wall_s']} |"


def markdown(results: list[dict], about: dict) -> str:
    lines = [f"Machine: {about['cpu']} ({', '.join(about['flags'])}), {about['cores']} cores; {about['date']}; "
             f"{about['cores_per_run'] or 'all'} cores per cell, {about['parallel']} cells at once.", "",
             "Samples' figures (`evaluate --samples 4 --seed 0`), the held-out text's in brackets.", "",
             "| text | method | minutes | held-out loss (own unit) | bits/char | distinct-2 | same speaker twice | "
             "known speakers | mean line chars | wall s |", "|---|---|---|---|---|---|---|---|---|---|"]
    return "\n".join(lines + [row(r) for r in results]) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--text", action="append", required=True, help="NAME=PATH (repeatable)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--budgets", default="5", help="minutes, comma-separated")
    p.add_argument("--parallel", type=int, default=1, help="cells at once (1 on a 2-core machine)")
    p.add_argument("--cores-per-run", type=int, default=0, help="pin each cell to this many cores (0: no pinning)")
    p.add_argument("--first-core", type=int, default=0, help="the first core the cells may use")
    p.add_argument("--extra", default="", help="flags added to every train command")
    p.add_argument("--work", default="/tmp/scriptrnn-bench/levels", help="run directories (never committed)")
    p.add_argument("--out", default="benchmarks/results/levels", help="results: OUT.json and OUT.md")
    args = p.parse_args(argv)
    texts = dict(t.split("=", 1) for t in args.text)
    cells = [(t, m, float(b)) for b in args.budgets.split(",") for t in texts for m in args.methods.split(",")]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    slots = core_slots(args.parallel, args.cores_per_run, args.first_core)

    def cell(t: str, m: str, b: float) -> dict:
        cores = slots.get()
        try:
            return run_cell(t, texts[t], m, b, work, cores, args.extra.split())
        finally:
            slots.put(cores)

    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda c: cell(*c), cells))
    about = {**machine(), "parallel": args.parallel, "cores_per_run": args.cores_per_run,
             "command": " ".join(sys.argv)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"machine": about, "cells": results}, indent=2,
                                                   ensure_ascii=False) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(results, about), encoding="utf-8")
    print(markdown(results, about))


if __name__ == "__main__":
    main()
