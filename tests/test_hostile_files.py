"""Hostile files a model directory or a corpus may hold: link loops, sparse weights, foreign graphs.

Each is refused in one line before anything big is read or run (issue 28, breaks 7-9).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import scriptrnn
from scriptrnn.cli import main
from scriptrnn.errors import ScriptRNNError
from scriptrnn.model.checkpoint import load_checkpoint
from scriptrnn.model.directory import RESUME_FILE, WEIGHTS_FILE
from scriptrnn.model.directory import MODEL_FILE
from scriptrnn.runtime import load

from .conftest import TINY_TRAIN, make_run


def _one_line_error(capsys, argv, match):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert match in err, err
    return err


@pytest.mark.parametrize("argv", [["serve", "L"], ["train", "a"], ["train", "L"], ["info", "L"], ["generate", "L"],
                                  ["corpus", "a"], ["export", "L", "--out", "x"], ["evaluate", "L"]])
def test_a_link_loop_is_one_line_in_every_command(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    os.symlink("L", "L")  # a link to itself
    os.symlink("b", "a")  # and a loop of two
    os.symlink("a", "b")
    _one_line_error(capsys, argv, "link loop")


def _header(path) -> tuple[int, dict]:
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    return length, json.loads(data[8:8 + length])


def test_a_sparse_weights_file_is_refused_unread(capsys, tmp_path):
    run = make_run(tmp_path / "run")
    os.truncate(run / WEIGHTS_FILE, 10 * 2**30)  # sparse: no disk used, but 10 GB if read
    started = time.monotonic()
    _one_line_error(capsys, ["generate", run, "--max-new-tokens", "5"], "damaged or padded")
    assert time.monotonic() - started < 20  # reading 10 GB took 55 s


def test_a_header_describing_huge_tensors_is_refused_before_reading_them(tmp_path):
    """A file whose header and size agree, but whose tensors are far bigger than config.json's model."""
    run = make_run(tmp_path / "run")
    length, header = _header(run / WEIGHTS_FILE)
    size = 0
    for entry in header.values():
        if isinstance(entry, dict) and "dtype" in entry:
            entry["shape"] = [2**14, 2**14]  # 1 GB each
            entry["data_offsets"] = [size, size + 4 * 2**28]
            size += 4 * 2**28
    raw = json.dumps(header).encode()
    with open(run / WEIGHTS_FILE, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        f.truncate(8 + len(raw) + size)
    started = time.monotonic()
    with pytest.raises(ScriptRNNError, match="the files do not belong together"):
        load_checkpoint(run)
    assert time.monotonic() - started < 20


def test_a_header_with_another_model_shape_is_refused_before_reading(tmp_path):
    run = make_run(tmp_path / "run")
    length, header = _header(run / WEIGHTS_FILE)
    header["embedding.weight"]["shape"][0] += 1  # offsets no longer fit the shape
    raw = json.dumps(header).encode()
    data = (run / WEIGHTS_FILE).read_bytes()
    (run / WEIGHTS_FILE).write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + length:])
    with pytest.raises(ScriptRNNError, match="offsets do not fit"):
        load_checkpoint(run)


def test_a_sparse_resume_file_is_refused_unread(capsys, tmp_path, dialogue_file):
    out = tmp_path / "run"
    scriptrnn.train(dialogue_file, out, max_steps=4, **{**TINY_TRAIN, "eval_every": 2})
    assert (out / RESUME_FILE).exists()
    os.truncate(out / RESUME_FILE, 10 * 2**30)
    capsys.readouterr()  # the training's own lines
    started = time.monotonic()
    _one_line_error(capsys, ["train", "--resume", out, "--quiet"], "damaged or padded")
    assert time.monotonic() - started < 30


# ---------------------------------------------------------------- exported graphs (break 9)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from scriptrnn.model.export import export_onnx

    folder = tmp_path_factory.mktemp("export")
    export_onnx(make_run(folder / "run"), folder / "onnx")
    return folder / "onnx"


