"""`scriptrnn train DATA ... --resume`: the run's own command again continues it; anything different is named."""

from __future__ import annotations

import json

import pytest

import scriptrnn
from scriptrnn.cli import main
from scriptrnn.errors import ScriptRNNError

from .conftest import DIALOGUE

SMALL = ["--hidden-size", "16", "--embedding-size", "8", "--layers", "1", "--seq-len", "8", "--batch-size", "4",
         "--eval-every", "10", "--eval-tokens", "200", "--quiet"]


def _steps(out) -> int:
    return json.loads((out / "config.json").read_text())["metrics"]["steps"]


def test_the_same_train_command_plus_resume_continues_the_run(tmp_path, dialogue_file, capsys):
    out = tmp_path / "run"
    command = ["train", str(dialogue_file), "--out", str(out), "--level", "word", *SMALL]
    assert main([*command, "--max-steps", "10"]) == 0
    # The same command with --resume (and a longer --max-steps, which a resume may change) goes on from step 10.
    assert main([*command, "--max-steps", "20", "--resume"]) == 0
    assert _steps(out) == 20
    assert "done:" in capsys.readouterr().out


def test_a_resume_given_the_run_s_data_and_settings_starts_from_the_saved_step(tmp_path, dialogue_file):
    settings = dict(hidden_size=16, embedding_size=8, num_layers=1, seq_len=8, batch_size=4, eval_every=5,
                    eval_tokens=200, progress=False, level="char", dropout=0.0, tie_weights=False)
    first_steps = []

    def stop_at_5(event, trainer):
        if event == "on_step" and trainer.state.step == 5:
            trainer.stop_requested = "test"

    def note(event, trainer):
        if event == "on_step":
            first_steps.append(trainer.state.step)

    stopped = scriptrnn.train(dialogue_file, tmp_path / "run", max_steps=12, callbacks=[stop_at_5], **settings)
    assert stopped.steps == 5
    resumed = scriptrnn.train(str(dialogue_file), tmp_path / "run", resume=True, max_steps=12, callbacks=[note],
                              encoding="utf-8", **settings)
    assert resumed.steps == 12 and first_steps[0] == 6


@pytest.fixture
def small_run(tmp_path, dialogue_file):
    out = tmp_path / "run"
    scriptrnn.train(dialogue_file, out, max_steps=2, hidden_size=16, embedding_size=8, num_layers=1, seq_len=8,
                    batch_size=4, eval_every=2, eval_tokens=100, progress=False)
    return dialogue_file, out


@pytest.mark.parametrize("change,named", [
    (dict(hidden_size=32), "--hidden-size 32 differs from the run's 16"),
    (dict(num_layers=2), "--layers 2 differs from the run's 1"),
    (dict(tie_weights=True), "--tie-weights differs from the run's --no-tie-weights"),
    (dict(level="word"), "--level word differs from the run's char"),
    (dict(lr=0.01), "--lr 0.01 differs from the run's 0.003"),
    (dict(encoding="latin-1"), "--encoding latin-1 differs from the run's utf-8"),
    (dict(genres=["tragedies"]), "DATA (the built-in shakespeare corpus) differs from the run's"),
])
def test_a_resume_that_differs_is_refused_naming_the_difference(small_run, change, named):
    data, out = small_run
    with pytest.raises(ScriptRNNError, match="^--resume: ") as refused:
        scriptrnn.train(None if "genres" in change else data, out, resume=True, progress=False, **change)
    assert named in str(refused.value) and "--overwrite" in str(refused.value)


def test_a_resume_with_other_data_is_refused_in_one_line(small_run, tmp_path, capsys):
    data, out = small_run
    other = tmp_path / "other.txt"
    other.write_text(DIALOGUE.upper() * 60)
    assert main(["train", str(other), "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"DATA {other.resolve()} differs from the run's {data.resolve()}" in err


def test_a_plain_resume_still_reads_the_run_s_own_corpus(small_run):
    _, out = small_run
    assert scriptrnn.train(out=out, resume=True, max_steps=4, progress=False).steps == 4
