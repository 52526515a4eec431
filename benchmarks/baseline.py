"""The course method, written faithfully: what scriptrnn is measured against.

The course projects (TV-script generation) train ``scriptrnn.classic.RNN`` — LSTM 2x256,
embedding 250, dropout 0.5 — with Adam at lr 0.001 on batches of 128 windows of
``seq_len`` tokens, each with only the token after the window as its target
(``batch_data``), the hidden state started at zero each epoch and carried from batch to
batch (``forward_back_prop``). They generate by re-running the network over the last
window for every new token, sampling from the top 5.

Held-out loss is scored two ways and the better one is reported, so the baseline is
never shown worse than it is: ``window`` predicts every held-out position from the
``seq_len`` tokens before it (how the model was trained and how it writes), and
``carried`` reads the held-out text as streams with the state carried along (how
scriptrnn is scored, ``scriptrnn.evaluation.scoring.evaluate_loss``).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scriptrnn.classic import RNN, batch_data, forward_back_prop

from .common import ids_tensor

COURSE = dict(embedding_dim=250, hidden_dim=256, n_layers=2, dropout=0.5, lr=0.001, batch_size=128)
# The course used 10-20 words per window; at char level the classic Keras example uses 40.
SEQ_LEN = {"word": 10, "char": 40}


def make_model(vocab_size: int, hidden_dim: int = COURSE["hidden_dim"]) -> RNN:
    return RNN(vocab_size, vocab_size, COURSE["embedding_dim"], hidden_dim, COURSE["n_layers"], COURSE["dropout"])


def train(train_ids, val_ids, vocab_size: int, level: str, snapshots_min: list[float], seed: int = 1234,
          score: Callable[[RNN, object, int], dict] | None = None,
          on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Train for max(snapshots_min) minutes of training time; score the held-out split at each snapshot.

    Evaluation pauses the clock: the baseline is charged for training only. ``score(rnn, val_ids,
    seq_len)`` replaces ``held_out_loss`` (a benchmark that scores every method its own way);
    ``on_result`` is handed each snapshot's record as soon as it is scored, so a long run can
    save what it has before it ends.
    """
    score = score or held_out_loss
    torch.manual_seed(seed)
    seq_len = SEQ_LEN[level]
    rnn = make_model(vocab_size)
    optimizer = torch.optim.Adam(rnn.parameters(), lr=COURSE["lr"])
    criterion = nn.CrossEntropyLoss()
    loader = batch_data(ids_tensor(train_ids), seq_len, COURSE["batch_size"])
    pending, results, trained_s, steps = sorted(snapshots_min), [], 0.0, 0
    while pending:
        hidden = rnn.init_hidden(COURSE["batch_size"])  # the course starts each epoch at zero state
        rnn.train()
        start = time.perf_counter()
        for inputs, labels in loader:
            _, hidden = forward_back_prop(rnn, optimizer, criterion, inputs, labels, hidden)
            steps += 1
            if trained_s + time.perf_counter() - start >= pending[0] * 60:
                break
        trained_s += time.perf_counter() - start
        if trained_s >= pending[0] * 60:
            minutes = pending.pop(0)
            results.append({"minutes": minutes, "steps": steps, **score(rnn, val_ids, seq_len)})
            print(f"baseline {level} {minutes:g} min: {results[-1]}", flush=True)
            if on_result:
                on_result(results[-1])
    return results


@torch.no_grad()
def held_out_loss(rnn: RNN, val_ids, seq_len: int) -> dict:
    rnn.eval()
    window, carried = window_loss(rnn, val_ids, seq_len), carried_loss(rnn, val_ids)
    return {"window_loss": window, "carried_loss": carried, "loss": min(window, carried)}


def window_loss(rnn: RNN, val_ids, seq_len: int, batch: int = 1024) -> float:
    """Mean cross-entropy of every held-out position i >= 1 from the (up to) seq_len ids before it."""
    ids = ids_tensor(val_ids)
    total = 0.0
    for i in range(1, min(seq_len, len(ids))):  # the first positions have shorter windows
        scores, _ = rnn(ids[None, :i], rnn.init_hidden(1))
        total += F.cross_entropy(scores, ids[i:i + 1], reduction="sum").item()
    windows, targets = ids.unfold(0, seq_len, 1)[: len(ids) - seq_len], ids[seq_len:]  # (n, seq_len), (n,)
    for s in range(0, len(targets), batch):
        x = windows[s:s + batch]
        scores, _ = rnn(x, rnn.init_hidden(len(x)))
        total += F.cross_entropy(scores, targets[s:s + batch], reduction="sum").item()
    return total / (len(ids) - 1)


def carried_loss(rnn: RNN, val_ids, streams: int = 32, window: int = 256) -> float:
    """Every held-out position, read as contiguous streams with the state carried (scriptrnn's measure)."""
    ids = np.asarray(val_ids, dtype=np.int64)
    streams = max(1, min(streams, (len(ids) - 1) // 2))
    n = (len(ids) - 1) // streams
    base = np.arange(streams)[:, None] * n
    total, count, hidden = 0.0, 0, rnn.init_hidden(streams)
    for s in range(0, n, window):
        idx = base + np.arange(s, min(s + window, n))[None, :]  # (S, T)
        x, y = torch.from_numpy(ids[idx]), torch.from_numpy(ids[idx + 1])
        out, hidden = rnn.lstm(rnn.embedding(x), hidden)  # (S, T, H): every position, not just the last
        total += F.cross_entropy(rnn.fc(out).flatten(0, 1), y.flatten(), reduction="sum").item()
        count += y.numel()
    return total / count


@torch.no_grad()
def generate(rnn: RNN, prime_ids: list[int], seq_len: int, new_tokens: int, top_k: int = 5, seed: int = 0) -> list[int]:
    """The course's generate(): re-run the whole last window for every new token, top-k sampling."""
    rnn.eval()
    rng = np.random.default_rng(seed)
    window = [0] * max(0, seq_len - len(prime_ids)) + list(prime_ids)[-seq_len:]  # padded as the course did
    out = []
    for _ in range(new_tokens):
        current = torch.tensor([window], dtype=torch.long)
        scores, _ = rnn(current, rnn.init_hidden(1))
        p = F.softmax(scores, dim=1)
        p, top = p.topk(top_k)
        p, top = p.numpy().squeeze(), top.numpy().squeeze()
        token = int(rng.choice(top, p=p / p.sum()))
        out.append(token)
        window = window[1:] + [token]
    return out
