"""Hostile files a model directory or a corpus may hold: link loops, sparse weights, foreign graphs.

Each is refused in one line before anything big is read or run (issue 28, breaks 7-9).
"""

from __future__ import annotations

import os

import pytest

from scriptrnn.cli import main


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
