"""The real command line: one end-to-end path in a subprocess, and every bad input in-process."""

import json
import os
import re
import subprocess
import sys

import pytest

from scriptrnn.cli import main

from .conftest import DIALOGUE


def run_cli(*args, cwd=None):
    # One thread, as in-process tests use (conftest): on a busy 2-core machine, OpenMP's
    # spinning threads make a tiny model's steps a hundred times slower.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "scriptrnn", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env=env)


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
    # (Enough tokens for a whole line: the command ends on one, dropping a line cut short.)
    done = run_cli("generate", "--max-new-tokens", "300", "--seed", "0")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip()) > 20 and done.stdout.endswith("\n")


def test_the_readme_generate_shows_a_speech_with_any_seed(capsys):
    # The README's main command writes from a fresh run; here from the shipped model, in-process: every
    # seed shows at least one speech ("NAME: text"), whole or cut at a word end, and exits 0.
    for seed in range(20):
        assert main(["generate", "--prime", "romeo", "--max-new-tokens", "800", "--seed", str(seed)]) == 0
        out = capsys.readouterr().out
        assert re.search(r"^[A-Z][A-Za-z .'-]*: \S", out, re.M), (seed, out)


def _one_line_error(capsys, argv, match):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exited:  # a flag's own error, from the parser
        code = exited.code
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


def test_corpus_smaller_than_one_batch(capsys, tmp_path, dialogue_file):
    for lines in (1, 3, 200):
        (tmp_path / "tiny.txt").write_text("jerry: hi.\n" * lines)
        err = _one_line_error(capsys, ["train", tmp_path / "tiny.txt", "--out", tmp_path / "r"], "needs at least")
        assert "--batch-size 64 x --seq-len 128 with 10% held out needs at least 9,174" in err
    (tmp_path / "tiny.txt").write_text("jerry: hi.\n" * 20)
    _one_line_error(capsys, ["train", tmp_path / "tiny.txt", "--batch-size", "4", "--seq-len", "50", "--out",
                             tmp_path / "r"], "needs at least 227")
    # A refused start leaves no half run behind that would block the next try.
    assert not (tmp_path / "r").exists()
    assert main(["train", str(dialogue_file), "--out", str(tmp_path / "r"), "--max-steps", "1", "--hidden-size", "8",
                 "--layers", "1", "--seq-len", "8", "--batch-size", "2", "--quiet"]) == 0


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


# ------------------------------------------------------------- more bad input (issue 4)

def test_whitespace_only_file(capsys, tmp_path):
    (tmp_path / "blank.txt").write_text("  \n\t\n   \r\n")
    _one_line_error(capsys, ["train", tmp_path / "blank.txt", "--out", tmp_path / "r"], "empty")


