"""Starts killed before anything could continue them: they restart with the same command (issue 28, 10-11)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from scriptrnn.cli import main
from scriptrnn.files import CONFIG_FILE
from scriptrnn.model.directory import RESUME_FILE

from .test_interrupts import RUN_FLAGS, start_training
from .test_sweep import TINY_SETS, read_rows
from .test_sweep_workers import plan_trials

SHORT = ["--eval-every", "5", "--max-steps", "10"]


def test_a_run_killed_before_its_first_resume_point_restarts_with_the_same_command(capsys, tmp_path, dialogue_file):
    out = tmp_path / "run"
    proc = start_training(dialogue_file, out, *SHORT, kill_in_write=1)  # SIGKILL while writing the first one
    proc.communicate(timeout=300)
    assert proc.returncode != 0 and (out / CONFIG_FILE).exists() and not (out / RESUME_FILE).exists()

    assert main(["train", "--resume", str(out)]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nothing to resume yet" in err, err
    assert "without --resume starts it again" in err

    assert main(["train", str(dialogue_file), "--out", str(out), *RUN_FLAGS, *SHORT]) == 0
    assert "stopped before its first resume point; starting it again" in capsys.readouterr().err
    assert (out / RESUME_FILE).exists()


def test_a_finished_run_is_still_refused_without_resume_or_overwrite(capsys, tmp_path, dialogue_file):
    out = tmp_path / "run"
    assert main(["train", str(dialogue_file), "--out", str(out), *RUN_FLAGS, *SHORT]) == 0
    (out / RESUME_FILE).unlink()  # no resume point left, but it finished: its metrics say so
    assert main(["train", str(dialogue_file), "--out", str(out), *RUN_FLAGS, *SHORT]) != 0
    assert "pass --resume to continue it" in capsys.readouterr().err


# A sweep whose process dies (SIGKILL) right after enqueuing its plan's second run.
KILLED_WHILE_PLANNING = """
import os, signal, sys
import optuna
from scriptrnn.cli import main

enqueue, calls = optuna.Study.enqueue_trial, []
def enqueue_then_die(self, *args, **kwargs):
    enqueue(self, *args, **kwargs)
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
optuna.Study.enqueue_trial = enqueue_then_die
sys.exit(main(sys.argv[1:]))
"""


def test_a_sweep_killed_while_writing_its_plan_continues_when_started_again(capsys, tmp_path, dialogue_file):
    pytest.importorskip("optuna")
    args = ["sweep", "--vary", "seq_len=8,32", "--max-steps", "4", "--data", dialogue_file, *TINY_SETS,
            "--out", tmp_path / "out", "--quiet"]
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_PLANNING, *map(str, args)], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(plan_trials(f"sqlite:///{tmp_path / 'out' / 'sweep.db'}")) == 2  # of 3: the plan is unfinished

    started = time.monotonic()
    assert main([str(a) for a in args]) == 0
    assert time.monotonic() - started < 50  # the dead writer is seen at once, not after the 60 s wait
    assert "left unfinished by a worker that stopped while writing it; completing it" in capsys.readouterr().err
    rows = read_rows(tmp_path / "out")
    assert sorted(r["label"] for r in rows) == ["baseline", "seq_len=32", "seq_len=8"]
    assert all(r["status"] == "finished" for r in rows)
    trials = plan_trials(f"sqlite:///{tmp_path / 'out' / 'sweep.db'}")
    assert sorted(t.user_attrs["run"] for t in trials) == sorted(r["run"] for r in rows)  # each run once
