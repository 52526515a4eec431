"""How much of the run's own cores other programs took while the probe timed its sizes (issue 25).

Sustained load during the whole probe slows every size alike, so interleaving and medians cannot
see it: a browser busy for the probe's 9 seconds would make the machine look half as fast for the
whole run. The kernel knows better: /proc/stat counts each core's busy time, and os.times() this
process's. What the run's cores spent busy beyond this process is other programs' work; the probe's
step times are then what they would have been on the cores left over, and are scaled back to the
cores the run has. Linux only; elsewhere (or on a GPU, whose speed a busy CPU barely moves) there is
no correction.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

PROC_STAT = Path("/proc/stat")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Below this many cores' worth of other work, leave the speeds alone: a quiet machine's background
# (a shell, the kernel) is part of what the run will get too.
NOTICED = 0.25
SHORTEST_S = 1.0  # the kernel counts in ticks of 10 ms: over a shorter probe the share means nothing
MOST_SLOWDOWN = 4.0
GLANCE_S = 0.5  # how long the run looks at its cores, idle, before the probe
# Speed at n threads against m: (n / m)^THREAD_GAIN. The sizing grid's fp32 runs at 1 and 2 threads
# (benchmarks/results/sizing.json, AMD EPYC, 2026-11-29): 1.37x for 1x128 up to 1.63x for 2x384.
THREAD_GAIN = 0.6  # the largest correction made: beyond it the machine is simply busy, and the run says so


def _cores() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _busy_seconds(cores: list[int]) -> float | None:
    """The seconds ``cores`` spent busy since boot (all but idle and iowait), or None without /proc/stat."""
    try:
        lines = PROC_STAT.read_text().splitlines()
    except OSError:
        return None
    wanted, busy = {f"cpu{c}" for c in cores}, 0
    for line in lines:
        name, *fields = line.split()
        if name in wanted:
            ticks = [int(f) for f in fields[:8]]
            busy += sum(ticks) - ticks[3] - ticks[4]  # idle, iowait
    return busy / TICKS


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class LoadWatch:
    """Started before the probe, read after it: other programs' share of the run's cores meanwhile."""

    cores: list[int]
    busy0: float | None
    own0: float
    wall0: float

    @classmethod
    def start(cls) -> "LoadWatch":
        cores = _cores()
        return cls(cores, _busy_seconds(cores) if cores else None, _own_seconds(), time.monotonic())

    def others(self, shortest: float = SHORTEST_S) -> float:
        """Cores' worth of other programs' work on the run's cores since ``start`` (0 when unknown, or
        when less than ``shortest`` seconds have passed)."""
        busy = _busy_seconds(self.cores) if self.busy0 is not None else None
        elapsed = time.monotonic() - self.wall0
        if busy is None or elapsed < shortest:
            return 0.0
        theirs = (busy - self.busy0) - (_own_seconds() - self.own0)
        return min(max(theirs / elapsed, 0.0), float(len(self.cores)))


def glance() -> tuple[float, int]:
    """(other programs' cores' worth, the run's cores) over GLANCE_S with this process idle: before the
    probe, so that it can time with the cores left free rather than fight for a busy one."""
    watch = LoadWatch.start()
    if watch.busy0 is None:
        return 0.0, len(watch.cores)
    time.sleep(GLANCE_S)
    return watch.others(shortest=0.9 * GLANCE_S), len(watch.cores)


def free_threads(others: float, cores: int, threads: int) -> int:
    """The compute threads to time with: all of ``threads`` on a quiet machine; on a busy one, no more than
    the cores the other work leaves free. Two threads, one of them sharing its core with another program,
    wait on that one at every step: measured (2026-12-04, AMD EPYC, 2 cores, a busy process on one), the
    small sizes' steps ran 5x slower and the big ones' 2.4x, so the sizes could not be compared."""
    if others < NOTICED:
        return threads
    return max(1, min(threads, int(cores - others + 0.5)))


def slowdown(others: float, cores: int, threads: int | None = None) -> float:
    """How much slower the probe's steps ran than on the run's ``cores`` alone, with ``others`` cores' worth
    of other programs' work on them, timed with ``threads`` (all the cores if None). Threads that fit in
    the cores left free lose nothing. Otherwise a step waits for its slowest thread, and other work lands
    unevenly, so the loss is worse than the cores taken: about (1 - others / cores)^-2, at most
    MOST_SLOWDOWN. Measured (2026-12-04, AMD EPYC, 2 cores, a 2x512 LSTM step at 2 threads): one busy
    process took 0.73 cores and slowed the step 2.37x (the form says 2.48); two took 1.03 cores and slowed
    it 3.24x (4.25)."""
    if others < NOTICED or cores <= 0:
        return 1.0
    if threads is not None and threads <= cores - others + NOTICED:
        return 1.0
    return min(MOST_SLOWDOWN, (1 - others / cores) ** -2) if others < cores else MOST_SLOWDOWN


def thread_gain(threads: int, timed_with: int) -> float:
    """How much faster a step runs at ``threads`` compute threads than at ``timed_with``: (ratio)^THREAD_GAIN."""
    return (threads / timed_with) ** THREAD_GAIN if timed_with < threads else 1.0


@dataclass
class BusyCores:
    """What the probe knows of other programs on the run's cores: a look before it, the kernel's count
    during it; how many threads it times with, and how much faster the run will step than it timed."""

    threads: int  # the run's compute threads
    timed_with: int  # the probe's: the free cores' worth on a busy machine
    watch: LoadWatch | None  # None off a CPU: a GPU's speed barely depends on a busy CPU
    glanced_s: float = 0.0

    @classmethod
    def look(cls, device_type: str) -> "BusyCores":
        threads = torch.get_num_threads()
        if device_type != "cpu":
            return cls(threads, threads, None)
        began = time.monotonic()
        busy, cores = glance()
        return cls(threads, free_threads(busy, cores, threads), LoadWatch.start(), time.monotonic() - began)

    def others(self) -> float:
        return self.watch.others() if self.watch else 0.0

    def correction(self) -> float:
        """How much faster the run will step than the probe timed, from the probe so far."""
        if self.watch is None:
            return 1.0
        return slowdown(self.others(), len(self.watch.cores), self.timed_with) * thread_gain(self.threads,
                                                                                             self.timed_with)

    @contextmanager
    def timing(self):
        """The probe's threads while it times; the run's given back after."""
        torch.set_num_threads(self.timed_with)
        try:
            yield
        finally:
            torch.set_num_threads(self.threads)

    def said(self, factor: float) -> str:
        """The sizing line's words for a correction, or '' when there was none."""
        if factor <= 1 or self.watch is None:
            return ""
        return (f"; other programs took {self.others():.1f} of this run's {len(self.watch.cores)} cores during "
                f"the probe (timed with {self.timed_with} of {self.threads} threads), so its speeds were scaled "
                f"x{factor:.2f} to the cores alone")
