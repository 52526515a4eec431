"""The Python API: ``train``, ``load`` and ``evaluate``, each a whole job.

The CLI only parses arguments and calls these.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import __version__
from .batching import split_ids, tokens_needed
from .checkpoint import (
    CONFIG_FILE,
    RESUME_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    build_model,
    load_checkpoint,
    model_config,
    read_config,
    read_json,
    remove_temporaries,
    save_run_files,
)
from .corpus import Corpus, as_path_list, find_speakers, load_corpus
from .distributed import DEFAULT_TIMEOUT_S, Distributed, EchoedError, session
from .errors import ScriptRNNError
from .evaluate import evaluate_loss, loss_report
from .generate import ScriptModel
from .model import ModelConfig, RNNLanguageModel
from .tokenizer import fit_tokenizer, tokenizer_from_dict
from .reporting import CURVE_FILE, METRICS_FILE
from .runtime import is_exported, read_export_config
from .sampling import SamplingConfig
from .styles import StyledCorpus, StyleSource, load_styled_corpus, model_styles, style_facts, style_sources
from .text_report import TextReport, text_report
from .token_cache import TOKENS_FILE, cache_key, open_cache, write_cache
from .trainer import TrainConfig, Trainer, TrainResult, check_memory, pick_device

PRETRAINED_NAME = "shakespeare-char"
# What a run writes into --out; --overwrite removes these and nothing else.
RUN_FILES = (CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, RESUME_FILE, METRICS_FILE, CURVE_FILE, TOKENS_FILE)
MAX_SPEAKERS = 500  # kept in the config for primes and pickers, most frequent first

# Per-level starting points over the dataclass defaults; anything passed by name wins.
# Word level: ~20k-word vocabularies make the output layer the cost, so windows are
# smaller, the embedding is shared with the output layer, and runs are shorter
# (a script corpus of ~1M words overfits after a few epochs; early stopping ends it).
LEVEL_DEFAULTS = {
    # 2x512 beat 2x256 on held-out loss after 5 minutes in bf16 (benchmarks/sweeps/char-defaults).
    "char": {"hidden_size": 512},
    "word": {"embedding_size": 256, "tie_weights": True, "dropout": 0.3,
             "batch_size": 32, "seq_len": 64, "epochs": 10.0},
}


ADAPTIVE_DEFAULT_VOCAB = 5_000  # word vocabularies from this size train with the adaptive softmax by default


def pretrained_dir() -> Path:
    """The small char-level Shakespeare model that ships inside the package."""
    return Path(str(resources.files("scriptrnn") / "pretrained" / PRETRAINED_NAME))


def _split_settings(settings: dict) -> tuple[dict, dict]:
    model_keys = {f.name for f in fields(ModelConfig)}
    train_keys = {f.name for f in fields(TrainConfig)}
    unknown = set(settings) - model_keys - train_keys
    if unknown:
        raise ScriptRNNError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
    return ({k: v for k, v in settings.items() if k in model_keys},
            {k: v for k, v in settings.items() if k in train_keys})


def _prepare_out_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ScriptRNNError(f"--out {out} is a file, not a directory")
    if resume:
        if not (out / CONFIG_FILE).exists():
            raise ScriptRNNError(f"--resume: {out} holds no run to resume (no {CONFIG_FILE})")
        remove_temporaries(out)  # left by a run killed while writing
        return
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise ScriptRNNError(
            f"{out} already holds a run ({', '.join(existing)}); pass --resume to continue it or --overwrite "
            "to replace it"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        remove_temporaries(out)
    except OSError as e:
        raise ScriptRNNError(f"cannot prepare --out {out}: {e.strerror or e}") from None


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


def train(
    data: str | Path | Sequence[str | Path] | None = None,
    out: str | Path = "runs/latest",
    *,
    corpus: str = "shakespeare",
    genres: Sequence[str] | None = None,
    styles: str | None = None,
    encoding: str = "utf-8",
    speaker_column: str = "Character",
    dialogue_column: str = "Dialogue",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: list[Callable[[str, Trainer], None]] | None = None,
    dist_timeout: float = DEFAULT_TIMEOUT_S,
    **settings,
) -> TrainResult:
    """Train a model on ``data`` (files, folders; the built-in corpus when None) into ``out``.

    ``settings`` are ModelConfig and TrainConfig fields by name, e.g.
    ``level="word", cell="gru", hidden_size=256, time_budget=5``.

    One model for several styles: ``data={"seinfeld": "seinfeld.txt", "simpsons": [...]}``,
    paths written ``"seinfeld.txt:seinfeld"``, a TOML manifest, or ``styles="genre"`` for
    the built-in plays by genre (see styles.py).

    Started by torchrun (several processes), every process calls this alike: rank 0 reads
    the corpus and writes the run's files, and all train one model with DDP, each on its
    share of the ``batch_size`` streams. ``dist_timeout`` is how many seconds a process
    waits for the others before it gives up with an error.
    """
    out = Path(out)
    with session(dist_timeout) as where:
        if where.is_main:
            source = {"corpus": corpus, "genres": genres, "styles": styles, "encoding": encoding,
                      "speaker_column": speaker_column, "dialogue_column": dialogue_column}
            run = _tell_the_others(where, lambda: _prepare(data, out, source, resume, overwrite, settings, where))
        else:
            run = _follow(out, where)
        return _fit(out, run, progress, callbacks, where)


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


def _prepare(data, out: Path, source_args: dict, resume: bool, overwrite: bool, settings: dict,
             where: Distributed) -> _Run:
    created = not out.exists()
    _prepare_out_dir(out, resume=resume, overwrite=overwrite)
    if resume:
        if data or source_args.get("styles"):
            raise ScriptRNNError("--resume reads the run's own corpus and styles; leave out DATA and --styles")
        return _resume(out, settings, where)
    try:
        return _start(data, out, source_args, settings, where)
    except ScriptRNNError:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a refused start leaves nothing behind
        raise


def _start(data, out: Path, source_args: dict, settings: dict, where: Distributed) -> _Run:
    source_args = dict(source_args)
    sources = style_sources(data, by=source_args.pop("styles"), genres=source_args["genres"])
    paths = [] if sources else as_path_list(data)
    source = {"paths": [str(p.resolve()) for p in paths], **source_args,
              "genres": [] if sources else list(source_args["genres"] or [])}
    if sources:
        source["styles"] = [s.to_dict() for s in sources]
    text_corpus = _load_source(source)
    level = settings.get("level", TrainConfig.level)
    if level not in LEVEL_DEFAULTS:
        raise ScriptRNNError(f"--level must be 'char' or 'word', got {level!r}")
    model_settings, train_settings = _split_settings({**LEVEL_DEFAULTS[level], **settings})
    train_config = TrainConfig(**train_settings).validate()
    where.rows(train_config.batch_size)  # the global batch must split evenly over the processes
    tokenizer = fit_tokenizer(text_corpus.text, train_config.level, lowercase=train_config.lowercase,
                              min_count=train_config.min_count)
    model_settings = _output_layer(model_settings, settings, tokenizer.vocab_size, level)
    model_config = ModelConfig(**{**model_settings, "vocab_size": tokenizer.vocab_size}).validate()
    check_memory(model_config, pick_device(train_config.device))
    fold_case = train_config.level == "word" and train_config.lowercase
    speakers = [s.lower() if fold_case else s for s, _ in find_speakers(text_corpus.text).most_common(MAX_SPEAKERS)]
    fingerprint = _fingerprint(text_corpus.text)
    config = {
        "created_by": f"scriptrnn {__version__}",
        "model": model_config.to_dict(),
        "training": vars(train_config),
        "corpus": {"name": text_corpus.name, "characters": len(text_corpus.text), "speakers": speakers,
                   "source": source, "sha256": fingerprint},
    }
    if isinstance(text_corpus, StyledCorpus):
        config["corpus"]["styles"] = style_facts(text_corpus, fold_case)
        _check_tags_kept(text_corpus, tokenizer, train_config.min_count)
    ids, val_start = _train_val_ids(text_corpus, tokenizer, train_config)
    del text_corpus  # it can be gigabytes; training reads the memory-mapped ids instead
    config["corpus"]["train_tokens"] = val_start
    _clear_old_run(out)  # only now: a start refused above leaves the old run (or nothing) behind
    save_run_files(out, config, tokenizer)
    key = cache_key(fingerprint, tokenizer)
    ids = _cache_ids(out, ids, key, tokenizer.vocab_size)
    torch.manual_seed(train_config.seed)
    model = RNNLanguageModel(model_config)
    return _Run(config, train_config, model, tokenizer, ids, key, resume=False, val_start=val_start)


def _cache_ids(out: Path, ids: np.ndarray, key: str, vocab_size: int) -> np.memmap:
    """Write the ids to the run's token cache; the memory-mapped file replaces the array in memory."""
    write_cache(out / TOKENS_FILE, [ids], key=key, vocab_size=vocab_size)
    mapped = open_cache(out / TOKENS_FILE, key)
    if mapped is None:
        raise ScriptRNNError(f"{out / TOKENS_FILE} could not be read back after writing it; is the disk full?")
    return mapped


