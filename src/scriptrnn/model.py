"""The recurrent language model: embedding -> L recurrent layers -> vocabulary scores.

Letters used in shape comments: B batch, T time, V vocabulary, E embedding,
H hidden, L layers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn

from .errors import ScriptRNNError

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

@dataclass
class ModelConfig:
    vocab_size: int = 0  # V, set from the tokenizer
    cell: str = "lstm"  # lstm | gru | rnn (PyTorch's fused cuDNN/MKL kernels)
    num_layers: int = 2  # L
    hidden_size: int = 256  # H; 256 learns most per CPU-minute at char level
    embedding_size: int = 64  # E; characters need few dimensions, words want ~256
    dropout: float = 0.1  # between recurrent layers and before the output layer
    tie_weights: bool = False  # share the output layer with the embedding (adds an H->E projection if H != E)

    def validate(self) -> "ModelConfig":
        if self.cell not in CELLS:
            raise ScriptRNNError(f"--cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        _check_size("vocabulary size", self.vocab_size, 2, 10_000_000)
        _check_size("--layers", self.num_layers, 1, 64)
        _check_size("--hidden-size", self.hidden_size, 1, 65_536)
        _check_size("--embedding-size", self.embedding_size, 1, 65_536)
        if not 0.0 <= self.dropout < 1.0:
            raise ScriptRNNError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not isinstance(self.tie_weights, bool):
            raise ScriptRNNError(f"--tie-weights must be true or false, got {self.tie_weights!r}")
        if self.parameter_count() > 2_000_000_000:
            raise ScriptRNNError(
                f"that model would have {self.parameter_count():,} parameters; "
                "choose a smaller --hidden-size, --layers or vocabulary"
            )
        return self

    def parameter_count(self) -> int:
        """Parameters of the model this config describes, without building it."""
        V, E, H, L = self.vocab_size, self.embedding_size, self.hidden_size, self.num_layers
        gates = {"lstm": 4, "gru": 3, "rnn": 1}.get(self.cell, 4)
        recurrent = sum(gates * H * ((E if i == 0 else H) + H + 2) for i in range(L))
        out_in = E if self.tie_weights else H
        projection = H * E if self.tie_weights and H != E else 0
        return V * E + recurrent + projection + (0 if self.tie_weights else V * out_in) + V

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ScriptRNNError(f"config.json has unknown model settings: {', '.join(sorted(unknown))}")
        return cls(**data).validate()


def _check_size(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ScriptRNNError(f"{name} must be a whole number from {low:,} to {high:,}, got {value!r}")


class RNNLanguageModel(nn.Module):
    """Predicts the next token at every position of every sequence."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config.validate()
        V, E, H, L = config.vocab_size, config.embedding_size, config.hidden_size, config.num_layers
        self.embedding = nn.Embedding(V, E)
        rnn_kwargs = {"nonlinearity": "tanh"} if config.cell == "rnn" else {}
        self.rnn = CELLS[config.cell](
            E, H, num_layers=L, batch_first=True, dropout=config.dropout if L > 1 else 0.0, **rnn_kwargs
        )
        self.dropout = nn.Dropout(config.dropout)
        self.projection = nn.Linear(H, E, bias=False) if config.tie_weights and H != E else None
        self.decoder = nn.Linear(E if config.tie_weights else H, V)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight

    def forward(self, x: torch.Tensor, state=None):
        """x (B, T) token ids -> logits (B, T, V) and the new recurrent state."""
        emb = self.embedding(x)  # (B, T, E)
        out, state = self.rnn(emb, state)  # (B, T, H)
        out = self.dropout(out)
        if self.projection is not None:
            out = self.projection(out)  # (B, T, E)
        return self.decoder(out), state  # (B, T, V)

    def init_hidden(self, batch_size: int, device=None):
        """Zero state for a batch: (L, B, H), a pair of them for an LSTM."""
        device = device or self.embedding.weight.device
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        zeros = torch.zeros(shape, device=device)
        return (zeros, zeros.clone()) if self.config.cell == "lstm" else zeros

    # Generation's interface (see generate.py), shared with runtime.OnnxModel: numpy ids in, numpy
    # scores out, state kept on the device.

    def parameter_count(self) -> int:
        return self.config.parameter_count()

    @torch.no_grad()
    def prefill(self, ids: np.ndarray, n: int):
        """Run a prime (P,) once and copy its state for n sequences: scores (n, V) and the state."""
        device = self.embedding.weight.device
        logits, state = self(torch.as_tensor(ids, dtype=torch.int64, device=device)[None])  # (1, P, V)
        state = state_from_parts(s.repeat(1, n, 1) for s in state_parts(state))  # (L, n, H)
        return _scores(logits[:, -1]).repeat(n, axis=0), state

    @torch.no_grad()
    def step(self, tokens: np.ndarray, states: list) -> tuple[np.ndarray, list]:
        """One token (B,) for the sequences of several states, stepped as one batch.

        Returns scores (B, V) and each state advanced, in the order given.
        """
        sizes = [state_parts(s)[0].shape[1] for s in states]
        parts = zip(*(state_parts(s) for s in states))  # per part: one (L, N, H) per state
        state = state_from_parts(torch.cat(part, dim=1) for part in parts)  # (L, B, H)
        x = torch.as_tensor(tokens, dtype=torch.int64, device=self.embedding.weight.device)[:, None]  # (B, 1)
        logits, state = self(x, state)  # (B, 1, V)
        split = [s.split(sizes, dim=1) for s in state_parts(state)]  # per part: one (L, N, H) per state
        return _scores(logits[:, -1]), [state_from_parts(part) for part in zip(*split)]


def _scores(logits: torch.Tensor) -> np.ndarray:
    """(B, V) logits as float32 numpy on the CPU, where sampling happens."""
    return logits.float().cpu().numpy()


def state_parts(state) -> tuple:
    """The state as a tuple of (L, B, H) tensors: (h, c) for an LSTM, (h,) otherwise, () for None."""
    if state is None:
        return ()
    return state if isinstance(state, tuple) else (state,)


def state_from_parts(parts) -> "torch.Tensor | tuple | None":
    """The inverse of ``state_parts``: what the recurrent layer takes."""
    parts = tuple(parts)
    if not parts:
        return None
    return parts if len(parts) == 2 else parts[0]


def detach_state(state):
    """Cut the graph between windows so backprop stops at the window edge (truncated BPTT)."""
    return state_from_parts(s.detach() for s in state_parts(state))

