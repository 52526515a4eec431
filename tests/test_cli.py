"""The real command line: one end-to-end path in a subprocess, and every bad input in-process."""

import json
import subprocess
import sys

import pytest

from scriptrnn.cli import main

from .conftest import DIALOGUE


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "scriptrnn", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_train_generate_evaluate_corpus_end_to_end(tmp_path, dialogue_file):
    out = tmp_path / "run"
    done = run_cli("train", dialogue_file, "--level", "word", "--max-steps", "60", "--hidden-size", "32",
                   "--embedding-size", "16", "--layers", "1", "--seq-len", "16", "--batch-size", "8",
                   "--eval-every", "30", "--lr", "0.01", "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    assert "held-out loss" in done.stdout
    written = run_cli("generate", out, "--prime", "jerry", "--max-new-tokens", "40", "--seed", "1",
                      "--output", tmp_path / "scene.txt")
    assert written.returncode == 0, written.stderr
    assert written.stdout.startswith("jerry:")
    assert (tmp_path / "scene.txt").read_text().startswith("jerry:")
    scored = run_cli("evaluate", out, dialogue_file)
    assert scored.returncode == 0 and "perplexity" in scored.stdout
    stats = run_cli("corpus", dialogue_file)
    assert stats.returncode == 0 and "Speakers: 4" in stats.stdout


def test_generate_with_no_model_uses_the_built_in_one():
    done = run_cli("generate", "--max-new-tokens", "60", "--seed", "0")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip()) > 20


def _one_line_error(capsys, argv, match):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert match in err, err
    return err


def test_missing_file(capsys, tmp_path):
    _one_line_error(capsys, ["train", tmp_path / "nope.txt", "--out", tmp_path / "r"], "no such file")


def test_empty_file(capsys, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    _one_line_error(capsys, ["train", tmp_path / "empty.txt", "--out", tmp_path / "r"], "empty")


def test_non_utf8_names_file_and_offset(capsys, tmp_path):
    (tmp_path / "latin.txt").write_bytes(b"jerry: caf\xe9 au lait\n")
    err = _one_line_error(capsys, ["corpus", tmp_path / "latin.txt"], "latin.txt")
    assert "offset 10" in err


def test_folder_with_no_text(capsys, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    _one_line_error(capsys, ["train", tmp_path / "data", "--out", tmp_path / "r"], "data")


@pytest.mark.parametrize("flag, value", [("--seq-len", "0"), ("--batch-size", "-1"), ("--hidden-size", "0"),
                                         ("--hidden-size", "10000000"), ("--layers", "0")])
def test_zero_negative_and_absurd_sizes(capsys, tmp_path, dialogue_file, flag, value):
    _one_line_error(capsys, ["train", dialogue_file, flag, value, "--out", tmp_path / "r"], flag)


def test_corpus_smaller_than_one_batch(capsys, tmp_path):
    (tmp_path / "tiny.txt").write_text("jerry: hi.\n" * 3)
    _one_line_error(capsys, ["train", tmp_path / "tiny.txt", "--out", tmp_path / "r"], "needs at least")


def test_corrupt_checkpoint(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{not json")
    _one_line_error(capsys, ["generate", tmp_path / "run"], "not valid JSON")


def test_checkpoint_from_another_format_version(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps({"format": "scriptrnn-checkpoint", "format_version": 7}))
    _one_line_error(capsys, ["generate", tmp_path / "run"], "newer scriptrnn")


def test_unknown_prime_word(capsys):
    _one_line_error(capsys, ["generate", "--prime", "ROMEO: \u2603", "--max-new-tokens", "5"], "vocabulary")


def test_bad_sampling_values(capsys):
    _one_line_error(capsys, ["generate", "--top-p", "1.5"], "top_p")
    _one_line_error(capsys, ["generate", "--temperature", "-1"], "temperature")


def test_unknown_flag_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--hiden-size", "3"])
    assert exit_info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
