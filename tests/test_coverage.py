"""Scores that drop nothing (evaluation/coverage.py, evaluation/scoring.py): every token of new text is scored or the
report says loudly which were not; every loss is also in bits per character of the text."""

import json
import math

import numpy as np
import pytest

import scriptrnn
from scriptrnn.cli import main
from scriptrnn.evaluation.coverage import UNKNOWN, characters_from, encode_text
from scriptrnn.data.tokenizer import CharTokenizer, WordTokenizer

from .conftest import DIALOGUE, TINY_TRAIN, make_run


def test_word_tokens_are_found_where_the_tokenizer_finds_them():
    text = 'JERRY: what?! i don\'t know...\n  george:\t(sighs) a "big" no-mans-land; <unk> fine!\r\n'
    tok = WordTokenizer.fit(text)
    encoded = encode_text(tok, text)
    assert len(encoded.marked) == len(tok.split(text)) and (encoded.marked != UNKNOWN).all()
    folded = text.lower()
    for start, word in zip(encoded.starts, tok.split(text)):
        assert folded[start:].startswith(tok.names.get(word, word))
    for k in (0, 5, len(encoded.marked) - 1):
        assert characters_from(tok, text, k) == encoded.characters - encoded.starts[k]


def test_unknown_words_are_scored_as_unk_and_counted():
    tok = WordTokenizer.fit("jerry: hello there.\njerry: hello.\n", min_count=2)
    facts = encode_text(tok, "jerry: hello newman and kramer.").coverage()
    assert facts["out_of_vocabulary"] == 3 and facts["dropped"] == 0
    assert list(facts["ids"]).count(tok.unk_id) == 3 and len(facts["ids"]) == 7


def test_a_vocabulary_without_unk_counts_what_it_leaves_out():
    tok = CharTokenizer.fit("abc ")
    facts = encode_text(tok, "abc xyz").coverage()
    assert (facts["out_of_vocabulary"], facts["dropped"], len(facts["ids"]), facts["characters"]) == (3, 3, 4, 7)


def test_word_model_on_unseen_words_scores_every_token(tmp_path, capsys):
    run = make_run(tmp_path / "word", level="word")
    text = tmp_path / "new.txt"
    text.write_text("jerry: zorblax quimby flurn, george!\nnewman: hello, hello.\n" * 10, encoding="utf-8")
    report = scriptrnn.evaluate(run, text, held_out=False)
    words = len(scriptrnn.load(run).tokenizer.split(text.read_text()))
    assert report["dropped"] == 0 and "warning" not in report
    assert report["out_of_vocabulary"] == 60 and report["out_of_vocabulary_share"] == pytest.approx(60 / words)
    assert report["tokens"] >= words - 32  # every token, bar each of the 32 streams' first (it has no context)
    assert report["bits_per_char"] == pytest.approx(report["loss"] * words / len(text.read_text()) / math.log(2))
    assert main(["evaluate", str(run), str(text), "--all"]) == 0
    out, err = capsys.readouterr()
    assert "out_of_vocabulary: 60" in out and "dropped: 0" in out and "WARNING" not in err


def test_what_cannot_be_scored_is_said_loudly(tmp_path, capsys):
    run = make_run(tmp_path / "char", level="char")
    text = tmp_path / "new.txt"
    text.write_text("jerry: \u00e9t\u00e9 \u2603 na\u00efve!\n" * 20, encoding="utf-8")  # é, ☃, ï: unseen
    assert main(["evaluate", str(run), str(text), "--all"]) == 0
    out, err = capsys.readouterr()
    assert "WARNING: 100 characters of the text" in err and "NOT scored" in err
    assert "dropped: 100" in out and "NOT SCORED: 100 tokens" in out
    report = scriptrnn.evaluate(run, text, held_out=False)
    assert report["out_of_vocabulary"] == report["dropped"] == 100 and "NOT scored" in report["warning"]


def test_an_old_word_model_without_unk_says_what_it_drops(tmp_path):
    run = make_run(tmp_path / "old", level="word")
    saved = json.loads((run / "tokenizer.json").read_text())
    saved["vocab"] = [w for w in saved["vocab"] if w != "<unk>"] + ["spare"]  # as vocabularies were before
    (run / "tokenizer.json").write_text(json.dumps(saved))
    text = tmp_path / "new.txt"
    text.write_text("jerry: zorblax is the deal.\n" * 20, encoding="utf-8")
    report = scriptrnn.evaluate(run, text, held_out=False)
    assert report["dropped"] == report["out_of_vocabulary"] == 20 and "20 words" in report["warning"]


def test_training_reports_bits_per_char_at_word_level(tmp_path, dialogue_file):
    out = tmp_path / "run"
    result = scriptrnn.train(dialogue_file, out, level="word", max_steps=20, **TINY_TRAIN)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    checks = [r for r in records if "val_loss" in r]
    assert checks and all(r["val_bits_per_char"] > 0 for r in checks)
    config = json.loads((out / "config.json").read_text())
    val = config["metrics"]["val"]
    assert val["bits_per_char"] == pytest.approx(result.metrics["bits_per_char"])
    # the run's own figure and evaluate's agree: one definition
    report = scriptrnn.evaluate(out, dialogue_file)
    assert report["bits_per_char"] == pytest.approx(val["bits_per_char"], rel=1e-4)
    assert report["characters"] == config["corpus"]["val_characters"]
    assert np.isclose(report["loss"], val["loss"], rtol=1e-4)
