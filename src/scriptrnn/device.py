"""Where and in what arithmetic a model runs: the device, bfloat16 or float32, threads, memory.

Small and free of the trainer, so that loading a model, evaluating it and a sweep's
warm-up can choose a device without importing the training loop.
"""

from __future__ import annotations

import contextlib
import os

import torch

from .errors import ScriptRNNError

def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ScriptRNNError(f"--device {name!r} is not a device name (try cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ScriptRNNError("--device cuda was asked for but this PyTorch sees no CUDA GPU")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ScriptRNNError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ScriptRNNError("--device mps was asked for but this PyTorch sees no Apple GPU")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ScriptRNNError(f"--device {name!r} cannot train or run a model here; use cpu, cuda or mps")
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bfloat16 when asked for or when 'auto' finds native support; None means plain float32."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
    elif device.type == "cpu":
        native = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    else:
        native = False
    if precision == "bf16" and not native:
        raise ScriptRNNError(f"--precision bf16: this {device.type} has no native bfloat16 arithmetic; use fp32")
    return torch.bfloat16 if native else None


def arithmetic(device: torch.device, dtype: torch.dtype | None):
    """The forward pass's context: autocast to ``dtype`` (from ``autocast_dtype``), or nothing for float32."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def check_memory(config, device: torch.device) -> None:
    """Refuse a model (its ModelConfig) whose training state cannot fit, before allocating any of it."""
    # Weights, gradients and AdamW's two moments: four float32 copies of every parameter.
    needed = config.parameter_count() * 4 * 4
    if device.type == "cuda":
        have, where = torch.cuda.get_device_properties(device).total_memory, "the GPU"
    else:
        have, where = total_memory(), "this machine"
    if have and needed > have:
        raise ScriptRNNError(
            f"a model of {config.parameter_count():,} parameters needs about {needed / 2**30:.1f} GiB to train "
            f"but {where} has {have / 2**30:.1f} GiB; choose a smaller --hidden-size, --layers or vocabulary"
        )


def total_memory() -> int | None:
    """Physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def set_threads(threads: int | None) -> None:
    """PyTorch's CPU threads (a setting for the whole process); None leaves its default."""
    if threads is not None:
        torch.set_num_threads(threads)
