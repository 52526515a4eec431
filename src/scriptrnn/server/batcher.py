"""Continuous batching: every running request advances in one forward pass per step.

An RNN's state is a fixed-size tensor per sequence, so requests can join and leave
between any two steps. One worker thread owns the models; request handlers hand it
a ``Job`` and read the job's events from an asyncio queue.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass

from ..generate.generation import Generation, advance
from .protocol import ServerLimits


class QueueFull(Exception):
    """More requests are waiting than the server will hold; the client should retry."""


@dataclass
class Event:
    """What the worker tells a handler; a snapshot, as the generation keeps changing."""

    kind: str  # "tokens", "done" or "error"
    pieces: list[str] | None = None  # text each sequence added this step ('' once stopped)
    ids: list[int] | None = None  # the token each sequence drew
    reasons: list[str | None] | None = None  # why each sequence stopped, None while running
    message: str = ""
    status: int = 500  # for "error": the HTTP status a whole-text answer gets


class Job:
    """One request in the batcher: its generation and the queue its handler reads."""

    def __init__(self, generation: Generation, loop: asyncio.AbstractEventLoop):
        self.generation = generation
        self.loop = loop
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.cancelled = False
        self.watcher: asyncio.Task | None = None  # the server's task that cancels this job when its client leaves

    def emit(self, event: Event) -> None:
        # Called from the worker thread; the queue belongs to the event loop's thread.
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    def cancel(self) -> None:
        """The client went away or timed out: the worker drops this job at its next step, and its reader stops.

        Called on the event loop's thread (the queue is the loop's). The reader of a whole-text
        answer would otherwise wait, for events that no longer come, until the request timeout.
        """
        if not self.cancelled:
            self.cancelled = True
            # 499, nginx's "client closed request": no one reads it but the handler, which then ends.
            self.events.put_nowait(Event("error", message="the client closed the request", status=499))


def _deliver(out: list[tuple[Job, Event]]) -> None:
    """Hand a step's events to their event loops: one wake-up per loop per step, not per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Job, Event]]] = {}
    for job, event in out:
        by_loop.setdefault(job.loop, []).append((job, event))
    for loop, pairs in by_loop.items():
        loop.call_soon_threadsafe(_put_all, pairs)


def _put_all(pairs: list[tuple[Job, Event]]) -> None:
    for job, event in pairs:
        job.events.put_nowait(event)


class Batcher:
    """The worker thread and its two lists: jobs waiting to start and jobs running."""

    def __init__(self, max_queue: int = ServerLimits.max_queue, max_batch: int = ServerLimits.max_batch):
        self.max_queue = max_queue  # waiting jobs beyond this are refused (503)
        self.max_batch = max_batch  # sequences stepped together at most
        self.waiting: deque[Job] = deque()
        self.running: list[Job] = []
        self.wake = threading.Condition()
        self.steps = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="scriptrnn-batcher", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> None:
        with self.wake:
            self._drop_cancelled()  # requests whose clients left hold no place in the queue
            if len(self.waiting) >= self.max_queue:
                raise QueueFull()
            self.waiting.append(job)
            self.wake.notify()

    def close(self) -> None:
        with self.wake:
            self.stopping = True
            self.wake.notify()
        self.thread.join(timeout=5)

    def _drop_cancelled(self) -> None:
        """Forget waiting jobs whose clients left, wherever they are in the queue (called holding the lock)."""
        if any(job.cancelled for job in self.waiting):
            self.waiting = deque(job for job in self.waiting if not job.cancelled)

    @property
    def load(self) -> dict:
        with self.wake:
            self._drop_cancelled()
            running = list(self.running)
            waiting = len(self.waiting)
        return {"waiting": waiting, "running": len(running),
                "sequences": sum(j.generation.n for j in running), "steps": self.steps}

    # ------------------------------------------------------------ worker

    def _run(self) -> None:
        while True:
            with self.wake:
                while not self.waiting and not self.running and not self.stopping:
                    self.wake.wait()
                if self.stopping:
                    return
            try:
                self._admit()
                self._advance()
            except Exception as e:  # a bug or out of memory: fail these requests, keep serving
                self._fail_running(f"internal error ({type(e).__name__})")

    def _fail_running(self, message: str) -> None:
        with self.wake:
            failed, self.running = self.running, []
        for job in failed:
            job.emit(Event("error", message=message))

    def _admit(self) -> None:
        """Start waiting jobs while the batch has room: run each prime once."""
        while True:
            with self.wake:
                self._drop_cancelled()  # gone before they started: never let them block the queue
                room = self.max_batch - sum(j.generation.n for j in self.running)
                if not self.waiting or self.waiting[0].generation.n > room:
                    return
                job = self.waiting.popleft()
            try:
                job.generation.prefill()
            except Exception as e:  # a bug or out of memory; bad input was refused before submit
                job.emit(Event("error", message=f"internal error ({type(e).__name__})"))
                continue
            if job.generation.done:  # nothing to write (max_new_tokens 0)
                job.emit(Event("done"))
                continue
            with self.wake:
                self.running.append(job)

    def _advance(self) -> None:
        """One turn of the token loop for every running request: the events go out before the forward pass."""
        jobs = [job for job in self.running if not job.cancelled]
        advance([job.generation for job in jobs], on_sampled=lambda all_pieces: self._emit(jobs, all_pieces))
        self.steps += 1

    def _emit(self, jobs: list[Job], all_pieces: list[list[str]]) -> None:
        still = []  # running is only ever replaced under the lock, so load() can read it
        out: list[tuple[Job, Event]] = []
        for job, pieces in zip(jobs, all_pieces):
            generation = job.generation
            out.append((job, Event("tokens", pieces=pieces, ids=generation.last_tokens.tolist(),
                                   reasons=list(generation.finish_reasons))))
            if generation.done:
                out.append((job, Event("done")))
            else:
                still.append(job)
        with self.wake:
            self.running = still
        _deliver(out)


async def read_events(job: Job, timeout_s: float):
    """Yield a job's events until it is done; cancel it on timeout or when the reader stops."""
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                yield Event("error", message=f"request timed out after {timeout_s:g} s", status=504)
                return
            if not job.events.empty():
                event = job.events.get_nowait()  # behind the worker: no timer needed
            else:
                try:
                    event = await asyncio.wait_for(job.events.get(), timeout=remaining)
                except asyncio.TimeoutError:
                    continue
            yield event
            if event.kind in ("done", "error"):
                return
    finally:
        job.cancel()  # no-op when finished; frees the stream at once when the client left
