"""Setting a training run up, or picking one up again, and fitting it: ``scriptrnn.train()``'s job.

Rank 0 reads the corpus, fits the tokenizer, writes config.json, tokenizer.json and the
token cache into the run directory, and tells the other processes (torchrun) what it did;
they rebuild the same model from that message. ``--resume`` reads the run's own corpus
again, checks it has not changed, and restores the loop exactly (resume.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import __version__
from ..data.val_data import ValData, cache_fingerprint
from ..data.sources import CorpusRequest, CorpusSource
from ..data.styles import StyledCorpus, style_facts
from ..data.token_cache import TOKENS_FILE, cache_key, open_cache, write_cache
from ..data.tokenizer import tokenizer_from_dict
from ..device import check_memory, pick_device
from ..errors import ScriptRNNError
from ..model.checkpoint import (CONFIG_FILE, RESUME_FILE, TOKENIZER_FILE, WEIGHTS_FILE, build_model, read_config,
                                read_json, remove_temporaries, save_run_files)
from ..model.network import ModelConfig, RNNLanguageModel
from .config import LEVEL_DEFAULTS, TrainConfig, level_defaults, output_layer, run_limits, split_settings
from .init_from import child_model, merge_corpus_facts, merged_tokenizer, parent_record, parent_settings, read_parent
from .distributed import DEFAULT_TIMEOUT_S, Distributed, EchoedError, session
from .loop import Trainer, TrainResult
from .prepare import open_text
from .same_run import check_val_data, resume_settings
from .reporting import CURVE_FILE, METRICS_FILE
from .sizing import auto_size, rough_tokens
from .samples import SAMPLES_FILE, RunSamples

# What a run writes into --out; --overwrite removes these and nothing else.
RUN_FILES = (CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, RESUME_FILE, METRICS_FILE, CURVE_FILE, TOKENS_FILE,
             SAMPLES_FILE)
MAX_SPEAKERS = 500  # kept in the config for primes and pickers, most frequent first


def run_training(request: CorpusRequest, out: Path, *, resume: bool = False, overwrite: bool = False,
                 progress: bool = True, callbacks: list | None = None, dist_timeout: float = DEFAULT_TIMEOUT_S,
                 settings: dict | None = None, val_data=None) -> TrainResult:
    """``scriptrnn.train()`` after its arguments are gathered (see its docstring)."""
    settings = settings or {}
    with session(dist_timeout) as where:
        if where.is_main:
            run = _tell_the_others(where, lambda: _prepare(request, out, resume, overwrite, settings, where,
                                                           val_data))
        else:
            run = _follow(out, where)
        return _fit(out, run, progress, callbacks, where)


def _prepare_out_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ScriptRNNError(f"--out {out} is a file, not a directory")
    if resume:
        if not (out / CONFIG_FILE).exists():
            raise ScriptRNNError(f"--resume: {out} holds no run to resume (no {CONFIG_FILE})")
        if _never_saved(out):
            raise ScriptRNNError(f"--resume: {out} was stopped before its first resume point, so there is nothing "
                                 "to resume yet; the same command without --resume starts it again")
        remove_temporaries(out)  # left by a run killed while writing
        return
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if existing and not overwrite and _never_saved(out):
        # Nothing of it can continue, so it counts as not started: _start clears it with the usual files.
        print(f"{out} holds a run stopped before its first resume point; starting it again", file=sys.stderr)
    elif existing and not overwrite:
        raise ScriptRNNError(
            f"{out} already holds a run ({', '.join(existing)}); pass --resume to continue it or --overwrite "
            "to replace it"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        remove_temporaries(out)
    except OSError as e:
        raise ScriptRNNError(f"cannot prepare --out {out}: {e.strerror or e}") from None


def _never_saved(out: Path) -> bool:
    """A training run's start killed before its first resume point: no resume file and no final metrics."""
    if (out / RESUME_FILE).exists() or not (out / CONFIG_FILE).exists():
        return False
    try:
        return "metrics" not in read_config(out, exported=False)  # written when a run ends
    except ScriptRNNError:
        return False  # not a run of ours (an export, a damaged file): refused as a run is


