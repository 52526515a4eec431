"""Build the zip for a serverless function (AWS Lambda and the like) and say how big it is.

    python deploy/serverless_zip.py EXPORTED_DIR [--out build/scriptrnn-function.zip]
        [--platform manylinux_2_28_x86_64 --python-version 3.12]

The zip holds scriptrnn[runtime] (scriptrnn, numpy, onnxruntime: no PyTorch) at its root
and the exported model in model/, which is where the handler looks by default:
configure the function's handler as ``scriptrnn.server.serverless.handler``.
Without --platform the packages are this machine's (Linux x86_64 and this Python);
with it, pip fetches wheels for that platform and Python version instead. Files no
generation needs are left out (listed below), and, when building for this machine,
the staged packages answer one request with site-packages switched off before the zip
is written. See docs/serverless.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Never imported when generating: test suites, onnxruntime's model tools, the package's
# built-in PyTorch model, console scripts. (Bytecode stays when it is for the function's
# Python: a function's files are read-only, so it could not be cached at a cold start.)
LEAVE_OUT = ["bin", "numpy/**/tests", "numpy/f2py", "onnxruntime/tools", "onnxruntime/transformers",
             "onnxruntime/quantization", "onnxruntime/datasets", "scriptrnn/pretrained"]
LAMBDA_ZIP_LIMIT, LAMBDA_UNZIPPED_LIMIT = 50 * 2**20, 250 * 2**20  # direct upload; unzipped, with layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a directory `scriptrnn export` wrote")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "scriptrnn-function.zip")
    parser.add_argument("--platform", help="pip platform tag to build for, e.g. manylinux_2_28_x86_64")
    parser.add_argument("--python-version", help="Python of the function, e.g. 3.12 (with --platform)")
    args = parser.parse_args()
    if not (args.model / "model.onnx").is_file():
        raise SystemExit(f"{args.model} holds no model.onnx; make one with `scriptrnn export RUN --out DIR`")
    with tempfile.TemporaryDirectory(prefix="scriptrnn-zip-") as tmp:
        stage = Path(tmp) / "stage"
        install(Path(tmp), stage, args.platform, args.python_version)
        foreign = args.python_version not in (None, f"{sys.version_info.major}.{sys.version_info.minor}")
        removed = leave_out(stage, LEAVE_OUT + ["**/__pycache__"] * foreign)  # pip compiled for this Python
        shutil.copytree(args.model, stage / "model")
        if not args.platform:
            check_answers(stage)
        unzipped = write_zip(stage, args.out)
    report(args, unzipped, removed)


def install(tmp: Path, stage: Path, platform: str | None, python_version: str | None) -> None:
    """scriptrnn's wheel, built from this checkout, and its runtime dependencies, into ``stage``."""
    source = tmp / "source"  # a copy: building in place would leave build/ and egg-info in the checkout
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "-w", tmp / "wheel", source], check=True)
    wheel = next((tmp / "wheel").glob("scriptrnn-*.whl"))
    cross = ["--platform", platform, "--only-binary=:all:", "--implementation", "cp"] if platform else []
    if python_version:
        cross += ["--python-version", python_version]
    subprocess.run([*pip, "install", "--quiet", "--target", stage, *cross, f"{wheel}[runtime]"], check=True)


def leave_out(stage: Path, patterns: list[str]) -> dict[str, int]:
    """Delete what matches each pattern; bytes removed per pattern."""
    removed = {}
    for pattern in patterns:
        removed[pattern] = 0
        for path in sorted(stage.glob(pattern), reverse=True):
            if path.exists():
                files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
                removed[pattern] += sum(f.stat().st_size for f in files)
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    return removed


def check_answers(stage: Path) -> None:
    """One request through the handler, from the staged files alone (-S: no site-packages, so no PyTorch)."""
    code = ("import json, os, sys\n"
            "os.environ['LAMBDA_TASK_ROOT'] = sys.argv[1]\n"
            "from scriptrnn.server.serverless import handler\n"
            "event = {'httpMethod': 'POST', 'body': json.dumps({'inputs': '', 'parameters': {'max_new_tokens': 20}})}\n"
            "answer = handler(event, None)\n"
            "assert answer['statusCode'] == 200, answer\n"
            "assert 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-S", "-c", code, str(stage)], check=True, cwd=stage,
                   env={"PYTHONPATH": str(stage), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"})


def write_zip(stage: Path, out: Path) -> int:
    """Deflated, entries in sorted order; returns the unzipped size in bytes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(f".{out.name}.tmp")
    total = 0
    with zipfile.ZipFile(tmp_out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for path in sorted(stage.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(stage))
                total += path.stat().st_size
    tmp_out.replace(out)
    return total


def report(args, unzipped: int, removed: dict[str, int]) -> None:
    zipped = args.out.stat().st_size
    with zipfile.ZipFile(args.out) as z:
        by_top: dict[str, int] = {}
        for info in z.infolist():
            top = info.filename.split("/")[0]
            by_top[top] = by_top.get(top, 0) + info.file_size
    largest = sorted(by_top.items(), key=lambda kv: -kv[1])[:8]
    facts = {"zip": str(args.out), "zip_bytes": zipped, "unzipped_bytes": unzipped,
             "model_bytes": by_top.get("model", 0), "platform": args.platform or "this machine",
             "python": args.python_version or f"{sys.version_info.major}.{sys.version_info.minor}",
             "largest_unzipped_bytes": dict(largest), "left_out_bytes": removed}
    print(json.dumps(facts, indent=2))
    print(f"\n{args.out}: {zipped / 2**20:.1f} MiB zipped, {unzipped / 2**20:.1f} MiB unzipped "
          f"(Lambda: {LAMBDA_ZIP_LIMIT // 2**20} MiB for a direct upload, {LAMBDA_UNZIPPED_LIMIT // 2**20} MiB "
          "unzipped); handler: scriptrnn.server.serverless.handler")


if __name__ == "__main__":
    main()
