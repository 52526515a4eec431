"""The text report: exact figures on tiny made-up texts, and a model trained to copy reported as copying."""

import json
import random

import pytest

from scriptrnn.cli import main
from scriptrnn.evaluation.text_report import distinct_n, ks_distance, text_report

from .conftest import DIALOGUE

SCRIPT = "jerry: what is the deal?\ngeorge: i am busy.\nelaine: get out!\n" * 3


def test_distinct_n_counts_unique_ngrams_within_each_text():
    words = [["a", "b", "a", "b"], ["b", "c"]]
    assert distinct_n(words, 1) == 3 / 6
    assert distinct_n(words, 2) == 3 / 4  # (a b) twice, (b a), (b c); never (b b) across the two texts
    assert distinct_n(words, 3) == 2 / 2
    assert distinct_n([["a"]], 2) is None


def test_distinct_n_in_the_report_reads_words_not_punctuation():
    report = text_report(["Hello, hello! HELLO world."], SCRIPT, SCRIPT, "char")
    assert report.samples.words == 4
    assert report.samples.distinct_1 == 2 / 4
    assert report.samples.distinct_2 == 2 / 3


def test_known_speakers_as_speakers_py_matches_names():
    sample = "jerry: hello.\nnewman: hello, jerry.\n[a direction]\nGEORGE (to jerry): what?\n\n"
    report = text_report([sample], SCRIPT, SCRIPT, "char")
    assert report.samples.lines == 4  # the blank line is not a line
    assert report.samples.speaker_lines == 3 / 4  # the direction is not a speech
    assert report.samples.known_speakers == 2 / 3  # GEORGE (to jerry) is george; newman is unknown
    chosen = text_report([sample], SCRIPT, SCRIPT, "char", speakers=["Newman"])
    assert chosen.samples.known_speakers == 1 / 3


def test_prose_has_no_speaker_measures():
    # One line in six looks like a speech ("Note: ..."): too few for the "Name: line" layout.
    prose = "Call me Ishmael.\nSome years ago.\nNote: a whale.\nIt is a way I have.\nOf the spleen.\nAnd so on.\n"
    report = text_report(["jerry: hi\n"], prose, prose, "char")
    assert report.samples.speaker_lines is None and report.samples.known_speakers is None
    assert "known speakers" not in report.table()


def test_real_words_at_char_level_only():
    report = text_report(["the cat zat dog\n"], "the cat sat\n", "the cat\n", "char")
    assert report.samples.real_words == 2 / 4
    assert text_report(["the cat zat dog\n"], "the cat sat\n", "the cat\n", "word").samples.real_words is None


def test_longest_copy_in_characters_and_words():
    train = "the quick brown fox jumps over the lazy dog\n"
    report = text_report(["a quick brown fox leaps\n"], train, train, "word")
    assert report.samples.longest_copy_chars == len(" quick brown fox ")
    assert report.samples.longest_copy == " quick brown fox "
    assert report.samples.longest_copy_words == 3
    assert text_report(["QQQ"], train, train, "char").samples.longest_copy_chars == 0


def test_longest_copy_found_in_a_large_random_text():
    rng = random.Random(0)
    train = "".join(rng.choice("abcdefghij \n") for _ in range(300_000))
    planted = train[123_456:123_456 + 123]
    sample = "0123456789" + planted + "9876543210"  # digits never occur in the training text
    report = text_report(["0" * 50, sample], train, train[-1000:], "char")
    assert report.samples.longest_copy_chars == 123
    assert report.samples.longest_copy == planted[:120]


def test_share_of_40_character_spans_found_in_training():
    train = "".join(chr(ord("a") + i % 26) for i in range(50)) + "\n"
    sample = train[:45] + "ZZZZZ"  # 11 windows of 40: those starting at 0..5 lie inside the copy
    report = text_report([sample], train, train, "char")
    assert report.copy_window == "40 characters"
    assert report.samples.copied_share == 6 / 11
    assert text_report(["short"], train, train, "char").samples.copied_share is None


def test_share_of_8_word_spans_at_word_level():
    train = "one two three four five six seven eight nine ten\n"
    report = text_report(["one two three four five six seven eight nine zero\n"], train, train, "word")
    assert report.copy_window == "8 words"
    assert report.samples.copied_share == 2 / 3  # 1-8 and 2-9 found, 3-zero not


def test_line_lengths_against_the_held_out_text():
    report = text_report(["ab\nabcd\n"], SCRIPT, "xy\nwxyz\n", "char")
    assert report.samples.mean_line_chars == 3.0
    assert report.samples.median_line_chars == 3.0
    assert report.samples.line_length_distance == 0.0
    assert ks_distance([1, 2], [10, 10]) == 1.0
    assert ks_distance([], [1]) is None


def test_reference_row_scores_held_out_text_as_long_as_the_samples():
    heldout = "george: i am busy.\n" * 20
    report = text_report(["jerry: new words here\n"] * 2, SCRIPT, heldout, "char")
    reference = report.reference
    assert reference.name == "held-out"
    assert 44 <= reference.characters < 44 + 19  # whole lines, about the samples' 44 characters
    assert reference.known_speakers == 1.0
    assert reference.longest_copy_chars == len("\ngeorge: i am busy.\n")
    assert text_report(["x"], SCRIPT, "", "char").reference is None


def test_report_is_json_and_an_aligned_table():
    report = text_report(["jerry: what is the deal?\n"], SCRIPT, SCRIPT, "char")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["samples"]["known_speakers"] == 1.0 and data["reference"]["name"] == "held-out"
    lines = report.table().splitlines()
    assert lines[0].startswith("measure") and "held-out (reference)" in lines[0]
    widths = {len(line) for line in lines if not line.startswith("longest copy in")}
    assert len(widths) == 1  # every row as wide as the heading
    assert set(report.columns()) >= {"text_known_speakers", "text_copied_share", "text_distinct_2"}


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="level"):
        text_report([], "", "", "byte")