def test_binary_file_named_explicitly(capsys, tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\x00\x01\x02jerry: hi\n" * 10)
    _one_line_error(capsys, ["corpus", tmp_path / "weights.bin"], "looks binary")


def test_csv_without_the_named_columns(capsys, tmp_path):
    (tmp_path / "lines.csv").write_text("Speaker,Line\nJERRY,hello\n")
    err = _one_line_error(capsys, ["train", tmp_path / "lines.csv", "--out", tmp_path / "r"], "no column 'Character'")
    assert "--speaker-column" in err


def test_single_very_long_line_reads_in_one_piece(capsys, tmp_path):
    """One 8 MB line of text, and a CSV cell of 1 MB (over the csv module's 128 KiB field limit)."""
    (tmp_path / "line.txt").write_text("jerry: " + "yada " * 1_600_000)
    assert main(["corpus", str(tmp_path / "line.txt")]) == 0
    assert "Words: 1,600,001" in capsys.readouterr().out
    (tmp_path / "long.csv").write_text('Character,Dialogue\nJERRY,"' + "yada " * 200_000 + '"\nGEORGE,no\n')
    assert main(["corpus", str(tmp_path / "long.csv")]) == 0
    assert "Speakers: 2" in capsys.readouterr().out


@pytest.mark.parametrize("flag, value, match", [
    ("--grad-clip", "nan", "--grad-clip"), ("--weight-decay", "nan", "--weight-decay"),
    ("--lr", "inf", "--lr"), ("--seed", str(2**70), "--seed"), ("--seed", "-1", "--seed"),
    ("--device", "meta", "--device"), ("--device", "bogus:x", "--device"), ("--val-fraction", "1.5", "--val-fraction"),
    ("--dropout", "nan", "--dropout"), ("--min-count", "0", "--min-count"),
])
def test_bad_training_values(capsys, tmp_path, dialogue_file, flag, value, match):
    _one_line_error(capsys, ["train", dialogue_file, f"{flag}={value}", "--out", tmp_path / "r"], match)


def test_model_too_big_for_memory(capsys, tmp_path, dialogue_file, monkeypatch):
    monkeypatch.setattr("scriptrnn.device.total_memory", lambda: 2**30)
    err = _one_line_error(capsys, ["train", dialogue_file, "--hidden-size", "4096", "--out", tmp_path / "r"],
                          "GiB to train")
    assert "1.0 GiB" in err and not (tmp_path / "r" / "model.safetensors").exists()


def test_temperature_zero_is_greedy_text(capsys):
    # --no-whole-lines: all 40 tokens, though the last line is cut short.
    assert main(["generate", "--temperature", "0", "--max-new-tokens", "40", "--prime", "ROMEO:",
                 "--no-whole-lines"]) == 0
    first = capsys.readouterr().out
    assert main(["generate", "--greedy", "--max-new-tokens", "40", "--prime", "ROMEO:", "--seed", "9",
                 "--no-whole-lines"]) == 0
    assert capsys.readouterr().out == first and len(first) > 40


def test_empty_prime_writes_text(capsys):
    assert main(["generate", "--prime", "", "--max-new-tokens", "30", "--seed", "1", "--no-whole-lines"]) == 0
    assert len(capsys.readouterr().out.strip()) > 10


def _word_model(path, min_count=1):
    from scriptrnn import ModelConfig, RNNLanguageModel
    from scriptrnn.model.checkpoint import save_run_files, save_weights
    from scriptrnn.data.tokenizer import WordTokenizer

    tok = WordTokenizer.fit(DIALOGUE * 3 + "newman: hello.\n", min_count=min_count)
    config = ModelConfig(vocab_size=tok.vocab_size, hidden_size=8, embedding_size=8)
    save_run_files(path, {"model": config.to_dict(), "corpus": {"speakers": ["jerry", "george"]}}, tok)
    save_weights(path, RNNLanguageModel(config))
    return path


def test_prime_of_only_unknown_words(capsys, tmp_path):
    with_unk = _word_model(tmp_path / "unk", min_count=2)  # rare words become <unk>
    _one_line_error(capsys, ["generate", with_unk, "--prime", "bania babka", "--max-new-tokens", "5"],
                    "none of the words")
    assert main(["generate", str(with_unk), "--prime", "jerry: babka", "--max-new-tokens", "5", "--no-whole-lines"]) == 0
    plain = _word_model(tmp_path / "plain")
    _one_line_error(capsys, ["generate", plain, "--prime", "bania", "--max-new-tokens", "5"], "'bania'")


def test_empty_prime_for_a_model_without_line_breaks(capsys, tmp_path):
    from scriptrnn import ModelConfig, RNNLanguageModel
    from scriptrnn.model.checkpoint import save_run_files, save_weights
    from scriptrnn.data.tokenizer import CharTokenizer

    tok = CharTokenizer.fit("abc ")
    config = ModelConfig(vocab_size=tok.vocab_size, hidden_size=8, embedding_size=4)
    save_run_files(tmp_path, {"model": config.to_dict()}, tok)
    save_weights(tmp_path, RNNLanguageModel(config))
    _one_line_error(capsys, ["generate", tmp_path, "--max-new-tokens", "5"], "needs a prime")


@pytest.mark.parametrize("argv, match", [
    (["--seed", str(2**64)], "seed"), (["--top-p", "0"], "top_p"), (["--top-k", "0"], "top_k"),
    (["--max-new-tokens", "-1"], "max_new_tokens"), (["--temperature", "nan"], "temperature"),
])
def test_bad_generation_values(capsys, argv, match):
    _one_line_error(capsys, ["generate", *argv], match)


def test_output_into_a_missing_folder_or_onto_a_folder(capsys, tmp_path):
    _one_line_error(capsys, ["generate", "--output", tmp_path / "no" / "scene.txt"], "no folder")
    _one_line_error(capsys, ["generate", "--output", tmp_path], "is a folder")
    assert list(tmp_path.iterdir()) == []


def test_out_where_nothing_can_be_written(capsys, tmp_path, dialogue_file):
    (tmp_path / "file").write_text("x")
    _one_line_error(capsys, ["train", dialogue_file, "--out", tmp_path / "file" / "run"], "--out")


def test_disk_errors_are_one_line(capsys, tmp_path, dialogue_file, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / "config.json"))

    monkeypatch.setattr("scriptrnn.model.checkpoint.write_atomic", full)
    _one_line_error(capsys, ["train", dialogue_file, "--out", tmp_path / "r"], "No space left on device")


def test_existing_run_asks_for_resume_or_overwrite_and_overwrite_keeps_other_files(capsys, tmp_path,
                                                                                   dialogue_file):
    out = tmp_path / "r"
    small = ["--max-steps", "2", "--hidden-size", "8", "--layers", "1", "--seq-len", "8", "--batch-size", "2",
             "--eval-every", "2", "--quiet", "--out", out]
    assert main(["train", str(dialogue_file), *map(str, small)]) == 0
    capsys.readouterr()
    (out / "notes.txt").write_text("mine")
    before = (out / "model.safetensors").read_bytes()
    _one_line_error(capsys, ["train", dialogue_file, *small], "--resume")
    assert (out / "model.safetensors").read_bytes() == before
    assert main(["train", str(dialogue_file), *map(str, small), "--overwrite", "--seed", "5"]) == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "model.safetensors").read_bytes() != before