def _output_layer(model_settings: dict, asked: dict, vocab_size: int, level: str) -> dict:
    """Word level with a large vocabulary defaults to the adaptive softmax, where it was measured to win.

    On Seinfeld (20,319 words) it reached 4.06 nats/word held out in 2 minutes against 4.34 for
    the tied full softmax (benchmarks/RESULTS.md, section 2); below ADAPTIVE_DEFAULT_VOCAB words
    the full softmax is cheap and stays. Settings the caller gave are never overridden.
    """
    if level != "word" or vocab_size < ADAPTIVE_DEFAULT_VOCAB or "softmax" in asked or "tie_weights" in asked:
        return model_settings
    return {**model_settings, "softmax": "adaptive", "tie_weights": False}


def _check_tags_kept(text_corpus: StyledCorpus, tokenizer, min_count: int) -> None:
    for name, tag in text_corpus.styles.items():
        if tokenizer.token_id(tag) is None:
            raise ScriptRNNError(f"style {name!r} has fewer than --min-count {min_count} chunks, so its tag would "
                                 "become <unk>; give it more text or lower --min-count")


def _load_source(source: dict) -> Corpus:
    if source.get("styles"):
        return load_styled_corpus([StyleSource.from_dict(s) for s in source["styles"]], encoding=source["encoding"],
                                  speaker_column=source["speaker_column"], dialogue_column=source["dialogue_column"])
    return load_corpus(source["paths"] or None, corpus=source["corpus"], genres=source["genres"] or None,
                       encoding=source["encoding"], speaker_column=source["speaker_column"],
                       dialogue_column=source["dialogue_column"])


