"""Training: every position of B contiguous streams, state carried across windows.

``Trainer`` is the loop, which knows nothing about corpora or files beyond its run
directory; ``scriptrnn.api.train()`` is the whole job around it (read the corpus,
tokenize, fit, checkpoint) and what the CLI calls.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.batching import StreamBatches
from ..model.checkpoint import (
    RESUME_FILE,
    WEIGHTS_FILE,
    load_tensors,
    load_weights_into,
    save_tensors,
    save_weights,
    saved_best_loss,
    unique_tensors,
)
from .distributed import SINGLE, Distributed, LostContact, lost_contact, rank_seed
from ..errors import ScriptRNNError
from ..model.evaluate import loss_report, loss_sums
from ..model.network import ModelConfig, RNNLanguageModel, state_from_parts, state_parts
from .reporting import CURVE_FILE, DiscardLog, MetricsLog, ProgressBar, plot_loss_curve


@dataclass
class TrainConfig:
    # --- tokens
    level: str = "char"  # char (novels, plays) or word (course-style scripts)
    lowercase: bool = True  # word level: fold case, as the course projects do
    min_count: int = 1  # word level: rarer words become <unk>
    # --- batches
    seq_len: int = 128  # T: tokens per window; the state carries on past it
    batch_size: int = 64  # B: parallel streams
    val_fraction: float = 0.1  # held out from the end of the corpus, never trained on
    # --- optimisation
    lr: float = 3e-3  # peak AdamW learning rate
    weight_decay: float = 0.0  # on weight matrices only
    grad_clip: float = 1.0  # max global gradient norm; RNNs need it
    warmup_steps: int = 50  # linear warm-up, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.1
    # --- how long (the first limit reached ends the run; the schedule follows it)
    epochs: float | None = 20.0
    max_steps: int | None = None
    time_budget: float | None = None  # minutes of wall-clock, evaluation included
    # --- evaluation and checkpoints
    eval_every: int = 200  # steps between validation checks (and checkpoints)
    eval_tokens: int | None = 250_000  # validation tokens per check; the final check uses all
    save_every: int | None = None  # extra resume checkpoints every N steps
    save_every_minutes: float | None = None  # and/or after this many minutes since the last one
    patience: int | None = 5  # stop after this many checks without a new best; None never stops early
    # --- run
    seed: int = 1234
    device: str = "auto"  # auto: CUDA when present, else CPU
    # Arithmetic of the forward and backward pass; weights and optimizer stay float32.
    # auto: bfloat16 where the hardware multiplies it natively (CPUs with AMX/AVX512-BF16,
    # CUDA GPUs from Ampere on), measured 2.4-2.9x faster on this project's CPU; else float32.
    precision: str = "auto"  # auto | bf16 | fp32

    def validate(self) -> "TrainConfig":
        _positive("--seq-len", self.seq_len, 1_000_000)
        _positive("--batch-size", self.batch_size, 1_000_000)
        _positive("--eval-every", self.eval_every, 10**12)
        if not (_is_number(self.lr) and self.lr > 0 and math.isfinite(self.lr)):
            raise ScriptRNNError(f"--lr must be a positive number, got {self.lr!r}")
        for name, value in (("--weight-decay", self.weight_decay), ("--min-lr-ratio", self.min_lr_ratio)):
            if not (_is_number(value) and 0 <= value < math.inf):
                raise ScriptRNNError(f"{name} must be a number >= 0, got {value!r}")
        if not (_is_number(self.grad_clip) and 0 < self.grad_clip < math.inf):
            raise ScriptRNNError(f"--grad-clip must be a positive number, got {self.grad_clip!r}")
        if not (isinstance(self.warmup_steps, int) and not isinstance(self.warmup_steps, bool)
                and 0 <= self.warmup_steps <= 10**12):
            raise ScriptRNNError(f"--warmup-steps must be a whole number >= 0, got {self.warmup_steps!r}")
        if not (_is_number(self.val_fraction) and 0 < self.val_fraction < 1):
            raise ScriptRNNError(f"--val-fraction must be between 0 and 1, got {self.val_fraction!r}")
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed < 2**64):
            raise ScriptRNNError(f"--seed must be a whole number from 0 to 2**64 - 1, got {self.seed!r}")
        for name, value in (("--epochs", self.epochs), ("--time-budget", self.time_budget),
                            ("--save-every (minutes)", self.save_every_minutes)):
            if value is not None and not (_is_number(value) and value > 0 and math.isfinite(value)):
                raise ScriptRNNError(f"{name} must be a positive number, got {value!r}")
        for name, value in (("--max-steps", self.max_steps), ("--save-every", self.save_every),
                            ("--patience", self.patience), ("--eval-tokens", self.eval_tokens)):
            if value is not None:
                _positive(name, value, 10**15)
        if self.epochs is None and self.max_steps is None and self.time_budget is None:
            raise ScriptRNNError("give at least one of --epochs, --max-steps or --time-budget")
        if self.level not in ("char", "word"):
            raise ScriptRNNError(f"--level must be 'char' or 'word', got {self.level!r}")
        if not isinstance(self.lowercase, bool) or not isinstance(self.device, str):
            raise ScriptRNNError("lowercase must be true or false and device a name such as 'cpu'")
        _positive("--min-count", self.min_count, 10**12)
        if self.precision not in PRECISIONS:
            raise ScriptRNNError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        return self

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(name: str, value, high) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
        raise ScriptRNNError(f"{name} must be a whole number from 1 to {high:,}, got {value!r}")


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


PRECISIONS = ("auto", "bf16", "fp32")


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


def check_memory(config: ModelConfig, device: torch.device) -> None:
    """Refuse a model whose training state cannot fit, before allocating any of it."""
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


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    elapsed_s: float
    best_val_loss: float
    final_val_loss: float
    stopped_because: str
    metrics: dict = field(default_factory=dict)


class Trainer:
    """Fits a model on a token array; saves to ``out_dir``; resumable exactly.

    With several processes (``dist``), each trains its own rows of the global batch on
    a DDP copy of the model; they agree on every decision (stop, save, the clock the
    schedule follows) once a step, and only rank 0 writes files or shows progress.
    """

    def __init__(self, model: RNNLanguageModel, train_ids: np.ndarray, val_ids: np.ndarray,
                 config: TrainConfig, out_dir: Path, *, level: str, progress: bool = True,
                 callbacks: list[Callable[[str, "Trainer"], None]] | None = None, dist: Distributed = SINGLE):
        self.config = config
        self.dist = dist
        self.device = dist.device(pick_device(config.device))
        self.model = model.to(self.device)
        self.train_model = dist.wrap(self.model)  # DDP averages gradients over processes in backward
        self.val_ids = val_ids
        self.level = level
        self.out_dir = Path(out_dir)
        self.batches = StreamBatches(train_ids, config.batch_size, config.seq_len, config.seed,
                                     rows=dist.rows(config.batch_size))
        self.optimizer = self._make_optimizer()
        self.autocast = autocast_dtype(config.precision, self.device)
        self.state = LoopState()
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
        self.last_save = time.monotonic()  # for --save-every in minutes
        self._started = time.perf_counter()  # when the run began, by this clock; set again as the loop starts
        if dist.rank > 0:
            torch.manual_seed(rank_seed(config.seed, dist.rank))  # dropout differs on each rank, repeatably

    def _make_optimizer(self) -> torch.optim.Optimizer:
        # Decay only weight matrices: decaying embeddings, biases or gates' offsets hurts RNNs.
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2 and "embedding" not in n]
        other = [p for n, p in self.model.named_parameters() if not (p.dim() >= 2 and "embedding" not in n)]
        groups = [{"params": decay, "weight_decay": self.config.weight_decay},
                  {"params": other, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=self.config.lr, betas=(0.9, 0.99))

    # ------------------------------------------------------------ schedule

    def progress(self) -> float:
        """Fraction of the run done, by whichever limit is nearest."""
        c, s = self.config, self.state
        parts = [0.0]
        if c.max_steps:
            parts.append(s.step / c.max_steps)
        if c.epochs:
            parts.append((s.epoch + s.window / self.batches.windows_per_epoch) / c.epochs)
        if c.time_budget:
            parts.append(s.elapsed_s / (c.time_budget * 60))
        return min(1.0, max(parts))

    def learning_rate(self) -> float:
        c = self.config
        if self.state.step < c.warmup_steps:
            return c.lr * (self.state.step + 1) / c.warmup_steps
        cosine = 0.5 * (1 + math.cos(math.pi * self.progress()))
        return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * cosine)

    # ------------------------------------------------------------ loop

    def fit(self) -> TrainResult:
        log = MetricsLog(self.out_dir, resume=self.state.step > 0) if self.dist.is_main else DiscardLog()
        log.truncate_after(self.state.step)
        bar = ProgressBar(self.show_progress, start=self.progress())
        stopped = None
        restore = self._install_signal_handlers()
        try:
            stopped = self._together(self._loop, log, bar)
        finally:
            restore()
            bar.close()
        # An interrupted run exits at once; its resume point is already saved.
        final = {} if stopped.startswith("interrupted") else self._together(self._final_evaluation, log)
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
                eta = s.elapsed_s * (1 - p) / p if p > 0 else None
                bar.update(p, step=s.step, loss=float(np.mean(recent)), tokens_per_s=rate, eta_s=eta)
                self._log(log, {"step": s.step, "epoch": s.epoch, "train_loss": float(np.mean(recent)),
                                "lr": self.learning_rate(), "tokens_per_s": rate, "elapsed_s": s.elapsed_s})
                window_start, window_tokens, recent = time.perf_counter(), 0, []
            if s.step % c.eval_every == 0:
                self._check(log, bar)
                s.elapsed_s = self._agreed_elapsed()
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
        c, s = self.config, self.state
        # Every input below is the same on every rank, so all stop together.
        request = self.agreed_stop if self.dist.enabled else self.stop_requested
        if request:
            return f"interrupted ({request})"
        if self.finish_requested:
            return self.finish_requested
        if c.max_steps and s.step >= c.max_steps:
            return f"reached --max-steps {c.max_steps}"
        if c.epochs and s.epoch + s.window / self.batches.windows_per_epoch >= c.epochs:
            return f"reached --epochs {c.epochs:g}"
        if c.time_budget and s.elapsed_s >= c.time_budget * 60:
            return f"reached --time-budget {c.time_budget:g} min"
        if c.patience and s.checks_without_improvement >= c.patience:
            return f"early stop: no better validation loss in {c.patience} checks"
        return None

    def _train_step(self) -> float:
        c, s = self.config, self.state
        if s.window == 0:
            self.hidden = None  # a new epoch cuts the streams differently
        x, y = self.batches.batch(s.epoch, s.window)
        x, y = x.to(self.device), y.to(self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        with arithmetic(self.device, self.autocast):
            # The mean over this process's rows; DDP averages the gradients of the W equal shares,
            # which is the gradient of the mean over the whole global batch.
            loss, hidden = self.train_model(x, self.hidden, targets=y)  # B is this process's rows
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        if not torch.isfinite(norm):  # the same on every rank: DDP has averaged the gradients
            # Stepping would make the weights NaN; stop with the last checkpoint's weights intact.
            raise ScriptRNNError(
                f"training diverged at step {s.step + 1} (the gradient is {norm.item()}); the last checkpoint "
                f"is kept. Start again with a lower --lr (now {c.lr:g}) or --grad-clip, with --overwrite"
            )
        self.optimizer.step()
        # Carried in float32 whatever the arithmetic, so resume files and evaluation see one dtype.
        self.hidden = state_from_parts(h.detach().float() for h in state_parts(hidden))
        s.step += 1
        s.tokens_seen += self.batches.tokens_per_batch
        s.window += 1
        if s.window >= self.batches.windows_per_epoch:
            s.epoch, s.window = s.epoch + 1, 0
        value = self._agree_after_step(loss.detach())
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

    def _agreed_elapsed(self) -> float:
        """Seconds since the run started (its mean over processes: one clock for all)."""
        elapsed = time.perf_counter() - self._started
        return self.dist.sum([elapsed], self.device)[0] / self.dist.world_size

    def _check(self, log: MetricsLog, bar: ProgressBar, max_tokens: int | None = -1) -> float:
        """Validate, keep the best weights, write a resume point."""
        s = self.state
        tokens = self.config.eval_tokens if max_tokens == -1 else max_tokens
        val_loss, _ = self._validation_loss(tokens)  # the same figure on every rank
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
        self._log(log, {"step": s.step, "epoch": s.epoch, "val_loss": val_loss, "elapsed_s": s.elapsed_s})
        if self.dist.is_main:
            bar.write(f"step {s.step}: validation loss {val_loss:.4f}{' (best)' if improved else ''}")
        self._save_resume()
        if self.dist.is_main:
            plot_loss_curve(log.records, self.out_dir / CURVE_FILE, title=self.out_dir.name)
        self.last_val_loss = val_loss
        self._notify("on_eval")
        return val_loss

    def _final_evaluation(self, log: MetricsLog) -> dict:
        """Score the best weights on the whole held-out split."""
        if self.state.step % self.config.eval_every != 0:
            # The steps since the last check may hold the best weights yet.
            self._check(log, ProgressBar(False))
        if self.dist.is_main:
            tensors, _ = load_tensors(self.out_dir / WEIGHTS_FILE)
            load_weights_into(self.model, tensors, self.out_dir / WEIGHTS_FILE)
        self.dist.broadcast_(list(self.model.state_dict().values()))  # all score rank 0's best weights
        loss, tokens = self._validation_loss(None)
        return {**loss_report(loss, self.level), "tokens": tokens}

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

    # ------------------------------------------------------------ resume state

    def _save_resume(self) -> None:
        # Several processes: the state of all B streams, (L, B, H), and every rank's RNG, so that
        # any number of processes can continue the run (each slices its own rows back out).
        hidden = [self.dist.gather_rows(h.detach()) for h in state_parts(self.hidden)]
        rngs = self.dist.gather(torch.get_rng_state(), self.device)
        # Dropout on the GPU draws from the GPU's generator.
        cuda_rngs = self.dist.gather(torch.cuda.get_rng_state(self.device), self.device) \
            if self.device.type == "cuda" else []
        self.last_save = time.monotonic()
        if not self.dist.is_main:
            return  # weights and optimizer are the same on every rank: rank 0 writes them
        tensors = {f"model.{k}": v for k, v in unique_tensors(self.model.state_dict()).items()}
        opt = self.optimizer.state_dict()
        for index, slots in opt["state"].items():
            for key, value in slots.items():
                tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        for name, states in (("rng.torch", rngs), ("rng.cuda", cuda_rngs)):
            for rank, state in enumerate(states):  # rank 0's under the single-process name
                tensors[name if rank == 0 else f"{name}.{rank}"] = state
        for i, h in enumerate(hidden):
            tensors[f"hidden.{i}"] = h.cpu().contiguous()
        groups = [{k: v for k, v in g.items() if k != "params"} for g in opt["param_groups"]]
        meta = {"loop": json.dumps(asdict(self.state)), "param_groups": json.dumps(groups),
                "world_size": str(self.dist.world_size)}
        save_tensors(self.out_dir / RESUME_FILE, tensors, metadata=meta)

    def load_resume(self) -> None:
        """Restore everything ``_save_resume`` wrote, checking each part against this run."""
        path = self.out_dir / RESUME_FILE
        tensors, meta = load_tensors(path)
        try:
            self.state = _loop_state(json.loads(meta["loop"]), self.batches.windows_per_epoch)
            groups = json.loads(meta["param_groups"])
            model_tensors = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
            load_weights_into(self.model, model_tensors, path)
            self.optimizer.load_state_dict(_optimizer_state(tensors, groups, self.optimizer))
            self._restore_rng(tensors, meta.get("world_size", "1") == str(self.dist.world_size))
            hidden = _hidden_state(tensors, self.model.config, self.config.batch_size, self.device)  # (L, B, H)
            lo, hi = self.dist.rows(self.config.batch_size)
            self.hidden = state_from_parts(h[:, lo:hi].contiguous() for h in state_parts(hidden))
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as e:
            raise ScriptRNNError(f"{path}: resume state is damaged or from another run ({_short(e)})") from None
        # A kill between writing new best weights and the resume point leaves the weights
        # file ahead: trust it, so that the resumed run never replaces them with worse ones.
        on_disk = saved_best_loss(self.out_dir)
        if on_disk is not None and on_disk < self.state.best_val_loss:
            self.state.best_val_loss = on_disk
        # Rank 0's figure for all, so that every rank counts checks without improvement alike.
        mine = self.state.best_val_loss if self.dist.is_main else 0.0
        self.state.best_val_loss = self.dist.sum([mine], self.device)[0]

    def _restore_rng(self, tensors: dict, same_world: bool) -> None:
        """Each rank's saved generators; a rank the saved run did not have gets a fresh seed."""
        rank = self.dist.rank
        if rank > 0 and not same_world:
            torch.manual_seed(rank_seed(self.config.seed, rank, self.state.step))
            return
        suffix = "" if rank == 0 else f".{rank}"
        torch.set_rng_state(tensors["rng.torch" + suffix])
        if self.device.type == "cuda" and "rng.cuda" + suffix in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda" + suffix], self.device)


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
