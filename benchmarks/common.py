"""What every benchmark shares: the corpora, one tokenization and split, the machine, the results files.

Both scriptrnn and the course baseline read their ids from ``token_split`` so that
they see the same tokens, the same held-out end and are scored on the same positions.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import queue
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scriptrnn.data.batching import split_ids
from scriptrnn.data.sources import load_corpus
from scriptrnn.data.shakespeare import shakespeare_corpus
from scriptrnn.data.tokenizer import fit_tokenizer
from scriptrnn.device import autocast_dtype
from scriptrnn.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHARED_DATA = REPO.parent / "shared" / "data"
WORK = Path(os.environ.get("SCRIPTRNN_BENCH_WORK", "/tmp/scriptrnn-bench"))  # runs, caches: never committed
VAL_FRACTION = TrainConfig.val_fraction  # what `scriptrnn train` holds out


@dataclass
class Corpus:
    name: str
    level: str
    path: Path  # a text file both methods read


def corpus(name: str) -> Corpus:
    """'seinfeld' (word level, ../shared/data) or 'shakespeare-1mb' (char level, from the built-in plays)."""
    if name == "seinfeld":
        path = SHARED_DATA / "Seinfeld_Scripts.txt"
        if not path.exists():
            raise SystemExit(f"benchmarks need {path} (the shared data folder beside the checkout)")
        return Corpus(name, "word", path)
    if name == "shakespeare-1mb":
        return Corpus(name, "char", shakespeare_1mb())
    raise SystemExit(f"unknown corpus {name!r}")


def shakespeare_1mb() -> Path:
    """The first ~1,000,000 characters of the built-in corpus, cut at a line end."""
    path = WORK / "shakespeare_1mb.txt"
    if not path.exists():
        text = shakespeare_corpus().text
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text[: text.rfind("\n", 0, 1_000_000) + 1], encoding="utf-8")
    return path


def token_split(c: Corpus):
    """(tokenizer, train ids, held-out ids) exactly as ``scriptrnn train`` makes them (defaults: at
    word level the vocabulary keeps words seen --min-count times and folds the rest into <unk>)."""
    text = load_corpus([c.path]).text
    tokenizer = fit_tokenizer(text, c.level, min_count=TrainConfig().min_count)
    train_ids, val_ids = split_ids(tokenizer.encode(text, strict=False), VAL_FRACTION)
    return tokenizer, train_ids, val_ids


CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")  # what decides bf16 speed


def bf16_native(device: torch.device = torch.device("cpu")) -> bool:
    """The test scriptrnn's trainer makes for --precision auto (CPU: oneDNN's; GPU: CUDA's)."""
    return autocast_dtype("auto", device) is not None


def machine(device: torch.device = torch.device("cpu")) -> dict:
    """What a figure was measured on: the CPU (lscpu's model name and the flags that decide bfloat16
    speed), cores, threads, torch, Python, the date and time, and the GPU when measured on one."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        lscpu = ""
    lines = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in lscpu.splitlines() if ":" in line)}
    flags = set(lines.get("Flags", "").split())
    return {"cpu": lines.get("Model name", cpu), "cpus": lines.get("CPU(s)"), "cores": os.cpu_count(),
            "flags": [f for f in CPU_FLAGS if f in flags], "bf16_native": bf16_native(device),
            **({"gpu": torch.cuda.get_device_name(device)} if device.type == "cuda" else {}),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "date": datetime.date.today().isoformat(),
            "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def matmul_peak(dtype=torch.float32, n: int = 2048, seconds: float = 3.0) -> float:
    """Dense n x n matmul GFLOP/s: the machine's practical limit for this dtype."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def write_results(name: str, data: dict, markdown: str) -> None:
    """benchmarks/results/NAME.json and NAME.md (the tables RESULTS.md quotes)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine(), **data}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown.rstrip() + "\n")
    print(markdown)


class JsonStore:
    """Results kept in one JSON file, rewritten whole (atomically) after each run, so a benchmark spread
    over several sessions loses nothing and a rerun skips what is saved."""

    def __init__(self, path: Path, empty: dict):
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else empty

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(self.path.suffix + ".tmp")
        temporary.write_text(json.dumps(self.data, indent=1) + "\n")
        os.replace(temporary, self.path)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def nonembedding_params(model: torch.nn.Module) -> int:
    """Parameters that take part in matrix products per token (all but the embedding table)."""
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("embedding"))


def ids_tensor(ids: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(ids, dtype=np.int64))


# ------------------------------------------------------------ cells pinned to cores (levels.py, holds.py)

def pinned(cores: list[int] | None) -> tuple[list[str], dict]:
    """(command prefix, environment) that keep a cell to ``cores``: taskset where it exists, and the
    compute threads to the cores' number either way (None: the whole machine, unpinned)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if not cores:
        return [], env
    env["OMP_NUM_THREADS"] = str(len(cores))
    return (["taskset", "-c", ",".join(map(str, cores))] if shutil.which("taskset") else []), env


def core_slots(parallel: int, cores_per_run: int, first_core: int = 0) -> "queue.Queue":
    """A queue of core sets, one per cell at once: each cell takes a free set and gives it back, so no two
    cells share a core (each set None when cells are not pinned)."""
    slots: queue.Queue = queue.Queue()
    for slot in range(parallel):
        first = first_core + slot * cores_per_run
        slots.put(list(range(first, first + cores_per_run)) if cores_per_run else None)
    return slots
