"""Setting a training run up, or picking one up again, and fitting it: ``scriptrnn.train()``'s job.

Rank 0 reads the corpus, fits the tokenizer, writes config.json, tokenizer.json and the
token cache into the run directory, and tells the other processes (torchrun) what it did;
they rebuild the same model from that message. ``--resume`` reads the run's own corpus
again, checks it has not changed, and restores the loop exactly (resume.py).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..version import __version__
from ..evaluation.val_data import ValData, cache_fingerprint
from ..evaluation.coverage import case_note
from ..data.sources import CorpusRequest, CorpusSource
from ..data.styles import StyledCorpus, style_facts
from ..data.token_cache import TOKENS_FILE, cache_key, open_cache, write_cache
from ..data.tokenizer import tokenizer_from_dict
from ..device import autocast_dtype, check_memory, pick_device
from ..errors import ScriptRNNError
from ..files import CONFIG_FILE, TOKENIZER_FILE, read_json, remove_temporaries
from ..hub.card import invocation, machine, write_card
from ..model.checkpoint import build_model, save_run_files
from ..model.directory import FORMAT_NAME, FORMAT_VERSION, RESUME_FILE, WEIGHTS_FILE, read_config
from ..model.network import ModelConfig, RNNLanguageModel
from ..model.record import CorpusFacts, Metrics, RunRecord, StyleFacts
from .config import LATER, ON_RESUME, Resolved, TrainConfig, resolve
from .init_from import Parent, child_model, merge_corpus_facts, merged_tokenizer, parent_record, read_parent
from .distributed import DEFAULT_TIMEOUT_S, Distributed, EchoedError, session
from .loop import Trainer, TrainResult
from .prepare import open_text
from .same_run import check_val_data, resume_settings
from .reporting import CURVE_FILE, METRICS_FILE
from .schedule import NothingToTrain, finished, new_segment, nothing_to_train
from .sizing import auto_size, fixed_because, probe_speed, rough_tokens
from .samples import SAMPLES_FILE, RunSamples, last_sample

# What a run writes into --out; --overwrite removes these and nothing else.
RUN_FILES = (CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, RESUME_FILE, METRICS_FILE, CURVE_FILE, TOKENS_FILE,
             SAMPLES_FILE)
MAX_SPEAKERS = 500  # kept in the config for primes and pickers, most frequent first


def run_training(request: CorpusRequest, out: Path, *, resume: bool = False, overwrite: bool = False,
                 progress: bool = True, callbacks: list | None = None, dist_timeout: float = DEFAULT_TIMEOUT_S,
                 settings: dict | None = None, val_data=None) -> TrainResult:
    """``scriptrnn.train()`` after its arguments are gathered (see its docstring)."""
    settings = settings or {}
    began = time.perf_counter()  # the budget counts the whole command (schedule.py)
    with session(dist_timeout) as where:
        if where.is_main:
            run = _tell_the_others(where, lambda: _prepare(request, out, resume, overwrite, settings, where,
                                                           val_data))
        else:
            run = _follow(out, where)
        return _fit(out, run, progress, callbacks, where, began)


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
        return read_config(out, exported=False).metrics is None  # written when a run ends
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

    record: RunRecord  # config.json's content
    train_config: TrainConfig
    model: RNNLanguageModel
    tokenizer: object
    ids: np.ndarray  # the whole corpus as token ids, memory-mapped from the run's token cache
    cache_key: str
    resume: bool
    val_start: int  # ids[:val_start] are trained on, ids[val_start:] held out
    new_segment: bool = False  # a finished run given a new --time-budget (schedule.py)
    nothing_new: bool = False  # a finished run given no new limit: nothing to train

    def message(self) -> dict:
        return {"config": self.record.to_dict(), "tokenizer": self.tokenizer.to_dict(), "cache_key": self.cache_key,
                "resume": self.resume, "val_start": self.val_start, "new_segment": self.new_segment,
                "nothing_new": self.nothing_new}


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
    record = RunRecord.from_dict(message["config"])
    train_config = TrainConfig.from_dict(record.training).validate()
    ids = open_cache(out / TOKENS_FILE, message["cache_key"])
    if ids is None:
        raise ScriptRNNError(
            f"rank {where.rank} cannot read {out / TOKENS_FILE}, which rank 0 wrote; with several machines, "
            "--out must be on a filesystem that they all share"
        )
    torch.manual_seed(train_config.seed)  # rank 0's first weights (DDP copies rank 0's to all anyway)
    return _Run(record, train_config, build_model(record), tokenizer_from_dict(message["tokenizer"]), ids,
                message["cache_key"], message["resume"], message["val_start"], message["new_segment"], message["nothing_new"])


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
    text, tokenizer, resolved = _settle(source, settings, parent, where, val)
    model_config, train_config = resolved.model, resolved.train
    check_memory(model_config, pick_device(train_config.device))
    record = _run_record(text, source, resolved, tokenizer)
    if parent is not None:
        merge_corpus_facts(parent, record.corpus, MAX_SPEAKERS)
        record.parent = parent_record(parent)
    if val is not None:
        record.corpus.val_data = val.facts()
    val_start = record.corpus.train_tokens = text.train_tokens(tokenizer, train_config, val=val)
    _clear_old_run(out)  # only now: a start refused above leaves the old run (or nothing) behind
    save_run_files(out, record, tokenizer)
    key = cache_key(cache_fingerprint(record.corpus.sha256, record.corpus.val_data), tokenizer)
    ids = _cache_ids(out, text.ids(tokenizer, train_config, val=val, val_start=val_start), key,
                     tokenizer.vocab_size)  # the second pass
    record.corpus.val_characters = text.val_characters  # counted in that pass: bits per character
    save_run_files(out, record, tokenizer)
    torch.manual_seed(train_config.seed)
    model = RNNLanguageModel(model_config) if parent is None else child_model(parent, model_config, train_config.seed)
    return _Run(record, train_config, model, tokenizer, ids, key, resume=False, val_start=val_start)


def _settle(source: CorpusSource, settings: dict, parent: Parent | None, where: Distributed | None,
            val: ValData | None = None):
    """(text, tokenizer, Resolved): the settings that read the corpus, its vocabulary, then every setting
    with it (training/config.py ``resolve``). ``where`` None: a dry run, which sizes nothing."""
    inherited = parent.settings() if parent is not None else None
    train_config = resolve(settings, parent=inherited).train  # what reading the text needs
    if where is not None:
        where.rows(train_config.batch_size)  # the global batch must split evenly over the processes
    text = open_text(source, train_config.level, train_config.lowercase)  # streamed: the first of two passes
    if parent is not None and parent.tokenizer.level == "subword":
        tokenizer = parent.tokenizer  # byte level spells any text: the parent's vocabulary as it is
    else:
        tokenizer = text.tokenizer(train_config, val=val)
    if parent is not None:  # the parent's ids first, then what the new corpus adds
        tokenizer = merged_tokenizer(parent, tokenizer)
    fine_tuning, tokens = parent is not None, rough_tokens(text.characters, train_config.level)

    def probe(model_settings: dict, train: TrainConfig, given: dict, vocab_size: int):
        """--size auto: the unset sizes, from this machine's measured speed (sizing.py)."""
        if where is None:  # a dry run: say whether the run will choose, and choose nothing
            why = fixed_because(train, given, fine_tuning)
            return model_settings, train, {"choice": None, "reason": f"sizing: fixed sizes, {why}"} if why else \
                {"choice": LATER}
        return auto_size(model_settings, train, given, vocab_size, processes=where.world_size, corpus_tokens=tokens,
                         device=where.device(pick_device(train.device)), fine_tuning=fine_tuning)

    return text, tokenizer, resolve(settings, parent=inherited, vocab_size=tokenizer.vocab_size, size=probe)


