"""Subword level (data/subword.py): byte-level BPE round trips any text; a run trains, resumes, exports and fine-tunes."""

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import scriptrnn
from scriptrnn import ScriptRNNError
from scriptrnn.cli import main
from scriptrnn.data.subword import SubwordTokenizer, cut_at_lines, held_out_start
from scriptrnn.data.tokenizer import tokenizer_from_dict
from scriptrnn.model.export import export_onnx
from scriptrnn.runtime import load as load_exported

from .conftest import DIALOGUE, TINY_TRAIN

SCRIPT = ("JERRY: What is the deal with airline food? I don't know.\n"
          "GEORGE: I am not a man of the sea, Jerry!\n"
          "ELAINE: Get out! (pushes him) You're kidding. Café, naïve, 日本語.\n"
          "KRAMER: \"Giddy up,\" I said; and he left.\n\n")


@pytest.fixture(scope="module")
def tokenizer() -> SubwordTokenizer:
    return SubwordTokenizer.fit([SCRIPT * 20], vocab_size=600)


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_any_unicode_text_round_trips(tokenizer, text):
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert tokenizer.hf.decode(ids.tolist()) == text  # the library's own decoder agrees
    decoder = tokenizer.decoder()  # streamed one id at a time, a character split over tokens waits
    assert "".join(decoder.step(int(i)) for i in ids) == text


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("ab \n:é😀")), cuts=st.lists(st.integers(0, 60), max_size=6))
def test_encoding_in_pieces_gives_the_whole_texts_ids(tokenizer, text, cuts):
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    assert "".join(cut_at_lines(pieces)) == text
    joined = np.concatenate([np.zeros(0, np.uint16), *tokenizer.encode_pieces(pieces)])
    assert np.array_equal(joined, tokenizer.encode(text))


def test_line_breaks_names_and_tags_are_single_tokens(tokenizer):
    assert tokenizer.token_id("\n") is not None
    assert len(tokenizer.encode("JERRY")) == 1  # a frequent speaker's name: one token, split from its colon
    assert tokenizer.reserved_ids == () and tokenizer.unk_id is None
    tagged = SubwordTokenizer.fit([SCRIPT], vocab_size=300, keep_whole=["\ue000"])
    assert tagged.token_id("\ue000") is not None and tagged.decode(tagged.encode("\ue000\nJERRY")) == "\ue000\nJERRY"


