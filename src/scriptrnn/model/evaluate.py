"""Held-out loss: mean cross-entropy over every position of a token array."""

from __future__ import annotations

import math
import numpy as np
import torch

from .network import RNNLanguageModel


def loss_report(loss: float, level: str) -> dict:
    """Held-out loss with the figures people quote: perplexity, and bits per character at char level."""
    report = {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}
    if level == "char":
        report["bits_per_char"] = loss / math.log(2)
    return report


def evaluate_loss(
    model: RNNLanguageModel,
    ids: np.ndarray,
    *,
    streams: int = 32,
    max_tokens: int | None = None,
    device: torch.device | str = "cpu",
) -> tuple[float, int]:
    """Mean cross-entropy (nats) over all positions of ``ids``, and how many were scored.

    The array is read as ``streams`` contiguous streams with the state carried
    along, so only each stream's first token lacks context; windows are only a
    memory bound, they do not change the result.
    """
    total, count = loss_sums(model, ids, streams=streams, max_tokens=max_tokens, device=device)
    return total / max(1, count), count


@torch.no_grad()
def loss_sums(
    model: RNNLanguageModel,
    ids: np.ndarray,
    *,
    streams: int = 32,
    max_tokens: int | None = None,
    device: torch.device | str = "cpu",
    part: tuple[int, int] = (0, 1),
) -> tuple[float, int]:
    """Summed cross-entropy (nats) and positions scored, for ``evaluate_loss``.

    ``part`` (index, count) scores only that share of the streams, so that the
    processes of a multi-process run can split the work and add up their sums into
    exactly the figure one process would get.
    """
    if max_tokens is not None:
        ids = ids[: max_tokens + 1]
    streams = max(1, min(streams, (len(ids) - 1) // 2))
    n = (len(ids) - 1) // streams
    mine = np.array_split(np.arange(streams, dtype=np.int64), part[1])[part[0]]  # (S',) of the S streams
    base = mine[:, None] * n  # (S', 1)
    # Keep one window's logits (S, T, V) to about 64 MB of floats.
    window = max(1, min(512, 16_000_000 // (streams * model.config.vocab_size)))
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    for start in range(0, n if len(mine) else 0, window):
        idx = base + np.arange(start, min(start + window, n))[None, :]  # (S', T)
        x = torch.from_numpy(np.asarray(ids[idx], dtype=np.int64)).to(device)
        y = torch.from_numpy(np.asarray(ids[idx + 1], dtype=np.int64)).to(device)
        loss, state = model(x, state, targets=y)  # mean over the window's S*T positions
        total += loss.item() * y.numel()
        count += y.numel()
    model.train(was_training)
    return total, count
