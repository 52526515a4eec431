"""Preparing a corpus at 100 MB, 1 GB and 5 GB: time and peak memory of what `scriptrnn train` does first.

    python -m benchmarks.prepare_scale                       # 100, 1000 and 5000 MB, char level (a quiet machine)
    python -m benchmarks.prepare_scale --sizes 10 20 50 --name prepare-scale-small   # a quick check

Each size is the ~1 MB Shakespeare text repeated into one file under --tmp, prepared in a
fresh process exactly as a new run prepares it (training/prepare.py: one streamed pass to
fingerprint the text, find its speakers and fit the vocabulary, one to encode it into the
token cache), then deleted. Peak memory is the child's VmHWM (its peak resident set). The
targets (issue 16): peak RSS at most 1.5 GB at every size, time linear in size, at least
20 MB/s at char level. Results: benchmarks/results/NAME.json and NAME.md, with the machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_PEAK_MB = 1536
TARGET_MB_PER_S = 20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000], help="corpus sizes in MB")
    parser.add_argument("--level", choices=["char", "word"], default="char")
    parser.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()), help="where the test files go")
    parser.add_argument("--name", default="prepare-scale", help="results file name under benchmarks/results")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # one measurement, in a fresh process
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(prepare(args.child, args.level)))
        return 0
    runs = [measure(mb, args.level, args.tmp) for mb in args.sizes]
    report(runs, args.level, args.name, args.sizes)
    return 0


def measure(mb: int, level: str, tmp: Path) -> dict:
    """One size: write the file (after checking the disk), prepare it in a child process, delete everything."""
    work = Path(tempfile.mkdtemp(prefix="scriptrnn-prepare-", dir=tmp))
    try:
        need = mb * 1_000_000 * 4  # the text, its token cache (up to 2 bytes a character at uint16) and room
        free = shutil.disk_usage(work).free
        if free < need:
            raise SystemExit(f"{mb} MB needs about {need / 1e9:.1f} GB free in {tmp}, which has {free / 1e9:.1f} GB; "
                             "free some space or pass --tmp on a bigger disk")
        text_file = work / f"corpus-{mb}mb.txt"
        _write_repeated(text_file, mb * 1_000_000)
        done = subprocess.run([sys.executable, "-m", __spec__.name, "--child", str(text_file), "--level", level],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"preparing {mb} MB failed: {done.stderr[-2000:]}")
        run = {"mb": text_file.stat().st_size / 1e6, **json.loads(done.stdout.strip().splitlines()[-1])}
        print(f"{run['mb']:,.0f} MB: {run['seconds']:.1f} s, peak RSS {run['peak_rss_mb']:,.0f} MB", file=sys.stderr)
        return run
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_repeated(path: Path, size: int) -> None:
    from .common import shakespeare_1mb  # the same ~1 MB text the other benchmarks read

    source = shakespeare_1mb().read_bytes()
    with open(path, "wb") as f:
        for _ in range(-(-size // len(source))):
            f.write(source)


def prepare(text_file: Path, level: str) -> dict:
    """What `scriptrnn train` does before its first step, in this process: scan, fit, encode into the cache."""
    from scriptrnn.data.sources import CorpusRequest
    from scriptrnn.data.token_cache import TOKENS_FILE, cache_key, write_cache
    from scriptrnn.training.config import LEVEL_DEFAULTS, TrainConfig
    from scriptrnn.training.prepare import open_text

    settings = {k: v for k, v in LEVEL_DEFAULTS[level].items() if k in TrainConfig.__dataclass_fields__}
    config = TrainConfig(level=level, **settings)
    start, cpu = time.perf_counter(), time.process_time()
    text = open_text(CorpusRequest([text_file]).resolve(), level)  # the first pass
    scanned = time.perf_counter()
    tokenizer = text.tokenizer(config)
    train_tokens = text.train_tokens(tokenizer, config)
    cache = text_file.with_suffix(".tokens")
    n = write_cache(cache, text.ids(tokenizer, config), key=cache_key(text.sha256, tokenizer),
                    vocab_size=tokenizer.vocab_size)  # the second pass
    end = time.perf_counter()
    return {"seconds": end - start, "cpu_seconds": time.process_time() - cpu, "scan_seconds": scanned - start, "encode_seconds": end - scanned,
            "tokens": n, "train_tokens": train_tokens, "vocab": tokenizer.vocab_size,
            "peak_rss_mb": _peak_rss_mb(), "cache_mb": cache.stat().st_size / 1e6}


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def report(runs: list[dict], level: str, name: str, sizes: list[int]) -> None:
    from .common import table, write_results

    rows = [[f"{r['mb']:,.0f}", f"{r['tokens']:,}", f"{r['seconds']:.1f}", f"{r['scan_seconds']:.1f}",
             f"{r['encode_seconds']:.1f}", f"{r['mb'] / r['seconds']:.0f}", f"{r['mb'] / r['cpu_seconds']:.0f}",
             f"{r['peak_rss_mb']:,.0f}",
             f"{r['cache_mb']:,.0f}"] for r in runs]
    per_mb = [r["seconds"] / r["mb"] for r in runs]
    peak = max(r["peak_rss_mb"] for r in runs)
    slowest = min(r["mb"] / r["seconds"] for r in runs)
    md = (f"Command: `python -m benchmarks.prepare_scale --sizes {' '.join(map(str, sizes))} --level {level}`\n\n"
          + table(["corpus MB", f"tokens ({level})", "prepare s", "pass 1 s (scan)", "pass 2 s (encode)", "MB/s",
                   "MB/s of CPU time",
                   "peak RSS MB", "token cache MB"], rows)
          + f"\n\nSeconds per MB: {', '.join(f'{x:.3f}' for x in per_mb)} (linear time: constant per MB). "
          + f"Targets: peak RSS <= {TARGET_PEAK_MB:,} MB ({'met' if peak <= TARGET_PEAK_MB else 'missed'}: "
          + f"{peak:,.0f}), >= {TARGET_MB_PER_S} MB/s ({'met' if slowest >= TARGET_MB_PER_S else 'missed'}: "
          + f"{slowest:.1f} at the slowest size).")
    write_results(name, {"level": level, "runs": runs}, md)


if __name__ == "__main__":
    sys.exit(main())
