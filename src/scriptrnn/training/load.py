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
from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Below this many cores' worth of other work, leave the speeds alone: a quiet machine's background
# (a shell, the kernel) is part of what the run will get too.
NOTICED = 0.25
SHORTEST_S = 1.0  # the kernel counts in ticks of 10 ms: over a shorter probe the share means nothing
MOST_SLOWDOWN = 4.0  # the largest correction made: beyond it the machine is simply busy, and the run says so


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

    def others(self) -> float:
        """Cores' worth of other programs' work on the run's cores since ``start`` (0 when unknown)."""
        busy = _busy_seconds(self.cores) if self.busy0 is not None else None
        elapsed = time.monotonic() - self.wall0
        if busy is None or elapsed < SHORTEST_S:
            return 0.0
        theirs = (busy - self.busy0) - (_own_seconds() - self.own0)
        return min(max(theirs / elapsed, 0.0), float(len(self.cores)))


def slowdown(others: float, cores: int) -> float:
    """How much slower the probe's steps ran than on the run's ``cores`` alone, with ``others`` cores' worth
    of other programs' work on them. A step waits for its slowest thread, and other work lands unevenly,
    so the loss is worse than the cores taken: about (1 - others / cores)^-2, at most MOST_SLOWDOWN.
    Measured (2026-12-04, AMD EPYC, 2 cores, a 2x512 LSTM step at 2 threads): one busy process took 0.73
    cores and slowed the step 2.37x (the form says 2.48); two took 1.03 cores and slowed it 3.24x (4.25)."""
    if others < NOTICED or cores <= 0:
        return 1.0
    return min(MOST_SLOWDOWN, (1 - min(others, cores) / cores) ** -2) if others < cores else MOST_SLOWDOWN