def _source_name(source: dict) -> str:
    if source.get("styles"):
        return "styles " + ", ".join(str(s.get("style", "?")) for s in source["styles"])
    return ", ".join(source["paths"]) or source["corpus"]


def _fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# What a resumed run may change: how long it goes on, and where. Anything else would
# make it a different run than the one being continued.
# (precision too: it changes rounding, and a bf16 run must be able to go on where bf16 is not native.)
RESUME_OVERRIDES = {"max_steps", "epochs", "time_budget", "patience", "save_every", "save_every_minutes", "device",
                    "precision"}


def _resume(out: Path, settings: dict, where: Distributed) -> _Run:
    refused = sorted(set(settings) - RESUME_OVERRIDES)
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise ScriptRNNError(f"--resume continues the run as it was set up; it cannot change {flags} "
                             "(only --max-steps, --epochs, --time-budget, --patience, --save-every, --device, --precision)")
    config = read_config(out)
    tokenizer = tokenizer_from_dict(read_json(out / TOKENIZER_FILE, "the vocabulary"))
    training = {**config.get("training", {}), **settings}
    train_config = TrainConfig.from_dict(training).validate()
    where.rows(train_config.batch_size)  # any number of processes that splits the global batch evenly
    config["training"] = vars(train_config)
    source = config.get("corpus", {}).get("source")
    lists, names = ("paths", "genres"), ("corpus", "encoding", "speaker_column", "dialogue_column")
    if not isinstance(source, dict) or not all(
            isinstance(source.get(k), list) and all(isinstance(v, str) for v in source[k]) for k in lists) or \
            not all(isinstance(source.get(k), str) for k in names):
        raise ScriptRNNError(f"{out / CONFIG_FILE} does not say which corpus the run read; it cannot resume")
    text_corpus = _load_source(source)
    # An exact resume needs the very text the run started on.
    fingerprint = _fingerprint(text_corpus.text)
    if config["corpus"].get("sha256", fingerprint) != fingerprint:
        raise ScriptRNNError(
            f"the corpus ({_source_name(source)}) has changed since this run started; "
            "--resume needs the same text (start a new run with --overwrite or another --out)"
        )
    key = cache_key(fingerprint, tokenizer)
    ids, val_start = open_cache(out / TOKENS_FILE, key), config["corpus"].get("train_tokens")
    if ids is None or not isinstance(val_start, int) or not 0 < val_start < len(ids):
        # A run from before the cache, or a cache that is damaged or stale: tokenize again.
        ids, val_start = _train_val_ids(text_corpus, tokenizer, train_config)
        config["corpus"]["train_tokens"] = val_start
        ids = _cache_ids(out, ids, key, tokenizer.vocab_size)
    del text_corpus  # it can be gigabytes; training reads the memory-mapped ids instead
    return _Run(config, train_config, build_model(config), tokenizer, ids, key, resume=True, val_start=val_start)