# ---------------------------------------------------------------- a real model


@pytest.fixture(scope="module")
def copying_run(tmp_path_factory):
    """A small char model trained (about 3 s) until it knows its 4-line corpus by heart."""
    import scriptrnn

    folder = tmp_path_factory.mktemp("copy")
    data = folder / "scripts.txt"
    data.write_text(DIALOGUE * 60, encoding="utf-8")
    scriptrnn.train(data, folder / "run", level="char", max_steps=300, lr=2e-2, hidden_size=64, embedding_size=16,
                    num_layers=1, seq_len=32, batch_size=8, dropout=0.0, eval_every=100, eval_tokens=2000,
                    progress=False)
    return folder / "run"


def test_a_model_that_learned_its_corpus_by_heart_is_reported_as_copying(copying_run):
    from scriptrnn.api import sample_report

    report, texts = sample_report(copying_run, 2, max_new_tokens=400, temperature=0.5, seed=0)
    assert len(texts) == 2 and report.sample_count == 2
    assert report.samples.copied_share > 0.8
    assert report.samples.longest_copy_chars > 200
    assert report.samples.known_speakers > 0.9


def test_shuffled_text_is_reported_as_not_copying(copying_run):
    from scriptrnn.api import load
    from scriptrnn.evaluation.scoring import run_texts
    from scriptrnn.training.config import TrainConfig

    train, heldout = run_texts(load(copying_run), TrainConfig.val_fraction)
    letters = list(train[:800])
    random.Random(1).shuffle(letters)
    words = train[:800].split()
    random.Random(2).shuffle(words)
    report = text_report(["".join(letters), " ".join(words)], train, heldout, "char")
    assert report.samples.copied_share < 0.05
    assert report.samples.longest_copy_chars < 40


def test_cli_evaluate_with_samples_prints_the_table(copying_run, tmp_path, capsys):
    written = tmp_path / "samples.txt"
    code = main(["evaluate", str(copying_run), "--samples", "2", "--max-new-tokens", "200",
                 "--write-samples", str(written)])
    out = capsys.readouterr().out
    assert code == 0
    assert "perplexity" in out and "copied 40 characters spans" in out and "known speakers" in out
    assert "samples (2)" in out and "held-out (reference)" in out
    assert written.read_text().startswith("===== 1 =====\n")


def test_cli_evaluate_json_holds_the_text_report(copying_run, capsys):
    assert main(["evaluate", str(copying_run), "--samples", "1", "--max-new-tokens", "200", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["loss"] > 0 and data["text"]["sample_count"] == 1
    assert data["text"]["samples"]["copied_share"] > 0.5


def test_cli_write_samples_needs_samples(copying_run, tmp_path, capsys):
    assert main(["evaluate", str(copying_run), "--write-samples", str(tmp_path / "s.txt")]) == 2
    assert "add --samples" in capsys.readouterr().err


def test_samples_end_on_a_whole_line(copying_run):
    from scriptrnn.api import sample_report

    _, texts = sample_report(copying_run, 3, max_new_tokens=150, seed=4)
    assert all(text.endswith("\n") for text in texts if text)


def test_a_sweep_with_samples_shows_the_text_columns(tmp_path, dialogue_file, capsys):
    import csv

    out = tmp_path / "sweep"
    tiny = ["--set", "hidden_size=16", "--set", "embedding_size=8", "--set", "layers=1", "--set", "seq_len=16",
            "--set", "batch_size=8", "--set", "eval_every=10", "--set", "eval_tokens=2000"]
    code = main(["sweep", "--vary", "dropout=0.0", "--max-steps", "10", "--data", str(dialogue_file), *tiny,
                 "--out", str(out), "--quiet", "--samples", "1"])
    assert code == 0, capsys.readouterr().err
    with open(out / "results.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    assert all(0.0 <= float(row["text_copied_share"]) <= 1.0 and int(row["text_characters"]) > 0 for row in rows)
    report = (out / "report.md").read_text()
    assert "| known speakers | real words | distinct-2 | copied spans | longest copy (chars) |" in report


def test_turn_taking_a_speaker_following_himself_and_directions_to_himself():
    sample = ("jerry: hi.\n\njerry: (to george) hello again.\ngeorge: (to jerry, pointing) you.\n"
              "[setting: monk's cafe]\ngeorge: me.\nelaine: (to elaine) who is this?\n"
              "kramer: (to jerry's mother) hi.\nKRAMER (to Kramer): no.\n")
    row = text_report([sample], SCRIPT, SCRIPT, "char").samples
    # Pairs: jerry-jerry (a blank line between), jerry-george, george-elaine, elaine-kramer, kramer-kramer;
    # the setting breaks george-george.
    assert row.same_speaker == 2 / 5
    # elaine to elaine and KRAMER (to Kramer); "jerry's mother" is not jerry, nor anyone else the speaker.
    assert row.self_addressed == 2 / 7
    reference = text_report([sample], SCRIPT, SCRIPT, "char").reference
    assert reference.same_speaker == 0.0 and reference.self_addressed == 0.0  # the held-out SCRIPT
    assert "same speaker twice in a row" in text_report([sample], SCRIPT, SCRIPT, "char").table()


def test_a_sample_never_follows_another():
    row = text_report(["jerry: hi.\n", "jerry: hi.\n", "jerry: hi.\ngeorge: yo.\n"], SCRIPT, SCRIPT, "word").samples
    assert row.same_speaker == 0.0  # one pair, in the last sample; the jerrys of three samples are no pairs
