"""One training step and the optimizer it steps, written once.

The loop (loop.py) trains with them, the sizing probe (probe.py) times them and a sweep warms up
with them, so the probe measures exactly the step the run will take: the same optimizer and
parameter groups, the same clipping, the same arithmetic (autocast), the model's own
regularisation (dropout, weight drop) in training mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..device import arithmetic
from ..model.network import RNNLanguageModel, state_from_parts, state_parts
from .config import TrainConfig


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW at the run's peak rate; weight decay (if any) on weight matrices only."""
    # Decaying embeddings, biases or gates' offsets hurts RNNs.
    def decays(name: str, p: torch.Tensor) -> bool:
        return p.dim() >= 2 and "embedding" not in name

    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if decays(n, p)], "weight_decay": config.weight_decay},
              {"params": [p for n, p in named if not decays(n, p)], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.99))


@dataclass
class StepResult:
    loss: torch.Tensor  # the mean loss over this process's rows, detached
    hidden: object  # the carried state, detached, in float32
    grad_norm: torch.Tensor  # before clipping; not finite: the weights were left as they were


@dataclass
class TrainStep:
    """forward, loss, backward, clip, optimizer step, under the run's autocast."""

    model: RNNLanguageModel  # whose parameters are clipped
    optimizer: torch.optim.Optimizer
    device: torch.device
    autocast: torch.dtype | None  # device.autocast_dtype: the run's arithmetic
    grad_clip: float
    forward: torch.nn.Module | None = None  # what runs the batch: the model, or its DDP wrapper

    @classmethod
    def build(cls, model: RNNLanguageModel, config: TrainConfig, device: torch.device, autocast,
              forward: torch.nn.Module | None = None) -> "TrainStep":
        return cls(model, make_optimizer(model, config), device, autocast, config.grad_clip, forward)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, hidden, lr: float | None = None) -> StepResult:
        """One step on inputs ``x`` and targets ``y``, (B, T) each, from the carried ``hidden``."""
        if lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        with arithmetic(self.device, self.autocast):
            # Under DDP the gradients of the W equal shares are averaged in backward(): the gradient of
            # the mean over the whole global batch.
            loss, hidden = (self.forward or self.model)(x, hidden, targets=y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        if torch.isfinite(norm):  # stepping on a NaN gradient would make the weights NaN
            self.optimizer.step()
        # Carried in float32 whatever the arithmetic, so resume files and evaluation see one dtype.
        carried = state_from_parts(h.detach().float() for h in state_parts(hidden))
        return StepResult(loss.detach(), carried, norm)
