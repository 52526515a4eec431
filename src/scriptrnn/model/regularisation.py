"""Regularisation that carries over to unseen text: the AWD-LSTM recipe (Merity et al. 2017), training only.

- ``embedding_dropout``: drop whole tokens' embedding rows (a dropped word is gone from the
  whole batch), so the model cannot lean on one word or character being there.
- ``locked_dropout``: variational dropout, one mask per sequence shared by every time step
  (Gal and Ghahramani 2016), on a recurrent layer's input or output.
- ``recurrent_layers``: the stack one layer at a time through PyTorch's fused kernels, with
  DropConnect on each layer's hidden-to-hidden matrix (a fresh mask every forward, shared over
  the whole window) and locked dropout between layers. No Python loop over time steps.

Nothing here changes a parameter: the dropped weights are a copy made for one forward, so
evaluation, generation and the ONNX export (all in eval mode, on ``nn.LSTM``'s own call)
always run the trained, undropped weights.

Letters: B batch, T time, V vocabulary, E embedding, H hidden, L layers, F features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The fused multi-layer ops nn.LSTM/GRU/RNN call, taking the weights as arguments.
_FUSED = {"lstm": torch.lstm, "gru": torch.gru, "rnn": torch.rnn_tanh}


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """x (B, T, F): zero the same features at every time step of a sequence, scaled by 1/(1-p)."""
    if not training or p <= 0:
        return x
    keep = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)  # (B, 1, F)
    return x * keep


def embedding_dropout(emb: torch.Tensor, ids: torch.Tensor, vocab_size: int, p: float,
                      training: bool) -> torch.Tensor:
    """emb (B, T, E) of ids (B, T): every occurrence of a dropped token id is zeroed, the rest scaled.

    The same as looking the ids up in an embedding matrix with whole rows dropped (AWD-LSTM's
    embedded_dropout), without copying the (V, E) matrix each step.
    """
    if not training or p <= 0:
        return emb
    keep = emb.new_empty(vocab_size).bernoulli_(1 - p) / (1 - p)  # (V,)
    return emb * keep[ids].unsqueeze(-1)  # (B, T, E)


def needs_layerwise(config) -> bool:
    """Whether training must run the stack layer by layer (weight drop, or locked dropout between layers)."""
    return config.weight_drop > 0 or (config.dropout_hidden > 0 and config.num_layers > 1)


def recurrent_layers(rnn: nn.RNNBase, x: torch.Tensor, state, config, training: bool):
    """x (B, T, E) through ``rnn``'s L layers, one fused call per layer; the output (B, T, H) and new state.

    Between layers, the plain dropout nn.LSTM itself would apply (``config.dropout``), then
    locked dropout (``config.dropout_hidden``); each layer's hidden-to-hidden weights are
    dropped with ``config.weight_drop``. State: (L, B, H), a pair of them for an LSTM.
    """
    cell, L = config.cell, config.num_layers
    parts = _state_parts(state, rnn, x)  # (L, B, H) each
    outputs: list[list[torch.Tensor]] = [[] for _ in parts]
    for layer in range(L):
        if layer > 0:
            x = F.dropout(x, config.dropout, training)
            x = locked_dropout(x, config.dropout_hidden, training)
        w_ih, w_hh, b_ih, b_hh = (getattr(rnn, f"{name}_l{layer}")
                                  for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        w_hh = F.dropout(w_hh, config.weight_drop, training)  # DropConnect: a dropped copy, (G*H, H)
        hx = tuple(p[layer:layer + 1] for p in parts)  # (1, B, H) each
        x, *new = _FUSED[cell](x, hx if cell == "lstm" else hx[0], [w_ih, w_hh, b_ih, b_hh],
                               True, 1, 0.0, training, False, True)  # (B, T, H)
        for kept, part in zip(outputs, new):
            kept.append(part)
    new_state = tuple(torch.cat(kept) for kept in outputs)  # (L, B, H) each
    return x, (new_state if cell == "lstm" else new_state[0])


def _state_parts(state, rnn: nn.RNNBase, x: torch.Tensor) -> tuple:
    """The state as (h,) or (h, c), zeros when there is none yet; in x's dtype, as the fused op wants."""
    if state is None:
        zeros = x.new_zeros(rnn.num_layers, x.shape[0], rnn.hidden_size)
        return (zeros, zeros.clone()) if isinstance(rnn, nn.LSTM) else (zeros,)
    parts = state if isinstance(state, tuple) else (state,)
    return tuple(p.to(x.dtype) for p in parts)