def _clear_old_run(out: Path) -> None:
    """--overwrite: remove the old run's own files (anything else in the folder stays).

    Called only once the new run has passed every check, so a refused start keeps the old run.
    """
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)


@dataclass
class _Run:
    """A run ready to fit: what rank 0 prepares, and what the other ranks rebuild from its message."""

    config: dict  # config.json's content
    train_config: TrainConfig
    model: RNNLanguageModel
    tokenizer: object
    ids: np.ndarray  # the whole corpus as token ids, memory-mapped from the run's token cache
    cache_key: str
    resume: bool
    val_start: int  # ids[:val_start] are trained on, ids[val_start:] held out

    def message(self) -> dict:
        return {"config": self.config, "tokenizer": self.tokenizer.to_dict(), "cache_key": self.cache_key,
                "resume": self.resume, "val_start": self.val_start}


def _tell_the_others(where: Distributed, prepare: Callable[[], _Run]) -> _Run:
    """Rank 0's setup, sent to the other ranks; a failure too, so that they stop instead of waiting."""
    try:
        run = prepare()
    except BaseException as e:
        reason = str(e) if isinstance(e, ScriptRNNError) else f"rank 0 stopped ({type(e).__name__})"
        try:
            where.share({"error": reason})
        except ScriptRNNError:
            pass  # the others are gone already; rank 0's own error is the one to show
        raise
    where.share(run.message())
    return run


def _follow(out: Path, where: Distributed) -> _Run:
    """Ranks other than 0: rank 0's settings and vocabulary, and the token cache it wrote."""
    message = where.share(None)
    if "error" in message:
        raise EchoedError(message["error"])
    config = message["config"]
    train_config = TrainConfig.from_dict(config["training"]).validate()
    ids = open_cache(out / TOKENS_FILE, message["cache_key"])
    if ids is None:
        raise ScriptRNNError(
            f"rank {where.rank} cannot read {out / TOKENS_FILE}, which rank 0 wrote; with several machines, "
            "--out must be on a filesystem that they all share"
        )
    torch.manual_seed(train_config.seed)  # rank 0's first weights (DDP copies rank 0's to all anyway)
    return _Run(config, train_config, build_model(config), tokenizer_from_dict(message["tokenizer"]), ids,
                message["cache_key"], message["resume"], message["val_start"])


def _prepare(request: CorpusRequest, out: Path, resume: bool, overwrite: bool, settings: dict,
             where: Distributed, val_data=None) -> _Run:
    created = not out.exists()
    _prepare_out_dir(out, resume=resume, overwrite=overwrite)
    if resume:
        return _resume(out, request, settings, where, val_data)
    try:
        source = request.resolve()
        return _start(source, out, settings, where, _val_data(val_data, source, request.text_format, settings))
    except ScriptRNNError:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a refused start leaves nothing behind
        raise


def _val_data(paths, source: CorpusSource, text_format, settings: dict) -> ValData | None:
    """--val-data's files, read; refused where they have no meaning."""
    if not paths:
        return None
    if source.styles:
        raise ScriptRNNError("--val-data is for one corpus; a styled run holds out each style's own end "
                             "(leave out --val-data or the styles)")
    if "val_fraction" in settings:
        raise ScriptRNNError("--val-fraction holds out the end of DATA; with --val-data all of DATA is trained "
                             "on, so give one or the other")
    return ValData.read(paths, text_format)


