"""What a new user met on the way (issue 27): each answer checked through the real CLI or app."""

from __future__ import annotations

import scriptrnn
from scriptrnn.cli import main

from .conftest import TINY_TRAIN


def test_the_page_s_favicon_request_is_answered_without_a_key():
    from fastapi.testclient import TestClient

    from scriptrnn.server.app import create_app

    with TestClient(create_app({"m": scriptrnn.load()}, api_key="secret")) as c:
        assert c.get("/favicon.ico").status_code == 204


def test_lines_cut_short_by_the_token_limit_are_said(capsys):
    assert main(["generate", "--lines", "10", "--max-new-tokens", "60", "--seed", "1"]) == 0
    err = capsys.readouterr().err
    assert "of --lines 10: --max-new-tokens 60 ran out first" in err


def test_info_gives_the_loss_its_unit(capsys):
    assert main(["info"]) == 0
    assert "held-out loss: 1.3931 nats/char" in capsys.readouterr().out


def test_a_word_level_run_says_what_it_trains(tmp_path, dialogue_file, capsys):
    settings = {k: v for k, v in TINY_TRAIN.items() if k != "progress"}
    scriptrnn.train(dialogue_file, tmp_path / "run", level="word", max_steps=2, progress=False, **settings)
    err = capsys.readouterr().err  # beside the validation lines, even with progress off
    assert "model: word level, lstm 1x32, vocabulary" in err and " parameters; cpu in " in err


def test_evaluate_prints_the_loss_in_nats_per_token_of_the_model_s_level(tmp_path, dialogue_file, capsys):
    settings = {k: v for k, v in TINY_TRAIN.items() if k != "progress"}
    scriptrnn.train(dialogue_file, tmp_path / "run", max_steps=2, progress=False, **settings)
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("loss: ") and out.splitlines()[0].endswith(" nats/char")