def test_generation_output_replaces_a_file_whole_or_not_at_all(capsys, tmp_path):
    scene = tmp_path / "scene.txt"
    scene.write_text("yesterday's scene")
    _one_line_error(capsys, ["generate", "--prime", "\u2603", "--output", scene], "vocabulary")
    assert scene.read_text() == "yesterday's scene"
    assert main(["generate", "--max-new-tokens", "20", "--seed", "1", "--output", str(scene)]) == 0
    assert scene.read_text() == capsys.readouterr().out.rstrip("\n")
    assert [p.name for p in tmp_path.iterdir()] == ["scene.txt"]  # no temporary left beside it


def test_evaluate_with_a_damaged_val_fraction(capsys, tmp_path, dialogue_file):
    from scriptrnn.model.checkpoint import save_run_files, save_weights
    from scriptrnn import ModelConfig, RNNLanguageModel
    from scriptrnn.data.tokenizer import CharTokenizer

    tok = CharTokenizer.fit(dialogue_file.read_text())
    config = ModelConfig(vocab_size=tok.vocab_size, hidden_size=8, embedding_size=4)
    save_run_files(tmp_path / "r", {"model": config.to_dict(), "training": {"val_fraction": "10%"}}, tok)
    save_weights(tmp_path / "r", RNNLanguageModel(config))
    _one_line_error(capsys, ["evaluate", tmp_path / "r", dialogue_file], "--val-fraction")


def test_sigterm_outside_training_is_a_clean_interrupt(capsys, tmp_path, monkeypatch):
    import signal
    import time

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the corpus is being read
        time.sleep(1)

    monkeypatch.setattr("scriptrnn.data.sources.stream_corpus", terminated)  # what `corpus` reads with
    before = signal.getsignal(signal.SIGTERM)
    assert main(["corpus", str(tmp_path)]) == 130
    assert capsys.readouterr().err.strip() == "scriptrnn: interrupted"
    assert signal.getsignal(signal.SIGTERM) == before  # put back afterwards


def test_train_help_shows_the_defaults_each_level_really_uses():
    from scriptrnn.cli.parser import _shown, build_parser
    from scriptrnn.training.config import level_defaults

    parser = build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    char, word = level_defaults("char"), level_defaults("word")
    checked = set()
    for action in train._actions:
        if action.dest not in char or action.dest in ("level", "softmax", "device", "precision", "lowercase",
                                                      "save_every") \
                or action.help is None or "default" not in action.help:
            continue
        help_text = " ".join(action.help.split())
        assert f"default {_shown(char[action.dest])}" in help_text, (action.dest, help_text)
        if word[action.dest] != char[action.dest]:
            assert f"word level {_shown(word[action.dest])}" in help_text, (action.dest, help_text)
        checked.add(action.dest)
    assert {"hidden_size", "min_count", "weight_drop", "dropout_hidden", "embedding_dropout", "batch_size"} <= checked


def test_an_unknown_flag_points_at_its_own_commands_help(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "--no-such-flag"])
    err = capsys.readouterr().err
    assert exited.value.code != 0 and len(err.strip().splitlines()) == 1, err
    assert "unrecognized arguments: --no-such-flag (see scriptrnn train --help)" in err, err


def test_no_float_flag_of_any_command_takes_nan_or_infinity(capsys):
    # Issue 28: `serve --read-timeout nan` answered every request 408, `--timeout nan` removed the limit.
    from scriptrnn.cli.parser import build_parser

    parser = build_parser()
    flags = [(name, action.option_strings[0]) for name, command in parser.commands.items()
             for action in command._actions if action.type is float]
    assert ("serve", "--read-timeout") in flags and ("serve", "--timeout") in flags and ("train", "--lr") in flags
    for name, flag in flags:
        for value in ("nan", "inf", "-inf"):
            with pytest.raises(SystemExit) as exited:  # parsed only: a flag let through must not start a server
                parser.parse_args([name, f"{flag}={value}"])
            err = capsys.readouterr().err
            assert exited.value.code == 2 and len(err.strip().splitlines()) == 1, err
            assert f"argument {flag}: must be a finite number, got '{value}'" in err, err


def test_serve_limits_must_be_above_zero(capsys):
    _one_line_error(capsys, ["serve", "--read-timeout", "0"], "--read-timeout: must be a finite number of seconds")
    _one_line_error(capsys, ["serve", "--max-queue", "-1"], "--max-queue: must be a whole number above 0")
