"""Cutting a token array into training batches that use every position.

The array is laid out as B contiguous streams (one per batch row) and read T
tokens at a time, so window w+1 of a stream continues exactly where window w
stopped: the trainer carries the recurrent state across windows and the model
learns from context longer than T. Every position of a window is a target,
unlike the course method's one target per window (each epoch starts the windows
at a random offset, so the fewer than 2T tokens per stream it skips differ).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ScriptRNNError


def split_ids(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Train on the start, validate on the end: the held-out text is never trained on."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0.0 < val_fraction < 1.0:
        raise ScriptRNNError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    n_val = int(len(ids) * val_fraction)
    if n_val < 2 or len(ids) - n_val < 2:
        raise ScriptRNNError(
            f"the corpus has only {len(ids):,} tokens: too few to hold out {val_fraction:.0%} for validation "
            f"(that needs at least {tokens_needed(1, val_fraction):,})"
        )
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


def tokens_needed(train_tokens: int, val_fraction: float) -> int:
    """The smallest corpus whose split leaves ``train_tokens`` to train on and 2 to validate."""
    # Held out is int(n * fraction), so n is within a few of the exact bounds below; walk up to it.
    n = max(4, train_tokens + 2, math.floor(2 / val_fraction) - 1, math.floor((train_tokens - 1) / (1 - val_fraction)))
    while int(n * val_fraction) < 2 or n - int(n * val_fraction) < max(2, train_tokens):
        n += 1
    return n


@dataclass
class StreamBatches:
    """Windows of (inputs, targets), each (B, T), over B contiguous streams."""

    ids: np.ndarray
    batch_size: int  # B
    seq_len: int  # T
    seed: int = 0
    # This process's streams [lo, hi) of the B (a multi-process run splits them); None: all B.
    rows: tuple[int, int] | None = None

    def __post_init__(self):
        B, T = self.batch_size, self.seq_len
        lo, hi = self.rows or (0, B)
        if not 0 <= lo < hi <= B:
            raise ValueError(f"rows {self.rows} are not a part of {B} streams")
        self.stream_len = (len(self.ids) - 1) // B
        if self.stream_len < T + 1:
            need = B * (T + 1) + 1
            raise ScriptRNNError(
                f"the training text has {len(self.ids):,} tokens but --batch-size {B} x --seq-len {T} "
                f"needs at least {need:,}; use a bigger corpus or smaller --batch-size/--seq-len"
            )
        # ids may be a memmap of a token cache: only each window is read, and converted to int64.
        self.starts = np.arange(lo, hi, dtype=np.int64) * self.stream_len  # (B,) or this process's part
        self.offsets_arange = np.arange(T, dtype=np.int64)  # (T,)

    @property
    def windows_per_epoch(self) -> int:
        # One window is kept in reserve so each epoch can start at a random offset.
        return max(1, (self.stream_len - self.seq_len) // self.seq_len)

    def epoch_offset(self, epoch: int) -> int:
        """A different cut of the streams every epoch, repeatable from the seed."""
        spare = self.stream_len - self.windows_per_epoch * self.seq_len - 1
        return random.Random(self.seed * 100_003 + epoch).randint(0, max(0, min(spare, self.seq_len - 1)))

    def batch(self, epoch: int, window: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Window ``window`` of epoch ``epoch``: inputs and next-token targets, each (B, T) int64
        (B being this process's rows when ``rows`` is set)."""
        first = self.epoch_offset(epoch) + window * self.seq_len
        idx = self.starts[:, None] + first + self.offsets_arange[None, :]  # (B, T)
        x = torch.from_numpy(np.asarray(self.ids[idx], dtype=np.int64))
        y = torch.from_numpy(np.asarray(self.ids[idx + 1], dtype=np.int64))
        return x, y

    @property
    def tokens_per_batch(self) -> int:
        """Tokens of one step over all B streams (all processes together)."""
        return self.batch_size * self.seq_len
