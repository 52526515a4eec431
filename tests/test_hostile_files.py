"""Hostile files a model directory or a corpus may hold: link loops, sparse weights, foreign graphs.

Each is refused in one line before anything big is read or run (issue 28, breaks 7-9).
"""

from __future__ import annotations

import json
import os
import time

import pytest

import scriptrnn
from scriptrnn.cli import main
from scriptrnn.errors import ScriptRNNError
from scriptrnn.model.checkpoint import RESUME_FILE, WEIGHTS_FILE, load_checkpoint

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
