"""Running a sweep: every run an ordinary training run in OUT/runs/<name>/, resumable as a whole.

A run's name comes from what it changes and a hash of all its settings and of the corpus
text, so the same run always lands in the same folder and a changed baseline or corpus
never reuses a stale one. A run is done when its folder holds sweep_result.json (or a
config.json whose final metrics say it ended); a run started again skips those and resumes
an interrupted one from its resume.safetensors.

Which run trains when, and on which worker, is decided in Optuna's storage (search.py); the
workers are this process (--workers 1) or processes it starts (workers.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..version import __version__
from ..api import sample_report, train
from ..files import CONFIG_FILE, read_json
from ..model.directory import RESUME_FILE, read_config
from ..model.checkpoint import write_json
from ..data.corpus import TextFormat
from ..data.sources import load_corpus
from ..errors import ScriptRNNError
from ..training.reporting import read_metrics
from ..device import autocast_dtype, check_memory, pick_device
from .config import SweepConfig, format_value
from .report import write_report, write_tables
from .usage import ResourceMonitor
from .workers import SweepInterrupted, run_workers

RUNS_DIR = "runs"
LOCKS_DIR = "locks"  # one lock file per run: never two workers of this machine on one folder
OUTCOME_FILE = "sweep_result.json"


@dataclass
class PlannedRun:
    name: str  # the folder under OUT/runs/
    settings: dict  # every setting the run trains with
    changed: dict  # those that differ from the baseline: what the run studies


class Sweep:
    """Runs a SweepConfig into ``out``: its runs shared out through Optuna's storage, then the tables."""

    def __init__(self, config: SweepConfig, out: Path, *, progress: bool = True, tensorboard: Path | None = None,
                 say: Callable[[str], None] | None = None, command: str = "", storage: str | None = None,
                 workers: int = 1, heartbeat_s: int = 60, samples: int = 0):
        self.config, self.out = config, Path(out)
        if samples < 0:
            raise ScriptRNNError(f"--samples must be 0 (none) or more, got {samples}")
        self.samples = samples  # > 0: each finished run writes this many samples and its text report's figures
        self.progress, self.tensorboard = progress, tensorboard
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.command = command
        self.storage_url = storage  # None: OUT/sweep.db
        self.workers, self.heartbeat_s = workers, heartbeat_s
        self.fingerprint = ""
        self.meta: dict = {}

    # ------------------------------------------------------------ the whole sweep

    def run(self) -> list[dict]:
        """Train (or skip, or resume) every run; write results.csv/.json, report.md and plots/."""
        from .search import SharedSweep
        from .storage import default_storage, open_storage

        pick_device(self.config.baseline["device"])  # no GPU where one is asked for: say so once, up front
        corpus = self._load_corpus()
        self.out.mkdir(parents=True, exist_ok=True)
        self.fingerprint = hashlib.sha256(corpus.text.encode("utf-8", "surrogatepass")).hexdigest()
        self.meta = {"scriptrnn": __version__, "command": self.command, "machine": _machine(),
                     "corpus": corpus.name,
                     "corpus_characters": len(corpus.text), "corpus_sha256": self.fingerprint,
                     **self.config.to_dict()}
        del corpus  # each run reads the corpus itself
        write_json(self.out / "sweep.json", self.meta)
        url = self.storage_url or default_storage(self.out)
        storage = open_storage(url, self.heartbeat_s)  # the tables exist before any worker starts
        shared = SharedSweep(self, storage, workers=self.workers, seeded=self._seeded())
        shared.prepare()
        if self.workers == 1:
            self.work(storage, 0)
        else:
            run_workers(self, url)
        rows = shared.rows()
        write_tables(self.out, rows, self.meta)
        write_report(self.out, rows, self.meta)
        return rows

    def work(self, storage, worker: int) -> None:
        """One worker's share: claim and run trials until the whole sweep has ended."""
        from .search import SharedSweep

        _warm_up(self.config.baseline)
        SharedSweep(self, storage, worker=worker, workers=self.workers, seeded=self._seeded()).work(
            poll_s=min(2.0, self.heartbeat_s))

    def _seeded(self) -> bool:
        """An Optuna study draws reproducibly only for one worker on its own file; others draw apart."""
        return self.workers == 1 and self.storage_url is None

    def _load_corpus(self):
        s = self.config.source
        return load_corpus(s.data or None, corpus=s.corpus, genres=s.genres or None,
                           text_format=TextFormat(s.encoding, s.speaker_column, s.dialogue_column))

    def write_tables(self, rows: list[dict]) -> None:
        write_tables(self.out, rows, self.meta)

    # ------------------------------------------------------------ one run

    def plan(self, settings: dict) -> PlannedRun:
        baseline = self.config.baseline
        changed = {k: v for k, v in settings.items() if k not in baseline or repr(baseline[k]) != repr(v)}
        identity = json.dumps({"settings": settings, "corpus_sha256": self.fingerprint}, sort_keys=True)
        digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
        label = ",".join(f"{k}={format_value(v)}" for k, v in sorted(changed.items())) or "baseline"
        return PlannedRun(f"{re.sub(r'[^A-Za-z0-9_.,=+-]', '_', label)[:60]}-{digest}", settings, changed)

    def run_dir(self, planned: PlannedRun) -> Path:
        return self.out / RUNS_DIR / planned.name

    def run_one(self, planned: PlannedRun, label: str, callbacks: list | None = None) -> dict:
        """Train one run to its end (or skip it: done already); its outcome, also kept in its folder.

        Two trials may ask for the same settings (an Optuna trial drawing a grid point): a lock
        on the folder makes the second wait for the first, then find its result.
        """
        with self._locked(planned):
            return self._run_one(planned, label, callbacks)

    @contextlib.contextmanager
    def _locked(self, planned: PlannedRun):
        locks = self.out / LOCKS_DIR
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{planned.name}.lock", "a") as handle:  # released by the kernel if we die
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _run_one(self, planned: PlannedRun, label: str, callbacks: list | None) -> dict:
        run_dir = self.run_dir(planned)
        outcome = self.finished_outcome(planned)
        if outcome is not None:
            self.say(f"sweep: {label}: done earlier, skipped ({run_dir})")
            return outcome
        resume = (run_dir / CONFIG_FILE).is_file() and (run_dir / RESUME_FILE).is_file()
        self.say(f"sweep: {label}: {'resuming from its last checkpoint' if resume else 'training'} ({run_dir})")
        try:
            device = pick_device(planned.settings["device"])
            with ResourceMonitor(device) as usage, self._tensorboard(planned) as tensorboard:
                result = self._train(planned, run_dir, resume, [*(callbacks or []), *tensorboard])
        except ScriptRNNError as e:  # this run's settings do not work here (diverged, too big): record, go on
            return self._save(run_dir, {"run": planned.name, "status": "failed", "message": str(e)}, label)
        if result.stopped_because.startswith("interrupted"):
            raise SweepInterrupted(result.stopped_because, run_dir)
        outcome = _outcome_from_files(planned, run_dir, {**usage.results(), "device": str(device)}, resume)
        if self.samples:  # after the clock stopped: the samples do not count as training time
            outcome.update(sample_report(run_dir, self.samples)[0].columns())
        return self._save(run_dir, outcome, label)

    def _train(self, planned: PlannedRun, run_dir: Path, resume: bool, callbacks: list):
        if resume:  # the run's own settings and corpus are in its config.json
            return train(out=run_dir, resume=True, progress=self.progress, callbacks=callbacks)
        s = self.config.source
        return train(s.data or None, run_dir, corpus=s.corpus, genres=s.genres or None, encoding=s.encoding,
                     speaker_column=s.speaker_column, dialogue_column=s.dialogue_column, overwrite=True,
                     progress=self.progress, callbacks=callbacks, **planned.settings)

    def _save(self, run_dir: Path, outcome: dict, label: str) -> dict:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / OUTCOME_FILE, outcome)
        if outcome["status"] == "failed":
            self.say(f"sweep: {label}: failed: {outcome['message']}")
        else:
            self.say(f"sweep: {label}: {outcome['status']}, held-out loss {outcome['held_out_loss']:.4f} "
                     f"after {outcome['steps']} steps in {outcome['wall_clock_s']:.1f} s")
        return outcome

    @contextlib.contextmanager
    def _tensorboard(self, planned: PlannedRun):
        if self.tensorboard is None:
            yield []
            return
        from ..training.reporting import TensorBoardLogger

        with TensorBoardLogger(self.tensorboard / planned.name) as logger:
            yield [logger]

    def finished_outcome(self, planned: PlannedRun) -> dict | None:
        """The outcome of a run that is done, or None (not started, or interrupted)."""
        run_dir = self.run_dir(planned)
        if (run_dir / OUTCOME_FILE).is_file():
            try:
                return read_json(run_dir / OUTCOME_FILE, "the run's sweep result")
            except ScriptRNNError:
                pass  # damaged: judge by the run's own files below
        metrics = _final_metrics(run_dir)
        if metrics is None:
            return None
        # Killed after training ended but before the result was written: the files say it all but
        # what was measured while it ran.
        usage = {"peak_rss_mib": None, "peak_rss_scope": None, "gpu_util_percent": None, "gpu_memory_mib": None,
                 "device": None}
        outcome = _outcome_from_files(planned, run_dir, usage, resumed=None)
        write_json(run_dir / OUTCOME_FILE, outcome)
        return outcome


