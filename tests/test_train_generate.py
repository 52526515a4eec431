"""A real (seconds-long) training run, then save -> load -> generate."""

import json
import math

import pytest

import scriptrnn
from scriptrnn import ScriptRNNError
from scriptrnn.model.directory import RESUME_FILE, WEIGHTS_FILE

from .conftest import TINY_TRAIN


@pytest.fixture(scope="module")
def word_run(tmp_path_factory):
    from .conftest import DIALOGUE

    folder = tmp_path_factory.mktemp("word")
    data = folder / "scripts.txt"
    data.write_text(DIALOGUE * 60, encoding="utf-8")
    result = scriptrnn.train(data, folder / "run", level="word", max_steps=150, lr=1e-2, **TINY_TRAIN)
    return result, folder / "run"


def test_training_learns_far_below_the_uniform_guess(word_run):
    result, run = word_run
    vocab_size = json.loads((run / "config.json").read_text())["model"]["vocab_size"]
    assert result.metrics["loss"] < 0.5 * math.log(vocab_size)
    assert result.steps == 150


def test_run_directory_holds_data_only_files(word_run):
    _, run = word_run
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "tokenizer.json", WEIGHTS_FILE, RESUME_FILE, "metrics.jsonl", "loss_curve.png"} <= names
    config = json.loads((run / "config.json").read_text())
    assert config["format_version"] == 1
    assert config["corpus"]["speakers"][:1] == ["jerry"]
    assert config["metrics"]["val"]["loss"] > 0
    assert (run / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("val_loss" in r for r in lines) and any("train_loss" in r for r in lines)


def test_generate_from_a_speaker_writes_name_colon_lines(word_run):
    _, run = word_run
    model = scriptrnn.load(run)
    text = model.generate("jerry", max_new_tokens=60, seed=1, temperature=0.5)[0]
    assert text.startswith("jerry:")
    assert " : " not in text and " ." not in text
    lines = [line for line in text.splitlines() if line]
    assert all(":" in line for line in lines[:-1])


def test_seed_repeats_and_batch_returns_n(word_run):
    _, run = word_run
    model = scriptrnn.load(run)
    a = model.generate("george", max_new_tokens=30, seed=5, num_return_sequences=3)
    b = model.generate("george", max_new_tokens=30, seed=5, num_return_sequences=3)
    assert a == b and len(a) == 3


def test_stop_after_lines(word_run):
    _, run = word_run
    text = scriptrnn.load(run).generate("elaine", max_new_tokens=500, seed=2, stop_after_lines=2)[0]
    assert text.count("\n") == 2 and text.endswith("\n")


def test_streaming_equals_whole_text(word_run):
    _, run = word_run
    model = scriptrnn.load(run)
    streamed = "".join(step[0] for step in model.stream("kramer", max_new_tokens=40, seed=3))
    assert streamed == model.generate("kramer", max_new_tokens=40, seed=3)[0]


def test_unknown_prime_words_become_unk_but_not_all_of_them(word_run):
    _, run = word_run
    model = scriptrnn.load(run)  # every word model has <unk> now: a new name reads as one
    assert len(model.generate("newman: hello", max_new_tokens=5, seed=0)) == 1
    with pytest.raises(ScriptRNNError, match="none of the words in the prime 'newman hello'"):
        model.generate("newman hello", max_new_tokens=5)


def test_greedy_is_deterministic_without_seed(word_run):
    _, run = word_run
    model = scriptrnn.load(run)
    assert model.generate("jerry", max_new_tokens=20, temperature=0)[0] == \
        model.generate("jerry", max_new_tokens=20, do_sample=False)[0]


def test_evaluate_scores_the_held_out_end(word_run):
    _, run = word_run
    report = scriptrnn.evaluate(run, run.parent / "scripts.txt")
    assert report["loss"] == pytest.approx(json.loads((run / "config.json").read_text())["metrics"]["val"]["loss"],
                                           rel=1e-4)


def test_char_level_run_and_bits_per_char(tmp_path, dialogue_file):
    result = scriptrnn.train(dialogue_file, tmp_path / "run", level="char", max_steps=60, cell="gru", **TINY_TRAIN)
    assert "bits_per_char" in result.metrics
    assert result.metrics["loss"] < math.log(len(set(dialogue_file.read_text())))
    text = scriptrnn.load(tmp_path / "run").generate("", max_new_tokens=50, seed=0)[0]
    assert len(text) == 50


def test_existing_run_is_not_replaced_silently(word_run, tmp_path):
    _, run = word_run
    with pytest.raises(ScriptRNNError, match="--resume .* --overwrite"):
        scriptrnn.train(run.parent / "scripts.txt", run, level="word", max_steps=1, **TINY_TRAIN)


def test_resume_continues_to_the_same_weights(tmp_path, dialogue_file):
    """A run stopped at step 40 and resumed equals one run of 80 steps, weight for weight."""
    import torch
    from safetensors.torch import load_file

    def stop_at_40(event, trainer):
        if event == "on_step" and trainer.state.step == 40:
            trainer.stop_requested = "test"

    settings = dict(TINY_TRAIN, level="char", max_steps=80, eval_every=20, patience=None, dropout=0.2,
                    num_layers=2)
    scriptrnn.train(dialogue_file, tmp_path / "whole", **settings)
    stopped = scriptrnn.train(dialogue_file, tmp_path / "parts", callbacks=[stop_at_40], **settings)
    assert stopped.stopped_because.startswith("interrupted") and stopped.steps == 40
    resumed = scriptrnn.train(out=tmp_path / "parts", resume=True, progress=False)
    assert resumed.steps == 80
    whole = load_file(tmp_path / "whole" / RESUME_FILE)
    parts = load_file(tmp_path / "parts" / RESUME_FILE)
    for name, tensor in whole.items():
        if name.startswith("model."):
            assert torch.equal(tensor, parts[name]), name


def test_resume_refuses_settings_that_would_change_the_run(word_run):
    _, run = word_run
    with pytest.raises(ScriptRNNError, match="--lr"):
        scriptrnn.train(out=run, resume=True, lr=0.5, progress=False)


def test_overwrite_with_a_bad_setting_keeps_the_old_run(word_run):
    _, run = word_run
    before = (run / WEIGHTS_FILE).read_bytes()
    with pytest.raises(ScriptRNNError):
        scriptrnn.train(run.parent / "scripts.txt", run, level="word", overwrite=True, seq_len=10**7, progress=False)
    assert (run / WEIGHTS_FILE).read_bytes() == before


def test_evaluate_defaults_to_the_runs_own_corpus(word_run):
    _, run = word_run
    assert scriptrnn.evaluate(run)["loss"] == pytest.approx(scriptrnn.evaluate(run, run.parent / "scripts.txt")["loss"])


def test_precision_fp32_and_auto_learn_alike(tmp_path, dialogue_file):
    """bfloat16 arithmetic (auto, where the CPU has it) must not cost quality: same steps, close loss."""
    settings = dict(TINY_TRAIN, level="char", max_steps=60)
    fp32 = scriptrnn.train(dialogue_file, tmp_path / "fp32", precision="fp32", **settings)
    auto = scriptrnn.train(dialogue_file, tmp_path / "auto", precision="auto", **settings)
    assert abs(fp32.metrics["loss"] - auto.metrics["loss"]) < 0.05 * fp32.metrics["loss"]


def test_precision_is_checked():
    import torch

    from scriptrnn.device import autocast_dtype

    assert autocast_dtype("fp32", torch.device("cpu")) is None
    with pytest.raises(ScriptRNNError, match="--precision must be one of auto, bf16, fp32"):
        scriptrnn.train(None, "/nonexistent/never", precision="fp16", max_steps=1)


def test_adaptive_softmax_trains_saves_and_generates(tmp_path):
    """A word model of 5,200 words gets the adaptive output layer by default: train, reload, evaluate, sample."""
    import random

    rng = random.Random(0)
    words = [f"w{i}" for i in range(5_200)]
    lines = [f"{rng.choice(['jerry', 'elaine'])}: {' '.join(rng.choices(words[:40], k=4) + words[i * 2:i * 2 + 2])}"
             for i in range(3_000)]
    data = tmp_path / "words.txt"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = scriptrnn.train(data, tmp_path / "run", level="word", max_steps=60, lr=1e-2, min_count=1,  # every w_i
                             **TINY_TRAIN)
    assert result.metrics["loss"] < math.log(5_200)
    model = scriptrnn.load(tmp_path / "run")
    assert model.model.config.softmax == "adaptive" and not model.model.config.tie_weights
    small = scriptrnn.train(data, tmp_path / "full", level="word", max_steps=1, softmax="full", **TINY_TRAIN)
    assert json.loads((small.out_dir / "config.json").read_text())["model"]["softmax"] == "full"  # asked for
    assert abs(scriptrnn.evaluate(tmp_path / "run")["loss"] - result.metrics["loss"]) < 1e-4
    text = model.generate("jerry", max_new_tokens=20, seed=1)[0]
    assert text.startswith("jerry:") and len(text.split()) > 5
