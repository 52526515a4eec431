"""A run's exact resume point: weights, AdamW, every rank's RNG, the carried state and the loop position.

One safetensors file (resume.safetensors) with the loop position in its JSON metadata, so
it is complete or absent; every part is checked against the run that reads it back.
The functions take the ``Trainer`` (loop.py) whose state they save and restore.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass

import torch

from ..errors import ScriptRNNError
from ..model.directory import RESUME_FILE
from ..model.checkpoint import load_tensors, load_weights_into, save_tensors, saved_best_loss, unique_tensors
from ..model.network import ModelConfig, state_from_parts, state_parts
from .config import _is_number
from .distributed import rank_seed

@dataclass
class LoopState:
    """Where the loop is: everything beyond the weights that an exact resume needs."""

    step: int = 0
    epoch: int = 0
    window: int = 0
    elapsed_s: float = 0.0
    tokens_seen: int = 0
    best_val_loss: float = math.inf
    checks_without_improvement: int = 0
    cooldown_from_step: int = -1  # the step a cool-down began (TrainConfig.cooldown_checks); -1: none yet
    cooldown_from_lr: float = 0.0  # the learning rate it falls from
    # A finished run given a new --time-budget trains a new segment of the schedule (schedule.py):
    segment_s: float = 0.0  # elapsed_s when the segment began (its budget counts from here)
    segment_step: int = 0  # the step it began at (its warm-up counts from here)


def save_resume(trainer) -> None:
    # Several processes: the state of all B streams, (L, B, H), and every rank's RNG, so that
    # any number of processes can continue the run (each slices its own rows back out).
    hidden = [trainer.dist.gather_rows(h.detach()) for h in state_parts(trainer.hidden)]
    rngs = trainer.dist.gather(torch.get_rng_state(), trainer.device)
    # Dropout on the GPU draws from the GPU's generator.
    cuda_rngs = trainer.dist.gather(torch.cuda.get_rng_state(trainer.device), trainer.device) \
        if trainer.device.type == "cuda" else []
    trainer.last_save = time.monotonic()
    if not trainer.dist.is_main:
        return  # weights and optimizer are the same on every rank: rank 0 writes them
    tensors = {f"model.{k}": v for k, v in unique_tensors(trainer.model.state_dict()).items()}
    opt = trainer.optimizer.state_dict()
    for index, slots in opt["state"].items():
        for key, value in slots.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    for name, states in (("rng.torch", rngs), ("rng.cuda", cuda_rngs)):
        for rank, state in enumerate(states):  # rank 0's under the single-process name
            tensors[name if rank == 0 else f"{name}.{rank}"] = state
    for i, h in enumerate(hidden):
        tensors[f"hidden.{i}"] = h.cpu().contiguous()
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt["param_groups"]]
    meta = {"loop": json.dumps(asdict(trainer.state)), "param_groups": json.dumps(groups),
            "world_size": str(trainer.dist.world_size)}
    save_tensors(trainer.out_dir / RESUME_FILE, tensors, metadata=meta)

def load_resume(trainer) -> None:
    """Restore everything ``_save_resume`` wrote, checking each part against this run."""
    path = trainer.out_dir / RESUME_FILE
    tensors, meta = load_tensors(path, _resume_bytes(trainer))  # a bigger file is refused before it is read
    try:
        trainer.state = _loop_state(json.loads(meta["loop"]), trainer.batches.windows_per_epoch)
        groups = json.loads(meta["param_groups"])
        model_tensors = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        load_weights_into(trainer.model, model_tensors, path)
        trainer.optimizer.load_state_dict(_optimizer_state(tensors, groups, trainer.optimizer))
        _restore_rng(trainer, tensors, meta.get("world_size", "1") == str(trainer.dist.world_size))
        hidden = _hidden_state(tensors, trainer.model.config, trainer.config.batch_size, trainer.device)  # (L, B, H)
        lo, hi = trainer.dist.rows(trainer.config.batch_size)
        trainer.hidden = state_from_parts(h[:, lo:hi].contiguous() for h in state_parts(hidden))
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as e:
        raise ScriptRNNError(f"{path}: resume state is damaged or from another run ({_short(e)})") from None
    # A kill between writing new best weights and the resume point leaves the weights
    # file ahead: trust it, so that the resumed run never replaces them with worse ones.
    on_disk = saved_best_loss(trainer.out_dir)
    if on_disk is not None and on_disk < trainer.state.best_val_loss:
        trainer.state.best_val_loss = on_disk
    # Rank 0's figure for all, so that every rank counts checks without improvement alike.
    mine = trainer.state.best_val_loss if trainer.dist.is_main else 0.0
    trainer.state.best_val_loss = trainer.dist.sum([mine], trainer.device)[0]

def _resume_bytes(trainer) -> int:
    """The most a resume file of this run can hold: weights and AdamW's two moments (float64 at most),
    the carried state (L, B, H) x 2, and every rank's RNG state (5 KB each) in the slack."""
    c = trainer.model.config
    return 8 * (3 * c.parameter_count() + 2 * c.num_layers * trainer.config.batch_size * c.hidden_size) + 64 * 2**20