def _warm_up(settings: dict) -> None:
    """Pay the process's one-off costs before the first run, not inside the baseline's wall-clock.

    The first run in a process is slower (measured: ~0.5 s over its first 20 steps): PyTorch
    sets up its kernels and allocator on the first steps, matplotlib loads itself and its fonts
    on the first loss-curve plot. The baseline runs first and every time ratio is against it.
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from ..model.network import ModelConfig, RNNLanguageModel
    from ..training.config import TrainConfig
    from ..training.step import TrainStep

    figure = plt.figure(figsize=(2, 2))
    figure.gca().plot([0, 1], label="warm-up")
    figure.gca().legend()
    figure.savefig(io.BytesIO(), format="png")
    plt.close(figure)
    config = ModelConfig(**{k: settings[k] for k in ModelConfig().to_dict() if k in settings and k != "vocab_size"},
                         vocab_size=64)
    device = pick_device(settings["device"])
    try:
        config.validate()
        check_memory(config, device)
        dtype = autocast_dtype(settings["precision"], device)
    except ScriptRNNError:
        return  # the baseline run itself will say why it cannot train
    step = TrainStep.build(RNNLanguageModel(config).to(device), TrainConfig.from_dict(settings), device, dtype)
    x = torch.randint(0, 64, (settings["batch_size"], settings["seq_len"]), device=device)  # (B, T)
    for _ in range(3):  # the trainer's own step (training/step.py): same arithmetic, optimizer, kernels
        step(x, x, None)


def _machine() -> str:
    import os
    import platform

    import torch

    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores{gpu}, torch {torch.__version__}"


def _final_metrics(run_dir: Path) -> dict | None:
    """config.json's final metrics if the run ended (not interrupted), else None."""
    try:
        metrics = read_config(run_dir, exported=False).metrics  # the run's record, checked (model/record.py)
    except ScriptRNNError:
        return None
    if metrics is None or metrics.stopped_because is None or metrics.stopped_because.startswith("interrupted") \
            or metrics.loss is None:
        return None
    return metrics.to_dict()


