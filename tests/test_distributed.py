"""Several processes on the CPU with Gloo: real torchrun, real DDP, real kills.

Every run is tiny (a 2-layer LSTM of 32 units, a few dozen steps) and every process
has a timeout, so that nothing here can hang CI.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from scriptrnn.model.directory import RESUME_FILE

from .conftest import DIALOGUE

# Dropout 0 (char level's locked output dropout too) and float32 arithmetic, so that one process and
# two compute the same function and can be compared (bfloat16 rounds the half batches differently).
FLAGS = ["--level", "char", "--hidden-size", "32", "--embedding-size", "16", "--layers", "2", "--dropout", "0",
         "--dropout-output", "0",
         "--seq-len", "16", "--batch-size", "8", "--lr", "0.01", "--eval-every", "10", "--eval-tokens", "2000",
         "--max-steps", "40", "--patience", "1000", "--precision", "fp32", "--quiet"]
# How close two processes come to one: DDP averages two half-batch gradients where one
# process takes the gradient of the whole batch, so sums run in another order (float32).
# Measured here: about 1e-7 after 40 steps; the tolerance leaves room for other CPUs.
TOLERANCE = 1e-4

# The real command line, stopped (as Ctrl-C would, but at a known step) for the resume tests.
STOP_AT = """
import os, sys
from scriptrnn.training import loop as trainer
from scriptrnn.cli import main

_notify = trainer.Trainer._notify
def notify(self, event):
    _notify(self, event)
    if event == "on_step" and self.state.step == int(os.environ["TEST_STOP_AT"]):
        self.stop_requested = "test"
trainer.Trainer._notify = notify
sys.exit(main(sys.argv[1:]))
"""


def _env(**extra) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def run_cli(*args, procs=1, script=None, timeout=240, **env) -> subprocess.CompletedProcess:
    """`scriptrnn train ARGS` as one process, or under torchrun as ``procs`` processes."""
    program = [str(script)] if script else ["-m", "scriptrnn"]
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs)] if procs > 1 else []
    return subprocess.run([sys.executable, *launcher, *program, "train", *map(str, args)], env=_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def curve(run_dir) -> dict:
    """{(step, kind): loss} from metrics.jsonl."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {(r["step"], k): r[k] for r in records for k in ("train_loss", "val_loss") if k in r}


def weights(run_dir) -> dict:
    return {k: v for k, v in load_file(run_dir / RESUME_FILE).items() if k.startswith("model.")}