def _start(source: CorpusSource, out: Path, settings: dict, where: Distributed, val: ValData | None = None) -> _Run:
    settings = dict(settings)
    init_from = settings.pop("init_from", None)
    parent = read_parent(init_from) if init_from is not None else None  # before the corpus: refuse early
    if parent is not None:
        settings = parent_settings(parent, settings)
    level = settings.get("level", TrainConfig.level)
    level_defaults(level)  # an unknown level is refused before anything is read into the settings
    model_settings, train_settings = split_settings({**LEVEL_DEFAULTS[level], **run_limits(settings)})
    train_config = TrainConfig(**train_settings).validate()
    where.rows(train_config.batch_size)  # the global batch must split evenly over the processes
    text = open_text(source, train_config.level, train_config.lowercase)  # streamed: the first of two passes
    tokenizer = text.tokenizer(train_config)
    if parent is not None:  # the parent's ids first, then what the new corpus adds
        tokenizer = merged_tokenizer(parent, tokenizer)
    model_settings = output_layer(model_settings, settings, tokenizer.vocab_size, level)
    sizing = None
    if train_config.size == "auto":  # the unset sizes, from this machine's measured speed (sizing.py)
        model_settings, train_config, sizing = auto_size(
            model_settings, train_config, settings, tokenizer.vocab_size, processes=where.world_size,
            corpus_tokens=rough_tokens(text.characters, level),
            device=where.device(pick_device(train_config.device)), fine_tuning=parent is not None)
    model_config = ModelConfig(**{**model_settings, "vocab_size": tokenizer.vocab_size}).validate()
    check_memory(model_config, pick_device(train_config.device))
    config = _run_config(text, source, model_config, train_config, tokenizer)
    if sizing:
        config["sizing"] = sizing
    if parent is not None:
        merge_corpus_facts(parent, config["corpus"], MAX_SPEAKERS)
        config["parent"] = parent_record(parent)
    if val is not None:
        config["corpus"]["val_data"] = val.facts()
    val_start = config["corpus"]["train_tokens"] = text.train_tokens(tokenizer, train_config, val=val)
    _clear_old_run(out)  # only now: a start refused above leaves the old run (or nothing) behind
    save_run_files(out, config, tokenizer)
    key = cache_key(cache_fingerprint(config["corpus"]["sha256"], config["corpus"]), tokenizer)
    ids = _cache_ids(out, text.ids(tokenizer, train_config, val=val, val_start=val_start), key,
                     tokenizer.vocab_size)  # the second pass
    config["corpus"]["val_characters"] = text.val_characters  # counted in that pass: bits per character
    save_run_files(out, config, tokenizer)
    torch.manual_seed(train_config.seed)
    model = RNNLanguageModel(model_config) if parent is None else child_model(parent, model_config, train_config.seed)
    return _Run(config, train_config, model, tokenizer, ids, key, resume=False, val_start=val_start)


def _run_config(text, source: CorpusSource, model_config: ModelConfig, train_config: TrainConfig,
                tokenizer) -> dict:
    """config.json's content for a new run (metrics are added when it ends); ``text`` from prepare.open_text."""
    fold_case = train_config.level == "word" and train_config.lowercase
    speakers = [s.lower() if fold_case else s for s, _ in text.speakers.most_common(MAX_SPEAKERS)]
    config = {
        "created_by": f"scriptrnn {__version__}",
        "model": model_config.to_dict(),
        "training": vars(train_config),
        "corpus": {"name": text.name, "characters": text.characters, "speakers": speakers,
                   "source": source.to_dict(), "sha256": text.sha256},
    }
    if text.styled is not None:
        config["corpus"]["styles"] = style_facts(text.styled, fold_case)
        _check_tags_kept(text.styled, tokenizer, train_config.min_count)
    return config


def _cache_ids(out: Path, ids, key: str, vocab_size: int) -> np.memmap:
    """Write the ids (an iterable of chunks) to the run's token cache and memory-map them back."""
    write_cache(out / TOKENS_FILE, ids, key=key, vocab_size=vocab_size)
    mapped = open_cache(out / TOKENS_FILE, key)
    if mapped is None:
        raise ScriptRNNError(f"{out / TOKENS_FILE} could not be read back after writing it; is the disk full?")
    return mapped


