"""The race's transformer: nanoGPT's CPU recipe for Shakespeare characters, trained to a budget in minutes.

4 layers, 4 heads, 128 wide, 64-character context, pre-LN blocks, causal self-attention, GELU MLP 4x,
no biases, the output layer tied to the token embedding, dropout 0; AdamW with warm-up and a cosine
following the share of the budget spent (race.py's docstring gives the whole recipe).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class GPTConfig:
    vocab_size: int  # V
    context: int = 64  # T: characters a position may look back on
    layers: int = 4  # L
    heads: int = 4
    width: int = 128  # E
    dropout: float = 0.0  # the recipe's: minutes of training leave nothing to regularise yet


@dataclass
class Recipe:
    """nanoGPT's Shakespeare-character recipe for a CPU, its schedule sized to a budget in minutes."""

    batch_size: int = 12  # B random windows
    lr: float = 1e-3
    min_lr: float = 1e-4  # where the cosine ends, at the budget
    warmup_steps: int = 100
    weight_decay: float = 0.1  # matrices only, as nanoGPT
    betas: tuple = (0.9, 0.99)  # beta2 0.99: few tokens per step
    grad_clip: float = 1.0


class SelfAttention(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.heads, self.dropout = c.heads, c.dropout
        self.qkv = nn.Linear(c.width, 3 * c.width, bias=False)
        self.proj = nn.Linear(c.width, c.width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, E = x.shape
        q, k, v = (t.view(B, T, self.heads, E // self.heads).transpose(1, 2)
                   for t in self.qkv(x).split(E, dim=2))  # each (B, heads, T, E/heads)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return F.dropout(self.proj(y.transpose(1, 2).reshape(B, T, E)), self.dropout, self.training)  # (B, T, E)


class Block(nn.Module):
    """Pre-LN: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(c.width, bias=False), nn.LayerNorm(c.width, bias=False)
        self.attn = SelfAttention(c)
        self.mlp = nn.Sequential(nn.Linear(c.width, 4 * c.width, bias=False), nn.GELU(),
                                 nn.Linear(4 * c.width, c.width, bias=False), nn.Dropout(c.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.config = c
        self.tok, self.pos = nn.Embedding(c.vocab_size, c.width), nn.Embedding(c.context, c.width)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.ln_f = nn.LayerNorm(c.width, bias=False)
        self.head = nn.Linear(c.width, c.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied, as nanoGPT
        for name, p in self.named_parameters():  # nanoGPT's init; residual projections scaled by depth
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * c.layers) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        x = F.dropout(self.tok(idx) + self.pos(torch.arange(T, device=idx.device)), self.config.dropout,
                      self.training)  # (B, T, E)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x)).float()  # (B, T, V), float32 whatever autocast did


def _optimizer(model: TinyGPT, r: Recipe) -> torch.optim.AdamW:
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": matrices, "weight_decay": r.weight_decay},
                              {"params": others, "weight_decay": 0.0}], lr=r.lr, betas=r.betas)


def _lr(r: Recipe, step: int, progress: float) -> float:
    """Linear warm-up by steps, then cosine from lr to min_lr by the share of the budget spent."""
    cosine = r.min_lr + 0.5 * (r.lr - r.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))
    return cosine * min(1.0, (step + 1) / r.warmup_steps)


def train_transformer(train_ids: np.ndarray, vocab_size: int, dtype: str, minutes: float, device: torch.device,
                      seed: int = 1234, recipe: Recipe | None = None) -> tuple[TinyGPT, dict]:
    recipe = recipe or Recipe()
    torch.manual_seed(seed)
    model = TinyGPT(GPTConfig(vocab_size)).to(device)
    optimizer, data = _optimizer(model, recipe), torch.from_numpy(np.asarray(train_ids, dtype=np.int64)).to(device)
    T, budget_s, gen = model.config.context, minutes * 60, torch.Generator().manual_seed(seed)
    step, recent, start = 0, [], time.perf_counter()
    model.train()
    while (elapsed := time.perf_counter() - start) < budget_s:
        for group in optimizer.param_groups:
            group["lr"] = _lr(recipe, step, elapsed / budget_s)
        idx = torch.randint(len(data) - T - 1, (recipe.batch_size, 1), generator=gen) + torch.arange(T + 1)
        chunk = data[idx.to(device)]  # (B, T+1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            logits = model(chunk[:, :-1])  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), chunk[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        step += 1
        recent = (recent + [loss.item()])[-100:]
    return model, {"steps": step, "train_seconds": time.perf_counter() - start,
                   "train_loss_last_100": float(np.mean(recent)) if recent else None,
                   "parameters": sum(p.numel() for p in model.parameters()), "config": asdict(model.config),
                   "recipe": asdict(recipe)}
