"""--val-data (evaluation/val_data.py): train on all of DATA, validate on your own files; resume and evaluate read them."""

import json

import pytest

import scriptrnn
from scriptrnn import ScriptRNNError
from scriptrnn.cli import main
from scriptrnn.data.token_cache import TOKENS_FILE
from scriptrnn.data.tokenizer import fit_tokenizer

from .conftest import DIALOGUE, TINY_TRAIN

VAL = "jerry: the sea is no deal, george.\nelaine: get out! i said giddy up.\n" * 8


@pytest.fixture
def val_file(tmp_path):
    path = tmp_path / "val.txt"
    path.write_text(VAL, encoding="utf-8")
    return path


def test_trains_on_all_of_data_and_validates_on_the_files(tmp_path, dialogue_file, val_file):
    out = tmp_path / "run"
    result = scriptrnn.train(dialogue_file, out, val_data=[val_file], max_steps=30, **TINY_TRAIN)
    config = json.loads((out / "config.json").read_text())
    text = dialogue_file.read_text()
    assert config["corpus"]["train_tokens"] == len(fit_tokenizer(text, "char").encode(text))  # all of DATA
    assert config["corpus"]["val_data"]["source"]["paths"] == [str(val_file.resolve())]
    assert config["corpus"]["val_characters"] == len(VAL)
    # evaluate with no data scores the run the same way: the whole of its validation files
    report = scriptrnn.evaluate(out)
    assert report["loss"] == pytest.approx(result.metrics["loss"], rel=1e-4)
    assert report["characters"] == len(VAL) and report["tokens"] == result.metrics["tokens"]
    assert scriptrnn.evaluate(out, held_out=False)["characters"] == len(text)  # --all: the corpus, trained on


def test_resume_reads_the_files_again_and_refuses_changed_ones(tmp_path, dialogue_file, val_file, capsys):
    out = tmp_path / "run"
    scriptrnn.train(dialogue_file, out, val_data=[val_file], max_steps=20, **TINY_TRAIN)
    (out / TOKENS_FILE).unlink()  # the cache is rebuilt from DATA and the files
    resumed = scriptrnn.train(out=out, resume=True, max_steps=40, progress=False)
    assert resumed.steps == 40
    val_file.write_text(VAL + "kramer: one more line.\n", encoding="utf-8")
    with pytest.raises(ScriptRNNError, match="validation files .* have changed"):
        scriptrnn.train(out=out, resume=True, max_steps=60, progress=False)
    other = tmp_path / "other.txt"
    other.write_text(VAL, encoding="utf-8")
    capsys.readouterr()
    # The run's own command again (issue 16): another --val-data is refused by name.
    assert main(["train", "--resume", str(out), "--val-data", str(other)]) != 0
    assert "--val-data" in (err := capsys.readouterr().err) and "differs from the run's" in err


@pytest.mark.parametrize("extra, message", [
    (["--styles", "file"], "--val-data is for one corpus"),
    (["--val-fraction", "0.2"], "give one or the other"),
])
def test_refused_with_one_line(tmp_path, dialogue_file, val_file, capsys, extra, message):
    other = tmp_path / "other.txt"
    other.write_text(DIALOGUE * 40, encoding="utf-8")
    code = main(["train", str(dialogue_file), str(other), "--val-data", str(val_file), "--out",
                 str(tmp_path / "run"), "--max-steps", "2", *extra])
    err = capsys.readouterr().err
    assert code != 0 and len(err.strip().splitlines()) == 1 and message in err, err


def test_unknown_characters_of_the_files_are_said(tmp_path, dialogue_file, capsys):
    val = tmp_path / "val.txt"
    val.write_text(VAL + "\u2603\u2603\n", encoding="utf-8")
    scriptrnn.train(dialogue_file, tmp_path / "run", val_data=val, max_steps=2, **TINY_TRAIN)
    assert "--val-data: WARNING: 2 characters" in capsys.readouterr().err
