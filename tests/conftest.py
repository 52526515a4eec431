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
    """Run ``app`` under a real uvicorn on a free loopback port; yields its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
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
