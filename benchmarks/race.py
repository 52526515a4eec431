"""The race (issue 14, item 5): scriptrnn's defaults, a small causal transformer and the course
method, each trained for the same minutes of wall clock on the same split of a ~1 MB text.

    python benchmarks/race.py --text builtin-1mb --budgets 1,2,5,10 --precision auto,fp32 \\
        --methods scriptrnn,transformer,course --out benchmarks/results/race
    python benchmarks/race.py --smoke      # the whole pipeline on a tiny text: about a minute of CPU time

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
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline  # noqa: E402
import common  # noqa: E402

import scriptrnn  # noqa: E402
from scriptrnn.training.config import level_defaults  # noqa: E402

# scriptrnn with each --size mode (the column of the default's is marked); "scriptrnn" on the command
# line means the default's. Cells made when the method was "scriptrnn" (--size fixed the default
# then) are read as scriptrnn-fixed.
SCRIPTRNN = {"scriptrnn-auto": "auto", "scriptrnn-fixed": "fixed"}
METHODS = (*SCRIPTRNN, "transformer", "course")
DEFAULT_SCRIPTRNN = f"scriptrnn-{level_defaults('char')['size']}"
COURSE_PRECISION = "fp32"  # the course method has no bfloat16
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
SMOKE_CHARS = 60_000  # enough for one of scriptrnn's default (64, 129) batches after the split


# ---------------------------------------------------------------- the text, its split, the machine

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


DEVICE = torch.device("cpu")  # where the race trains and scores: --device (main sets it once)


def bf16_native() -> bool:
    """The test scriptrnn's trainer makes for --precision auto (on a CPU: oneDNN's; on a GPU: CUDA's)."""
    if DEVICE.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def arithmetic(precision: str) -> str:
    """What a --precision becomes on this machine: 'bf16' or 'fp32'."""
    if precision == "bf16" and not bf16_native():
        raise SystemExit(f"--precision bf16: this {DEVICE.type} has no native bfloat16; use auto or fp32")
    return "fp32" if precision == "fp32" or not bf16_native() else "bf16"