def _fit(out: Path, run: _Run, progress: bool, callbacks, where: Distributed) -> TrainResult:
    train_ids, val_ids = run.ids[: run.val_start], run.ids[run.val_start:]  # views of the memory map
    trainer = Trainer(run.model, train_ids, val_ids, run.train_config, out, level=run.tokenizer.level,
                      progress=progress, callbacks=callbacks, dist=where)
    if run.resume:
        trainer.load_resume()
    result = trainer.fit()
    if where.is_main:
        run.config["metrics"] = {"val": result.metrics, "best_val_loss_sampled": result.best_val_loss,
                                 "steps": result.steps, "elapsed_s": round(result.elapsed_s, 1),
                                 "stopped_because": result.stopped_because}
        save_run_files(out, run.config, run.tokenizer)
    return result


def _train_val_ids(text_corpus: Corpus, tokenizer, train_config: TrainConfig) -> tuple[np.ndarray, int]:
    """All ids, training text first, and where the held-out part starts.

    Held out is the corpus's end, or with styles each style's own end (put after all the
    training text, so that one token cache and one split point serve both).
    """
    B, T, fraction = train_config.batch_size, train_config.seq_len, train_config.val_fraction
    if isinstance(text_corpus, StyledCorpus):
        split = text_corpus.split(fraction)
        train_ids = tokenizer.encode(split.train, strict=False)
        if len(train_ids) < B * (T + 1) + 1:  # one (B, T+1) batch
            _too_small("the styles' training text", len(train_ids), "", B * (T + 1) + 1, B, T, tokenizer)
        val_ids = tokenizer.encode(split.val, strict=False)
        return np.concatenate([train_ids, val_ids]), len(train_ids)
    ids = tokenizer.encode(text_corpus.text, strict=False)
    need = tokens_needed(B * (T + 1) + 1, fraction)  # one (B, T+1) batch to train on, after the split
    if len(ids) < need:
        _too_small("the corpus", len(ids), f" with {fraction:.0%} held out", need, B, T, tokenizer)
    return ids, len(split_ids(ids, fraction)[0])


def _too_small(what: str, have: int, condition: str, need: int, B: int, T: int, tokenizer):
    unit = "characters" if tokenizer.level == "char" else "tokens"
    raise ScriptRNNError(
        f"{what} has {have:,} {unit} but --batch-size {B} x --seq-len {T}{condition} needs at least {need:,}; "
        "use a bigger corpus or a smaller --batch-size/--seq-len"
    )


def load(run_dir: str | Path | None = None, *, device: str = "cpu") -> ScriptModel:
    """A trained run (or the built-in Shakespeare model when None), ready to ``.generate()``.

    A directory ``scriptrnn export`` wrote loads too, and runs with onnxruntime.
    """
    run_dir = Path(run_dir) if run_dir is not None else pretrained_dir()
    if is_exported(run_dir):
        from .runtime import load as load_exported

        return load_exported(run_dir, device=device)
    device = pick_device(device)
    model, tokenizer, config = load_checkpoint(run_dir, device=device)
    return ScriptModel(model, tokenizer, config, device=device)


def info(run_dir: str | Path | None = None) -> dict:
    """What a run (or an exported model) is, from its config.json alone: level, cell, sizes, corpus, loss,
    styles, speakers."""
    run_dir = Path(run_dir) if run_dir is not None else pretrained_dir()
    config = read_export_config(run_dir) if is_exported(run_dir) else read_config(run_dir)
    tokenizer = tokenizer_from_dict(read_json(run_dir / TOKENIZER_FILE, "the vocabulary"))
    settings, corpus = model_config(config), config.get("corpus", {})
    known_styles = model_styles(config, tokenizer)  # checked: tags that the vocabulary holds
    styles = [{k: v for k, v in entry.items() if k != "tag"} for entry in corpus.get("styles", [])
              if entry.get("name") in known_styles]
    return {"run": str(run_dir), "level": tokenizer.level, "cell": settings.cell, "layers": settings.num_layers,
            "hidden_size": settings.hidden_size, "embedding_size": settings.embedding_size,
            "vocab_size": settings.vocab_size, "parameters": settings.parameter_count(),
            "corpus": corpus.get("name"), "characters": corpus.get("characters"),
            "held_out": config.get("metrics", {}).get("val", {}), "styles": styles,
            "speakers": list(corpus.get("speakers", []))}


