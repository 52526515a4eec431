"""The race's scoring, the same for every method: each position 1..n-1 of the held-out ids, in float32.

The recurrent models (scriptrnn's and the course's) read the held-out ids as one stream with the state
carried; the transformer a sliding window of its context (race.py's docstring says how and why).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from . import baseline
from .race_transformer import TinyGPT


def _report(total_nats: float, positions: int, expected: int) -> dict:
    if positions != expected:  # every method must score exactly the held-out positions 1..n-1
        raise AssertionError(f"scored {positions} positions, expected {expected}")
    loss = total_nats / positions
    return {"loss": loss, "bits_per_char": loss / math.log(2), "positions": positions}


@torch.no_grad()
def score_scriptrnn(model, val_ids: np.ndarray, device: torch.device, window: int = 1024) -> dict:
    """One stream, the state carried over the whole held-out text (model(x, state, targets) -> mean, state)."""
    model.eval()
    ids = torch.from_numpy(np.asarray(val_ids, dtype=np.int64)).to(device)
    total, count, state = 0.0, 0, None
    for s in range(0, len(ids) - 1, window):
        x, y = ids[s:s + window][None], ids[s + 1:s + window + 1][None]  # (1, T)
        x = x[:, : y.shape[1]]
        loss, state = model(x, state, targets=y)
        total += loss.item() * y.numel()
        count += y.numel()
    return _report(total, count, len(ids) - 1)


@torch.no_grad()
def score_course(rnn, val_ids: np.ndarray, seq_len: int) -> dict:
    """The course LSTM both ways, each over every position; the better counts (baseline.held_out_loss's rule)."""
    rnn.eval()
    n = len(val_ids) - 1
    window = baseline.window_loss(rnn, val_ids, seq_len)  # each position from the seq_len ids before it
    carried = baseline.carried_loss(rnn, val_ids, streams=1)  # one stream: what scriptrnn gets
    return {**_report(min(window, carried) * n, n, n), "window_loss": window, "carried_loss": carried}


@torch.no_grad()
def score_transformer(model: TinyGPT, val_ids: np.ndarray, stride: int, device: torch.device,
                      batch: int = 256) -> dict:
    """Sliding windows of the model's context; each scores only the positions the one before did not.

    With stride s, windows start s apart and each scores its last s positions, which so see
    between C-s+1 and C characters (the first window scores all its positions). Stride 1: all C.
    """
    model.eval()
    ids = torch.from_numpy(np.asarray(val_ids, dtype=np.int64)).to(device)
    n, C = len(ids), min(model.config.context, len(ids) - 1)
    starts = list(range(0, n - 1 - C + 1, min(stride, C)))  # a stride over C would skip positions
    if starts[-1] != n - 1 - C:
        starts.append(n - 1 - C)  # the last window ends at the last target
    starts = torch.tensor(starts, device=device)
    first = torch.cat([torch.zeros(1, dtype=torch.long, device=device), C - starts.diff()])  # (W,) first new offset
    total, count = 0.0, 0
    for b in range(0, len(starts), batch):
        idx = starts[b:b + batch, None] + torch.arange(C, device=device)  # (W', C)
        logits = model(ids[idx])  # (W', C, V)
        nats = F.cross_entropy(logits.flatten(0, 1), ids[idx + 1].flatten(), reduction="none").view(idx.shape)
        mask = torch.arange(C, device=device)[None, :] >= first[b:b + batch, None]  # (W', C)
        total += nats[mask].sum().item()
        count += int(mask.sum())
    return _report(total, count, n - 1)