def _restore_rng(trainer, tensors: dict, same_world: bool) -> None:
    """Each rank's saved generators; a rank the saved run did not have gets a fresh seed."""
    rank = trainer.dist.rank
    if rank > 0 and not same_world:
        torch.manual_seed(rank_seed(trainer.config.seed, rank, trainer.state.step))
        return
    suffix = "" if rank == 0 else f".{rank}"
    torch.set_rng_state(tensors["rng.torch" + suffix])
    if trainer.device.type == "cuda" and "rng.cuda" + suffix in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda" + suffix], trainer.device)


def _short(error: Exception) -> str:
    return " ".join(str(error).split())[:160] or type(error).__name__


def _loop_state(loop: dict, windows_per_epoch: int) -> LoopState:
    state = LoopState(**loop)
    counts = (state.step, state.epoch, state.window, state.tokens_seen, state.checks_without_improvement)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
        raise ValueError(f"loop position {loop} is not made of whole numbers >= 0")
    if not (_is_number(state.elapsed_s) and _is_number(state.best_val_loss) and state.elapsed_s >= 0
            and not math.isnan(state.best_val_loss)):
        raise ValueError(f"loop timings {loop} are not numbers")
    if not (isinstance(state.cooldown_from_step, int) and state.cooldown_from_step >= -1
            and _is_number(state.cooldown_from_lr) and math.isfinite(state.cooldown_from_lr)):
        raise ValueError(f"loop cool-down {loop} is not a step and a learning rate")
    if not (isinstance(state.segment_step, int) and 0 <= state.segment_step <= state.step
            and _is_number(state.segment_s) and 0 <= state.segment_s <= state.elapsed_s):
        raise ValueError(f"loop segment {loop} is not a step and a time within the run")
    if state.window >= windows_per_epoch:
        raise ValueError(f"window {state.window} is past the {windows_per_epoch} windows of an epoch "
                         "(has the corpus changed?)")
    return state


def _hidden_state(tensors: dict, config: ModelConfig, batch_size: int, device):
    """The carried recurrent state, (L, B, H) each, checked against the model."""
    hidden = [tensors[k] for k in sorted(t for t in tensors if t.startswith("hidden."))]
    if not hidden:
        return None
    shape = (config.num_layers, batch_size, config.hidden_size)
    if len(hidden) != (2 if config.cell == "lstm" else 1) or any(
            tuple(h.shape) != shape or not h.is_floating_point() for h in hidden):
        raise ValueError(f"carried state does not fit a {config.cell} of shape {shape}")
    return state_from_parts(h.float().to(device) for h in hidden)


def _optimizer_state(tensors: dict, groups: list[dict], optimizer: torch.optim.Optimizer) -> dict:
    """AdamW's state dict from the saved tensors, each slot checked against its parameter."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for index, slots in state.items():
        if not 0 <= index < len(params) or set(slots) != {"step", "exp_avg", "exp_avg_sq"}:
            raise ValueError(f"optimizer slot {index} {sorted(slots)} does not fit this model")
        shape = params[index].shape
        if slots["exp_avg"].shape != shape or slots["exp_avg_sq"].shape != shape or slots["step"].numel() != 1:
            raise ValueError(f"optimizer slot {index} has the wrong shape for a parameter of {tuple(shape)}")
        if not all(t.is_floating_point() for t in slots.values()):
            raise ValueError(f"optimizer slot {index} is not stored as floating point")
    live = optimizer.state_dict()["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(live) or not all(isinstance(g, dict) for g in groups):
        raise ValueError("optimizer parameter groups do not fit this model")
    merged = []
    for saved, current in zip(groups, live):
        # Only the numbers a run changes come from the file; AdamW's switches are this code's.
        numbers = {k: saved[k] for k in ("lr", "eps", "weight_decay") if k in saved}
        betas = saved.get("betas", current["betas"])
        if not all(_is_number(v) and math.isfinite(v) for v in [*numbers.values(), *betas]) or len(betas) != 2:
            raise ValueError(f"optimizer settings {numbers} betas {betas} are not finite numbers")
        merged.append({**current, **numbers, "betas": tuple(betas)})
    return {"state": state, "param_groups": merged}
