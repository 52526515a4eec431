"""Training throughput with and without DDP: one process on one device, then N under torchrun.

    python -m benchmarks.ddp_throughput [--procs N] [--steps 300] [--batch-per-process 64] [--out benchmarks/results]

Each process gets the same work in both runs (``--batch-per-process`` streams of
``--seq-len`` tokens per step), so the ideal is N times the tokens/s of one process;
the ratio to that ideal is the scaling efficiency. Both runs are the real
``scriptrnn train`` command (the second under ``torchrun --standalone``), on the
built-in corpus unless ``--data`` says otherwise; tokens/s is the median of what
rank 0 logs in ``metrics.jsonl`` (all processes' tokens), after the first
``--warmup-steps``. On a GPU machine leave ``--procs`` out to use every GPU; on a
CPU it compares N Gloo processes with one (set ``--threads`` so that N x threads
fits the cores). Writes ddp_throughput.json and ddp_throughput.md under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import torch


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--procs", type=int, default=max(2, torch.cuda.device_count()),
                   help="processes under torchrun (default: every GPU, or 2 without GPUs)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps per run")
    p.add_argument("--warmup-steps", type=int, default=50, help="steps left out of the figure")
    p.add_argument("--batch-per-process", type=int, default=64, help="streams per process per step")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--hidden-size", type=int, default=512)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--level", default="char")
    p.add_argument("--threads", type=int, default=1, help="OMP threads per process (CPU runs)")
    p.add_argument("--data", nargs="*", default=[], help="corpus files (default: the built-in one)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    return p.parse_args()


def train(args, procs: int, run_dir: Path) -> dict:
    """One `scriptrnn train` of --steps steps with ``procs`` processes; its logged throughput."""
    launcher = [] if procs == 1 else ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs)]
    command = [sys.executable, *launcher, "-m", "scriptrnn", "train", *args.data, "--out", str(run_dir),
               "--level", args.level, "--hidden-size", str(args.hidden_size), "--layers", str(args.layers),
               "--seq-len", str(args.seq_len), "--batch-size", str(args.batch_per_process * procs),
               "--max-steps", str(args.steps), "--eval-every", str(10 * args.steps), "--eval-tokens", "10000",
               "--val-fraction", "0.01", "--device", args.device, "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in records if "tokens_per_s" in r and r["step"] > args.warmup_steps]
    if not rates:
        raise SystemExit(f"no throughput logged after step {args.warmup_steps}; raise --steps")
    return {"procs": procs, "global_batch": args.batch_per_process * procs, "tokens_per_s": statistics.median(rates),
            "command": " ".join(command[1:])}


def device_name(args) -> str:
    if args.device != "cpu" and torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def write_results(args, runs: list[dict]) -> None:
    one, many = runs
    efficiency = many["tokens_per_s"] / (many["procs"] * one["tokens_per_s"])
    facts = {"date": date.today().isoformat(), "device": device_name(args), "torch": torch.__version__,
             "model": f"{args.level} LSTM {args.layers}x{args.hidden_size}", "seq_len": args.seq_len,
             "steps": args.steps, "runs": runs, "scaling_efficiency": efficiency,
             "command": "python " + " ".join(sys.argv)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ddp_throughput.json").write_text(json.dumps(facts, indent=2) + "\n")
    rows = "\n".join(f"| {r['procs']} | {r['global_batch']} | {r['tokens_per_s']:,.0f} |" for r in runs)
    table = (f"DDP throughput, {facts['device']}, {facts['date']}, torch {facts['torch']}, {facts['model']}, "
             f"seq-len {args.seq_len}, {args.batch_per_process} streams per process\n\n"
             f"    {facts['command']}\n\n| processes | global batch | tokens/s (all processes) |\n|---|---|---|\n"
             f"{rows}\n\nScaling efficiency: {efficiency:.0%} of {many['procs']} x one process.\n")
    (args.out / "ddp_throughput.md").write_text(table)
    print(table)


def main() -> None:
    args = parse_args()
    if args.procs < 2:
        raise SystemExit("--procs must be at least 2 (one process is the run without DDP)")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [train(args, procs, Path(tmp) / f"p{procs}") for procs in (1, args.procs)]
    write_results(args, runs)


if __name__ == "__main__":
    main()
