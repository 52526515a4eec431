"""onnxruntime against PyTorch for one model: install size, cold start, tokens/s, int8.

    python -m benchmarks.runtime_bench [--model RUN_DIR] [--tokens 300] [--repeats 3] [--cold-runs 5]
        [--eval-tokens 100000] [--work /tmp/scriptrnn-runtime-bench] [--out benchmarks/results]

1. Exports the run (default: the built-in model) as float and as int8 ONNX.
2. Speed, in this process, one thread each (torch.set_num_threads(1), onnxruntime's
   intra-op threads 1): the median of --repeats generations of --tokens new tokens for
   1 and for 16 sequences stepped together (one request, num_return_sequences=16),
   sampling included; tokens/s counts every sequence's tokens.
3. Held-out loss of PyTorch, ONNX float and ONNX int8 on the first --eval-tokens tokens
   of the run's held-out split (the run's own corpus; 0: all of it).
4. Two fresh virtual environments under --work, from a copy of this checkout:
   `pip install scriptrnn[runtime]` and `pip install torch==<this torch> scriptrnn[train]`;
   their site-packages sizes without pip and setuptools.
5. Cold start in each: wall time of `python -m scriptrnn generate DIR --max-new-tokens 1`
   (interpreter start, imports, loading the model, the prime, one token, exit), median of
   --cold-runs after one unrecorded run that warms the disk cache; the runtime
   environment generates from the float export, the PyTorch one from the run.

Writes runtime_bench.json and runtime_bench.md (a Markdown fragment for RESULTS.md) to --out.
Run it on a quiet machine: it times things.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import torch

import scriptrnn
from scriptrnn.data.batching import split_ids
from scriptrnn.evaluation.scoring import evaluate_loss
from scriptrnn.model.export import export_onnx
from scriptrnn.runtime import evaluate_loss as evaluate_exported
from scriptrnn.runtime import load as load_exported

LEFT_OUT_OF_SIZE = ("pip", "setuptools", "_distutils_hack", "pkg_resources", "distutils-precedence.pth")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="run directory (default: the built-in model)")
    parser.add_argument("--tokens", type=int, default=300, help="new tokens per sequence in the speed runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--eval-tokens", type=int, default=100_000, help="held-out tokens scored (0: all)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/scriptrnn-runtime-bench"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    run = args.model or scriptrnn.pretrained_dir()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    exports = {kind: args.work / f"onnx-{kind}" for kind in ("float", "int8")}
    for kind, out in exports.items():
        export_onnx(run, out, quantize=None if kind == "float" else "int8")
    results = {"speed": speed(run, exports, args.tokens, args.repeats),
               "held_out_loss": held_out_loss(run, exports, args.eval_tokens),
               "disk_bytes": {"checkpoint": _size(run / "model.safetensors"),
                              **{f"onnx_{k}": _size(d / "model.onnx") for k, d in exports.items()}}}
    envs = {"runtime": make_env(args.work, "runtime", ["runtime"]),
            "pytorch": make_env(args.work, "pytorch", ["train"], first=[f"torch=={torch.__version__}"])}
    results["install_bytes"] = {name: site_packages_size(python) for name, python in envs.items()}
    results["cold_start_s"] = {"runtime": cold_start(envs["runtime"], exports["float"], args.cold_runs),
                               "pytorch": cold_start(envs["pytorch"], run, args.cold_runs)}
    report(results, args, run)


# ---------------------------------------------------------------- in this process


def speed(run: Path, exports: dict, tokens: int, repeats: int) -> list[dict]:
    torch.set_num_threads(1)
    writers = {"PyTorch": scriptrnn.load(run), **{f"ONNX {k}": load_exported(d, threads=1) for k, d in exports.items()}}
    rows = []
    for name, writer in writers.items():
        for streams in (1, 16):
            writer.generate("", max_new_tokens=5, num_return_sequences=streams, seed=0)  # warm-up
            times = []
            for r in range(repeats):
                start = time.perf_counter()
                # No stop condition: every sequence writes exactly `tokens` tokens.
                writer.generate("", max_new_tokens=tokens, num_return_sequences=streams, seed=r)
                times.append(time.perf_counter() - start)
            rows.append({"backend": name, "streams": streams, "tokens_per_s": streams * tokens / statistics.median(times),
                         "seconds": times})
    return rows


def held_out_loss(run: Path, exports: dict, eval_tokens: int) -> dict:
    writer = scriptrnn.load(run)
    from scriptrnn.data.sources import CorpusSource

    text = CorpusSource.from_dict(writer.config.corpus.source).load().text
    ids = split_ids(writer.tokenizer.encode(text, strict=False), writer.config.val_fraction)[1]
    ids = ids[: eval_tokens + 1] if eval_tokens else ids
    torch_loss, count = evaluate_loss(writer.model, ids)
    losses = {"PyTorch": torch_loss}
    for kind, directory in exports.items():
        losses[f"ONNX {kind}"] = evaluate_exported(load_exported(directory, threads=1).model, ids)[0]
    return {"tokens": count, "nats_per_token": losses}


# ---------------------------------------------------------------- fresh environments


def make_env(work: Path, name: str, extras: list[str], first: list[str] | None = None) -> Path:
    """A venv with scriptrnn[extras] from a copy of this checkout; its python."""
    source = work / "source"
    if not source.exists():  # pip builds in the source tree: keep this checkout clean
        shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
        for f in ("pyproject.toml", "README.md"):
            shutil.copy(REPO / f, source / f)
    subprocess.run([sys.executable, "-m", "venv", work / name], check=True)
    python = work / name / "bin" / "python"
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if first:
        subprocess.run([*pip, *first], check=True, env=_clean_env())
    subprocess.run([*pip, f"{source}[{','.join(extras)}]"], check=True, env=_clean_env())
    return python


def site_packages_size(python: Path) -> int:
    site = next((python.parents[1] / "lib").glob("python*/site-packages"))
    total = 0
    for entry in site.iterdir():
        if entry.name.startswith(LEFT_OUT_OF_SIZE):
            continue
        files = [entry] if entry.is_file() else [f for f in entry.rglob("*") if f.is_file() and not f.is_symlink()]
        total += sum(f.stat().st_size for f in files)
    return total


def cold_start(python: Path, model: Path, runs: int) -> dict:
    command = [python, "-m", "scriptrnn", "generate", model, "--max-new-tokens", "1", "--seed", "1"]
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=_clean_env())
        if i:  # the first run warms the disk cache
            times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "min": min(times), "runs": times}


def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}} | {"OMP_NUM_THREADS": "1"}


def _size(path: Path) -> int:
    return path.stat().st_size


# ---------------------------------------------------------------- output


def report(results: dict, args, run: Path) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    config = json.loads((run / "config.json").read_text())
    m = config["model"]
    meta = {"date": date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores", "command": "python " + " ".join(sys.argv), "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__, "python": platform.python_version(),
            "model": f"{run.name}: {config['training'].get('level', '?')} level, {m['cell'].upper()} "
                     f"{m['num_layers']}x{m['hidden_size']}, vocabulary {m['vocab_size']}",
            "tokens_per_sequence": args.tokens}
    (args.out / "runtime_bench.json").write_text(json.dumps({**meta, **results}, indent=2) + "\n")
    text = markdown(meta, results)
    (args.out / "runtime_bench.md").write_text(text + "\n")
    print(text)


def markdown(meta: dict, r: dict) -> str:
    mib = lambda n: f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n / 2**10:,.0f} KiB"  # noqa: E731
    speed = {(row["backend"], row["streams"]): row["tokens_per_s"] for row in r["speed"]}
    loss = r["held_out_loss"]["nats_per_token"]
    lines = [f"Model: {meta['model']}; {meta['machine']}; PyTorch {meta['torch']}, onnxruntime "
             f"{meta['onnxruntime']}, Python {meta['python']}; {meta['date']}.", "",
             "| | PyTorch | ONNX float | ONNX int8 |", "|---|---|---|---|",
             f"| model file | {mib(r['disk_bytes']['checkpoint'])} | {mib(r['disk_bytes']['onnx_float'])} | "
             f"{mib(r['disk_bytes']['onnx_int8'])} |"]
    for streams in (1, 16):
        cells = " | ".join(f"{speed[(b, streams)]:,.0f}" for b in ("PyTorch", "ONNX float", "ONNX int8"))
        lines.append(f"| tokens/s, {streams} stream{'s' if streams > 1 else ''} (1 thread) | {cells} |")
    lines.append(f"| held-out loss, {r['held_out_loss']['tokens']:,} tokens (nats/token) | "
                 + " | ".join(f"{loss[b]:.4f}" for b in ("PyTorch", "ONNX float", "ONNX int8")) + " |")
    lines += ["", "| install | site-packages | cold start to first token, median (min) |", "|---|---|---|"]
    for name, label in (("runtime", "`scriptrnn[runtime]` (numpy, onnxruntime)"),
                        ("pytorch", "`scriptrnn[train]` (PyTorch CPU build and the rest)")):
        cold = r["cold_start_s"][name]
        lines.append(f"| {label} | {mib(r['install_bytes'][name])} | {cold['median']:.2f} s ({cold['min']:.2f} s) |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
