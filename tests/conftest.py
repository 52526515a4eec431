"""Shared fixtures: small corpora written by the tests themselves (never ../shared)."""

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

# A tiny dialogue in the Seinfeld layout, repeated so that a model can learn it in seconds.
DIALOGUE = (
    "jerry: what is the deal with airline food? i don't know.\n"
    "george: i am not a man of the sea, jerry!\n"
    "elaine: get out! (pushes him) you're kidding.\n"
    "kramer: \"giddy up,\" i said; and he left.\n"
)


@pytest.fixture(autouse=True)
def _few_threads():
    # Tests run on 2 cores beside each other; one thread each keeps them predictable.
    torch.set_num_threads(1)


@pytest.fixture
def dialogue_file(tmp_path: Path) -> Path:
    path = tmp_path / "scripts.txt"
    path.write_text(DIALOGUE * 60, encoding="utf-8")
    return path


TINY_TRAIN = dict(hidden_size=32, embedding_size=16, num_layers=1, seq_len=16, batch_size=8,
                  eval_every=20, eval_tokens=2000, progress=False)


@contextlib.contextmanager
def live_server(app):
    """Run ``app`` under a real uvicorn, configured as ``serve`` does, on a free loopback port; yields its URL."""
    import uvicorn

    from scriptrnn.server.guards import server_config

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(server_config(app, "127.0.0.1", port, app.state.service.limits))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def make_run(directory: Path, cell: str = "lstm", level: str = "char", seed: int = 0, softmax: str = "full",
             extra_text: str = "") -> Path:
    """A run directory holding an untrained model, in seconds: for tests of what happens after training.

    Weights are scaled up from their initial values so the model is confident (few near-ties
    between tokens) and its state moves; dropout is on so that only eval mode gives its scores.
    An adaptive softmax needs 1,000 words or more: the dialogue's, and made-up ones.
    """
    from scriptrnn.model.checkpoint import save_run_files, save_weights
    from scriptrnn.model.network import ModelConfig, RNNLanguageModel
    from scriptrnn.data.tokenizer import fit_tokenizer

    text = DIALOGUE + (" ".join(f"w{i}" for i in range(1_200)) if softmax == "adaptive" else "") + extra_text
    tokenizer = fit_tokenizer(text, level, vocab_size=300)  # vocab_size: subword level's byte pairs
    config = ModelConfig(vocab_size=tokenizer.vocab_size, cell=cell, num_layers=2, hidden_size=24,
                         embedding_size=16, dropout=0.2, softmax=softmax,
                         tie_weights=level == "word" and softmax == "full")  # word: tied + projection
    torch.manual_seed(seed)
    model = RNNLanguageModel(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3.0)
    save_run_files(directory, {"model": config.to_dict(), "training": {"level": level, "val_fraction": 0.1},
                               "corpus": {"name": "tiny", "speakers": ["jerry", "george", "elaine", "kramer"]}},
                   tokenizer)
    save_weights(directory, model)
    return directory
