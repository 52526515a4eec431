"""--workers N: N processes on this machine, each claiming runs from the sweep's shared storage.

One GPU per worker where there are GPUs (CUDA_VISIBLE_DEVICES; workers beyond the GPUs share
them in turn); on a CPU the cores are split, each worker training with cores // N threads, so
N workers together use the machine as one would. The workers are spawned (a fresh interpreter
each: no CUDA state or threads inherited) in their own process group; this process forwards
Ctrl-C and SIGTERM to each once, waits for them, and writes the tables and the report.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys

from ..errors import ScriptRNNError


class SweepInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped a run; its resume point is saved and a restart continues it."""

    def __init__(self, reason: str, run_dir):
        super().__init__(f"{reason} in {run_dir}")
        self.reason, self.run_dir = reason, run_dir


EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def visible_gpus(device: str) -> list[str]:
    """The GPUs workers may take: CUDA_VISIBLE_DEVICES's, else every one; none when runs use the CPU."""
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        return []
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    return [g.strip() for g in given.split(",") if g.strip()] if given else \
        [str(i) for i in range(torch.cuda.device_count())]


def run_workers(sweep, url: str) -> None:
    """Start sweep.workers worker processes on ``url`` and wait for them; stop them all on Ctrl-C."""
    count, gpus = sweep.workers, visible_gpus(sweep.config.baseline["device"])
    threads = max(1, cpu_cores() // count)
    where = f"{len(gpus)} GPU(s)" if gpus else f"{threads} CPU thread(s) each"
    sweep.say(f"sweep: {count} workers on this machine, {where}; the study lives in {_shown(url)}")
    state = {"sweep_class": type(sweep), "config": sweep.config, "out": sweep.out, "tensorboard": sweep.tensorboard, "command": sweep.command,
             "storage": sweep.storage_url, "workers": count, "heartbeat_s": sweep.heartbeat_s,
             "samples": sweep.samples,
             "fingerprint": sweep.fingerprint, "meta": sweep.meta}
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(state, url, k, threads, gpus[k % len(gpus)] if gpus else None),
                                 name=f"scriptrnn-sweep-worker-{k + 1}") for k in range(count)]
    received: list[int] = []

    def forward(signum, frame):
        received.append(signum)
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in EXIT_CODES}
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise SweepInterrupted(f"interrupted ({signal.Signals(received[0]).name})", sweep.out)
    failed = [(p.name, p.exitcode) for p in processes if p.exitcode != 0]
    if failed:
        raise ScriptRNNError(f"{failed[0][0]} stopped with exit code {failed[0][1]} (its messages are above); "
                             "run the same command again: finished runs are kept")


def _shown(url: str) -> str:
    from .storage import _safe

    return _safe(url)


def _worker(state: dict, url: str, index: int, threads: int, gpu: str | None) -> None:
    """One worker process: its own GPU or share of the cores, then trials until the sweep has ended."""
    os.setpgrp()  # signals come from the parent, once, not from the terminal as well
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # read when CUDA starts, which it has not yet
    import torch

    from .storage import open_storage

    torch.set_num_threads(threads)
    prefix = f"[worker {index + 1}] "
    # The Sweep class travels in the state (pickled by reference), so this module never imports
    # the runner that imports it.
    sweep = state["sweep_class"](state["config"], state["out"], progress=False, tensorboard=state["tensorboard"],
                  say=lambda line: print(prefix + line, file=sys.stderr, flush=True), command=state["command"],
                  storage=state["storage"], workers=state["workers"], heartbeat_s=state["heartbeat_s"],
                                 samples=state["samples"])
    sweep.fingerprint, sweep.meta = state["fingerprint"], state["meta"]
    try:
        sweep.work(open_storage(url, state["heartbeat_s"]), index)
    except SweepInterrupted as e:
        sys.exit(EXIT_CODES[signal.SIGTERM] if "SIGTERM" in e.reason else EXIT_CODES[signal.SIGINT])
    except KeyboardInterrupt:
        sys.exit(EXIT_CODES[signal.SIGINT])
    except ScriptRNNError as e:
        print(f"{prefix}scriptrnn: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
