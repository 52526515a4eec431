"""scriptrnn against the course method: quality per minute, speed, large vocabularies, scale.

    python -m benchmarks.prove all            # everything, about 75 minutes on 2 cores
    python -m benchmarks.prove quality --corpus seinfeld
    python -m benchmarks.prove throughput     # or: generation, softmax, scale

Each part writes benchmarks/results/<part>.json, .md and .png; RESULTS.md quotes them.
Run nothing else on the machine meanwhile: the figures are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import scriptrnn
from scriptrnn.evaluation.coverage import bits_per_char, characters_from
from scriptrnn.data.sources import load_corpus
from scriptrnn.generate.script_model import ScriptModel
from scriptrnn.model.network import ModelConfig, RNNLanguageModel
from scriptrnn.training.reporting import METRICS_FILE

from . import baseline
from .common import RESULTS, WORK, corpus, matmul_peak, nonembedding_params, table, token_split, write_results


# ---------------------------------------------------------------- quality per minute

def quality(corpus_name: str, budgets: list[float]) -> dict:
    """scriptrnn's defaults for each budget; the baseline once, scored at each budget."""
    c = corpus(corpus_name)
    tokenizer, train_ids, val_ids = token_split(c)
    characters = characters_from(tokenizer, load_corpus([c.path]).text, len(train_ids))
    ours = [_our_run(c, minutes, f"quality-{c.name}-{minutes:g}") for minutes in budgets]
    base = baseline.train(train_ids, val_ids, tokenizer.vocab_size, c.level, sorted(budgets))
    for run in ours + base:  # every held-out token scored (unknown words as <unk>): one scale for all
        run["bits_per_char"] = bits_per_char(run["loss"], len(val_ids), characters)
    target = next(b for b in base if b["minutes"] == max(budgets))["loss"]
    reach = _minutes_to_reach(ours, target)
    unknown = int(np.sum(val_ids == tokenizer.unk_id)) if getattr(tokenizer, "unk_id", None) is not None else 0
    data = {"corpus": c.name, "level": c.level, "vocab_size": tokenizer.vocab_size,
            "train_tokens": len(train_ids), "held_out_tokens": len(val_ids), "held_out_characters": characters,
            "held_out_unknown_tokens": unknown,
            "scriptrnn": ours, "baseline": base, "baseline_final_loss": target,
            "scriptrnn_minutes_to_baseline_final": reach,
            "speedup": (max(budgets) / reach) if reach else None}
    _plot_quality(data, RESULTS / f"quality-{c.name}.png")
    write_results(f"quality-{c.name}", data, _quality_markdown(data))
    return data


def _our_run(c, minutes: float, name: str, **settings) -> dict:
    out = WORK / name
    result = scriptrnn.train(c.path, out, level=c.level, time_budget=minutes, overwrite=True, progress=False,
                             **settings)
    records = [json.loads(line) for line in (out / METRICS_FILE).read_text().splitlines() if line.strip()]
    curve = [{"minutes": r["elapsed_s"] / 60, "loss": r["val_loss"]} for r in records if "val_loss" in r]
    rates = [r["tokens_per_s"] for r in records if "tokens_per_s" in r]
    print(f"scriptrnn {c.name} {minutes:g} min {settings}: {result.metrics['loss']:.4f}", flush=True)
    return {"minutes": minutes, "settings": settings, "loss": result.metrics["loss"], "steps": result.steps,
            "stopped_because": result.stopped_because, "tokens_per_s_median": float(np.median(rates)),
            "curve": curve}


def _minutes_to_reach(runs: list[dict], target: float) -> float | None:
    """Earliest wall-clock minute at which any of our runs scored at or below the target."""
    times = [p["minutes"] for run in runs for p in run["curve"] if p["loss"] <= target]
    return min(times) if times else None


