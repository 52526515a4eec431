"""Defaults that hold (issue 25): the default repeated, on a busy machine, and against the ladder's sizes.

For each text and budget, side by side on one machine and one split (the last 10% held out):
  - the default (`scriptrnn train TEXT --time-budget M`, --size auto) --repeats times, quietly;
  - the default --loaded times with another process burning one of the run's cores from its start until
    the probe has chosen a size (the run's "sizing:" line), which is where load can fool a choice;
  - each of --sizes (ladder rungs of the level, with their batch and window) once, --size fixed: the
    best of them is what the default is measured against.
Every cell records its held-out loss, the size chosen, its wall time against its budget and why it ended.

    python -m benchmarks.holds --text plays-1mb=/tmp/scriptrnn-bench/shakespeare_1mb.txt --budgets 2,5 \
        --repeats 5 --loaded 2 --sizes 1x128,2x256,2x384,2x512 --parallel 1

Cells may run several at once, each pinned to its own cores (`--parallel 8 --cores-per-run 2` on a
16-core machine), as benchmarks/levels.py does; the machine is written beside the tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from scriptrnn.training.sizing import LADDERS

from .common import core_slots, machine, pinned

BURNER = "while True: pass"


def run_cell(cell: dict, work: Path, cores: list[int] | None) -> dict:
    """Train and score one cell; its record."""
    prefix, env = pinned(cores)
    run_dir = work / cell["name"]
    train = prefix + [sys.executable, "-m", "scriptrnn", "train", cell["path"], *cell["flags"], "--time-budget",
                      f"{cell['budget_min']:g}", "--out", str(run_dir), "--overwrite", "--quiet"]
    burner, log = None, []
    if cell["loaded"]:  # one of the run's cores kept busy until the probe has chosen
        burn_on = ["taskset", "-c", str(cores[0])] if cores and prefix else []
        burner = subprocess.Popen(burn_on + [sys.executable, "-c", BURNER])
    started = time.perf_counter()
    proc = subprocess.Popen(train, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    burned_s = None
    for line in proc.stdout:
        log.append(line)
        if burner and line.startswith("sizing:"):
            burner.kill()
            burner.wait()
            burner, burned_s = None, round(time.perf_counter() - started, 1)
    proc.wait()
    wall = time.perf_counter() - started
    if burner:
        burner.kill()
        burner.wait()
    record = {**{k: v for k, v in cell.items() if k != "path"}, "wall_s": round(wall, 1), "burned_s": burned_s,
              "train_rc": proc.returncode, "train_log": "".join(log)[-2000:]}
    if proc.returncode != 0:
        return record
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    model, sizing, metrics = config.get("model", {}), config.get("sizing") or {}, config.get("metrics") or {}
    record.update(size=f"{model.get('num_layers')}x{model.get('hidden_size')}", weight_drop=model.get("weight_drop"),
                  reason=sizing.get("reason"), probe_s=sizing.get("probe_s"), metrics=metrics)
    scored = subprocess.run(prefix + [sys.executable, "-m", "scriptrnn", "evaluate", str(run_dir), "--json"],
                            env=env, capture_output=True, text=True)
    if scored.returncode == 0:
        ev = json.loads(scored.stdout)
        record.update(loss=ev.get("loss"), bits_per_char=ev.get("bits_per_char"))
    else:
        record["evaluate_log"] = (scored.stdout + scored.stderr)[-1000:]
    return record


def plan(texts: dict, budgets: list[float], repeats: int, loaded: int, sizes: list[str], level: str,
         extra: list[str]) -> list[dict]:
    ladder = {c.name: c for c in LADDERS[level]}
    cells = []
    for text, path in texts.items():
        for b in budgets:
            base = {"text": text, "path": path, "budget_min": b}
            for i in range(repeats):
                cells.append({**base, "kind": "default", "loaded": False, "name": f"{text}-{b:g}-default-{i}",
                              "flags": ["--level", level, *extra]})
            for i in range(loaded):
                cells.append({**base, "kind": "loaded", "loaded": True, "name": f"{text}-{b:g}-loaded-{i}",
                              "flags": ["--level", level, *extra]})
            for s in sizes:
                c = ladder[s]
                cells.append({**base, "kind": s, "loaded": False, "name": f"{text}-{b:g}-{s}",
                              "flags": ["--level", level, *extra, "--size", "fixed", "--layers", str(c.num_layers),
                                        "--hidden-size", str(c.hidden_size), "--batch-size", str(c.batch_size),
                                        "--seq-len", str(c.seq_len)]})
    return cells


def summary(results: list[dict]) -> list[dict]:
    """Per text and budget: the default's repeats (mean, spread, sizes), the loaded runs, the ladder's best."""
    out = []
    for key in dict.fromkeys((r["text"], r["budget_min"]) for r in results):
        rows = [r for r in results if (r["text"], r["budget_min"]) == key and r.get("loss") is not None]
        quiet = [r for r in rows if r["kind"] == "default"]
        busy = [r for r in rows if r["kind"] == "loaded"]
        ladder = [r for r in rows if r["kind"] not in ("default", "loaded")]
        best = min(ladder, key=lambda r: r["loss"], default=None)
        mean = statistics.mean(r["loss"] for r in quiet) if quiet else None
        budget_s = key[1] * 60
        out.append({
            "text": key[0], "budget_min": key[1],
            "default": [round(r["loss"], 4) for r in quiet], "default_sizes": [r["size"] for r in quiet],
            "mean": mean and round(mean, 4),
            "spread": round(max(r["loss"] for r in quiet) - min(r["loss"] for r in quiet), 4) if quiet else None,
            "loaded": [round(r["loss"], 4) for r in busy], "loaded_sizes": [r["size"] for r in busy],
            "ladder": {r["kind"]: round(r["loss"], 4) for r in ladder},
            "best_size": best and best["kind"], "mean_minus_best": round(mean - best["loss"], 4) if best and mean else None,
            "worst_wall_over_budget": round(max(r["wall_s"] / budget_s - 1 for r in rows), 3) if rows else None})
    return out


def markdown(results: list[dict], about: dict) -> str:
    lines = [f"Machine: {about['cpu']} ({', '.join(about['flags']) or 'no bf16/AMX flags'}), {about['cores']} cores, "
             f"torch {about['torch']}; {about['date']}; {about['cores_per_run'] or 'all'} cores per cell, "
             f"{about['parallel']} cells at once.", "", f"    {about['command']}", "",
             "| text | min | default (repeats) | mean | spread | sizes chosen | loaded | sizes chosen loaded | "
             "ladder | best | mean - best | worst wall over budget |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary(results):
        ladder = ", ".join(f"{k} {v:.4f}" for k, v in s["ladder"].items())
        lines.append(f"| {s['text']} | {s['budget_min']:g} | {', '.join(f'{x:.4f}' for x in s['default'])} | "
                     f"{s['mean']} | {s['spread']} | {', '.join(s['default_sizes'])} | "
                     f"{', '.join(f'{x:.4f}' for x in s['loaded'])} | {', '.join(s['loaded_sizes'])} | {ladder} | "
                     f"{s['best_size']} | {s['mean_minus_best']} | {s['worst_wall_over_budget']:+.1%} |"
                     if s["worst_wall_over_budget"] is not None else f"| {s['text']} | {s['budget_min']:g} | no result |")
    failed = [r["name"] for r in results if r.get("loss") is None]
    if failed:
        lines += ["", "No result: " + ", ".join(failed)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--text", action="append", required=True, help="NAME=PATH (repeatable)")
    p.add_argument("--level", default="char")
    p.add_argument("--budgets", default="2,5", help="minutes, comma-separated")
    p.add_argument("--repeats", type=int, default=5, help="quiet runs of the default per text and budget")
    p.add_argument("--loaded", type=int, default=0, help="runs of the default with a core kept busy during the probe")
    p.add_argument("--sizes", default="", help="ladder sizes trained once each, --size fixed (e.g. 2x256,2x384)")
    p.add_argument("--parallel", type=int, default=1, help="cells at once (1 on a 2-core machine)")
    p.add_argument("--cores-per-run", type=int, default=0, help="pin each cell to this many cores (0: no pinning)")
    p.add_argument("--first-core", type=int, default=0)
    p.add_argument("--extra", default="", help="flags added to every train command")
    p.add_argument("--work", default="/tmp/scriptrnn-bench/holds", help="run directories (never committed)")
    p.add_argument("--out", default="benchmarks/results/holds", help="results: OUT.json and OUT.md")
    args = p.parse_args(argv)
    if args.loaded and args.parallel > 1 and not args.cores_per_run:
        p.error("--loaded with --parallel needs --cores-per-run (the burner takes one of the cell's own cores)")
    texts = dict(t.split("=", 1) for t in args.text)
    cells = plan(texts, [float(b) for b in args.budgets.split(",")], args.repeats, args.loaded,
                 [s for s in args.sizes.split(",") if s], args.level, args.extra.split())
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    slots = core_slots(args.parallel, args.cores_per_run, args.first_core)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    about = {**machine(), "parallel": args.parallel, "cores_per_run": args.cores_per_run,
             "command": "python -m benchmarks.holds " + " ".join(sys.argv[1:] if argv is None else argv)}
    results: list[dict] = []

    def cell(c: dict) -> dict:
        cores = slots.get()
        try:
            r = run_cell(c, work, cores)
        finally:
            slots.put(cores)
        results.append(r)  # saved as each cell ends: a campaign cut short keeps what it measured
        out.with_suffix(".json").write_text(json.dumps({"machine": about, "cells": results}, indent=2,
                                                       ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{r['name']}: {r.get('loss')} {r.get('size')} {r['wall_s']} s", flush=True)
        return r

    with ThreadPoolExecutor(args.parallel) as pool:
        list(pool.map(cell, cells))
    results.sort(key=lambda r: [c["name"] for c in cells].index(r["name"]))
    out.with_suffix(".json").write_text(json.dumps({"machine": about, "cells": results, "summary": summary(results)},
                                                   indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(results, about), encoding="utf-8")
    print(markdown(results, about))


if __name__ == "__main__":
    main()
