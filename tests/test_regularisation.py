"""The AWD-LSTM regularisers (model/regularisation.py): what each drops, that eval runs the undropped model,
and that a run with all of them trains, generates, exports and sweeps."""

import json

import numpy as np
import pytest
import torch

from scriptrnn import ModelConfig, RNNLanguageModel, ScriptRNNError
from scriptrnn.cli import main
from scriptrnn.model.regularisation import embedding_dropout, locked_dropout, recurrent_layers

ALL_ON = dict(dropout_input=0.3, dropout_hidden=0.3, dropout_output=0.3, embedding_dropout=0.2, weight_drop=0.5)


def test_locked_dropout_keeps_one_mask_over_time():
    x = torch.ones(6, 50, 8)  # (B, T, F)
    out = locked_dropout(x, 0.5, training=True)
    assert torch.equal(out, out[:, :1].expand_as(out))  # every time step alike
    assert set(out.unique().tolist()) <= {0.0, 2.0} and (out == 0).any()
    assert torch.equal(locked_dropout(x, 0.5, training=False), x)


def test_embedding_dropout_drops_every_occurrence_of_a_token():
    torch.manual_seed(0)
    ids = torch.tensor([[1, 2, 1, 3, 2, 1]] * 4)  # (B, T)
    emb = torch.ones(4, 6, 5)
    out = embedding_dropout(emb, ids, vocab_size=4, p=0.5, training=True)
    for token in (1, 2, 3):
        rows = out[ids == token]  # every occurrence, in every sequence of the batch
        assert torch.equal(rows, rows[:1].expand_as(rows)) and rows[0, 0].item() in (0.0, 2.0)
    assert torch.equal(embedding_dropout(emb, ids, 4, 0.5, training=False), emb)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_layer_by_layer_equals_the_fused_stack_when_nothing_drops(cell):
    config = ModelConfig(vocab_size=20, cell=cell, num_layers=3, hidden_size=12, embedding_size=6, dropout=0.0)
    model = RNNLanguageModel(config)
    emb = torch.randn(4, 9, 6)
    state = tuple(torch.randn(3, 4, 12) for _ in range(2 if cell == "lstm" else 1))
    state = state if cell == "lstm" else state[0]
    want, want_state = model.rnn(emb, state)
    got, got_state = recurrent_layers(model.rnn, emb, state, config, training=True)
    assert torch.allclose(got, want, atol=1e-6)
    for g, w in zip(got_state if cell == "lstm" else (got_state,), want_state if cell == "lstm" else (want_state,)):
        assert torch.allclose(g, w, atol=1e-6)


def test_weight_drop_changes_training_but_never_the_weights_or_eval():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=20, num_layers=2, hidden_size=12, embedding_size=6, **ALL_ON)
    model = RNNLanguageModel(config)
    plain = RNNLanguageModel(ModelConfig(vocab_size=20, num_layers=2, hidden_size=12, embedding_size=6))
    plain.load_state_dict(model.state_dict())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randint(0, 20, (3, 8))
    loss, _ = model.train()(x, targets=x)
    loss.backward()  # the raw hidden-to-hidden weights get gradients through the dropped copy
    assert model.rnn.weight_hh_l0.grad is not None and model.rnn.weight_hh_l0.grad.abs().sum() > 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    model.eval(), plain.eval()
    with torch.no_grad():
        assert torch.equal(model(x)[0], plain(x)[0])  # evaluation and generation: the undropped model
        assert torch.equal(model(x[:, :1], model.init_hidden(3))[0], plain(x[:, :1], plain.init_hidden(3))[0])


@pytest.mark.parametrize("name", list(ALL_ON))
def test_settings_are_checked(name):
    with pytest.raises(ScriptRNNError, match=f"--{name.replace('_', '-')} must be in"):
        ModelConfig(vocab_size=20, **{name: 1.0}).validate()


def test_older_configs_without_the_settings_still_load():
    old = ModelConfig(vocab_size=20).to_dict()
    for name in ALL_ON:
        del old[name]
    assert ModelConfig.from_dict(old).weight_drop == 0.0


def test_weight_decay_reaches_weight_matrices_only(tmp_path):
    from scriptrnn.training.loop import Trainer
    from scriptrnn.training.config import TrainConfig

    model = RNNLanguageModel(ModelConfig(vocab_size=20, hidden_size=8, embedding_size=8, tie_weights=True))
    ids = np.arange(2000) % 20
    trainer = Trainer(model, ids, ids[:100], TrainConfig(weight_decay=0.1, batch_size=2, seq_len=4), tmp_path,
                      level="char", progress=False)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in trainer.optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_ih_l1", "rnn.weight_hh_l1"}
    # the tied output layer is the embedding: left alone, like biases


def test_a_regularised_run_trains_generates_and_exports(tmp_path, dialogue_file, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "run"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in ALL_ON.items()]
    assert main(["train", str(dialogue_file), "--out", str(out), "--max-steps", "6", "--layers", "2",
                 "--hidden-size", "16", "--embedding-size", "8", "--seq-len", "16", "--batch-size", "4",
                 "--eval-every", "3", "--quiet", *flags]) == 0
    assert json.loads((out / "config.json").read_text())["model"]["weight_drop"] == 0.5
    assert main(["generate", str(out), "--max-new-tokens", "20", "--seed", "1", "--no-whole-lines"]) == 0
    # export checks the graph against the PyTorch model in eval mode: the undropped weights
    assert main(["export", str(out), "--out", str(tmp_path / "onnx")]) == 0


def test_the_sweep_can_vary_each_setting():
    from scriptrnn.sweep import build_config, command_line_config

    raw = command_line_config({}, vary=["weight_drop=0,0.2,0.4", "dropout_hidden=0.25"], budget={"max_steps": 5})
    study = build_config(raw).studies[0]
    assert study.vary == {"weight_drop": [0.0, 0.2, 0.4], "dropout_hidden": [0.25]}
    with pytest.raises(ScriptRNNError, match="weight_drop=1.*--weight-drop must be in"):
        build_config(command_line_config({}, vary=["weight_drop=1"], budget={"max_steps": 5}))


def test_the_ablation_study_file_is_valid():
    from pathlib import Path

    from scriptrnn.sweep import build_config, read_toml

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sweeps" / "regularisation.toml"
    config = build_config(read_toml(path), path.parent)
    assert config.baseline["time_budget"] == 5 and config.baseline["weight_drop"] == 0.0
    varied = {name for study in config.studies for name in study.vary}
    assert set(ALL_ON) | {"weight_decay"} <= varied
