"""Fine-tuning with --init-from (training/init_from.py): weights, vocabulary, speakers, styles, the record."""

import dataclasses
import hashlib
import json
import math

import pytest
import torch

import scriptrnn
from scriptrnn import ScriptRNNError
from scriptrnn.cli import main
from scriptrnn.model.checkpoint import load_checkpoint
from scriptrnn.training.config import FINETUNE_DEFAULTS
from scriptrnn.training.config import resolve
from scriptrnn.training.init_from import NEW_TOKEN_PROBABILITY, child_model, read_parent

from .conftest import DIALOGUE, TINY_TRAIN, make_run

NEW_TEXT = ("newman: hello, jerry. ¡qué día! the mailman knows.\n"
            "jerry: newman! what is the deal?\n") * 80
FINE = dict(TINY_TRAIN, max_steps=10, eval_every=5)


@pytest.fixture(scope="module")
def parents(tmp_path_factory):
    """A char-level and a word-level parent, trained a little on the dialogue."""
    folder = tmp_path_factory.mktemp("parents")
    data = folder / "scripts.txt"
    data.write_text(DIALOGUE * 60, encoding="utf-8")
    for level in ("char", "word"):
        scriptrnn.train(data, folder / level, level=level, **dict(TINY_TRAIN, max_steps=20))
    (folder / "new.txt").write_text(NEW_TEXT, encoding="utf-8")
    return folder


def test_char_level_keeps_the_parents_rows_and_adds_rare_new_ones(parents):
    parent = read_parent(parents / "char")
    old_vocab = parent.tokenizer.vocab
    run = scriptrnn.train(parents / "new.txt", parents / "char-child", init_from=str(parents / "char"), **FINE)
    _, tokenizer, config = load_checkpoint(run.out_dir)
    assert tokenizer.vocab[:len(old_vocab)] == old_vocab  # every character the parent knew keeps its id
    assert set(tokenizer.vocab[len(old_vocab):]) == set(NEW_TEXT) - set(old_vocab) == set("¡éíq")
    # Before any training step: old rows are the parent's, and each new character starts at most p likely.
    model = child_model(parent, config_model(config), seed=0).eval()
    V_old = len(old_vocab)
    for name, tensor in parent.model.state_dict().items():
        assert torch.equal(model.state_dict()[name][:tensor.shape[0]], tensor), name
    logits, _ = model(torch.randint(0, tokenizer.vocab_size, (4, 50)))  # (B, T, V)
    new_share = logits.softmax(-1)[..., V_old:]
    assert new_share.max() <= NEW_TOKEN_PROBABILITY
    bias = model.decoder.bias
    assert torch.allclose(bias[V_old:], bias[:V_old].mean() + math.log(NEW_TOKEN_PROBABILITY * V_old))
    rows = model.embedding.weight[V_old:]
    assert not torch.equal(rows[0], rows[1])  # new embedding rows start apart (noise)


def config_model(config):
    from scriptrnn.model.checkpoint import model_config

    return model_config(config)


def test_the_run_records_its_parent_and_takes_its_shape_and_defaults(parents):
    child = parents / "char-record"
    scriptrnn.train(parents / "new.txt", child, init_from=str(parents / "char"), **FINE)
    config = json.loads((child / "config.json").read_text())
    parent_config = json.loads((parents / "char" / "config.json").read_text())
    record = config["parent"]
    assert record["path"] == str((parents / "char").resolve())
    assert record["weights_sha256"] == hashlib.sha256((parents / "char" / "model.safetensors").read_bytes()).hexdigest()
    assert record["held_out_loss"] == parent_config["metrics"]["val"]["loss"]
    assert {k: v for k, v in config["model"].items() if k != "vocab_size"} == \
        {k: v for k, v in parent_config["model"].items() if k != "vocab_size"}
    assert config["training"]["lr"] == FINETUNE_DEFAULTS["lr"]
    assert config["training"]["warmup_steps"] == FINETUNE_DEFAULTS["warmup_steps"]
    # Speakers merge, the new corpus's first.
    assert config["corpus"]["speakers"][:2] == ["newman", "jerry"] and "kramer" in config["corpus"]["speakers"]
    assert scriptrnn.load(child).generate("kramer", max_new_tokens=5, seed=0)[0].startswith("kramer:")


def test_a_child_keeps_its_parents_regularisation_unless_told(parents):
    parent = read_parent(str(parents / "char"))
    # a parent trained before char level's locked output dropout became the default, with weight drop on
    parent.model.config = dataclasses.replace(parent.model_config, dropout_output=0.0, weight_drop=0.1)
    V = parent.model_config.vocab_size
    resolved = resolve({}, parent=parent.settings(), vocab_size=V)
    assert (resolved.model.dropout_output, resolved.model.weight_drop) == (0.0, 0.1)  # not the level's defaults
    assert resolved.decided_by["dropout_output"] == resolved.decided_by["hidden_size"] == "parent"
    flagged = resolve({"dropout_output": 0.5}, parent=parent.settings(), vocab_size=V)
    assert flagged.model.dropout_output == 0.5 and flagged.decided_by["dropout_output"] == "user"  # a flag wins


