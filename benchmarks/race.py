"""The race (issue 14, item 5): scriptrnn's defaults, a small causal transformer and the course
method, each trained for the same minutes of wall clock on the same split of a ~1 MB text.

    python -m benchmarks.race --text builtin-1mb --budgets 1,2,5,10 --precision auto,fp32 \\
        --methods scriptrnn,transformer,course --out benchmarks/results/race
    python -m benchmarks.race --smoke      # the whole pipeline on a tiny text: about a minute of CPU time

The full race trains for 82 minutes (18 per method and precision; the course method once, 10)
and scores for about a minute per cell: about 1 h 45 min in all (each scriptrnn --size mode
added: 36 minutes more). Run nothing else meanwhile:
the budgets are wall clock. ``--device cuda`` races on a GPU instead (issue 14, item 7): scriptrnn
and the transformer train and are scored there, into OUT = benchmarks/results/race-cuda by default;
the course method has no GPU path here (its course code is CPU-only) and is left out.

It writes OUT.json (every finished cell), OUT.md (the tables) and OUT.png (held-out loss
against minutes). A cell — (method, precision, budget) — is saved as soon as it is scored and
a rerun skips the cells already saved (``--force`` runs them again), so a race spread over
several sessions is never lost; each cell records its own machine (lscpu's model name, the
avx512_bf16/amx flags, torch, threads, date).

The three methods, all at char level on the same ids (benchmarks/common.token_split: the
first 90% trained on, the last 10% held out):

- **scriptrnn-auto** and **scriptrnn-fixed**: ``scriptrnn train TEXT --time-budget M --precision P
  --size auto|fixed`` through its real CLI, defaults otherwise (``--methods scriptrnn``: the
  default --size's; the tables mark it). auto sizes the model to the budget from the speed its
  probe measures (training/sizing.py); fixed is 2x512, batch 64, window 128. It is given the whole text, so its own held-out end is the race's last
  10%; the run's vocabulary, text fingerprint and split point are checked against the race's.
  Its budget includes its own validation checks (that is how ``--time-budget`` works); it
  keeps the best checkpoint, which is the one scored.
- **transformer**: ``TinyGPT`` below — nanoGPT's CPU recipe for Shakespeare characters: 4
  layers, 4 heads, 128 wide, 64-character context, token and position embeddings, pre-LN
  blocks, causal self-attention (``scaled_dot_product_attention``), GELU MLP 4x, no biases,
  the output layer **tied** to the token embedding, dropout **0** (as the recipe, which trains
  for minutes: nothing to regularise yet); AdamW lr 1e-3, betas (0.9, 0.99), weight decay 0.1
  on matrices, 100 warm-up steps, then cosine decay to 1e-4 following elapsed/budget, batch 12
  random windows, gradient clip 1. Its clock stops only when it is scored, at the end.
- **course**: ``benchmarks/baseline.py`` (LSTM 2x256, windows of 40 characters), trained once
  to the longest budget and scored at each, its clock paused while scored. It has no bfloat16:
  it runs in float32 and its cells serve every precision's table.

``--precision auto`` is bfloat16 autocast where the CPU (or GPU) has native bfloat16 (the test
scriptrnn's trainer makes), else float32; ``fp32`` stands in for a machine without it. On a GPU
the race scores in float32 with TF32 off (the race process's own setting; scriptrnn's run keeps its own).

Scoring, the same for all: every position 1..n-1 of the held-out ids is predicted from the
text before it inside the held-out tenth, in float32, and the mean is reported in nats and
bits per character. The recurrent models read the held-out tenth as one stream with the state
carried from its first character to its last. The transformer sees a sliding window of 64
characters moved 8 at a time (``--eval-stride``), each window scoring only the positions the
one before did not, so every position sees 57 to 64 characters before it (all there are, near
the start); ``--eval-stride 1`` gives every position its full 64 at 8 times the scoring cost
(about 5 minutes a cell on 2 cores, against 40 seconds). The course method is scored both ways,
carried state and its own 40-character window, and the better counts, as in RESULTS.md.

"Time to reach": the earliest minute at which any run of the default scriptrnn at that precision scored at
or below the transformer's ``--reach-budget``-minute loss, read from scriptrnn's own
validation checks (metrics.jsonl, minutes include its checks). They score the same held-out
tenth as 32 carried streams, whose 32 first characters start without context: about 0.001
nats above the one-stream figure on 100,000 characters.

The race's parts: the transformer (race_transformer.py), the scoring (race_scoring.py), the results
file, tables and picture (race_report.py); here the text and its split, one cell per method and the
command line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import scriptrnn

from . import baseline, common
from .race_report import COURSE_PRECISION, DEFAULT_SCRIPTRNN, METHODS, SCRIPTRNN, Store, write_report
from .race_scoring import score_course, score_scriptrnn, score_transformer
from .race_transformer import train_transformer

SMOKE_CHARS = 60_000  # enough for one of scriptrnn's default (64, 129) batches after the split
DEVICE = torch.device("cpu")  # where the race trains and scores: --device (main sets it once)


# ---------------------------------------------------------------- the text, its split

@dataclass
class Split:
    """The race's text and the ids every method reads (char level, last 10% held out)."""

    path: Path
    tokenizer: object
    train_ids: np.ndarray
    val_ids: np.ndarray
    sha256: str  # of the text as scriptrnn reads it (its config.json's corpus.sha256)

    def facts(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "characters": len(self.train_ids) + len(self.val_ids),
                "train_chars": len(self.train_ids), "held_out_chars": len(self.val_ids),
                "vocab_size": self.tokenizer.vocab_size}