def machine() -> dict:
    """common.machine() plus lscpu's model name, the CPU flags that decide bf16 speed, the GPU if raced on, the time."""
    facts = common.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        lscpu = ""
    lines = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    lines = {k.strip(): v.strip() for k, v in lines.items()}
    flags = set(lines.get("Flags", "").split())
    return {**facts, "cpu": lines.get("Model name", facts["cpu"]), "cpus": lines.get("CPU(s)"),
            "flags": [f for f in CPU_FLAGS if f in flags], "bf16_native": bf16_native(),
            **({"gpu": torch.cuda.get_device_name(DEVICE)} if DEVICE.type == "cuda" else {}),
            "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


# ---------------------------------------------------------------- scoring, the same for all

def _report(total_nats: float, positions: int, expected: int) -> dict:
    if positions != expected:  # every method must score exactly the held-out positions 1..n-1
        raise AssertionError(f"scored {positions} positions, expected {expected}")
    loss = total_nats / positions
    return {"loss": loss, "bits_per_char": loss / math.log(2), "positions": positions}


@torch.no_grad()
def score_scriptrnn(model, val_ids: np.ndarray, window: int = 1024) -> dict:
    """One stream, the state carried over the whole held-out text (model(x, state, targets) -> mean, state)."""
    model.eval()
    ids = torch.from_numpy(np.asarray(val_ids, dtype=np.int64)).to(DEVICE)
    total, count, state = 0.0, 0, None
    for s in range(0, len(ids) - 1, window):
        x, y = ids[s:s + window][None], ids[s + 1:s + window + 1][None]  # (1, T)
        x = x[:, : y.shape[1]]
        loss, state = model(x, state, targets=y)
        total += loss.item() * y.numel()
        count += y.numel()
    return _report(total, count, len(ids) - 1)


@torch.no_grad()
def score_course(rnn, val_ids: np.ndarray, seq_len: int) -> dict:
    """The course LSTM both ways, each over every position; the better counts (baseline.held_out_loss's rule)."""
    rnn.eval()
    n = len(val_ids) - 1
    window = baseline.window_loss(rnn, val_ids, seq_len)  # each position from the seq_len ids before it
    carried = baseline.carried_loss(rnn, val_ids, streams=1)  # one stream: what scriptrnn gets
    return {**_report(min(window, carried) * n, n, n), "window_loss": window, "carried_loss": carried}


@torch.no_grad()
def score_transformer(model: "TinyGPT", val_ids: np.ndarray, stride: int, batch: int = 256) -> dict:
    """Sliding windows of the model's context; each scores only the positions the one before did not.

    With stride s, windows start s apart and each scores its last s positions, which so see
    between C-s+1 and C characters (the first window scores all its positions). Stride 1: all C.
    """
    model.eval()
    ids = torch.from_numpy(np.asarray(val_ids, dtype=np.int64)).to(DEVICE)
    n, C = len(ids), min(model.config.context, len(ids) - 1)
    starts = list(range(0, n - 1 - C + 1, min(stride, C)))  # a stride over C would skip positions
    if starts[-1] != n - 1 - C:
        starts.append(n - 1 - C)  # the last window ends at the last target
    starts = torch.tensor(starts, device=DEVICE)
    first = torch.cat([torch.zeros(1, dtype=torch.long, device=DEVICE), C - starts.diff()])  # (W,) first new offset
    total, count = 0.0, 0
    for b in range(0, len(starts), batch):
        idx = starts[b:b + batch, None] + torch.arange(C, device=DEVICE)  # (W', C)
        logits = model(ids[idx])  # (W', C, V)
        nats = F.cross_entropy(logits.flatten(0, 1), ids[idx + 1].flatten(), reduction="none").view(idx.shape)
        mask = torch.arange(C, device=DEVICE)[None, :] >= first[b:b + batch, None]  # (W', C)
        total += nats[mask].sum().item()
        count += int(mask.sum())
    return _report(total, count, n - 1)


# ---------------------------------------------------------------- the transformer

@dataclass
class GPTConfig:
    vocab_size: int  # V
    context: int = 64  # T: characters a position may look back on
    layers: int = 4  # L
    heads: int = 4
    width: int = 128  # E
    dropout: float = 0.0  # the recipe's: minutes of training leave nothing to regularise yet


@dataclass
class Recipe:
    """nanoGPT's Shakespeare-character recipe for a CPU, its schedule sized to a budget in minutes."""

    batch_size: int = 12  # B random windows
    lr: float = 1e-3
    min_lr: float = 1e-4  # where the cosine ends, at the budget
    warmup_steps: int = 100
    weight_decay: float = 0.1  # matrices only, as nanoGPT
    betas: tuple = (0.9, 0.99)  # beta2 0.99: few tokens per step
    grad_clip: float = 1.0


class SelfAttention(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.heads, self.dropout = c.heads, c.dropout
        self.qkv = nn.Linear(c.width, 3 * c.width, bias=False)
        self.proj = nn.Linear(c.width, c.width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, E = x.shape
        q, k, v = (t.view(B, T, self.heads, E // self.heads).transpose(1, 2)
                   for t in self.qkv(x).split(E, dim=2))  # each (B, heads, T, E/heads)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return F.dropout(self.proj(y.transpose(1, 2).reshape(B, T, E)), self.dropout, self.training)  # (B, T, E)


class Block(nn.Module):
    """Pre-LN: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(c.width, bias=False), nn.LayerNorm(c.width, bias=False)
        self.attn = SelfAttention(c)
        self.mlp = nn.Sequential(nn.Linear(c.width, 4 * c.width, bias=False), nn.GELU(),
                                 nn.Linear(4 * c.width, c.width, bias=False), nn.Dropout(c.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.config = c
        self.tok, self.pos = nn.Embedding(c.vocab_size, c.width), nn.Embedding(c.context, c.width)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.ln_f = nn.LayerNorm(c.width, bias=False)
        self.head = nn.Linear(c.width, c.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied, as nanoGPT
        for name, p in self.named_parameters():  # nanoGPT's init; residual projections scaled by depth
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * c.layers) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        x = F.dropout(self.tok(idx) + self.pos(torch.arange(T, device=idx.device)), self.config.dropout,
                      self.training)  # (B, T, E)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x)).float()  # (B, T, V), float32 whatever autocast did


def _optimizer(model: TinyGPT, r: Recipe) -> torch.optim.AdamW:
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": matrices, "weight_decay": r.weight_decay},
                              {"params": others, "weight_decay": 0.0}], lr=r.lr, betas=r.betas)


def _lr(r: Recipe, step: int, progress: float) -> float:
    """Linear warm-up by steps, then cosine from lr to min_lr by the share of the budget spent."""
    cosine = r.min_lr + 0.5 * (r.lr - r.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))
    return cosine * min(1.0, (step + 1) / r.warmup_steps)


def train_transformer(train_ids: np.ndarray, vocab_size: int, dtype: str, minutes: float,
                      seed: int = 1234, recipe: Recipe | None = None) -> tuple[TinyGPT, dict]:
    recipe = recipe or Recipe()
    torch.manual_seed(seed)
    model = TinyGPT(GPTConfig(vocab_size)).to(DEVICE)
    optimizer, data = _optimizer(model, recipe), torch.from_numpy(np.asarray(train_ids, dtype=np.int64)).to(DEVICE)
    T, budget_s, gen = model.config.context, minutes * 60, torch.Generator().manual_seed(seed)
    step, recent, start = 0, [], time.perf_counter()
    model.train()
    while (elapsed := time.perf_counter() - start) < budget_s:
        for group in optimizer.param_groups:
            group["lr"] = _lr(recipe, step, elapsed / budget_s)
        idx = torch.randint(len(data) - T - 1, (recipe.batch_size, 1), generator=gen) + torch.arange(T + 1)
        chunk = data[idx.to(DEVICE)]  # (B, T+1)
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            logits = model(chunk[:, :-1])  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), chunk[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        step += 1
        recent = (recent + [loss.item()])[-100:]
    return model, {"steps": step, "train_seconds": time.perf_counter() - start,
                   "train_loss_last_100": float(np.mean(recent)) if recent else None,
                   "parameters": sum(p.numel() for p in model.parameters()), "config": asdict(model.config),
                   "recipe": asdict(recipe)}


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
    scored = score_scriptrnn(trained.model, split.val_ids)
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
    model, facts = train_transformer(split.train_ids, split.tokenizer.vocab_size, dtype, minutes)
    start = time.perf_counter()
    scored = score_transformer(model, split.val_ids, stride)
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


# ---------------------------------------------------------------- results: saved per cell, merged

class Store:
    """OUT.json — the race's text and every finished cell — rewritten whole (atomically) after each cell."""

    def __init__(self, out: Path, split: Split):
        self.out = out
        self.path = out.parent / (out.name + ".json")
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {"text": split.facts(), "cells": {}}
        self.data["cells"] = {self.key(c["method"], c["precision"], c["minutes"]): c
                              for c in map(_renamed, self.data["cells"].values())}
        if self.data["text"]["sha256"] != split.sha256:
            raise SystemExit(f"{self.path} holds a race on another text ({self.data['text']['path']}); "
                             "give another --out")

    @staticmethod
    def key(method: str, precision: str, minutes: float) -> str:
        return f"{method}|{precision}|{minutes:g}"

    def get(self, method: str, precision: str, minutes: float) -> dict | None:
        return self.data["cells"].get(self.key(method, precision, minutes))

    def put(self, record: dict, reach_budget: float) -> None:
        self.data["cells"][self.key(record["method"], record["precision"], record["minutes"])] = record
        self.data["reach_budget"] = reach_budget
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self.data, indent=1) + "\n")
        os.replace(temporary, self.path)
        write_report(self.data, self.out)


def _renamed(cell: dict) -> dict:
    if cell["method"] != "scriptrnn":
        return cell
    return {**cell, "method": "scriptrnn-fixed", "renamed_from": "scriptrnn (run when --size fixed was the default)"}


def write_report(data: dict, out: Path) -> str:
    md = markdown(data)
    (out.parent / (out.name + ".md")).write_text(md + "\n")
    plot(data, out.parent / (out.name + ".png"))
    return md


def _precisions(cells: dict) -> list[str]:
    found = {c["precision"] for c in cells.values() if c["method"] != "course"} or {COURSE_PRECISION}
    return [p for p in ("auto", "bf16", "fp32") if p in found]


def _cell(cells: dict, method: str, precision: str, minutes: float) -> dict | None:
    return cells.get(Store.key(method, COURSE_PRECISION if method == "course" else precision, minutes))


def reach(cells: dict, precision: str, budget: float) -> dict | None:
    """Earliest validation check of any scriptrnn run at ``precision`` at or below the transformer's loss."""
    target = _cell(cells, "transformer", precision, budget)
    if target is None:
        return None
    hits = [(p["minutes"], p["loss"], c["minutes"], p["step"]) for c in cells.values()
            if c["method"] == DEFAULT_SCRIPTRNN and c["precision"] == precision
            for p in c["curve"] if p["loss"] <= target["loss"]]
    first = min(hits) if hits else None
    return {"transformer_loss": target["loss"], "budget": budget,
            "minutes": first[0] if first else None, "loss": first[1] if first else None,
            "run_minutes": first[2] if first else None, "step": first[3] if first else None}


def markdown(data: dict) -> str:
    cells, t, budget = data["cells"], data["text"], data.get("reach_budget", 5)
    strides = sorted({c["eval_stride"] for c in cells.values() if "eval_stride" in c}) or [8]
    minutes = sorted({c["minutes"] for c in cells.values()})
    machines = sorted({_machine_line(c["machine"]) for c in cells.values()})
    parts = [f"Text: `{t['path']}`, {t['characters']:,} characters, vocabulary {t['vocab_size']}: the first "
             f"{t['train_chars']:,} trained on, the last {t['held_out_chars']:,} held out and every position of "
             "them scored (recurrent models: one stream, state carried; transformer: a 64-character window "
             f"sliding by {'/'.join(map(str, strides))}). Held-out loss in nats/char (bits/char). "
             f"Machine: {'; '.join(machines)}."]
    methods = [m for m in METHODS if any(c["method"] == m for c in cells.values())]
    for precision in _precisions(cells):
        rows = []
        for m in minutes:
            row = [f"{m:g}"]
            for method in methods:
                c = _cell(cells, method, precision, m)
                shape = f", {c['model']['num_layers']}x{c['model']['hidden_size']}" if c and method in SCRIPTRNN else ""
                steps = f"{c['steps']:,}{shape}" if c else ""
                row += [f"{c['loss']:.3f} ({c['bits_per_char']:.3f})", steps] if c else ["pending", ""]
            rows.append(row)
        names = {DEFAULT_SCRIPTRNN: f"{DEFAULT_SCRIPTRNN} (the default)", "course": "course method (fp32)"}
        header = ["minutes"] + [x for m in methods for x in (names.get(m, m), "steps")]
        parts += [f"### `--precision {precision}`", common.table(header, rows), _reach_line(cells, precision, budget)]
    return "\n\n".join(parts)


def _machine_line(m: dict) -> str:
    flags = ", ".join(m["flags"]) or "no avx512/amx flags"
    gpu = f"{m['gpu']} with " if m.get("gpu") else ""
    return f"{gpu}{m['cpu']} ({flags}), {m['threads']} threads, torch {m['torch']}"


def _reach_line(cells: dict, precision: str, budget: float) -> str:
    r = reach(cells, precision, budget)
    if r is None:
        return f"scriptrnn's time to reach the transformer's {budget:g}-minute loss: pending."
    if r["minutes"] is None:
        return (f"No {DEFAULT_SCRIPTRNN} run at `--precision {precision}` reached the transformer's {budget:g}-minute loss "
                f"({r['transformer_loss']:.3f}) at any of its validation checks.")
    return (f"{DEFAULT_SCRIPTRNN} (the default) reached the transformer's {budget:g}-minute loss ({r['transformer_loss']:.3f}) after "
            f"**{r['minutes']:.2f} minutes** ({r['loss']:.3f} at step {r['step']} of its {r['run_minutes']:g}-minute "
            "run, from its own validation checks).")


def plot(data: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return  # the JSON and the table are the results; the picture is a convenience
    cells, precisions = data["cells"], _precisions(data["cells"])
    fig, axes = plt.subplots(1, len(precisions), figsize=(6.5 * len(precisions), 4.5), squeeze=False, sharey=True)
    for ax, precision in zip(axes[0], precisions):
        for c in cells.values():  # scriptrnn's validation checks along each run
            if c["method"] == DEFAULT_SCRIPTRNN and c["precision"] == precision and c["curve"]:
                ax.plot([p["minutes"] for p in c["curve"]], [p["loss"] for p in c["curve"]], color="C0", alpha=0.3)
        styles = ((DEFAULT_SCRIPTRNN, "o-"), ("transformer", "s-"), ("course", "^--"),
                  (next(m for m in SCRIPTRNN if m != DEFAULT_SCRIPTRNN), "o:"))
        for i, (method, style) in enumerate(styles):
            points = sorted((m, c["loss"]) for m in {c["minutes"] for c in cells.values()}
                            if (c := _cell(cells, method, precision, m)))
            if points:
                ax.plot(*zip(*points), style, color=f"C{i}", label=f"{method}, end of each budget")
        if (r := reach(cells, precision, data.get("reach_budget", 5))) is not None:
            ax.axhline(r["transformer_loss"], ls=":", color="C1", alpha=0.7,
                       label=f"transformer after {r['budget']:g} min")
        ax.set(xlabel="wall-clock minutes of training", title=f"--precision {precision}")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel("held-out loss (nats/char)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- command line

def race(args: argparse.Namespace) -> str:
    split = load_split(args.text, args.smoke)
    store, work = Store(args.out, split), common.WORK / ("race-smoke" if args.smoke else args.out.name)
    print(f"race on {split.path}: {split.facts()}", flush=True)

    def save(method: str, precision: str, minutes: float, record: dict) -> None:
        store.put({"method": method, "precision": precision, "arithmetic": arithmetic(precision),
                   "minutes": minutes, **record, "machine": machine()}, args.reach_budget)
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
