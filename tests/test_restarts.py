"""Starts killed before anything could continue them: they restart with the same command (issue 28, 10-11)."""

from __future__ import annotations

from scriptrnn.cli import main
from scriptrnn.model.checkpoint import CONFIG_FILE, RESUME_FILE

from .test_interrupts import RUN_FLAGS, start_training

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
