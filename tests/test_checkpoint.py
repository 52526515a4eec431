import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import scriptrnn
from scriptrnn import ModelConfig, RNNLanguageModel, ScriptRNNError
from scriptrnn.model.directory import WEIGHTS_FILE
from scriptrnn.model.checkpoint import load_checkpoint, load_tensors, save_run_files, save_tensors, save_weights
from scriptrnn.files import remove_temporaries, write_atomic
from scriptrnn.data.tokenizer import CharTokenizer

REPO = Path(__file__).resolve().parents[1]


def _save_small_run(path, tie=False):
    tokenizer = CharTokenizer.fit("hello world\n")
    config = ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, embedding_size=16, tie_weights=tie)
    model = RNNLanguageModel(config)
    save_run_files(path, {"model": config.to_dict(), "corpus": {"name": "t"}}, tokenizer)
    save_weights(path, model)
    return model


@pytest.mark.parametrize("tie", [False, True])
def test_round_trip_gives_the_same_weights(tmp_path, tie):
    model = _save_small_run(tmp_path, tie=tie)
    loaded, tokenizer, config = load_checkpoint(tmp_path)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    if tie:
        assert loaded.decoder.weight is loaded.embedding.weight


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    with pytest.raises(TypeError):
        write_atomic(target, object())  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]  # no temporary left behind


def test_pickle_is_refused_and_never_run(tmp_path):
    _save_small_run(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / WEIGHTS_FILE).write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ScriptRNNError, match="pickle"):
        load_checkpoint(tmp_path)
    assert not marker.exists()


def test_directory_of_pt_files_is_refused(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "model.pt")
    with pytest.raises(ScriptRNNError, match="pickle files are refused"):
        load_checkpoint(tmp_path)


def test_newer_format_version_is_refused(tmp_path):
    _save_small_run(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["format_version"] = 99
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ScriptRNNError, match="newer scriptrnn"):
        load_checkpoint(tmp_path)


def test_truncated_weights_are_a_clear_error(tmp_path):
    _save_small_run(tmp_path)
    data = (tmp_path / WEIGHTS_FILE).read_bytes()
    (tmp_path / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ScriptRNNError, match="truncated|damaged"):
        load_checkpoint(tmp_path)


def test_missing_tokenizer_is_named(tmp_path):
    _save_small_run(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(ScriptRNNError, match="tokenizer.json"):
        load_checkpoint(tmp_path)


def test_shapes_that_do_not_match_the_config(tmp_path):
    _save_small_run(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["hidden_size"] = 32
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ScriptRNNError, match="shape"):
        load_checkpoint(tmp_path)


def test_missing_directory(tmp_path):
    with pytest.raises(ScriptRNNError, match="no such model directory"):
        scriptrnn.load(tmp_path / "nope")


def test_pretrained_model_ships_and_writes():
    text = scriptrnn.load().generate("", max_new_tokens=80, seed=0)[0]
    assert len(text) == 80
    assert sum(p.stat().st_size for p in scriptrnn.pretrained_dir().iterdir()) < 10 * 1024 * 1024
    # Stored in float16 (half the bytes), loaded as float32 for everything downstream.
    stored, _ = load_tensors(scriptrnn.pretrained_dir() / WEIGHTS_FILE)
    assert {t.dtype for t in stored.values()} == {torch.float16}
    model, _, _ = load_checkpoint(scriptrnn.pretrained_dir())
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_a_run_shipped_in_float16_loads_as_float32_and_scores_alike(tmp_path):
    model = _save_small_run(tmp_path / "run")
    done = subprocess.run([sys.executable, str(REPO / "deploy" / "ready_model.py"), str(tmp_path / "run"),
                           "--out", str(tmp_path / "ready")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    stored, metadata = load_tensors(tmp_path / "ready" / WEIGHTS_FILE)
    assert metadata["stored_as"] == "float16" and {t.dtype for t in stored.values()} == {torch.float16}
    loaded, _, _ = load_checkpoint(tmp_path / "ready")
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    with torch.no_grad():
        a, _ = model.eval()(ids)
        b, _ = loaded.eval()(ids)
    assert b.dtype == torch.float32
    assert torch.allclose(a, b, atol=1e-2), (a - b).abs().max()


# ------------------------------------------------------------- more formats and damage

def test_config_json_that_is_a_pickle_is_refused_and_never_run(tmp_path):
    _save_small_run(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for name in ("config.json", "tokenizer.json"):
        original = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(pickle.dumps(Evil()))
        with pytest.raises(ScriptRNNError, match=f"{name}: not valid JSON"):
            load_checkpoint(tmp_path)
        (tmp_path / name).write_bytes(original)
    assert not marker.exists()


@pytest.mark.parametrize("content, match", [
    (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", "not a safetensors"),
    (b"\x89HDF\r\n\x1a\n" + b"\x00" * 64, "not a safetensors"),
    (b"PK\x03\x04" + b"\x00" * 64, "pickle"),
    (b"", "truncated"),
])
def test_weights_in_another_format_are_refused(tmp_path, content, match):
    _save_small_run(tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(content)
    with pytest.raises(ScriptRNNError, match=match):
        load_checkpoint(tmp_path)


def _edit_config(path, edit):
    config = json.loads((path / "config.json").read_text())
    edit(config)
    (path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.update(corpus=None), "'corpus' must be a JSON object"),
    (lambda c: c["corpus"].update(speakers=None), "speakers"),
    (lambda c: c["corpus"].update(speakers=["jerry", 3]), "speakers"),
    (lambda c: c.update(training=[1]), "'training' must be a JSON object"),
    (lambda c: c["model"].update(cell=["lstm"]), "invalid model settings|--cell"),
    (lambda c: c["model"].update(dropout="0.1"), "invalid model settings|--dropout must be in"),
    (lambda c: c["model"].update(tie_weights="yes"), "tie"),
])
def test_damaged_config_fields_are_one_line_errors(tmp_path, edit, match):
    """Each of these escaped as a TypeError or AttributeError before (found by benchmarks/fuzz.py)."""
    _save_small_run(tmp_path)
    _edit_config(tmp_path, edit)
    with pytest.raises(ScriptRNNError, match=match):
        scriptrnn.load(tmp_path).generate("h", max_new_tokens=2, seed=0)


def test_config_asking_for_a_huge_model_is_refused_before_allocating_it(tmp_path):
    _save_small_run(tmp_path)
    _edit_config(tmp_path, lambda c: c["model"].update(hidden_size=20_000, num_layers=1))  # ~1.6e9 parameters
    with pytest.raises(ScriptRNNError, match="do not belong together"):
        load_checkpoint(tmp_path)


def test_non_finite_weights_are_refused(tmp_path):
    model = _save_small_run(tmp_path)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["decoder.bias"][3] = float("nan")
    save_tensors(tmp_path / WEIGHTS_FILE, state)
    with pytest.raises(ScriptRNNError, match="NaN or infinite"):
        load_checkpoint(tmp_path)


def test_weights_of_a_non_numeric_type_are_refused(tmp_path):
    model = _save_small_run(tmp_path)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["decoder.bias"] = state["decoder.bias"] > 0
    save_tensors(tmp_path / WEIGHTS_FILE, state)
    with pytest.raises(ScriptRNNError, match="torch.bool"):
        load_checkpoint(tmp_path)


def test_remove_temporaries_takes_only_write_atomic_leftovers(tmp_path):
    (tmp_path / ".resume.safetensors.abc123.tmp").write_bytes(b"half")
    (tmp_path / "notes.tmp").write_text("mine")
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert remove_temporaries(tmp_path) == [".resume.safetensors.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "notes.tmp"]