def evaluate(run_dir: str | Path | None, data=None, *, corpus: str | None = None, genres=None,
             encoding: str = "utf-8", speaker_column: str = "Character", dialogue_column: str = "Dialogue",
             held_out: bool = True, device: str = "cpu") -> dict:
    """Loss, perplexity (and bits per character at char level) of a model on a corpus.

    Without ``data`` (or ``corpus``) the model is scored on the corpus it was trained
    on. With ``held_out`` only the last ``val_fraction`` of the text counts, the part
    a run on that corpus never trains on; otherwise all of it.
    """
    script_model = load(run_dir, device=device)
    paths = as_path_list(data)
    source = script_model.config.get("corpus", {}).get("source")
    fraction = script_model.config.get("training", {}).get("val_fraction", 0.1)
    if not paths and corpus is None and isinstance(source, dict):
        own = _load_source(source)
        if isinstance(own, StyledCorpus) and held_out:
            return _evaluate_styles(script_model, own.split(fraction))
        text = own.text
    else:
        text = load_corpus(paths or None, corpus=corpus or "shakespeare", genres=genres, encoding=encoding,
                           speaker_column=speaker_column, dialogue_column=dialogue_column).text
    ids = script_model.tokenizer.encode(text, strict=False)
    return _score(script_model, split_ids(ids, fraction)[1] if held_out else ids)


SAMPLE_TOKENS = {"char": 4_000, "word": 800}  # --samples' default length: about 4,000 characters either way


def sample_report(run_dir: str | Path | None, samples: int = 4, *, max_new_tokens: int | None = None,
                  temperature: float = 0.8, seed: int = 0, device: str = "cpu",
                  script_model: ScriptModel | None = None) -> tuple[TextReport, list[str]]:
    """Write ``samples`` texts and score them against the run's own training and held-out text.

    Returns the report and the texts. The texts start from nothing (no prime) and end on a whole line.
    """
    script_model = script_model or load(run_dir, device=device)
    if samples < 1:
        raise ScriptRNNError(f"--samples must be at least 1, got {samples}")
    train_text, heldout_text = _run_texts(script_model)
    # Whole lines only: a last line cut short would make the lines look shorter than the model writes them.
    config = SamplingConfig(max_new_tokens=max_new_tokens or SAMPLE_TOKENS[script_model.level],
                            temperature=temperature, seed=seed, num_return_sequences=samples,
                            whole_lines=True).validate()
    texts = script_model.generate("", config)
    return text_report(texts, train_text, heldout_text, script_model.level), texts


def _run_texts(script_model: ScriptModel) -> tuple[str, str]:
    """The run's training text and held-out end, as the model spells them (word level: lower case, <unk>)."""
    source = script_model.config.get("corpus", {}).get("source")
    if not isinstance(source, dict):
        raise ScriptRNNError("--samples compares the text with the run's own corpus, and this model's config.json "
                             "does not say which corpus it read")
    fraction = script_model.config.get("training", {}).get("val_fraction", 0.1)
    own, tokenizer = _load_source(source), script_model.tokenizer
    if isinstance(own, StyledCorpus):
        split = own.split(fraction)
        parts = [tokenizer.encode(split.train, strict=False), tokenizer.encode(split.val, strict=False)]
    else:
        parts = split_ids(tokenizer.encode(own.text, strict=False), fraction)
    if tokenizer.level == "char" and not isinstance(own, StyledCorpus) and sum(map(len, parts)) == len(own.text):
        return own.text[:len(parts[0])], own.text[len(parts[0]):]  # every character known: no need to decode
    return tokenizer.decode(parts[0]), tokenizer.decode(parts[1])


def _evaluate_styles(script_model: ScriptModel, split) -> dict:
    """The held-out ends of all styles together (what training validated on), then each alone."""
    report = _score(script_model, script_model.tokenizer.encode(split.val, strict=False))
    report["styles"] = {name: _score(script_model, script_model.tokenizer.encode(text, strict=False))
                        for name, text in split.val_by_style.items()}
    return report


def _score(script_model: ScriptModel, ids) -> dict:
    if len(ids) < 2:
        raise ScriptRNNError("the evaluation text has fewer than 2 known tokens")
    if isinstance(script_model.model, RNNLanguageModel):
        loss, tokens = evaluate_loss(script_model.model, ids, device=script_model.device)
    else:  # an exported model
        from .runtime import evaluate_loss as evaluate_exported

        loss, tokens = evaluate_exported(script_model.model, ids)
    return {**loss_report(loss, script_model.level), "tokens": tokens}