def load_split(text: str, smoke: bool) -> Split:
    path = common.shakespeare_1mb() if text == "builtin-1mb" else Path(text)
    if smoke:
        path = _smoke_text(path)
    if not path.is_file():
        raise SystemExit(f"--text {text}: no such file (give a path, or builtin-1mb)")
    tokenizer, train_ids, val_ids = common.token_split(common.Corpus(path.stem, "char", path))
    whole = tokenizer.decode(np.concatenate([train_ids, val_ids]).tolist())
    return Split(path, tokenizer, np.asarray(train_ids), np.asarray(val_ids),
                 hashlib.sha256(whole.encode("utf-8", "surrogatepass")).hexdigest())


def _smoke_text(source: Path) -> Path:
    text = source.read_text(encoding="utf-8")
    path = common.WORK / "race-smoke" / "text.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text[: text.rfind("\n", 0, SMOKE_CHARS) + 1], encoding="utf-8")
    return path


def arithmetic(precision: str) -> str:
    """What a --precision becomes on this machine: 'bf16' or 'fp32'."""
    native = common.bf16_native(DEVICE)
    if precision == "bf16" and not native:
        raise SystemExit(f"--precision bf16: this {DEVICE.type} has no native bfloat16; use auto or fp32")
    return "fp32" if precision == "fp32" or not native else "bf16"


# ---------------------------------------------------------------- one cell per method

def run_scriptrnn(split: Split, method: str, precision: str, minutes: float, work: Path) -> dict:
    """``scriptrnn train`` through its CLI, defaults but --size otherwise; scored on the race's held-out ids."""
    out = work / f"{method}-{precision}-{minutes:g}"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "scriptrnn", "train", str(split.path), "--time-budget", f"{minutes:g}",
           "--precision", precision, "--size", SCRIPTRNN[method], "--device", str(DEVICE), "--out", str(out),
           "--overwrite", "--quiet"]
    log_path, start = out.parent / f"{out.name}.log", time.perf_counter()  # not with_suffix: "0.05" has a dot
    with open(log_path, "w") as log:
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    process_s = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}); see {log_path}")
    config = json.loads((out / "config.json").read_text())
    trained = scriptrnn.load(out, device=str(DEVICE))
    _check_same_split(split, trained.tokenizer, config)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rates = [r["tokens_per_s"] for r in records if "tokens_per_s" in r]
    metrics = config.get("metrics", {})
    start = time.perf_counter()
    scored = score_scriptrnn(trained.model, split.val_ids, DEVICE)
    return {**scored, "eval_seconds": time.perf_counter() - start, "steps": metrics.get("steps"),
            "train_seconds": metrics.get("elapsed_s"), "process_seconds": process_s,
            "stopped_because": metrics.get("stopped_because"), "own_val_loss": metrics.get("val", {}).get("loss"),
            "tokens_per_s_median": float(np.median(rates)) if rates else None, "model": config["model"],
            "sizing": config.get("sizing", {}).get("reason"),
            "command": " ".join(cmd[1:]), "run": str(out),
            "curve": [{"minutes": r["elapsed_s"] / 60, "loss": r["val_loss"], "step": r["step"]}
                      for r in records if "val_loss" in r]}


def _check_same_split(split: Split, tokenizer, config: dict) -> None:
    """scriptrnn must have read the race's text, with its vocabulary, and held out from the same point."""
    corpus = config.get("corpus", {})
    same = {"text (sha256)": corpus.get("sha256") == split.sha256,
            "vocabulary": tokenizer.to_dict() == split.tokenizer.to_dict(),
            "split point": corpus.get("train_tokens") == len(split.train_ids)}
    if not all(same.values()):
        wrong = ", ".join(k for k, ok in same.items() if not ok)
        raise SystemExit(f"scriptrnn's run differs from the race's split in: {wrong}; the scores would not compare")


def run_transformer(split: Split, precision: str, minutes: float, stride: int) -> dict:
    dtype = arithmetic(precision)
    model, facts = train_transformer(split.train_ids, split.tokenizer.vocab_size, dtype, minutes, DEVICE)
    start = time.perf_counter()
    scored = score_transformer(model, split.val_ids, stride, DEVICE)
    print(f"transformer {precision} {minutes:g} min: {scored['loss']:.4f} nats/char, {facts['steps']} steps",
          flush=True)
    return {**scored, "eval_seconds": time.perf_counter() - start, "eval_stride": stride, **facts}


