"""Several processes training one model, on PyTorch's own engine (torch.distributed + DDP).

``torchrun`` starts the processes and sets RANK, WORLD_SIZE and LOCAL_RANK; ``session``
joins them into a process group (NCCL for GPUs, Gloo for CPUs) and ``Distributed`` is
what the trainer asks of it: which streams of the global batch this process owns, and
the handful of collectives that keep the processes in step. A single process gets a
``Distributed`` whose collectives are the identity, so the trainer has one code path.

Every collective is given a timeout, so a process that hangs makes the others stop with
a one-line error instead of waiting for ever (a process that dies is noticed at once:
its connections close).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ScriptRNNError

DEFAULT_TIMEOUT_S = 600.0  # how long a process waits for the others in one collective (NCCL's default)
# Rank 0 alone reads and tokenizes the corpus while the others wait: that may take long on a big corpus.
SETUP_TIMEOUT_S = 3600.0


class EchoedError(ScriptRNNError):
    """Rank 0 failed and printed why; the other ranks stop with this, and print nothing more."""

    echoed = True


class LostContact(ScriptRNNError):
    """A collective failed: another process died, hung past the timeout, or lost its network."""


@dataclass
class Distributed:
    """This process's place among the processes of a run; one process when world_size is 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # which GPU of this machine
    timeout_s: float = DEFAULT_TIMEOUT_S  # a collective waits this long for the others
    setup_group: object = None  # a Gloo group with SETUP_TIMEOUT_S, for the start-up exchange

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and plots and shows the progress bar; the others only train."""
        return self.rank == 0

    def rows(self, batch_size: int) -> tuple[int, int]:
        """This process's streams [lo, hi) of the B streams of the global batch."""
        if batch_size % self.world_size:
            lower = batch_size - batch_size % self.world_size
            raise ScriptRNNError(
                f"--batch-size {batch_size} is the global batch and must split evenly over the "
                f"{self.world_size} processes; use a multiple of {self.world_size} (e.g. {lower or self.world_size} "
                f"or {lower + self.world_size})"
            )
        share = batch_size // self.world_size
        return self.rank * share, (self.rank + 1) * share

    def device(self, device: torch.device) -> torch.device:
        """The device this process trains on: with CUDA, the GPU numbered LOCAL_RANK."""
        if not self.enabled or device.type != "cuda":
            return device
        if device.index is not None:
            raise ScriptRNNError(
                f"--device {device}: under torchrun each process takes the GPU numbered by its LOCAL_RANK; "
                "pass --device cuda (or auto) and choose GPUs with CUDA_VISIBLE_DEVICES"
            )
        if self.local_rank >= torch.cuda.device_count():
            raise ScriptRNNError(
                f"this machine runs more training processes than it has GPUs ({torch.cuda.device_count()}); "
                "lower --nproc-per-node"
            )
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP around the model: rank 0's weights are copied to all, gradients averaged in backward."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        # The adaptive softmax skips a tail cluster that no target of the batch falls in; DDP
        # must then be told that some parameters may get no gradient on some ranks.
        adaptive = getattr(getattr(model, "config", None), "softmax", "full") == "adaptive"
        with lost_contact(self):
            return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=adaptive)

    # ------------------------------------------------------------ collectives

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sums over all processes (in float64): the same list on every rank."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        with lost_contact(self):
            dist.all_reduce(tensor)
        return tensor.tolist()

    def gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """(L, B/W, H) on each process -> (L, B, H), rank order: the carried state of all streams."""
        if not self.enabled:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        with lost_contact(self):
            dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=1)

    def gather(self, tensor: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
        """Every process's copy of a same-shaped tensor (an RNG state, say), on the CPU, rank order."""
        if not self.enabled:
            return [tensor]
        mine = tensor.to(device)
        parts = [torch.empty_like(mine) for _ in range(self.world_size)]
        with lost_contact(self):
            dist.all_gather(parts, mine)
        return [p.cpu() for p in parts]

    def broadcast_(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite these tensors with rank 0's, in place."""
        if not self.enabled:
            return
        with lost_contact(self), torch.no_grad():
            for tensor in tensors:
                dist.broadcast(tensor, src=0)

    def share(self, message: dict | None) -> dict:
        """Rank 0's JSON-able ``message`` on every rank (JSON bytes: nothing is unpickled)."""
        if not self.enabled:
            return message
        data = json.dumps(message).encode("utf-8") if self.is_main else b""
        size = torch.tensor([len(data)], dtype=torch.int64)
        with lost_contact(self, setup=True):
            dist.broadcast(size, src=0, group=self.setup_group)
            buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8) if self.is_main else \
                torch.empty(int(size), dtype=torch.uint8)
            dist.broadcast(buffer, src=0, group=self.setup_group)
        return json.loads(bytes(buffer.numpy()).decode("utf-8"))


SINGLE = Distributed()


@contextlib.contextmanager
def lost_contact(where: Distributed, *, setup: bool = False) -> Iterator[None]:
    """Turn a failed collective (a peer died, hung or lost its network) into one line."""
    try:
        yield
    except RuntimeError as e:
        if not (where.enabled and is_communication_error(e)):
            raise
        timeout = SETUP_TIMEOUT_S if setup else where.timeout_s
        raise LostContact(
            f"rank {where.rank} of {where.world_size} lost contact with the other training processes "
            f"({_gist(e)}): one of them stopped, hung for over {timeout:g} s or lost its network"
        ) from None


_COMMUNICATION_MARKS = ("gloo", "NCCL", "Connection reset", "Connection closed", "Connection refused",
                        "Broken pipe", "Timed out", "timed out", "ProcessGroup", "c10d")


def is_communication_error(error: BaseException) -> bool:
    if isinstance(error, dist.DistError):
        return True
    return isinstance(error, RuntimeError) and any(mark in str(error) for mark in _COMMUNICATION_MARKS)


def _gist(error: BaseException) -> str:
    """The useful part of a backend's message: no source location, no advice, one sentence."""
    text = re.sub(r"^\s*\[[^\]]*\]\s*", "", " ".join(str(error).split()))
    return re.split(r"(?<=[a-z0-9])\. ", text, maxsplit=1)[0][:200] or type(error).__name__


# ---------------------------------------------------------------- process group


def from_environment() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) as torchrun (or SLURM's srun under torchrun) set them."""
    values = {}
    for name, default in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        text = os.environ.get(name, default)
        try:
            values[name] = int(text)
        except ValueError:
            raise ScriptRNNError(f"environment variable {name}={text!r} is not a whole number") from None
    rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ScriptRNNError(f"RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local} do not describe a process "
                             "of a run; start several processes with torchrun")
    return rank, world, local


def is_main_process() -> bool:
    """Rank 0, or the only process: the one that prints results."""
    return os.environ.get("RANK", "0").strip() in ("", "0")


@contextlib.contextmanager
def session(timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[Distributed]:
    """Join the other processes torchrun started (if any) for the length of the block."""
    if not (isinstance(timeout_s, (int, float)) and not isinstance(timeout_s, bool) and 0 < timeout_s < 1e7):
        raise ScriptRNNError(f"--dist-timeout must be a positive number of seconds, got {timeout_s!r}")
    rank, world, local = from_environment()
    if world == 1:
        yield SINGLE
        return
    ours = not dist.is_initialized()  # a caller's own process group is used, and left to the caller
    if ours:
        _init_process_group(rank, world, timeout_s)
    where = Distributed(dist.get_rank(), dist.get_world_size(), local, float(timeout_s))
    with lost_contact(where, setup=True):
        where.setup_group = dist.new_group(backend="gloo", timeout=timedelta(seconds=max(timeout_s,
                                                                                          SETUP_TIMEOUT_S)))
    yield where
    # Only on success: after a lost peer, tearing down may itself wait on the dead process.
    if ours:
        dist.destroy_process_group()


def _init_process_group(rank: int, world: int, timeout_s: float) -> None:
    # NCCL for CUDA tensors, Gloo for CPU ones (and for everything when there is no GPU).
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
    try:
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    except (ValueError, RuntimeError) as e:
        raise ScriptRNNError(
            f"rank {rank} of {world} could not join the other training processes ({_gist(e)}); start them with "
            "torchrun, which sets MASTER_ADDR and MASTER_PORT"
        ) from None


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """A seed for rank ``rank``'s dropout: different on every rank, repeatable from the run's seed."""
    digest = hashlib.sha256(f"{seed}/{rank}/{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little")