def _quality_markdown(d: dict) -> str:
    budgets = [r["minutes"] for r in d["scriptrnn"]]
    base = {b["minutes"]: b for b in d["baseline"]}
    rows = [[f"{m:g}", _loss(r), r["steps"], _loss(base[m]) if m in base else "", base[m]["steps"] if m in base else ""]
            for m, r in zip(budgets, d["scriptrnn"])]
    unit = "nats/char (bits/char)" if d["level"] == "char" else "nats/word (bits/char)"
    reach = d["scriptrnn_minutes_to_baseline_final"]
    verdict = (f"scriptrnn reached the baseline's {max(budgets):g}-minute loss ({d['baseline_final_loss']:.3f}) "
               f"after **{reach:.2f} minutes: {d['speedup']:.1f}x less time**" if reach else
               "scriptrnn did not reach the baseline's final loss")
    detail = ", ".join(f"{b['minutes']:g} min: window {b['window_loss']:.3f} / carried {b['carried_loss']:.3f}"
                       for b in d["baseline"])
    scored = (f"Every one of the {d['held_out_tokens']:,} held-out tokens ({d['held_out_characters']:,} characters) "
              f"scored; {d['held_out_unknown_tokens']:,} of them ({d['held_out_unknown_tokens'] / d['held_out_tokens']:.2%}) "
              f"are words outside the {d['vocab_size']:,}-token vocabulary, scored as <unk>."
              if d["level"] == "word" else f"Every one of the {d['held_out_tokens']:,} held-out characters scored.")
    return (f"{table(['minutes', f'scriptrnn held-out, {unit}', 'steps', f'baseline held-out, {unit}', 'steps'], rows)}\n\n"
            f"{scored} {verdict}. Baseline scored both ways, the better one counted ({detail}).")


def _loss(run: dict) -> str:
    bpc = run.get("bits_per_char")
    return f"{run['loss']:.3f}" + (f" ({bpc:.3f})" if bpc is not None else "")