def run_course(split: Split, budgets: list[float], save) -> None:
    """One float32 run to the longest budget; ``save`` gets each budget's record as it is scored."""
    def on_result(r: dict) -> None:
        save(r["minutes"], {**r, "train_seconds": r["minutes"] * 60, "seq_len": baseline.SEQ_LEN["char"],
                            "settings": baseline.COURSE})

    baseline.train(split.train_ids, split.val_ids, split.tokenizer.vocab_size, "char", budgets,
                   score=score_course, on_result=on_result)


# ---------------------------------------------------------------- command line

def race(args: argparse.Namespace) -> str:
    split = load_split(args.text, args.smoke)
    store, work = Store(args.out, split), common.WORK / ("race-smoke" if args.smoke else args.out.name)
    print(f"race on {split.path}: {split.facts()}", flush=True)

    def save(method: str, precision: str, minutes: float, record: dict) -> None:
        store.put({"method": method, "precision": precision, "arithmetic": arithmetic(precision),
                   "minutes": minutes, **record, "machine": common.machine(DEVICE)}, args.reach_budget)
        print(f"saved {Store.key(method, precision, minutes)}: {record['loss']:.4f} nats/char", flush=True)

    def todo(method: str, precision: str, minutes: float) -> bool:
        if store.get(method, precision, minutes) and not args.force:
            print(f"skip {Store.key(method, precision, minutes)}: saved already (--force runs it again)")
            return False
        return True

    for precision in args.precision:
        for minutes in args.budgets:
            for method in (m for m in SCRIPTRNN if m in args.methods):
                if todo(method, precision, minutes):
                    save(method, precision, minutes, run_scriptrnn(split, method, precision, minutes, work))
            if "transformer" in args.methods and todo("transformer", precision, minutes):
                save("transformer", precision, minutes, run_transformer(split, precision, minutes, args.eval_stride))
    course = [m for m in args.budgets if todo("course", COURSE_PRECISION, m)] if "course" in args.methods else []
    if course:
        run_course(split, course, lambda m, r: save("course", COURSE_PRECISION, m, r))
    return write_report(store.data, args.out)


def _list(kind, choices=None):
    def parse(text: str) -> list:
        items = [kind(x) for x in text.split(",") if x.strip()]
        bad = [x for x in items if choices and x not in choices]
        if not items or bad:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list"
                                             + (f" of {', '.join(choices)}" if choices else ""))
        return items
    return parse


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", default="builtin-1mb", help="a ~1 MB text file, or builtin-1mb (the first ~1 MB "
                   "of the built-in plays)")
    p.add_argument("--budgets", type=_list(float), default=[1.0, 2.0, 5.0, 10.0], help="minutes, e.g. 1,2,5,10")
    p.add_argument("--precision", type=_list(str, ("auto", "bf16", "fp32")), default=["auto", "fp32"])
    p.add_argument("--methods", type=_list(str, (*METHODS, "scriptrnn")),
                   help=f"any of {', '.join(METHODS)}; scriptrnn: the default --size ({DEFAULT_SCRIPTRNN}); "
                   "default: scriptrnn, transformer and (on the CPU) course")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where scriptrnn and the transformer "
                   "train and are scored (cuda: the first GPU; the course method is CPU-only and is left out)")
    p.add_argument("--out", type=Path, help="writes OUT.json, OUT.md, OUT.png (default benchmarks/results/race, "
                   "or race-cuda with --device cuda)")
    p.add_argument("--reach-budget", type=float, default=5.0,
                   help="report scriptrnn's time to reach the transformer's loss after this many minutes")
    p.add_argument("--eval-stride", type=int, default=8, help="the transformer's scoring window moves this many "
                   "characters at a time: each position sees 64-stride+1 to 64 before it (1: all 64, 8x slower)")
    p.add_argument("--force", action="store_true", help="run again the cells OUT.json holds already")
    p.add_argument("--smoke", action="store_true", help="the whole pipeline on a ~60 kB text with a budget of 3 "
                   "seconds, into the benchmark work folder (not benchmarks/results), every cell run again")
    args = p.parse_args(argv)
    gpu = args.device == "cuda"
    methods = args.methods or ["scriptrnn", "transformer", *([] if gpu else ["course"])]
    args.methods = [DEFAULT_SCRIPTRNN if m == "scriptrnn" else m for m in methods]
    args.out = args.out or common.RESULTS / ("race-cuda" if gpu else "race")
    if gpu and "course" in args.methods:
        p.error("--device cuda: the course method runs on the CPU only; leave it out of --methods")
    if args.smoke:
        args.budgets, args.reach_budget, args.force = [0.05], 0.05, True
        args.out = common.WORK / "race-smoke" / "race"
    if args.eval_stride < 1:
        p.error(f"--eval-stride must be at least 1, got {args.eval_stride}")
    return args


def main(argv=None) -> int:
    global DEVICE
    args = parse_args(argv)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: this PyTorch sees no CUDA GPU")
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # scores in float32
    DEVICE = torch.device(args.device)
    common.WORK.mkdir(parents=True, exist_ok=True)
    print(race(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