def _check_tags_kept(text_corpus: StyledCorpus, tokenizer, min_count: int) -> None:
    for name, tag in text_corpus.styles.items():
        if tokenizer.token_id(tag) is None:
            raise ScriptRNNError(f"style {name!r} has fewer than --min-count {min_count} chunks, so its tag would "
                                 "become <unk>; give it more text or lower --min-count")


def _resume(out: Path, request: CorpusRequest, settings: dict, where: Distributed, val_data=None) -> _Run:
    config = read_config(out)
    source = CorpusSource.from_dict(config.get("corpus", {}).get("source"))
    # The run's own command again (DATA, settings) is fine; what differs is refused, named (same_run.py).
    settings = resume_settings(config, source, request, settings)
    tokenizer = tokenizer_from_dict(read_json(out / TOKENIZER_FILE, "the vocabulary"))
    training = {**config.get("training", {}), **settings}
    train_config = TrainConfig.from_dict(training).validate()
    where.rows(train_config.batch_size)  # any number of processes that splits the global batch evenly
    config["training"] = vars(train_config)
    if source is None:
        raise ScriptRNNError(f"{out / CONFIG_FILE} does not say which corpus the run read; it cannot resume")
    text = open_text(source, None)  # one streamed pass for the fingerprint; the vocabulary is the run's
    # An exact resume needs the very text the run started on.
    fingerprint = text.sha256
    if config["corpus"].get("sha256", fingerprint) != fingerprint:
        raise ScriptRNNError(
            f"the corpus ({source.describe()}) has changed since this run started; "
            "--resume needs the same text (start a new run with --overwrite or another --out)"
        )
    val = ValData.of_run(config["corpus"])  # the same validation files too
    if val_data:
        check_val_data(val, val_data)  # --val-data again is fine when it names the run's own files
    if val is not None:
        val.check_unchanged(config["corpus"]["val_data"])
    key = cache_key(cache_fingerprint(fingerprint, config["corpus"]), tokenizer)
    ids, val_start = open_cache(out / TOKENS_FILE, key), config["corpus"].get("train_tokens")
    if ids is None or not isinstance(val_start, int) or not 0 < val_start < len(ids):
        # A run from before the cache, or a cache that is damaged or stale: tokenize again.
        ids = _cache_ids(out, text.ids(tokenizer, train_config, val=val), key, tokenizer.vocab_size)
        val_start = text.train_tokens(tokenizer, train_config, len(ids) - text.val_tokens, val=val)
        config["corpus"].update(train_tokens=val_start, val_characters=text.val_characters)
    return _Run(config, train_config, build_model(config), tokenizer, ids, key, resume=True, val_start=val_start)


def _fit(out: Path, run: _Run, progress: bool, callbacks, where: Distributed) -> TrainResult:
    train_ids, val_ids = run.ids[: run.val_start], run.ids[run.val_start:]  # views of the memory map
    trainer = Trainer(run.model, train_ids, val_ids, run.train_config, out, level=run.tokenizer.level,
                      progress=progress, callbacks=callbacks, dist=where,
                      val_characters=run.config["corpus"].get("val_characters"))
    if run.resume:
        trainer.load_resume()
    else:  # --size auto's probe took its seconds out of the budget
        trainer.state.elapsed_s = run.config.get("sizing", {}).get("probe_s", 0.0)
    if where.is_main and run.train_config.sample_every:  # under torchrun only rank 0 samples
        trainer.sampler = RunSamples(out, run.tokenizer, run.config, every=run.train_config.sample_every,
                                     seed=run.train_config.seed, start_step=trainer.state.step)
    result = trainer.fit()
    if where.is_main:
        run.config["metrics"] = {"val": result.metrics, "best_val_loss_sampled": result.best_val_loss,
                                 "steps": result.steps, "elapsed_s": round(result.elapsed_s, 1),
                                 "stopped_because": result.stopped_because}
        save_run_files(out, run.config, run.tokenizer)
    return result
