"""The course notebooks' API, for people moving their code over.

``RNN``, ``forward_back_prop`` and ``batch_data`` behave as the course projects
describe them: windows of ``sequence_length`` words with only the next word as
the target. The main trainer (``scriptrnn.training.loop.Trainer``) does not use them: it
learns from every position instead. They are the course method that scriptrnn's
benchmarks are to be measured against.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .errors import ScriptRNNError


class RNN(nn.Module):
    """Embedding -> LSTM -> dropout -> linear; scores for the word after each sequence."""

    def __init__(self, vocab_size: int, output_size: int, embedding_dim: int, hidden_dim: int,
                 n_layers: int, dropout: float = 0.5):
        super().__init__()
        self.output_size = output_size
        self.hidden_dim = hidden_dim
        self.n_layers = n_layers
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, n_layers, dropout=dropout if n_layers > 1 else 0.0,
                            batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_dim, output_size)

    def forward(self, nn_input: torch.Tensor, hidden):
        """nn_input (B, T) word ids -> scores (B, output_size) for the next word, new hidden state."""
        out, hidden = self.lstm(self.embedding(nn_input.long()), hidden)  # (B, T, H)
        scores = self.fc(self.dropout(out[:, -1]))  # (B, output_size): the last step only
        return scores, hidden

    def init_hidden(self, batch_size: int):
        """Zeros (n_layers, B, hidden_dim), a pair for the LSTM, on the model's device."""
        weight = next(self.parameters())
        shape = (self.n_layers, batch_size, self.hidden_dim)
        return (weight.new_zeros(shape), weight.new_zeros(shape))


def forward_back_prop(rnn: RNN, optimizer: torch.optim.Optimizer, criterion, inp: torch.Tensor,
                      target: torch.Tensor, hidden, clip: float = 5.0):
    """One optimizer step on one batch; returns (loss as a float, the new hidden state)."""
    device = next(rnn.parameters()).device
    hidden = tuple(h.detach() for h in hidden)  # no backprop into earlier batches
    optimizer.zero_grad()
    output, hidden = rnn(inp.to(device), hidden)
    loss = criterion(output, target.to(device).long())
    loss.backward()
    nn.utils.clip_grad_norm_(rnn.parameters(), clip)
    optimizer.step()
    return loss.item(), hidden


def batch_data(words: Sequence[int], sequence_length: int, batch_size: int, shuffle: bool = True) -> DataLoader:
    """(sequence, next word) pairs over word ids, in full batches only.

    As in the course: the ids are first cut to a whole number of batches, then
    every window of ``sequence_length`` ids is paired with the id after it.
    """
    if sequence_length < 1 or batch_size < 1:
        raise ScriptRNNError("sequence_length and batch_size must be at least 1")
    words = torch.as_tensor(list(words) if not torch.is_tensor(words) else words, dtype=torch.long)
    words = words[: len(words) // batch_size * batch_size]
    n = len(words) - sequence_length
    if n < 1:
        raise ScriptRNNError(f"{len(words)} words are too few for sequences of {sequence_length}")
    windows = words.unfold(0, sequence_length, 1)[:n]  # (n, sequence_length), a view
    targets = words[sequence_length:]
    return DataLoader(TensorDataset(windows, targets), batch_size=batch_size, shuffle=shuffle, drop_last=True)
