"""Training: every position of B contiguous streams, state carried across windows.

``Trainer`` is the loop, which knows nothing about corpora or files beyond its run
directory; ``scriptrnn.api.train()`` is the whole job around it (read the corpus,
tokenize, fit, checkpoint) and what the CLI calls; ``training.setup`` prepares it.
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.batching import StreamBatches
from ..device import autocast_dtype, pick_device
from ..errors import ScriptRNNError
from ..model.directory import WEIGHTS_FILE
from ..model.checkpoint import load_tensors, load_weights_into, save_weights
from ..evaluation.scoring import loss_report, loss_sums
from ..model.network import RNNLanguageModel
from .config import TrainConfig
from .distributed import SINGLE, Distributed, LostContact, lost_contact, rank_seed
from .reporting import CURVE_FILE, DiscardLog, MetricsLog, ProgressBar, plot_loss_curve
from .resume import LoopState, load_resume, save_resume
from .samples import format_samples
from .schedule import Schedule, SlowWatch, TimeSpent
from .step import TrainStep

@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    elapsed_s: float
    best_val_loss: float
    final_val_loss: float
    stopped_because: str
    metrics: dict = field(default_factory=dict)
    time_s: dict = field(default_factory=dict)  # where the command's seconds went (schedule.TimeSpent)
    time_line: str = ""  # the same, as the line the CLI prints


class Trainer:
    """Fits a model on a token array; saves to ``out_dir``; resumable exactly.

    With several processes (``dist``), each trains its own rows of the global batch on
    a DDP copy of the model; they agree on every decision (stop, save, the clock the
    schedule follows) once a step, and only rank 0 writes files or shows progress.
    """

    def __init__(self, model: RNNLanguageModel, train_ids: np.ndarray, val_ids: np.ndarray,
                 config: TrainConfig, out_dir: Path, *, level: str, progress: bool = True,
                 callbacks: list[Callable[[str, "Trainer"], None]] | None = None, dist: Distributed = SINGLE,
                 val_characters: int | None = None):
        self.config = config
        self.dist = dist
        self.device = dist.device(pick_device(config.device))
        self.model = model.to(self.device)
        self.train_model = dist.wrap(self.model)  # DDP averages gradients over processes in backward
        self.val_ids = val_ids
        self.val_characters = val_characters  # of the held-out text: losses also in bits per character
        self.level = level
        self.out_dir = Path(out_dir)
        self.batches = StreamBatches(train_ids, config.batch_size, config.seq_len, config.seed,
                                     rows=dist.rows(config.batch_size))
        self.autocast = autocast_dtype(config.precision, self.device)
        self.stepper = TrainStep.build(self.model, config, self.device, self.autocast, forward=self.train_model)
        self.optimizer = self.stepper.optimizer
        self.state = LoopState()
        self.schedule = Schedule(config, self.batches.windows_per_epoch)
        self.spent = TimeSpent()  # where the command's seconds went (setup fills in those before the loop)
        budget_s = config.time_budget * 60 if config.time_budget else None
        self.slow = SlowWatch(None, budget_s, self.device.type)  # setup gives it the probe's speed
        self._val_s_per_token = 0.0  # the last check's, to keep the final evaluation's time in the budget
        self.hidden = None
        self.show_progress = progress and dist.is_main
        self.callbacks = list(callbacks or [])
        self.stop_requested: str | None = None  # set by a signal or a callback; the loop saves and stops
        # Set by a callback (a sweep's pruner, say) to end the run as done, with its reason: unlike
        # an interrupt, the run still gets its final evaluation and is not meant to be resumed.
        self.finish_requested: str | None = None
        self.agreed_stop: str | None = None  # several processes: a stop every rank has heard of
        self.agreed_save = False  # several processes: a --save-every point, by any rank's clock
        self.last_val_loss = math.nan
        self.last_metrics: dict = {}  # the latest metrics.jsonl record, for "on_metrics" callbacks
        # Rank 0's sample writer (training/samples.py; set up by training.setup), called at each check:
        # trainer -> the records it wrote; last_samples is those records, for "on_samples" callbacks.
        self.sampler: Callable[["Trainer"], list[dict]] | None = None
        self.last_samples: list[dict] = []
        self.last_save = time.monotonic()  # for --save-every in minutes
        self._started = time.perf_counter()  # when the run began, by this clock; set again as the loop starts
        if dist.rank > 0:
            torch.manual_seed(rank_seed(config.seed, dist.rank))  # dropout differs on each rank, repeatably

    # ------------------------------------------------------------ schedule

    def progress(self) -> float:
        """Fraction of the run done, by whichever limit is nearest."""
        return self.schedule.progress(self.state)

    def learning_rate(self) -> float:
        return self.schedule.learning_rate(self.state)

    # ------------------------------------------------------------ loop

    def fit(self) -> TrainResult:
        log = MetricsLog(self.out_dir, resume=self.state.step > 0) if self.dist.is_main else DiscardLog()
        log.truncate_after(self.state.step)
        bar = ProgressBar(self.show_progress, start=self.progress())
        stopped = None
        restore = self._install_signal_handlers()
        began = time.perf_counter()
        try:
            stopped = self._together(self._loop, log, bar)
        finally:
            restore()
            bar.close()
            self.spent.train = time.perf_counter() - began - self.spent.checks
        # An interrupted run exits at once; its resume point is already saved.
        began = time.perf_counter()
        final = {} if stopped.startswith("interrupted") else self._together(self._final_evaluation, log)
        self.spent.final = time.perf_counter() - began
        return TrainResult(self.out_dir, self.state.step, self.state.elapsed_s, self.state.best_val_loss,
                           final.get("loss", math.nan), stopped, final)

    def _together(self, work: Callable, *args):
        """``work(*args)``, with a lost peer (DDP's own all-reduce fails inside backward()) as one line."""
        try:
            with lost_contact(self.dist):
                return work(*args)
        except LostContact as e:
            raise LostContact(f"{e}; the last checkpoint in {self.out_dir} is kept (continue with --resume)") \
                from None

    def _loop(self, log: MetricsLog, bar: ProgressBar) -> str:
        c, s = self.config, self.state
        self.model.train()
        self._started = time.perf_counter() - s.elapsed_s
        self._say_time_before(bar)
        window_start, window_tokens, recent = time.perf_counter(), 0, []
        while True:
            reason = self._should_stop()
            if reason:
                if reason.startswith("interrupted"):
                    self._save_resume()
                return reason
            loss = self._train_step()  # the loss over all processes; s.elapsed_s is agreed too
            window_tokens += self.batches.tokens_per_batch
            recent.append(loss)
            if s.step % 10 == 0 or s.step == 1:
                rate = window_tokens / max(1e-9, time.perf_counter() - window_start)
                p = self.progress()
                eta = (s.elapsed_s - s.segment_s) * (1 - p) / p if p > 0 else None  # this segment's
                bar.update(p, step=s.step, loss=float(np.mean(recent)), tokens_per_s=rate, eta_s=eta)
                slow = self.slow.update(rate, s.elapsed_s, s.step)
                if slow and self.dist.is_main:
                    bar.write(slow)
                self._log(log, {"step": s.step, "epoch": s.epoch, "train_loss": float(np.mean(recent)),
                                "lr": self.learning_rate(), "tokens_per_s": rate, "elapsed_s": s.elapsed_s})
                window_start, window_tokens, recent = time.perf_counter(), 0, []
            if s.step % c.eval_every == 0:
                began = time.perf_counter()
                self._check(log, bar)
                self.spent.checks += time.perf_counter() - began
                s.elapsed_s = self._agreed_elapsed(time.perf_counter() - began)
            elif self._save_due():
                self._save_resume()
            self._notify("on_step")

    def _save_due(self) -> bool:
        return self.agreed_save if self.dist.enabled else self._save_due_here()

    def _save_due_here(self) -> bool:
        c = self.config
        if c.save_every and self.state.step % c.save_every == 0:
            return True
        return bool(c.save_every_minutes) and time.monotonic() - self.last_save >= c.save_every_minutes * 60

    def _log(self, log: MetricsLog, record: dict) -> None:
        """Every metrics record goes to metrics.jsonl and to "on_metrics" callbacks (TensorBoard, say)."""
        log.append(record)
        self.last_metrics = record
        if self.dist.is_main:  # one process speaks for a multi-process run (TensorBoard, say)
            self._notify("on_metrics")

    def _notify(self, event: str) -> None:
        """Callbacks see the trainer itself (minGPT's way): its state, model, config."""
        for callback in self.callbacks:
            callback(event, self)

    def _should_stop(self) -> str | None:
        # Every input is the same on every rank, so all stop together.
        request = self.agreed_stop if self.dist.enabled else self.stop_requested
        if request:
            return f"interrupted ({request})"
        return self.finish_requested or self.schedule.limit_reached(self.state)

    def _say_time_before(self, bar: ProgressBar) -> None:
        """Where the budget's first seconds went, before the first step (so the bar's time left adds up)."""
        before = self.spent.prepare + self.spent.probe
        if self.config.time_budget and before >= 1 and self.dist.is_main and self.state.step == self.state.segment_step:
            left = self.schedule.budget_s() - (self.state.elapsed_s - self.state.segment_s)
            bar.write(f"{self.spent.prepare:.1f} s reading and preparing, {self.spent.probe:.1f} s sizing: "
                      f"{max(0.0, left):.0f} s of the {self.config.time_budget:g} min budget left to train")

    def _train_step(self) -> float:
        c, s = self.config, self.state
        if s.window == 0:
            self.hidden = None  # a new epoch cuts the streams differently
        x, y = self.batches.batch(s.epoch, s.window)
        x, y = x.to(self.device), y.to(self.device)
        out = self.stepper(x, y, self.hidden, lr=self.learning_rate())  # B: this process's rows
        if not torch.isfinite(out.grad_norm):  # the same on every rank: DDP has averaged the gradients
            # The step was not taken; stop with the last checkpoint's weights intact.
            raise ScriptRNNError(
                f"training diverged at step {s.step + 1} (the gradient is {out.grad_norm.item()}); the last "
                f"checkpoint is kept. Start again with a lower --lr (now {c.lr:g}) or --grad-clip, with --overwrite"
            )
        self.hidden = out.hidden
        s.step += 1
        s.tokens_seen += self.batches.tokens_per_batch
        s.window += 1
        if s.window >= self.batches.windows_per_epoch:
            s.epoch, s.window = s.epoch + 1, 0
        value = self._agree_after_step(out.loss)
        if not math.isfinite(value):
            # Nothing is saved from here on: the checkpoints on disk are the last good state.
            raise ScriptRNNError(
                f"training diverged at step {s.step} (loss is {value}); the last checkpoint is kept. "
                f"Start again with a lower --lr (now {c.lr:g}) or --grad-clip, with --overwrite"
            )
        return value

    def _agree_after_step(self, loss: torch.Tensor) -> float:
        """The loss over all processes; and, on every rank alike, the clock, stop requests and saves.

        A signal reaches one process, clocks differ, and the schedule follows the clock under
        --time-budget: one small sum per step keeps every rank taking the same decisions.
        """
        elapsed = time.perf_counter() - self._started
        if not self.dist.enabled:
            self.state.elapsed_s = elapsed
            return loss.item()
        asked = self.stop_requested or ""
        total = self.dist.sum([loss.item(), elapsed, asked == "SIGTERM", asked == "SIGINT",
                               asked not in ("", "SIGTERM", "SIGINT"), self._save_due_here(),
                               bool(self.finish_requested)], self.device)
        W = self.dist.world_size
        self.state.elapsed_s = total[1] / W
        names = ["SIGTERM" if total[2] else None, "SIGINT" if total[3] else None,
                 (asked or "another process stopped") if total[4] else None]
        self.agreed_stop = next((name for name in names if name), None)
        self.agreed_save = total[5] > 0
        if total[6] and not self.finish_requested:  # a callback on another rank ended the run
            self.finish_requested = "finished by another process"
        return total[0] / W

    def _agreed_elapsed(self, check_s: float) -> float:
        """Seconds since the run started (its mean over processes: one clock for all); and the seconds
        to keep for the final evaluation, from this check's (``check_s``) speed."""
        elapsed = time.perf_counter() - self._started
        reserve = self._val_s_per_token * len(self.val_ids) + check_s
        total = self.dist.sum([elapsed, reserve], self.device)
        self.schedule.reserve_s = total[1] / self.dist.world_size
        return total[0] / self.dist.world_size

    def _check(self, log: MetricsLog, bar: ProgressBar, max_tokens: int | None = -1) -> float:
        """Validate, keep the best weights, write a resume point."""
        s = self.state
        tokens = self.config.eval_tokens if max_tokens == -1 else max_tokens
        began = time.perf_counter()
        val_loss, scored = self._validation_loss(tokens)  # the same figure on every rank
        self._val_s_per_token = (time.perf_counter() - began) / max(1, scored)
        if not math.isfinite(val_loss):  # never save weights that score NaN as a resume point
            raise ScriptRNNError(f"training diverged by step {s.step} (validation loss is {val_loss}); the last "
                                 f"checkpoint is kept. Start again with a lower --lr (now {self.config.lr:g}), "
                                 "with --overwrite")
        improved = val_loss < s.best_val_loss
        if improved:
            s.best_val_loss, s.checks_without_improvement = val_loss, 0
            if self.dist.is_main:
                save_weights(self.out_dir, self.model, val_loss)
        else:
            s.checks_without_improvement += 1
            self.schedule.after_check(s)
        bpc = self._val_report(val_loss).get("bits_per_char")
        self._log(log, {"step": s.step, "epoch": s.epoch, "val_loss": val_loss, "elapsed_s": s.elapsed_s,
                        **({"val_bits_per_char": bpc} if bpc is not None else {})})
        if self.dist.is_main:
            shown = f" ({bpc:.3f} bits/char)" if bpc is not None else ""
            bar.write(f"step {s.step}: validation loss {val_loss:.4f} nats/{self.level}{shown}"
                      f"{' (best)' if improved else ''}")
            self._sample(bar)
        self._save_resume()
        if self.dist.is_main:
            plot_loss_curve(log.records, self.out_dir / CURVE_FILE, title=self.out_dir.name)
        self.last_val_loss = val_loss
        self._notify("on_eval")
        return val_loss

    def _sample(self, bar: ProgressBar) -> None:
        """Rank 0: a short sample of what the model writes now, shown (unless --quiet) and logged."""
        if self.sampler is None:
            return
        self.last_samples = self.sampler(self)
        if self.last_samples:
            if self.show_progress:
                bar.write(format_samples(self.last_samples))
            self._notify("on_samples")

    def _final_evaluation(self, log: MetricsLog) -> dict:
        """Score the best weights on the whole held-out split."""
        if self.state.step % self.config.eval_every != 0 or not math.isfinite(self.state.best_val_loss):
            # The steps since the last check may hold the best weights yet (or no check has saved any:
            # the preparation took the whole budget).
            self._check(log, ProgressBar(False))
        if self.dist.is_main:
            tensors, _ = load_tensors(self.out_dir / WEIGHTS_FILE)
            load_weights_into(self.model, tensors, self.out_dir / WEIGHTS_FILE)
        self.dist.broadcast_(list(self.model.state_dict().values()))  # all score rank 0's best weights
        loss, tokens = self._validation_loss(None)
        return {**self._val_report(loss), "tokens": tokens}

    def _val_report(self, loss: float) -> dict:
        """A held-out loss with its perplexity and bits per character (a sampled check: at the whole
        held-out text's characters per token)."""
        return loss_report(loss, self.level, tokens=len(self.val_ids), characters=self.val_characters)

    def _validation_loss(self, max_tokens: int | None) -> tuple[float, int]:
        """Held-out loss and positions scored; each process scores its share of the streams."""
        total, count = loss_sums(self.model, self.val_ids, max_tokens=max_tokens, device=self.device,
                                 part=(self.dist.rank, self.dist.world_size))
        total, count = self.dist.sum([total, count], self.device)
        return total / max(1, count), int(count)

    # ------------------------------------------------------------ interrupts

    def _install_signal_handlers(self) -> Callable[[], None]:
        """Ctrl-C and SIGTERM finish the current step, save, and stop (main thread only)."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def request_stop(signum, _frame):
            self.stop_requested = signal.Signals(signum).name

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(sig, handler) for sig, handler in previous.items()]

    # ------------------------------------------------------------ resume state (resume.py)

    def _save_resume(self) -> None:
        save_resume(self)

    def load_resume(self) -> None:
        """Restore everything ``_save_resume`` wrote, checking each part against this run."""
        load_resume(self)
