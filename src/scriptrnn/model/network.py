"""The recurrent language model: embedding -> L recurrent layers -> vocabulary scores.

Letters used in shape comments: B batch, T time, V vocabulary, E embedding,
H hidden, L layers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ScriptRNNError
from .regularisation import embedding_dropout, locked_dropout, needs_layerwise, recurrent_layers

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
_CELL_FUNCTIONS = {"lstm": torch.lstm_cell, "gru": torch.gru_cell, "rnn": torch.rnn_tanh_cell}

@dataclass
class ModelConfig:
    vocab_size: int = 0  # V, set from the tokenizer
    cell: str = "lstm"  # lstm | gru | rnn (PyTorch's fused cuDNN/MKL kernels)
    num_layers: int = 2  # L
    hidden_size: int = 256  # H; char level's default is 512 (training.config.LEVEL_DEFAULTS, measured)
    embedding_size: int = 64  # E; characters need few dimensions, words want ~256
    dropout: float = 0.1  # between recurrent layers and before the output layer
    tie_weights: bool = False  # share the output layer with the embedding (adds an H->E projection if H != E)
    # full: one V-way softmax. adaptive: torch's AdaptiveLogSoftmaxWithLoss (Grave et al. 2017),
    # frequent words in a small head, rare ones in cheaper clusters; for large word vocabularies.
    softmax: str = "full"  # full | adaptive
    # Regularisation of the AWD-LSTM recipe (model/regularisation.py), training only; off here, and char
    # level turns on what its measurement chose (training.config.LEVEL_DEFAULTS). They add to ``dropout``.
    dropout_input: float = 0.0  # locked dropout on the embeddings entering the first layer (one mask per sequence)
    dropout_hidden: float = 0.0  # locked dropout between recurrent layers
    dropout_output: float = 0.0  # locked dropout on the last layer's output, before the output layer
    embedding_dropout: float = 0.0  # drop whole tokens: every occurrence of a dropped id in a batch
    weight_drop: float = 0.0  # DropConnect on the hidden-to-hidden matrices (fused kernels kept)

    def validate(self) -> "ModelConfig":
        if self.cell not in CELLS:
            raise ScriptRNNError(f"--cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        _check_size("vocabulary size", self.vocab_size, 2, 10_000_000)
        _check_size("--layers", self.num_layers, 1, 64)
        _check_size("--hidden-size", self.hidden_size, 1, 65_536)
        _check_size("--embedding-size", self.embedding_size, 1, 65_536)
        for name in ("dropout", "dropout_input", "dropout_hidden", "dropout_output", "embedding_dropout",
                     "weight_drop"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value < 1.0):
                raise ScriptRNNError(f"--{name.replace('_', '-')} must be in [0, 1), got {value!r}")
        if not isinstance(self.tie_weights, bool):
            raise ScriptRNNError(f"--tie-weights must be true or false, got {self.tie_weights!r}")
        if self.softmax not in ("full", "adaptive"):
            raise ScriptRNNError(f"--softmax must be 'full' or 'adaptive', got {self.softmax!r}")
        if self.softmax == "adaptive" and self.tie_weights:
            raise ScriptRNNError("--softmax adaptive has its own output layers; use it with --no-tie-weights")
        if self.softmax == "adaptive" and not adaptive_cutoffs(self.vocab_size):
            raise ScriptRNNError(f"--softmax adaptive needs a vocabulary of at least {MIN_ADAPTIVE_VOCAB:,} "
                                 f"tokens (this one has {self.vocab_size:,}); use --softmax full")
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
        if self.softmax == "adaptive":
            return V * E + recurrent + _adaptive_parameters(V, H)
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


MIN_ADAPTIVE_VOCAB = 1_000
ADAPTIVE_DIV_VALUE = 4.0  # each tail cluster's projection is 4x narrower than the last


def adaptive_cutoffs(vocab_size: int) -> list[int]:
    """Head of the ~2k most frequent ids, then clusters to 10k and the rest; [] if V is too small.

    Word ids are numbered most frequent first (tokenizer.create_lookup_tables), so
    frequency clusters are id ranges.
    """
    if vocab_size < MIN_ADAPTIVE_VOCAB:
        return []
    return [c for c in (vocab_size // 10 if vocab_size < 20_000 else 2_000, 10_000) if c < vocab_size]


def _adaptive_parameters(V: int, H: int) -> int:
    cutoffs = adaptive_cutoffs(V) + [V]
    head = H * (cutoffs[0] + len(cutoffs) - 1)
    tails = 0
    for i in range(1, len(cutoffs)):
        width = int(H // ADAPTIVE_DIV_VALUE ** i)
        tails += H * width + width * (cutoffs[i] - cutoffs[i - 1])
    return head + tails


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
        if config.softmax == "adaptive":
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(H, V, adaptive_cutoffs(V), div_value=ADAPTIVE_DIV_VALUE)
        else:
            self.decoder = nn.Linear(E if config.tie_weights else H, V)
            if config.tie_weights:
                self.decoder.weight = self.embedding.weight

    def forward(self, x: torch.Tensor, state=None, targets: torch.Tensor | None = None, *, last: bool = False):
        """x (B, T) token ids -> logits (B, T, V) and the new recurrent state.

        With ``targets`` (B, T) it returns the mean cross-entropy (nats) instead of
        the logits: the adaptive softmax then never builds the full (B, T, V) scores.
        The loss is computed in float32 whatever autocast does to the layers before.
        With ``last``, only the last position's logits (B, 1, V): generation needs no
        more, and a long prime then costs one output layer per row, not T.
        """
        c = self.config
        emb = self.embedding(x)  # (B, T, E)
        emb = embedding_dropout(emb, x, c.vocab_size, c.embedding_dropout, self.training)
        emb = locked_dropout(emb, c.dropout_input, self.training)
        if x.shape[1] == 1 and not self.training and state is not None and not torch.jit.is_tracing():
            out, state = self._one_step(emb, state)  # (B, 1, H)
        elif self.training and needs_layerwise(c):
            out, state = recurrent_layers(self.rnn, emb, state, c, self.training)  # (B, T, H)
        else:
            out, state = self.rnn(emb, state)  # (B, T, H)
        if last:
            out = out[:, -1:]  # (B, 1, H)
        out = locked_dropout(self.dropout(out), c.dropout_output, self.training)
        if self.projection is not None:
            out = self.projection(out)  # (B, T, E)
        if self.config.softmax == "adaptive":
            flat = out.flatten(0, 1).float()  # (B*T, H)
            if targets is not None:
                with torch.autocast(flat.device.type, enabled=False):
                    return self.adaptive(flat, targets.flatten()).loss, state
            # log-probabilities work as logits: softmax(log p) = p
            return self.adaptive.log_prob(flat).view(*out.shape[:2], -1), state  # (B, T, V)
        logits = self.decoder(out)  # (B, T, V)
        if targets is not None:
            return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten()), state
        return logits, state

    def _one_step(self, emb: torch.Tensor, state):
        """One token (B, 1, E) through the layers with PyTorch's cell kernels.

        Generation's steps: for a single time step the fused nn.LSTM call costs far more
        than its arithmetic (measured 232 against 1,456 steps/s for 2x512 on one CPU
        thread), while the cells compute the same function.
        """
        cell = _CELL_FUNCTIONS[self.config.cell]
        parts = state_parts(state)  # (L, B, H) each
        inp, new = emb[:, 0], [[] for _ in parts]
        for layer in range(self.config.num_layers):
            weights = [getattr(self.rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            if self.config.cell == "lstm":
                h, c = cell(inp, (parts[0][layer], parts[1][layer]), *weights)
                new[0].append(h)
                new[1].append(c)
            else:
                h = cell(inp, parts[0][layer], *weights)
                new[0].append(h)
            inp = h  # (B, H); no dropout between layers: generation runs in eval mode
        return inp[:, None], state_from_parts(torch.stack(p) for p in new)

    def init_hidden(self, batch_size: int, device=None):
        """Zero state for a batch: (L, B, H), a pair of them for an LSTM."""
        device = device or self.embedding.weight.device
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        zeros = torch.zeros(shape, device=device)
        return (zeros, zeros.clone()) if self.config.cell == "lstm" else zeros

    # Generation's interface (see generate/generation.py), shared with model.onnx.OnnxModel: numpy ids in, numpy
    # scores out, state kept on the device.

    def parameter_count(self) -> int:
        return self.config.parameter_count()

    @torch.no_grad()
    def prefill(self, ids: np.ndarray, n: int):
        """Run a prime (P,) once and copy its state for n sequences: scores (n, V) and the state."""
        device = self.embedding.weight.device
        logits, state = self(torch.as_tensor(ids, dtype=torch.int64, device=device)[None], last=True)  # (1, 1, V)
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
        logits, state = self(x, state, last=True)  # (B, 1, V)
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