def plan_run(request: CorpusRequest, settings: dict) -> Resolved:
    """``scriptrnn train --dry-run``: the run's settings and what decided each, from reading the corpus and the
    parent; nothing is written and --size auto's probe does not run (its sizes are marked as chosen later)."""
    settings = dict(settings)
    init_from = settings.pop("init_from", None)
    parent = read_parent(init_from) if init_from is not None else None
    return _settle(request.resolve(), settings, parent, None)[2]


def _opening_line(model_config: ModelConfig, train_config: TrainConfig, tokenizer) -> str:
    """What the run trains, in a line (size, vocabulary, device, precision), as --size auto's says it."""
    device = pick_device(train_config.device)
    precision = "bf16" if autocast_dtype(train_config.precision, device) is not None else "fp32"
    return (f"model: {tokenizer.level} level, {model_config.cell} {model_config.num_layers}x{model_config.hidden_size}, "
            f"vocabulary {tokenizer.vocab_size:,}, {model_config.parameter_count():,} parameters; "
            f"{device} in {precision}")


def _run_record(text, source: CorpusSource, resolved: Resolved, tokenizer) -> RunRecord:
    """config.json's content for a new run (metrics are added when it ends); ``text`` from prepare.open_text."""
    train_config = resolved.train
    fold_case = train_config.level == "word" and train_config.lowercase
    speakers = [s.lower() if fold_case else s for s, _ in text.speakers.most_common(MAX_SPEAKERS)]
    corpus = CorpusFacts(name=text.name, characters=text.characters, speakers=speakers, source=source.to_dict(),
                         sha256=text.sha256)
    if text.styled is not None:
        corpus.styles = [StyleFacts(**facts) for facts in style_facts(text.styled, fold_case)]
        _check_tags_kept(text.styled, tokenizer, train_config.min_count)
    return RunRecord(FORMAT_NAME, FORMAT_VERSION, created_by=f"scriptrnn {__version__}", command=invocation(),
                     model=resolved.model.to_dict(), training=dict(vars(train_config)), corpus=corpus,
                     sizing=resolved.sizing or None, decided_by=resolved.decided_by)


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
    record = read_config(out)
    corpus = record.corpus
    source = CorpusSource.from_dict(corpus.source)
    # The run's own command again (DATA, settings) is fine; what differs is refused, named (same_run.py).
    settings = resume_settings(record, source, request, settings)
    tokenizer = tokenizer_from_dict(read_json(out / TOKENIZER_FILE, "the vocabulary"))
    train_config = TrainConfig.from_dict({**record.training, **settings}).validate()
    where.rows(train_config.batch_size)  # any number of processes that splits the global batch evenly
    record.training = dict(vars(train_config))
    if record.decided_by:  # (a run from before the record has none to add to)
        record.decided_by.update({name: ON_RESUME for name in settings})
    if source is None:
        raise ScriptRNNError(f"{out / CONFIG_FILE} does not say which corpus the run read; it cannot resume")
    text = open_text(source, None)  # one streamed pass for the fingerprint; the vocabulary is the run's
    # An exact resume needs the very text the run started on.
    fingerprint = text.sha256
    if corpus.sha256 not in (None, fingerprint):
        raise ScriptRNNError(
            f"the corpus ({source.describe()}) has changed since this run started; "
            "--resume needs the same text (start a new run with --overwrite or another --out)"
        )
    val = ValData.of_run(corpus.val_data)  # the same validation files too
    if val_data:
        check_val_data(val, val_data)  # --val-data again is fine when it names the run's own files
    if val is not None:
        val.check_unchanged(corpus.val_data)
    key = cache_key(cache_fingerprint(fingerprint, corpus.val_data), tokenizer)
    ids, val_start = open_cache(out / TOKENS_FILE, key), corpus.train_tokens
    if ids is None or val_start is None or not 0 < val_start < len(ids):
        # A run from before the cache, or a cache that is damaged or stale: tokenize again.
        ids = _cache_ids(out, text.ids(tokenizer, train_config, val=val), key, tokenizer.vocab_size)
        val_start = text.train_tokens(tokenizer, train_config, len(ids) - text.val_tokens, val=val)
        corpus.train_tokens, corpus.val_characters = val_start, text.val_characters
    limits = [k for k in ("time_budget", "max_steps", "epochs") if k in settings]  # given on this command
    ended = finished(record)
    return _Run(record, train_config, build_model(record), tokenizer, ids, key, resume=True, val_start=val_start,
                new_segment=ended and "time_budget" in limits, nothing_new=ended and not limits)