def _outcome_from_files(planned: PlannedRun, run_dir: Path, usage: dict, resumed: bool | None) -> dict:
    """A finished run's figures, from what the run itself wrote (config.json, metrics.jsonl)."""
    metrics = _final_metrics(run_dir)
    if metrics is None:
        raise ScriptRNNError(f"{run_dir}: the run ended but its config.json holds no final metrics")
    records = read_metrics(run_dir)
    train_losses = [r["train_loss"] for r in records if "train_loss" in r]
    # The last record's clock is exact (config.json's is rounded to 0.1 s).
    clocks = [r["elapsed_s"] for r in records if isinstance(r.get("elapsed_s"), (int, float))]
    elapsed = clocks[-1] if clocks else metrics.get("elapsed_s", 0.0)
    tokens = metrics["steps"] * planned.settings["batch_size"] * planned.settings["seq_len"]
    stopped = metrics["stopped_because"]
    return {
        "run": planned.name,
        "status": "pruned" if stopped.startswith("pruned") else "finished",
        "held_out_loss": metrics["val"]["loss"],
        "perplexity": metrics["val"].get("perplexity"),
        "bits_per_char": metrics["val"].get("bits_per_char"),
        "final_train_loss": train_losses[-1] if train_losses else None,
        "steps": metrics["steps"],
        "wall_clock_s": round(elapsed, 2),
        "tokens_per_s": round(tokens / elapsed, 1) if elapsed > 0 else None,
        **usage,
        "stopped_because": stopped,
        "resumed": resumed,
    }