def test_the_vocabulary_travels_in_tokenizer_json(tokenizer):
    data = json.loads(json.dumps(tokenizer.to_dict()))
    again = tokenizer_from_dict(data)
    assert again.level == "subword" and again.vocab_size == tokenizer.vocab_size
    assert np.array_equal(again.encode(SCRIPT), tokenizer.encode(SCRIPT))
    with pytest.raises(ScriptRNNError, match="BPE"):
        tokenizer_from_dict({"level": "subword", "tokenizer": {"model": {"type": "WordPiece"}}})
    damaged = json.loads(json.dumps(data))
    damaged["tokenizer"]["model"]["merges"] = 7
    with pytest.raises(ScriptRNNError, match="tokenizer.json"):
        tokenizer_from_dict(damaged)
    with pytest.raises(ScriptRNNError, match="lone surrogate"):
        tokenizer.encode("a\ud800")
    assert tokenizer.decode(tokenizer.encode("a\ud800b", strict=False)) == "ab"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A subword run of a few steps on a script whose held-out end has a word the rest never has."""
    folder = tmp_path_factory.mktemp("subword")
    text = SCRIPT * 40 + "NEWMAN: Zyzzyva zyzzyva zyzzyva.\n" * 10  # all inside the last 10%
    (folder / "script.txt").write_text(text, encoding="utf-8")
    out = folder / "run"
    result = scriptrnn.train(folder / "script.txt", out, level="subword", subword_vocab_size=400,
                             **dict(TINY_TRAIN, max_steps=6, eval_every=3))
    assert result.steps == 6
    return folder, out, text


def test_the_vocabulary_is_learnt_from_the_training_part_only(run):
    folder, out, text = run
    config = json.loads((out / "config.json").read_text())
    tokenizer = scriptrnn.load(out).tokenizer
    assert len(tokenizer.encode(" zyzzyva")) > 1  # only in the held-out end: no merge made it one token
    assert len(tokenizer.encode("GEORGE")) == 1
    cut = held_out_start(len(text), config["training"]["val_fraction"])
    assert config["corpus"]["val_characters"] == len(text) - cut
    assert config["corpus"]["train_tokens"] == len(tokenizer.encode(text[:cut]))
    assert config["metrics"]["val"]["bits_per_char"] > 0 and "scored_on" not in config["metrics"]["val"]
    report = scriptrnn.evaluate(out)  # the same held-out text, the same figure
    assert report["characters"] == len(text) - cut
    assert report["bits_per_char"] == pytest.approx(config["metrics"]["val"]["bits_per_char"], rel=1e-4)


def test_a_subword_run_resumes_exports_and_generates_without_pytorch(run, tmp_path):
    folder, out, _ = run
    resumed = scriptrnn.train(out=out, resume=True, max_steps=8, progress=False)
    assert resumed.steps == 8
    export_onnx(out, tmp_path / "onnx")
    assert json.loads((tmp_path / "onnx" / "tokenizer.json").read_text())["level"] == "subword"
    exported, trained = load_exported(tmp_path / "onnx", threads=1), scriptrnn.load(out)
    settings_ = dict(max_new_tokens=40, seed=3, temperature=0.9, num_return_sequences=2)
    texts = exported.generate("JERRY:", **settings_)
    assert texts == trained.generate("JERRY:", **settings_)
    assert all(t.startswith("JERRY:") for t in texts)
    figures = scriptrnn.evaluate(tmp_path / "onnx")
    assert figures["bits_per_char"] == pytest.approx(scriptrnn.evaluate(out)["bits_per_char"], rel=1e-4)


def test_a_subword_child_keeps_its_parents_vocabulary(run, capsys):
    folder, out, _ = run
    (folder / "new.txt").write_text(DIALOGUE * 40 + "NEWMAN: Hello, Jerry. ¡Qué día!\n" * 20, encoding="utf-8")
    child = scriptrnn.train(folder / "new.txt", folder / "child", init_from=str(out),
                            **dict(TINY_TRAIN, max_steps=3, eval_every=3))
    parent_json = json.loads((out / "tokenizer.json").read_text())
    assert json.loads((child.out_dir / "tokenizer.json").read_text()) == parent_json
    config = json.loads((child.out_dir / "config.json").read_text())
    assert config["parent"]["init_from"] == str(out) and config["training"]["level"] == "subword"
    for flag, said in ((["--level", "word"], "--level word contradicts the parent's subword"),
                       (["--vocab-size", "999"], "--vocab-size 999 contradicts the parent's 400")):
        code = main(["train", str(folder / "new.txt"), "--init-from", str(out), "--out", str(folder / "no"),
                     "--max-steps", "1", "--quiet", *flag])
        assert code != 0 and said in capsys.readouterr().err


def test_word_level_keeps_case_unless_told_to_fold(tmp_path):
    data = tmp_path / "script.txt"
    data.write_text(SCRIPT * 30, encoding="utf-8")
    kept = scriptrnn.train(data, tmp_path / "kept", level="word", **dict(TINY_TRAIN, max_steps=2))
    assert "JERRY" in scriptrnn.load(kept.out_dir).tokenizer.vocab
    assert "scored_on" not in scriptrnn.evaluate(kept.out_dir)
    assert main(["train", str(data), "--level", "word", "--lowercase", "--out", str(tmp_path / "folded"),
                 "--max-steps", "2", "--hidden-size", "32", "--embedding-size", "16", "--layers", "1",
                 "--seq-len", "16", "--batch-size", "8", "--quiet"]) == 0
    folded = scriptrnn.load(tmp_path / "folded")
    assert folded.tokenizer.lowercase and "jerry" in folded.tokenizer.vocab and "JERRY" not in folded.tokenizer.vocab
    said = "lower-cased text (this model folds case and cannot write capitals"
    assert scriptrnn.evaluate(tmp_path / "folded")["scored_on"].startswith(said)
    assert folded.config.metrics.val["scored_on"].startswith(said)
