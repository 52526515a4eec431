"""The runtime install for real: a fresh virtual environment with `pip install scriptrnn[runtime,serve]`
(numpy, onnxruntime, FastAPI; no PyTorch) generates from an exported model and serves it over HTTP.

The environment is built once per session from a copy of the source (about 15 s with a warm
pip cache). The test is skipped only when Python cannot make a virtual environment here.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import scriptrnn
from scriptrnn.model.export import export_onnx

REPO = Path(__file__).resolve().parents[1]
GENERATE = ["--prime", "ROMEO", "--max-new-tokens", "60", "--seed", "4", "--num-return-sequences", "2"]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """The venv's python, with scriptrnn[runtime,serve] installed from a copy of this checkout."""
    root = tmp_path_factory.mktemp("torch-free")
    made = subprocess.run([sys.executable, "-m", "venv", root / "venv"], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a virtual environment here: {made.stderr.strip()[-200:]}")
    source = root / "source"  # a copy: pip builds in the source tree, and this checkout stays clean
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    python = root / "venv" / "bin" / "python"
    installed = subprocess.run([python, "-m", "pip", "install", "--quiet", f"{source}[runtime,serve]"],
                               capture_output=True, text=True, timeout=900, env=_clean_env())
    assert installed.returncode == 0, installed.stderr[-2000:]
    return python


def _clean_env() -> dict:
    # Not this test run's PYTHONPATH (it points at the source tree, where PyTorch is importable).
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}} | {"OMP_NUM_THREADS": "1"}


def _run(python: Path, *args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([python, *map(str, args)], capture_output=True, text=True, timeout=300, env=_clean_env(),
                          cwd=python.parents[2], **kwargs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "shakespeare"
    export_onnx(scriptrnn.pretrained_dir(), out)
    return out


def test_the_runtime_install_has_no_pytorch(venv):
    done = _run(venv, "-c", "import importlib.util as u; print([m for m in ('torch', 'safetensors') if u.find_spec(m)])")
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_generate_writes_what_pytorch_writes(venv, exported):
    done = _run(venv, "-m", "scriptrnn", "generate", exported, *GENERATE)
    assert done.returncode == 0, done.stderr
    with_torch = subprocess.run([sys.executable, "-m", "scriptrnn", "generate", *GENERATE], capture_output=True,
                                text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.stdout == with_torch.stdout  # the built-in model with PyTorch; its export without


def test_a_subword_export_generates_without_pytorch(venv, tmp_path):
    """The runtime install reads a subword tokenizer.json (tokenizers comes with it) and writes PyTorch's text."""
    from .conftest import make_run

    run = make_run(tmp_path / "run", level="subword")
    export_onnx(run, tmp_path / "onnx")
    args = ["--prime", "jerry: what", "--max-new-tokens", "30", "--seed", "2"]
    done = _run(venv, "-m", "scriptrnn", "generate", tmp_path / "onnx", *args)
    assert done.returncode == 0, done.stderr
    with_torch = subprocess.run([sys.executable, "-m", "scriptrnn", "generate", str(run), *args], capture_output=True,
                                text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.stdout == with_torch.stdout and done.stdout.startswith("jerry: what")


def test_commands_that_need_pytorch_say_what_to_install(venv):
    done = _run(venv, "-m", "scriptrnn", "train", "--max-steps", "1")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "pip install 'scriptrnn[train]'" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_serve_answers_over_http(venv, exported):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([venv, "-m", "scriptrnn", "serve", exported, "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_clean_env())
    try:
        _wait_for(f"http://127.0.0.1:{port}/health", server)
        body = {"inputs": "HAMLET:", "parameters": {"max_new_tokens": 30, "seed": 4}}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/generate", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        assert answer["generated_text"] == scriptrnn.load().generate("HAMLET:", max_new_tokens=30, seed=4)[0][7:]
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for(url: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited: {server.stdout.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"no answer from {url} in {seconds} s")