def _plot_quality(d: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in d["scriptrnn"]:
        xs = [p["minutes"] for p in run["curve"]]
        ax.plot(xs, [p["loss"] for p in run["curve"]], label=f"scriptrnn, {run['minutes']:g}-minute run")
    ax.plot([b["minutes"] for b in d["baseline"]], [b["loss"] for b in d["baseline"]], "ko--",
            label="course method (baseline)")
    ax.set_xlabel("wall-clock minutes of training")
    ax.set_ylabel(f"held-out loss (nats/{'char' if d['level'] == 'char' else 'word'})")
    ax.set_title(f"{d['corpus']}: held-out loss against time (2-core CPU)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- large vocabularies

SOFTMAX_VARIANTS = {
    "full, untied": {"softmax": "full", "tie_weights": False},
    "full, tied": {"softmax": "full", "tie_weights": True},
    "adaptive": {"softmax": "adaptive", "tie_weights": False},
}


def softmax(minutes: float) -> dict:
    c = corpus("seinfeld")
    runs = {}
    for i, (name, settings) in enumerate(SOFTMAX_VARIANTS.items()):
        # The defaults (full, tied) ran already in the quality part for the same budget: reuse that run.
        runs[name] = _earlier_default_run(minutes) if settings["tie_weights"] else None
        runs[name] = runs[name] or _our_run(c, minutes, f"softmax-{i}", **settings)
    rows = [[name, f"{r['loss']:.3f}", r["steps"], f"{r['tokens_per_s_median']:,.0f}"] for name, r in runs.items()]
    md = table(["output layer", f"held-out after {minutes:g} min (nats/word)", "steps", "tokens/s"], rows)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in runs.items():
        ax.plot([p["minutes"] for p in r["curve"]], [p["loss"] for p in r["curve"]], label=name)
    ax.set(xlabel="wall-clock minutes", ylabel="held-out loss (nats/word)", title="Seinfeld, word level: output layers")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "softmax.png", dpi=110)
    plt.close(fig)
    data = {"minutes": minutes, "runs": runs}
    write_results("softmax", data, md)
    return data


def _earlier_default_run(minutes: float) -> dict | None:
    path = RESULTS / "quality-seinfeld.json"
    if not path.exists():
        return None
    return next((r for r in json.loads(path.read_text())["scriptrnn"] if r["minutes"] == minutes), None)


# ---------------------------------------------------------------- training throughput

def throughput(seconds: float = 8.0) -> dict:
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    rows, records = [], []
    for hidden in (256, 512, 1024):
        for batch in (64, 128):
            for precision in ("fp32", "bf16"):
                r = _train_speed(hidden, batch, precision, seconds)
                r["share_of_fp32_peak"] = r["gflops"] / peaks["fp32"]
                records.append(r)
                rows.append([f"2x{hidden}", batch, precision, f"{r['nonembedding_params']:,}",
                             f"{r['tokens_per_s']:,.0f}", f"{r['gflops']:.0f}", f"{r['share_of_fp32_peak']:.0%}"])
    md = (f"Dense matmul peak (2048x2048): fp32 **{peaks['fp32']:.0f} GFLOP/s**, bf16 {peaks['bf16']:.0f} GFLOP/s.\n\n"
          + table(["LSTM", "batch", "arithmetic", "non-embedding params N", "tokens/s", "GFLOP/s (6N per token)",
                   "of fp32 peak"], rows))
    _plot_throughput(records)
    data = {"peak_gflops": peaks, "seq_len": 128, "runs": records}
    write_results("throughput", data, md)
    return data


def _train_speed(hidden: int, batch: int, precision: str, seconds: float, seq_len: int = 128, vocab: int = 80) -> dict:
    """The trainer's step (forward with targets, backward, clip, AdamW) on random char ids."""
    torch.manual_seed(0)
    model = RNNLanguageModel(ModelConfig(vocab_size=vocab, hidden_size=hidden, num_layers=2, embedding_size=64))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randint(0, vocab, (batch, seq_len)), torch.randint(0, vocab, (batch, seq_len))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss, _ = model(x, None, targets=y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    for _ in range(3):
        step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    rate = steps * batch * seq_len / (time.perf_counter() - start)
    n = nonembedding_params(model)
    return {"hidden": hidden, "layers": 2, "batch": batch, "precision": precision, "nonembedding_params": n,
            "tokens_per_s": rate, "gflops": 6 * n * rate / 1e9}


def _plot_throughput(records: list[dict]) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for precision, marker in (("fp32", "o"), ("bf16", "s")):
        for batch, style in ((64, "--"), (128, "-")):
            rs = [r for r in records if r["precision"] == precision and r["batch"] == batch]
            ax.plot([r["nonembedding_params"] / 1e6 for r in rs], [r["tokens_per_s"] for r in rs], style,
                    marker=marker, label=f"{precision}, batch {batch}")
    ax.set(xscale="log", yscale="log", xlabel="non-embedding parameters (millions): LSTM 2x256, 2x512, 2x1024",
           ylabel="training tokens/s", title="Training throughput by model size (2-core CPU, seq-len 128)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "throughput.png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- generation speed

def generation(tokens: int = 3000) -> dict:
    """One 2x512 char model (random weights: speed does not depend on them) three ways, and the baseline."""
    import shutil

    from scriptrnn import runtime  # the torch-free entry point
    from scriptrnn.model.checkpoint import read_config, save_run_files, save_weights
    from scriptrnn.model.export import export_onnx

    c = corpus("shakespeare-1mb")
    tokenizer, _, _ = token_split(c)
    V = tokenizer.vocab_size
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=V, hidden_size=512, num_layers=2, embedding_size=64)
    model = RNNLanguageModel(config)
    run, exported, int8 = WORK / "gen-2x512", WORK / "gen-2x512-onnx", WORK / "gen-2x512-int8"
    shutil.rmtree(run, ignore_errors=True)
    save_run_files(run, {"model": config.to_dict(), "corpus": {"speakers": []}}, tokenizer)
    save_weights(run, model)
    export_onnx(run, exported, overwrite=True)
    export_onnx(run, int8, quantize="int8", overwrite=True)
    rows, data = [], {"model": "LSTM 2x512, char level", "vocab_size": V}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        generators = {"scriptrnn, PyTorch": ScriptModel(model, tokenizer, read_config(run)),
                      "scriptrnn, exported (onnxruntime)": runtime.load(exported, threads=threads),
                      "scriptrnn, exported int8 (onnxruntime)": runtime.load(int8, threads=threads)}
        for name, generator in generators.items():
            for streams, n in ((1, tokens), (16, tokens // 4)):
                rate = _generation_rate(generator, n, streams)
                data[f"{name}|{streams}|{threads}"] = rate
                rows.append([f"{name}, {streams} stream{'s' if streams > 1 else ''}", threads, f"{rate:,.0f}"])
        course = baseline.make_model(V, hidden_dim=512)
        prime = list(tokenizer.encode("ROMEO:"))
        start = time.perf_counter()
        baseline.generate(course, prime, baseline.SEQ_LEN["char"], tokens // 10)
        rate = (tokens // 10) / (time.perf_counter() - start)
        data[f"course method|1|{threads}"] = rate
        rows.append([f"course method (re-feeds {baseline.SEQ_LEN['char']} chars), 1 stream", threads, f"{rate:,.0f}"])
    torch.set_num_threads(2)
    best = {name: max(v for k, v in data.items() if k.startswith(name + "|1|"))
            for name in ("scriptrnn, PyTorch", "scriptrnn, exported (onnxruntime)",
                         "scriptrnn, exported int8 (onnxruntime)", "course method")}
    ours = max(v for k, v in best.items() if k.startswith("scriptrnn"))
    data["one_stream_best"] = best
    data["one_stream_speedup"] = ours / best["course method"]
    md = (table(["generator (LSTM 2x512, char level)", "threads", "tokens/s"], rows)
          + f"\n\nOne stream, best thread count each: PyTorch {best['scriptrnn, PyTorch']:,.0f} tokens/s, "
            f"onnxruntime {best['scriptrnn, exported (onnxruntime)']:,.0f} (int8: "
            f"{best['scriptrnn, exported int8 (onnxruntime)']:,.0f}), the course method "
            f"{best['course method']:,.0f}: **{data['one_stream_speedup']:.0f}x** for scriptrnn's faster path.")
    write_results("generation", data, md)
    return data


def _generation_rate(generator, n: int, streams: int) -> float:
    """New tokens per second over ``streams`` sequences of ``n`` tokens (prime and set-up included)."""
    start = time.perf_counter()
    texts = generator.generate("ROMEO:", max_new_tokens=n, num_return_sequences=streams, seed=0)
    return sum(len(t) - len("ROMEO:") for t in texts) / (time.perf_counter() - start)


# ---------------------------------------------------------------- scale

SCALE_MB = (10, 100, 1000)


def scale() -> dict:
    """Preprocessing (read, fit, tokenize, write the token cache) and training memory at 10 MB .. 1 GB.

    Each size runs in fresh processes, so each peak resident memory figure is its own.
    """
    source = corpus("shakespeare-1mb").path.read_text(encoding="utf-8")
    rows, runs = [], []
    for mb in SCALE_MB:
        text_file = WORK / f"scale-{mb}mb.txt"
        if not text_file.exists() or text_file.stat().st_size < mb * 1_000_000:
            with open(text_file, "w", encoding="utf-8") as f:
                for _ in range(-(-mb * 1_000_000 // len(source.encode("utf-8")))):
                    f.write(source)
        pre = _child("scale-preprocess", str(text_file))
        train = _child("scale-train", str(text_file))
        runs.append({"mb": text_file.stat().st_size / 1e6, **{f"preprocess_{k}": v for k, v in pre.items()},
                     **{f"train_{k}": v for k, v in train.items()}})
        r = runs[-1]
        rows.append([f"{r['mb']:,.0f}", f"{r['preprocess_tokens']:,}", f"{r['preprocess_seconds']:.1f}",
                     f"{r['mb'] / r['preprocess_seconds']:.0f}", f"{r['preprocess_peak_rss_mb']:,.0f}",
                     f"{r['preprocess_cache_mb']:,.0f}", f"{r['train_peak_rss_mb']:,.0f}"])
    per_mb = [r["preprocess_seconds"] / r["mb"] for r in runs]
    md = (table(["corpus MB", "tokens (char)", "preprocess s", "MB/s", "preprocess peak RSS MB",
                 "token cache MB (uint16)", "training peak RSS MB (memmap, 50 steps)"], rows)
          + f"\n\nSeconds per MB: {', '.join(f'{x:.3f}' for x in per_mb)} (linear time: constant per MB).")
    data = {"runs": runs}
    write_results("scale", data, md)
    return data


def _child(part: str, text_file: str) -> dict:
    import subprocess

    done = subprocess.run([sys.executable, "-m", __spec__.name, part, "--file", text_file], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{part} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def scale_preprocess(text_file: Path) -> dict:
    """What `scriptrnn train` does before its first step: read, fit the vocabulary, tokenize, cache."""
    from scriptrnn.data.corpus import read_corpus
    from scriptrnn.data.token_cache import write_cache
    from scriptrnn.data.tokenizer import fit_tokenizer

    start = time.perf_counter()
    text = read_corpus([text_file]).text
    tokenizer = fit_tokenizer(text, "char")
    ids = tokenizer.encode(text, strict=False)
    del text
    cache = text_file.with_suffix(".tokens")
    n = write_cache(cache, [ids], key="scale", vocab_size=tokenizer.vocab_size)
    seconds = time.perf_counter() - start
    (WORK / f"{text_file.stem}.vocab.json").write_text(json.dumps(tokenizer.to_dict()))
    return {"seconds": seconds, "tokens": n, "peak_rss_mb": _peak_rss_mb(), "cache_mb": cache.stat().st_size / 1e6}


def scale_train(text_file: Path, steps: int = 50) -> dict:
    """50 training steps of the default char model reading the memory-mapped cache."""
    from scriptrnn.data.batching import StreamBatches, split_ids
    from scriptrnn.data.token_cache import open_cache

    ids = open_cache(text_file.with_suffix(".tokens"), "scale")
    vocab = len(json.loads((WORK / f"{text_file.stem}.vocab.json").read_text())["vocab"])
    train_ids, _ = split_ids(ids, 0.1)
    model = RNNLanguageModel(ModelConfig(vocab_size=vocab))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batches = StreamBatches(train_ids, 64, 128, seed=0)
    start = time.perf_counter()
    for step in range(steps):
        x, y = batches.batch(0, step)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _ = model(x, None, targets=y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": _peak_rss_mb(), "is_memmap": isinstance(ids, np.memmap)}


# ---------------------------------------------------------------- command line

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["all", "quality", "softmax", "throughput", "generation", "scale",
                                         "corpus-file", "scale-preprocess", "scale-train"])
    parser.add_argument("--file", type=Path, help="scale-preprocess / scale-train: the text file (internal)")
    parser.add_argument("--corpus", nargs="+", default=["shakespeare-1mb", "seinfeld"])
    parser.add_argument("--budgets", type=float, nargs="+", default=[2, 5, 10], help="minutes")
    parser.add_argument("--softmax-minutes", type=float, default=2)
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    if args.part == "corpus-file":  # the ~1 MB Shakespeare text, for sweeps and manual runs
        print(corpus("shakespeare-1mb").path)
        return 0
    if args.part.startswith("scale-"):  # one measurement in a fresh process (see scale())
        run = scale_preprocess if args.part == "scale-preprocess" else scale_train
        print(json.dumps(run(args.file)))
        return 0
    if args.part in ("all", "throughput"):
        throughput()
    if args.part in ("all", "generation"):
        generation()
    if args.part in ("all", "quality"):
        for name in args.corpus:
            quality(name, args.budgets)
    if args.part in ("all", "softmax"):
        softmax(args.softmax_minutes)
    if args.part in ("all", "scale"):
        scale()
    return 0


if __name__ == "__main__":
    sys.exit(main())