def assert_close_runs(a, b, skip=()):
    ca, cb = curve(a), curve(b)
    shared = [key for key in ca if key in cb and key not in skip]
    assert len(shared) >= 6, (ca, cb)
    for key in shared:
        assert cb[key] == pytest.approx(ca[key], abs=TOLERANCE), key
    for name, tensor in weights(a).items():
        assert torch.allclose(weights(b)[name], tensor, atol=TOLERANCE, rtol=0), name


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: 40 steps in one process (no torchrun at all)."""
    folder = tmp_path_factory.mktemp("one")
    data = folder / "scripts.txt"
    data.write_text(DIALOGUE * 60, encoding="utf-8")
    done = run_cli(data, "--out", folder / "run", *FLAGS)
    assert done.returncode == 0, done.stderr
    return data, folder / "run"


def test_two_processes_give_the_loss_curve_of_one_with_the_same_global_batch(one_process, tmp_path):
    data, reference = one_process
    done = run_cli(data, "--out", tmp_path / "run", *FLAGS, procs=2)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("held-out loss") == 1  # rank 0 reports for both
    samples = [json.loads(line)["step"] for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert samples == [10, 10, 20, 20, 30, 30, 40, 40]  # rank 0 samples, once per check and temperature
    assert_close_runs(reference, tmp_path / "run")
    final = [json.loads((d / "config.json").read_text())["metrics"]["val"] for d in (reference, tmp_path / "run")]
    assert final[1]["tokens"] == final[0]["tokens"]  # the ranks scored the held-out text between them
    assert final[1]["loss"] == pytest.approx(final[0]["loss"], abs=TOLERANCE)


@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_a_checkpoint_resumes_with_another_number_of_processes(one_process, tmp_path, first, then):
    data, reference = one_process
    out, hook = tmp_path / "run", tmp_path / "stop_at.py"
    hook.write_text(STOP_AT)
    stopped = run_cli(data, "--out", out, *FLAGS, procs=first, script=hook, TEST_STOP_AT="20")
    with safe_open(str(out / RESUME_FILE), "pt") as f:
        meta = f.metadata()
    # One process stops at once; several agree on a stop one step later.
    assert json.loads(meta["loop"])["step"] == 20 + (first > 1), stopped.stderr
    assert meta["world_size"] == str(first)
    resumed = run_cli("--resume", out, "--quiet", procs=then)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "config.json").read_text())["metrics"]["steps"] == 40
    # (The train loss logged at step 30 averages steps 21-30; after a resume at step 21, 22-30.)
    skip = {(30, "train_loss")} if first > 1 else set()
    assert_close_runs(reference, out, skip)  # carried state, optimizer and data position all came across


def test_with_dropout_ranks_draw_their_own_masks_and_a_resume_on_as_many_is_exact(one_process, tmp_path):
    data, _ = one_process
    flags = [*FLAGS, "--dropout", "0.3"]
    whole, parts, hook = tmp_path / "whole", tmp_path / "parts", tmp_path / "stop_at.py"
    hook.write_text(STOP_AT)
    assert run_cli(data, "--out", whole, *flags, procs=2).returncode == 0
    run_cli(data, "--out", parts, *flags, procs=2, script=hook, TEST_STOP_AT="20")
    assert run_cli("--resume", parts, "--quiet", procs=2).returncode == 0
    saved = load_file(whole / RESUME_FILE)
    assert not torch.equal(saved["rng.torch"], saved["rng.torch.1"])  # each rank its own dropout
    for name, tensor in weights(whole).items():
        assert torch.equal(weights(parts)[name], tensor), name  # every rank's generator came back


def test_a_global_batch_that_does_not_split_evenly_is_one_line_from_rank_0(one_process, tmp_path):
    data, _ = one_process
    done = run_cli(data, "--out", tmp_path / "run", *FLAGS, "--batch-size", "7", procs=2, timeout=120)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("scriptrnn: error:")]
    assert errors == ["scriptrnn: error: --batch-size 7 is the global batch and must split evenly over the 2 "
                      "processes; use a multiple of 2 (e.g. 6 or 8)"]
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- a rank that dies or hangs
# Started by hand with torchrun's variables and no torchrun: no agent tears the others
# down, so rank 0 has to notice by itself.


def start_ranks(data, out, timeout_s):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = [*FLAGS, "--max-steps", "1000000", "--eval-every", "1000000", "--dist-timeout", str(timeout_s)]
    return [subprocess.Popen([sys.executable, "-m", "scriptrnn", "train", str(data), "--out", str(out), *flags],
                             env=_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                                      MASTER_PORT=str(port)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]


def wait_until_training(ranks, out, deadline_s=120):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert all(p.poll() is None for p in ranks), [p.communicate() for p in ranks]
        if (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().count("train_loss") >= 2:
            return
        time.sleep(0.05)
    raise AssertionError("the ranks never started training")


@pytest.mark.parametrize("how, timeout_s, within_s", [("dies", 600, 30), ("hangs", 3, 30)])
def test_a_rank_that_dies_or_hangs_stops_the_others_with_one_line(one_process, tmp_path, how, timeout_s,
                                                                  within_s):
    data, _ = one_process
    ranks = start_ranks(data, tmp_path / "run", timeout_s)
    try:
        wait_until_training(ranks, tmp_path / "run")
        ranks[1].send_signal(signal.SIGKILL if how == "dies" else signal.SIGSTOP)
        start = time.monotonic()
        _, stderr = ranks[0].communicate(timeout=within_s)  # rank 0 must not wait for ever
        took = time.monotonic() - start
    finally:
        for p in ranks:
            p.kill()
            p.communicate()
    assert ranks[0].returncode == 2, stderr
    # after the run's opening line ("model: char level, ..."), which says what it trains: the error, in one line
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("model: ")]
    assert len(lines) == 1 and lines[0].startswith("scriptrnn: error: rank 0 of 2 lost contact"), stderr
    assert "Traceback" not in stderr and "--resume" in lines[0]
    if how == "hangs":
        assert "hung for over 3 s" in lines[0] and took >= 2


def test_adaptive_softmax_trains_under_two_processes(tmp_path):
    """A tail cluster with no target in one rank's batch gets no gradient there: DDP must allow it."""
    import random

    rng = random.Random(0)
    words = [f"w{i}" for i in range(1_500)]
    lines = [f"{rng.choice(['jerry', 'elaine'])}: {' '.join(rng.choices(words[:50], k=5) + rng.choices(words, k=1))}"
             for _ in range(2_000)]
    data = tmp_path / "words.txt"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    flags = [f for f in FLAGS if f not in ("char",)]
    flags[flags.index("--level") + 1:flags.index("--level") + 1] = ["word"]
    done = run_cli(data, "--out", tmp_path / "run", *flags, "--softmax", "adaptive", "--no-tie-weights",
                   "--min-count", "1", "--max-steps", "15", procs=2, timeout=180)  # every w_i: 1,000+ words
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["metrics"]["steps"] == 15
