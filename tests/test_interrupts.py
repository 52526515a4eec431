"""Interrupted runs: real signals to a real `scriptrnn train`, kills at any moment, exact resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import scriptrnn
from scriptrnn import ScriptRNNError
from scriptrnn.model.directory import RESUME_FILE, WEIGHTS_FILE
from scriptrnn.cli import main

from .conftest import TINY_TRAIN

# The real command line, each training step slowed by a sleep so that a test can
# reliably catch the run in the middle (the sleep changes no number the run computes).
SLOW_CLI = """
import os, sys, time
from scriptrnn.training import loop as trainer
from scriptrnn.cli import main

_step = trainer.Trainer._train_step
def slow_step(self):
    time.sleep(float(os.environ["TEST_STEP_DELAY"]))
    return _step(self)
trainer.Trainer._train_step = slow_step

kill_at = int(os.environ.get("TEST_KILL_IN_WRITE", "0"))
if kill_at:  # die the way a power cut would: resume checkpoint number N written, not yet renamed
    import signal
    _replace, writes = os.replace, []
    def replace(src, dst):
        if str(dst).endswith("resume.safetensors"):
            writes.append(dst)
            if len(writes) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return _replace(src, dst)
    os.replace = replace

sys.exit(main(sys.argv[1:]))
"""

RUN_FLAGS = ["--level", "char", "--hidden-size", "32", "--embedding-size", "16", "--layers", "2",
             "--dropout", "0.2", "--seq-len", "16", "--batch-size", "8", "--lr", "0.01", "--eval-tokens", "2000",
             "--quiet"]


def start_training(data, out, *flags, delay=0.01, kill_in_write=0):
    env = {**os.environ, "TEST_STEP_DELAY": str(delay), "TEST_KILL_IN_WRITE": str(kill_in_write),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", SLOW_CLI, "train", str(data), "--out", str(out),
                             *RUN_FLAGS, *flags], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_step(proc, out, step, timeout=120):
    """Block until metrics.jsonl shows ``step`` (the run is inside its loop, handlers installed)."""
    deadline = time.monotonic() + timeout
    metrics = out / "metrics.jsonl"
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended early: {proc.communicate()}"
        if metrics.exists():
            steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines() if line.endswith("}")]
            if steps and max(steps) >= step:
                return
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("the run made no progress")


def resume_step(out) -> int:
    with safe_open(str(out / RESUME_FILE), "pt") as f:
        return json.loads(f.metadata()["loop"])["step"]


def model_tensors(path):
    return {k: v for k, v in load_file(path).items() if k.startswith("model.")}


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_and_says_how_to_resume(tmp_path, dialogue_file, sig, code):
    out = tmp_path / "run"
    proc = start_training(dialogue_file, out, "--max-steps", "100000", "--eval-every", "1000", delay=0.005)
    wait_for_step(proc, out, 1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert f"Resume with: scriptrnn train --resume {out}" in err
    assert f"interrupted ({sig.name})" in err
    # The saved point is where the run stopped: past the first log line, far from the end.
    assert 1 <= resume_step(out) < 100000


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path, dialogue_file):
    flags = ["--max-steps", "120", "--eval-every", "40", "--save-every", "15"]
    killed = tmp_path / "killed"
    proc = start_training(dialogue_file, killed, *flags)
    wait_for_step(proc, killed, 50)
    proc.kill()  # SIGKILL: no handler runs, nothing is flushed
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert 45 <= resume_step(killed) < 120

    assert main(["train", "--resume", str(killed), "--quiet"]) == 0
    assert main(["train", str(dialogue_file), "--out", str(tmp_path / "whole"), *RUN_FLAGS, *flags]) == 0
    whole, parts = model_tensors(tmp_path / "whole" / RESUME_FILE), model_tensors(killed / RESUME_FILE)
    assert whole.keys() == parts.keys()
    for name in whole:
        assert torch.equal(whole[name], parts[name]), name
    assert torch.equal(load_file(tmp_path / "whole" / WEIGHTS_FILE)["decoder.weight"],
                       load_file(killed / WEIGHTS_FILE)["decoder.weight"])
    # What the killed run logged after its checkpoint was dropped, not repeated.
    steps = [r["step"] for r in map(json.loads, (killed / "metrics.jsonl").read_text().splitlines())
             if "train_loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 120


def test_kill_while_writing_a_checkpoint_keeps_the_last_one(tmp_path, dialogue_file):
    out = tmp_path / "run"
    # The third resume write (step 30) dies after its temporary file is complete but before the rename.
    proc = start_training(dialogue_file, out, "--max-steps", "60", "--eval-every", "1000", "--save-every", "10",
                          delay=0.0, kill_in_write=3)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert leftovers and leftovers[0].startswith(".resume.safetensors.")
    assert resume_step(out) == 20  # the previous checkpoint, whole

    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert resume_step(out) == 60
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # the stale temporary is gone


def test_save_every_minutes_writes_resume_points_between_checks(tmp_path, dialogue_file):
    seen = []

    def record(event, trainer):
        if event == "on_step" and (trainer.out_dir / RESUME_FILE).exists():
            seen.append(resume_step(trainer.out_dir))

    scriptrnn.train(dialogue_file, tmp_path / "run", callbacks=[record],
                    **dict(TINY_TRAIN, max_steps=4, eval_every=1000, save_every_minutes=1e-9))
    assert seen == [1, 2, 3, 4]  # without it the first resume point would come at step 1000


def test_save_every_flag_takes_steps_or_minutes(capsys, tmp_path, dialogue_file):
    from scriptrnn.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["train", "--save-every", "500"]).save_every == {"save_every": 500}
    assert parse(["train", "--save-every", "10m"]).save_every == {"save_every_minutes": 10.0}
    assert parse(["train", "--save-every", "2.5min"]).save_every == {"save_every_minutes": 2.5}
    for bad in ["0", "-3", "0m", "nanm", "-1m"]:
        try:  # refused by the settings' check (a return) or by the parser itself (its exit), in one line either way
            code = main(["train", str(dialogue_file), "--out", str(tmp_path / "r"), f"--save-every={bad}"])
        except SystemExit as exited:
            code = exited.code
        assert code == 2
        err = capsys.readouterr().err
        assert "--save-every" in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit):
        parse(["train", "--save-every", "ten"])


def test_a_torn_last_metrics_line_does_not_stop_a_resume(tmp_path, dialogue_file):
    def stop_at_20(event, trainer):
        if event == "on_step" and trainer.state.step == 20:
            trainer.stop_requested = "test"

    settings = dict(TINY_TRAIN, max_steps=30)
    scriptrnn.train(dialogue_file, tmp_path / "run", callbacks=[stop_at_20], **settings)
    with open(tmp_path / "run" / "metrics.jsonl", "a") as f:
        f.write('{"step": 30, "train_lo')  # a kill in the middle of a line
    result = scriptrnn.train(out=tmp_path / "run", resume=True, progress=False)
    assert result.steps == 30
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 30


def test_divergence_stops_with_a_message_and_keeps_the_checkpoint(tmp_path, dialogue_file):
    def poison(event, trainer):
        if event == "on_step" and trainer.state.step == 25:
            with torch.no_grad():
                trainer.model.decoder.bias.fill_(float("nan"))

    with pytest.raises(ScriptRNNError, match="diverged at step 26.*lower --lr"):
        scriptrnn.train(dialogue_file, tmp_path / "run", callbacks=[poison], **dict(TINY_TRAIN, max_steps=50))
    assert resume_step(tmp_path / "run") == 20
    scriptrnn.load(tmp_path / "run")  # the best weights so far still load


def test_resume_refuses_a_corpus_that_changed(tmp_path, dialogue_file):
    def stop_at_20(event, trainer):
        if event == "on_step" and trainer.state.step == 20:
            trainer.stop_requested = "test"

    scriptrnn.train(dialogue_file, tmp_path / "run", callbacks=[stop_at_20], **dict(TINY_TRAIN, max_steps=40))
    dialogue_file.write_text(dialogue_file.read_text().replace("jerry", "newman"))
    with pytest.raises(ScriptRNNError, match="has changed since this run started"):
        scriptrnn.train(out=tmp_path / "run", resume=True, progress=False)


# ------------------------------------------------------------- damaged resume files (found by the fuzzer)

def _stopped_run(tmp_path, dialogue_file):
    def stop_at_20(event, trainer):
        if event == "on_step" and trainer.state.step == 20:
            trainer.stop_requested = "test"

    scriptrnn.train(dialogue_file, tmp_path / "run", callbacks=[stop_at_20], **dict(TINY_TRAIN, max_steps=40))
    return tmp_path / "run"


def _edit_resume(run, edit_tensors=None, edit_meta=None):
    from scriptrnn.model.checkpoint import load_tensors, save_tensors

    tensors, meta = load_tensors(run / RESUME_FILE)
    if edit_tensors:
        edit_tensors(tensors)
    if edit_meta:
        edit_meta(meta)
    save_tensors(run / RESUME_FILE, tensors, metadata=meta)


def _set(mapping, key, value):
    mapping[key] = value


@pytest.mark.parametrize("edit_tensors, edit_meta", [
    (None, lambda m: _set(m, "param_groups", "{}")),  # ValueError from torch before
    (None, lambda m: _set(m, "param_groups", "1.5")),  # TypeError before
    (None, lambda m: _set(m, "param_groups", '["lr", "x"]')),  # TypeError before
    (None, lambda m: _set(m, "loop", json.dumps({"step": "20"}))),
    (None, lambda m: _set(m, "loop", json.dumps({**json.loads(m["loop"]), "window": 10**6}))),
    (lambda t: t.pop("optim.0.step"), None),  # KeyError 'step' at the first step before
    (lambda t: _set(t, "optim.0.exp_avg", torch.zeros(3)), None),  # a shape mismatch only at the next step
    (lambda t: _set(t, "hidden.0", torch.zeros(1, 2, 3)), None),  # a shape mismatch inside the LSTM
    (lambda t: _set(t, "rng.torch", torch.zeros(3, dtype=torch.uint8)), None),
])
def test_damaged_resume_file_is_a_one_line_error(tmp_path, dialogue_file, edit_tensors, edit_meta):
    run = _stopped_run(tmp_path, dialogue_file)
    _edit_resume(run, edit_tensors, edit_meta)
    with pytest.raises(ScriptRNNError, match="resume"):
        scriptrnn.train(out=run, resume=True, progress=False)


def test_resume_file_that_is_a_pickle_is_refused(tmp_path, dialogue_file):
    run = _stopped_run(tmp_path, dialogue_file)
    torch.save({"step": 20}, run / RESUME_FILE)
    with pytest.raises(ScriptRNNError, match="pickle"):
        scriptrnn.train(out=run, resume=True, progress=False)
