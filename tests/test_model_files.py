"""Model directories whose files are not what they claim: each is refused in one line, never a hang or a crash.

A FIFO or a link to /dev/zero is tried in a subprocess with a timeout and a memory
ceiling, so that a loader that would hang or eat the machine fails the test instead.
"""

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import scriptrnn
from scriptrnn.model.checkpoint import load_checkpoint, save_tensors
from scriptrnn.errors import ScriptRNNError
from scriptrnn.files import read_json, read_regular
from scriptrnn.runtime import is_exported, load_any

from .conftest import make_run

SRC = str(Path(scriptrnn.__file__).resolve().parents[1])  # the subprocess runs the code under test


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("files") / "run", "gru", "char")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, pristine):
    from scriptrnn.model.export import export_onnx

    out = tmp_path_factory.mktemp("files") / "exported"
    export_onnx(pristine, out)
    return out


def copy_of(source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(source, tmp_path / source.name))


def replace_with(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()


def run_cli(*args, seconds: int = 90) -> subprocess.CompletedProcess:
    def ceiling():  # a loader reading /dev/zero dies here, not on the machine's memory
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    env = {**os.environ, "PYTHONPATH": SRC}
    try:
        return subprocess.run([sys.executable, "-m", "scriptrnn", *map(str, args)], capture_output=True, text=True,
                              timeout=seconds, preexec_fn=ceiling, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"scriptrnn {' '.join(map(str, args))} hung for {seconds} s")


def assert_one_line(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scriptrnn: error:"), done.stderr[-2000:]
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json", "model.safetensors"])
@pytest.mark.parametrize("kind", ["zero", "fifo"])
def test_a_run_file_that_never_ends_is_refused_in_one_line(pristine, tmp_path, name, kind):
    run = copy_of(pristine, tmp_path)
    replace_with(run / name, kind)
    assert_one_line(run_cli("generate", run, "--max-new-tokens", "5", "--prime", "jerry"), name,
                    "not a regular file")


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json", "model.onnx"])
def test_an_exported_file_that_never_ends_is_refused_in_one_line(exported, tmp_path, name):
    out = copy_of(exported, tmp_path)
    replace_with(out / name, "fifo")
    assert_one_line(run_cli("generate", out, "--max-new-tokens", "5", "--prime", "jerry"), name,
                    "not a regular file")


def test_serve_refuses_a_fifo_config_before_serving(pristine, tmp_path):
    run = copy_of(pristine, tmp_path)
    replace_with(run / "config.json", "fifo")
    assert_one_line(run_cli("serve", run, "--port", "1"), "config.json")


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json", "model.safetensors"])
def test_a_directory_where_a_file_should_be(pristine, tmp_path, name):
    run = copy_of(pristine, tmp_path)
    replace_with(run / name, "directory")
    with pytest.raises(ScriptRNNError, match="is a directory, not a regular file"):
        load_any(run)


def test_an_oversized_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "config.json"
    with open(path, "wb") as f:
        f.truncate(2**40)  # sparse: a terabyte that takes no disk
    with pytest.raises(ScriptRNNError, match="at most"):
        read_regular(path, "the model settings", 2**20)


@pytest.mark.parametrize("text, words", [
    ("[" * 100_000 + "]" * 100_000, "nested deeper"),
    ('{"model": {"vocab_size": ' + "9" * 5000 + "}}", "a number of 5000 characters"),
    ('{"a": [[[[' + "[" * 70 + "]" * 70 + "]]]]}", "nested deeper"),
], ids=["recursion", "digits", "depth-75"])
@pytest.mark.parametrize("name", ["config.json", "tokenizer.json"])
def test_hostile_json_in_a_model_file_is_one_line(pristine, tmp_path, text, words, name):
    run = copy_of(pristine, tmp_path)
    (run / name).write_text(text)
    with pytest.raises(ScriptRNNError, match=words) as caught:
        load_any(run)
    assert "\n" not in str(caught.value) and name in str(caught.value)


def test_is_exported_says_no_for_a_damaged_config_and_the_loader_explains(pristine, tmp_path):
    run = copy_of(pristine, tmp_path)
    (run / "config.json").write_text("{not json")
    assert not is_exported(run)
    with pytest.raises(ScriptRNNError, match="not valid JSON"):
        load_any(run)


def test_whole_numbers_stored_where_the_model_keeps_fractions(pristine, tmp_path):
    run = copy_of(pristine, tmp_path)
    from scriptrnn.model.checkpoint import load_tensors

    tensors, _ = load_tensors(run / "model.safetensors")
    name = next(iter(tensors))
    tensors[name] = tensors[name].to(torch.int32)
    save_tensors(run / "model.safetensors", tensors)
    with pytest.raises(ScriptRNNError, match=f"weight {name} is stored as torch.int32 but .* keeps it as torch.float32"):
        load_checkpoint(run)


def test_half_precision_weights_still_load(pristine, tmp_path):
    run = copy_of(pristine, tmp_path)
    from scriptrnn.model.checkpoint import load_tensors

    tensors, _ = load_tensors(run / "model.safetensors")
    save_tensors(run / "model.safetensors", {k: v.to(torch.float16) for k, v in tensors.items()})
    load_checkpoint(run)


def test_a_vocabulary_with_a_lone_surrogate_is_refused_when_it_loads(pristine, tmp_path):
    run = copy_of(pristine, tmp_path)
    data = read_json(run / "tokenizer.json", "the vocabulary")
    data["vocab"][-1] = "\ud800"
    (run / "tokenizer.json").write_text(json.dumps(data))  # ensure_ascii: written as \ud800
    with pytest.raises(ScriptRNNError, match="lone surrogate"):
        load_any(run)
