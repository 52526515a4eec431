"""Samples while training (training/samples.py): shown, kept in samples.jsonl, and never disturbing the run."""

import json

import pytest
import torch
from safetensors.torch import load_file

import scriptrnn
from scriptrnn.cli import main
from scriptrnn.model.directory import RESUME_FILE
from scriptrnn.training.samples import SAMPLES_FILE, read_samples, write_samples

from .conftest import TINY_TRAIN, make_run

# Dropout on and two layers: a sampler that left the model in eval mode or drew from PyTorch's
# random numbers would change the masks, and so the weights.
SETTINGS = dict(TINY_TRAIN, level="char", max_steps=40, eval_every=10, patience=None, dropout=0.2, num_layers=2)


def test_samples_do_not_change_training(tmp_path, dialogue_file):
    scriptrnn.train(dialogue_file, tmp_path / "with", **SETTINGS)
    scriptrnn.train(dialogue_file, tmp_path / "without", sample_every=0, **SETTINGS)
    with_samples, without = (load_file(tmp_path / run / RESUME_FILE) for run in ("with", "without"))
    for name, tensor in with_samples.items():
        assert torch.equal(tensor, without[name]), name
    assert not (tmp_path / "without" / SAMPLES_FILE).exists()
    records = read_samples(tmp_path / "with")
    assert [(r["step"], r["temperature"]) for r in records] == [(s, t) for s in (10, 20, 30, 40) for t in (0.5, 1.0)]
    assert all(set(r) == {"step", "elapsed_s", "temperature", "text", "seconds"} for r in records)
    assert all(len(r["text"]) == 200 for r in records)  # char level: a token is a character
    # A fixed seed: the same run writes the same samples, and a check's text differs from the last
    # only by what the model learned.
    scriptrnn.train(dialogue_file, tmp_path / "again", **SETTINGS)
    assert [r["text"] for r in read_samples(tmp_path / "again")] == [r["text"] for r in records]


def test_sampling_restores_the_mode_and_leaves_the_random_state_alone(tmp_path):
    model = scriptrnn.load(make_run(tmp_path / "run"))
    network = model.model.train()
    before = torch.get_rng_state()
    texts = write_samples(network, model.tokenizer, model.config, "cpu", seed=3)
    assert network.training and torch.equal(torch.get_rng_state(), before)
    assert len(texts) == 2 and all(len(t) == 200 for t in texts)
    assert texts == write_samples(network, model.tokenizer, model.config, "cpu", seed=3)


def test_sample_every_counts_checks_and_quiet_hides_them(tmp_path, dialogue_file, capsys):
    flags = ["--hidden-size", "16", "--layers", "1", "--seq-len", "16", "--batch-size", "8", "--max-steps", "50",
             "--eval-every", "10", "--eval-tokens", "500"]
    assert main(["train", str(dialogue_file), "--out", str(tmp_path / "a"), "--sample-every", "2", *flags]) == 0
    err = capsys.readouterr().err
    assert sorted({r["step"] for r in read_samples(tmp_path / "a")}) == [10, 30, 50]  # checks 1, 3, 5
    assert "sample at step 30, temperature 0.5:" in err and "sample at step 20" not in err
    assert main(["train", str(dialogue_file), "--out", str(tmp_path / "b"), "--quiet", *flags]) == 0
    assert "sample at step" not in capsys.readouterr().err and len(read_samples(tmp_path / "b")) == 10
    assert main(["train", str(dialogue_file), "--out", str(tmp_path / "c"), "--sample-every", "-1", *flags]) == 2
    assert "--sample-every must be a whole number >= 0" in capsys.readouterr().err


def test_a_resumed_run_appends_and_overwrite_removes(tmp_path, dialogue_file):
    def stop_at_20(event, trainer):
        if event == "on_step" and trainer.state.step == 20:
            trainer.stop_requested = "test"

    run = tmp_path / "run"
    scriptrnn.train(dialogue_file, run, callbacks=[stop_at_20], **SETTINGS)
    with open(run / SAMPLES_FILE, "a", encoding="utf-8") as f:  # what a run killed after step 20 left
        f.write(json.dumps({"step": 30, "elapsed_s": 1, "temperature": 0.5, "text": "stale"}) + "\n{\"step\": 4")
    scriptrnn.train(out=run, resume=True, progress=False, sample_every=1)
    assert [r["step"] for r in read_samples(run)] == [10, 10, 20, 20, 30, 30, 40, 40]
    assert "stale" not in (run / SAMPLES_FILE).read_text()
    scriptrnn.train(dialogue_file, run, overwrite=True, sample_every=0, **SETTINGS)
    assert not (run / SAMPLES_FILE).exists()


@pytest.mark.parametrize("level", ["word"])
def test_word_level_samples_are_about_200_characters(tmp_path, dialogue_file, level):
    scriptrnn.train(dialogue_file, tmp_path / "run", **dict(SETTINGS, level=level, max_steps=10))
    texts = [r["text"] for r in read_samples(tmp_path / "run")]
    assert len(texts) == 2 and all(80 <= len(t) <= 500 for t in texts)
