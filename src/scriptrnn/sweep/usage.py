"""What one run cost beyond time: peak memory, and GPU utilisation and memory on a GPU.

Peak memory is the process's peak resident set size (RSS) while the run trained. On
Linux the kernel's peak counter (VmHWM) is reset when the run starts (by writing 5 to
/proc/self/clear_refs), so each run of a sweep gets its own peak, PyTorch's tensors
included (tracemalloc would see only Python's own objects). Where that reset is not
possible the figure is the process's lifetime peak (getrusage's ru_maxrss), and the
result says so.

On CUDA, GPU memory is the most PyTorch's allocator held at once
(torch.cuda.max_memory_reserved) and utilisation the mean of NVML's readings, taken
every half second through torch.cuda.utilization, which needs nvidia-ml-py. Without a
GPU, or without NVML, those figures are None ("n/a" in the tables).
"""

from __future__ import annotations

import re
import resource
import sys
import threading
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _reset_peak_rss() -> bool:
    try:
        _CLEAR_REFS.write_text("5")  # 5: reset the peak RSS to the current RSS (Linux >= 4.0)
        return _kernel_peak_kib() is not None
    except OSError:
        return False


def _kernel_peak_kib() -> int | None:
    try:
        found = re.search(r"^VmHWM:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) if found else None


def _lifetime_peak_kib() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB elsewhere


class ResourceMonitor:
    """``with ResourceMonitor(device) as usage: train(...)``, then ``usage.results()``."""

    def __init__(self, device: torch.device, interval_s: float = 0.5):
        self.device = torch.device(device)
        self.interval_s = interval_s
        self.per_run = False
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: dict = {}

    def __enter__(self) -> "ResourceMonitor":
        self.per_run = _reset_peak_rss()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            if _gpu_utilisation(self.device) is not None:  # NVML readable: sample it beside the run
                self._thread = threading.Thread(target=self._sample, daemon=True)
                self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            value = _gpu_utilisation(self.device)
            if value is not None:
                self.samples.append(value)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        peak = _kernel_peak_kib() if self.per_run else None
        gpu_memory = None
        if self.device.type == "cuda":
            gpu_memory = round(torch.cuda.max_memory_reserved(self.device) / 2**20, 1)
        self._result = {
            "peak_rss_mib": round((peak or _lifetime_peak_kib()) / 1024, 1),
            "peak_rss_scope": "run" if peak else "process",
            "gpu_util_percent": round(sum(self.samples) / len(self.samples), 1) if self.samples else None,
            "gpu_memory_mib": gpu_memory,
        }

    def results(self) -> dict:
        return dict(self._result)


def _gpu_utilisation(device: torch.device) -> float | None:
    try:
        return float(torch.cuda.utilization(device))
    except Exception:  # no nvidia-ml-py, no NVML driver, a GPU that does not report: "n/a", not a failure
        return None