def _copy_with_graph(exported, tmp_path, graph) -> object:
    import shutil

    out = tmp_path / "hostile"
    shutil.copytree(exported, out)
    (out / MODEL_FILE).write_bytes(graph.SerializeToString())  # as given: onnx.save checks what we test
    return out


def _looping_graph(exported):
    """The export, its logits made to depend on a Loop of 10^15 turns with constant inputs.

    onnxruntime folds constants while it loads: before the check, this hung `generate` for
    minutes, ignoring SIGTERM.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(exported / MODEL_FILE))
    g = model.graph
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["v_in", "one"], ["v_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [])],
        [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])])
    g.initializer.extend([helper.make_tensor("trips", TensorProto.INT64, [], [10**15]),
                          helper.make_tensor("yes", TensorProto.BOOL, [], [True]),
                          helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])])
    g.node.append(helper.make_node("Loop", ["trips", "yes", "zero"], ["spun"], body=body))
    g.node.append(helper.make_node("Mul", ["spun", "zero"], ["nothing"]))
    g.output[0].name, old = "hostile_logits", g.output[0].name
    g.node.append(helper.make_node("Add", [old, "nothing"], ["hostile_logits"]))
    return model


def test_a_looping_graph_is_refused_in_one_line_at_once(tmp_path, exported):
    directory = _copy_with_graph(exported, tmp_path, _looping_graph(exported))
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "scriptrnn", "generate", str(directory), "--max-new-tokens", "5"],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("loading the hostile graph ran for a minute")
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "operator 'Loop', which scriptrnn export never writes" in done.stderr
    assert time.monotonic() - started < 30


def test_weights_in_another_file_and_foreign_signatures_are_refused(tmp_path, exported):
    import onnx

    model = onnx.load(str(exported / MODEL_FILE))
    tensor = model.graph.initializer[0]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../../../etc/passwd")
    with pytest.raises(ScriptRNNError, match="external data"):
        load(_copy_with_graph(exported, tmp_path / "a", model))
    model = onnx.load(str(exported / MODEL_FILE))
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT  # ids as fractions
    with pytest.raises(ScriptRNNError, match="inputs do not fit config.json"):
        load(_copy_with_graph(exported, tmp_path / "b", model))
    model = onnx.load(str(exported / MODEL_FILE))
    model.opset_import[0].version = 21
    with pytest.raises(ScriptRNNError, match="operator set ai.onnx 21"):
        load(_copy_with_graph(exported, tmp_path / "c", model))


def test_a_graph_bigger_than_config_json_needs_is_refused_unread(tmp_path, exported):
    directory = tmp_path / "big"
    import shutil

    shutil.copytree(exported, directory)
    os.truncate(directory / MODEL_FILE, 10 * 2**30)  # sparse
    started = time.monotonic()
    with pytest.raises(ScriptRNNError, match="at most"):
        load(directory)
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("cell,level,softmax", [("gru", "word", "adaptive"), ("rnn", "char", "full"),
                                                ("lstm", "word", "adaptive")])
def test_every_kind_of_export_passes_the_check(tmp_path, cell, level, softmax):
    """The operator list covers what the exporter writes, quantized too (check_exported_graph's allow-list)."""
    from scriptrnn.model.export import export_onnx

    export_onnx(make_run(tmp_path / "run", cell, level, softmax=softmax), tmp_path / "q", quantize="int8")
    assert load(tmp_path / "q").generate("jerry", max_new_tokens=5, seed=1)[0]


SIGNAL_DURING_LOAD = """
import os, signal, time
from scriptrnn.model.onnx import _signals_end_the_process
signal.signal(signal.SIGTERM, lambda *a: print("handled late"))  # a server's graceful stop, say
with _signals_end_the_process():
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)  # stands for onnxruntime's C++, which Python's handlers wait for
print("not ended")
"""


def test_a_signal_ends_the_process_while_a_session_is_built():
    done = subprocess.run([sys.executable, "-c", SIGNAL_DURING_LOAD], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGTERM, (done.stdout, done.stderr)