def _fit(out: Path, run: _Run, progress: bool, callbacks, where: Distributed, began: float) -> TrainResult:
    train_ids, val_ids = run.ids[: run.val_start], run.ids[run.val_start:]  # views of the memory map
    trainer = Trainer(run.model, train_ids, val_ids, run.train_config, out, level=run.tokenizer.level,
                      progress=progress, callbacks=callbacks, dist=where,
                      val_characters=run.record.corpus.val_characters)
    sizing = run.record.sizing or {}
    if where.is_main and not run.resume and not sizing.get("choice"):  # sizing's line said it already
        # on stderr with the checks' lines: stdout stays the command's result (a sweep's is its report)
        print(_opening_line(run.model.config, run.train_config, run.tokenizer), file=sys.stderr)
    trainer.spent.probe = 0.0 if run.resume else run.record.probe_s
    trainer.spent.prepare = time.perf_counter() - began - trainer.spent.probe
    if run.resume:
        trainer.load_resume()
        if finished(run.record):  # where it ended: its last resume point may be from the check before
            trainer.state.elapsed_s = max(trainer.state.elapsed_s, run.record.metrics.elapsed_s or 0.0)
        if run.new_segment:  # more time for a finished run: the schedule starts a new segment
            new_segment(trainer.state, trainer.spent.prepare)
        why = run.record.metrics.stopped_because if run.nothing_new else trainer._should_stop()
        if why and finished(run.record):  # never silently do nothing
            raise NothingToTrain(nothing_to_train(why, run.train_config, out))
    else:  # the preparation and --size auto's probe took their seconds out of the budget
        trainer.state.elapsed_s = trainer.spent.prepare + trainer.spent.probe
        trainer.slow.expected = probe_speed(sizing)
    if where.is_main and run.train_config.sample_every:  # under torchrun only rank 0 samples
        trainer.sampler = RunSamples(out, run.tokenizer, run.record, every=run.train_config.sample_every,
                                     seed=run.train_config.seed, start_step=trainer.state.step)
    result = trainer.fit()
    if where.is_main:
        metrics = run.record.metrics = Metrics(
            {**result.metrics, **case_note(run.tokenizer)}, result.best_val_loss, result.steps,
            round(result.elapsed_s, 1), result.stopped_because, {"slow": trainer.slow.said} if trainer.slow.said else {})
        run.record.machine = machine(str(trainer.device))
        saving = time.perf_counter()
        save_run_files(out, run.record, run.tokenizer)
        write_card(out, run.record.to_dict(), sample=last_sample(out))
        trainer.spent.save = time.perf_counter() - saving
        metrics.extra["time_s"] = result.time_s = trainer.spent.record()
        save_run_files(out, run.record, run.tokenizer)  # again, with the seconds the first save took
    result.time_line = trainer.spent.line(run.train_config.time_budget)
    return result
