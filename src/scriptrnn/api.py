"""The Python API: ``train``, ``load``, ``evaluate`` and ``info``, each a whole job in one call.

A thin front: each gathers its arguments and hands them to the stage that owns the work
(training.setup, model.loader, evaluation.scoring). The CLI only parses arguments and calls these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from .data.corpus import TextFormat
from .data.sources import CorpusRequest
from .generate.sampling import SamplingConfig
from .generate.script_model import ScriptModel
from .model import loader
from .evaluation.text_report import TextReport
from .evaluation.scoring import evaluate_model
from .evaluation.scoring import sample_report as _sample_report
from .model.loader import pretrained_dir
from .training.config import TrainConfig
from .training.distributed import DEFAULT_TIMEOUT_S
from .training.loop import Trainer, TrainResult
from .training.config import Resolved
from .training.setup import plan_run, run_training

__all__ = ["evaluate", "info", "load", "plan_training", "pretrained_dir", "sample_report", "train"]


def train(
    data: str | Path | Sequence[str | Path] | None = None,
    out: str | Path = "runs/latest",
    *,
    corpus: str = CorpusRequest.corpus,
    genres: Sequence[str] | None = None,
    styles: str | None = None,
    encoding: str = TextFormat.encoding,
    speaker_column: str = TextFormat.speaker_column,
    dialogue_column: str = TextFormat.dialogue_column,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: list[Callable[[str, Trainer], None]] | None = None,
    dist_timeout: float = DEFAULT_TIMEOUT_S,
    val_data: str | Path | Sequence[str | Path] | None = None,
    **settings,
) -> TrainResult:
    """Train a model on ``data`` (files, folders; the built-in corpus when None) into ``out``.

    ``settings`` are ModelConfig and TrainConfig fields by name, e.g.
    ``level="word", cell="gru", hidden_size=256, time_budget=5``; what is not given
    comes from ``training.config`` (per level where the levels differ).

    Fine-tuning: ``init_from="runs/x"`` (or ``"builtin"``) starts from that run's weights; the
    network's shape and token level are the parent's, the vocabulary grows to the new corpus
    (training/init_from.py), and the learning-rate defaults are ``training.config.FINETUNE_DEFAULTS``.

    One model for several styles: ``data={"seinfeld": "seinfeld.txt", "simpsons": [...]}``,
    paths written ``"seinfeld.txt:seinfeld"``, a TOML manifest, or ``styles="genre"`` for
    the built-in plays by genre (see data/styles.py).

    Started by torchrun (several processes), every process calls this alike: rank 0 reads
    the corpus and writes the run's files, and all train one model with DDP, each on its
    share of the ``batch_size`` streams. ``dist_timeout`` is how many seconds a process
    waits for the others before it gives up with an error.

    ``val_data``: files (or folders) to validate on (early stopping, the best checkpoint)
    instead of the end of ``data``, which is then trained on whole.
    """
    request = CorpusRequest(data, corpus, tuple(genres or ()), styles,
                            TextFormat(encoding, speaker_column, dialogue_column))
    return run_training(request, Path(out), resume=resume, overwrite=overwrite, progress=progress,
                        callbacks=callbacks, dist_timeout=dist_timeout, settings=settings, val_data=val_data)


def plan_training(data=None, *, corpus: str = CorpusRequest.corpus, genres: Sequence[str] | None = None,
                  styles: str | None = None, encoding: str = TextFormat.encoding,
                  speaker_column: str = TextFormat.speaker_column, dialogue_column: str = TextFormat.dialogue_column,
                  **settings) -> Resolved:
    """What ``train`` with these arguments would train with, and which layer decided each setting
    (``.table()``: setting, value, decided by), without training or writing anything: ``train --dry-run``.

    The corpus is read (the vocabulary decides the output layer); --size auto's probe does not run.
    """
    request = CorpusRequest(data, corpus, tuple(genres or ()), styles,
                            TextFormat(encoding, speaker_column, dialogue_column))
    return plan_run(request, settings)


def load(run_dir: str | Path | None = None, *, device: str = "cpu") -> ScriptModel:
    """A trained run (or the built-in Shakespeare model when None), ready to ``.generate()``.

    A directory ``scriptrnn export`` wrote loads too, and runs with onnxruntime.
    """
    return loader.load(run_dir, device=device)


def info(run_dir: str | Path | None = None) -> dict:
    """What a run (or an exported model) is, from its config.json alone: level, cell, sizes, corpus, loss,
    styles, speakers."""
    return loader.info(run_dir)


def evaluate(run_dir: str | Path | None, data=None, *, corpus: str | None = None, genres=None,
             encoding: str = TextFormat.encoding, speaker_column: str = TextFormat.speaker_column,
             dialogue_column: str = TextFormat.dialogue_column,
             held_out: bool = True, device: str = "cpu") -> dict:
    """Loss, perplexity (and bits per character at char level) of a model on a corpus.

    Without ``data`` (or ``corpus``) the model is scored on the corpus it was trained
    on. With ``held_out`` only the last ``val_fraction`` of the text counts, the part
    a run on that corpus never trains on; otherwise all of it.
    """
    genres = [genres] if isinstance(genres, str) else list(genres or [])
    request = CorpusRequest(data, corpus, tuple(genres), None, TextFormat(encoding, speaker_column, dialogue_column))
    return evaluate_model(load(run_dir, device=device), request, held_out=held_out,
                          default_fraction=TrainConfig.val_fraction)


def sample_report(run_dir: str | Path | None, samples: int = 4, *, max_new_tokens: int | None = None,
                  temperature: float = SamplingConfig.temperature, seed: int = 0, device: str = "cpu") -> tuple[TextReport, list[str]]:
    """Write ``samples`` texts and report on them against the run's own training and held-out text:
    known speakers, real words, distinct-1/2/3, copying, line lengths (evaluation/text_report.py)."""
    return _sample_report(load(run_dir, device=device), samples, max_new_tokens=max_new_tokens,
                          temperature=temperature, seed=seed, default_fraction=TrainConfig.val_fraction)