def test_word_level_keeps_the_union_of_words(parents):
    run = scriptrnn.train(parents / "new.txt", parents / "word-child", init_from=str(parents / "word"),
                          **FINE)
    old = read_parent(parents / "word").tokenizer.vocab
    _, tokenizer, _ = load_checkpoint(run.out_dir)
    assert tokenizer.vocab[:len(old)] == old and "airline" in tokenizer.vocab  # the parent's words stay
    assert {"newman", "mailman", "hello"} <= set(tokenizer.vocab[len(old):])  # new words are appended
    model = scriptrnn.load(run.out_dir)
    assert model.generate("george", max_new_tokens=3, seed=0)[0].startswith("george:")


@pytest.mark.parametrize("flags, match", [
    (["--hidden-size", "64"], "--hidden-size 64 contradicts the parent's 32"),
    (["--level", "word"], "--level word contradicts the parent's char"),
    (["--cell", "gru"], "--cell gru contradicts the parent's lstm"),
])
def test_flags_that_contradict_the_parent_are_one_line(parents, tmp_path, capsys, flags, match):
    code = main(["train", str(parents / "new.txt"), "--init-from", str(parents / "char"), "--out",
                 str(tmp_path / "r"), "--max-steps", "1", *flags])
    err = capsys.readouterr().err
    assert code == 2 and match in err and err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_an_exported_model_or_a_resume_cannot_take_init_from(parents, tmp_path, capsys):
    exported = tmp_path / "exported"
    exported.mkdir()
    (exported / "model.onnx").write_bytes(b"")
    assert main(["train", str(parents / "new.txt"), "--init-from", str(exported), "--out", str(tmp_path / "r")]) == 2
    assert "an exported (ONNX) model cannot be fine-tuned" in capsys.readouterr().err
    assert main(["train", "--resume", str(parents / "char"), "--init-from", "builtin"]) == 2
    assert "cannot change --init-from" in capsys.readouterr().err


def test_styles_carry_over(tmp_path):
    (tmp_path / "a.txt").write_text(DIALOGUE * 40, encoding="utf-8")
    (tmp_path / "b.txt").write_text(NEW_TEXT, encoding="utf-8")
    scriptrnn.train([f"{tmp_path / 'a.txt'}:seinfeld", f"{tmp_path / 'b.txt'}:other"], tmp_path / "styled",
                    **dict(TINY_TRAIN, max_steps=5))
    scriptrnn.train(tmp_path / "b.txt", tmp_path / "child", init_from=str(tmp_path / "styled"),
                    **dict(TINY_TRAIN, max_steps=5))
    child = scriptrnn.load(tmp_path / "child")
    assert set(child.styles) == {"seinfeld", "other"}
    assert child.generate(style="seinfeld", max_new_tokens=10, seed=0)[0]


def test_adaptive_parents_take_new_words_only_where_their_clusters_stay(tmp_path):
    parent = make_run(tmp_path / "adaptive", level="word", softmax="adaptive")
    (tmp_path / "new.txt").write_text((" ".join(f"z{i}" for i in range(30)) + "\n") * 100, encoding="utf-8")
    with pytest.raises(ScriptRNNError, match="moves its adaptive softmax's clusters"):
        scriptrnn.train(tmp_path / "new.txt", tmp_path / "child", init_from=str(parent), max_steps=1, progress=False)
    (tmp_path / "same.txt").write_text(DIALOGUE * 80, encoding="utf-8")  # no word the parent lacks
    run = scriptrnn.train(tmp_path / "same.txt", tmp_path / "same", init_from=str(parent), max_steps=2,
                          batch_size=4, seq_len=8, eval_every=2, progress=False)
    assert run.steps == 2


def test_builtin_from_the_command_line(tmp_path, capsys):
    (tmp_path / "new.txt").write_text(NEW_TEXT, encoding="utf-8")
    assert main(["train", str(tmp_path / "new.txt"), "--init-from", "builtin", "--out", str(tmp_path / "r"),
                 "--max-steps", "2", "--batch-size", "4", "--seq-len", "16", "--eval-every", "2", "--quiet"]) == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["parent"]["init_from"] == "builtin"
    assert config["model"]["hidden_size"] == scriptrnn.info()["hidden_size"]  # the parent's shape
    assert "ROMEO" in config["corpus"]["speakers"]
