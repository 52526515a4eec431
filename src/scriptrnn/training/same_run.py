"""``--resume`` given the run's own command again: DATA and settings equal to the run's continue it.

People rerun the very command that crashed with ``--resume`` added. What it names (DATA,
--styles, --genre, --encoding, model and training settings) is checked against what the
run recorded in its config.json: equal values are the run's own and change nothing; the
settings a resume may change (config.RESUME_OVERRIDES: how long, and where) apply; anything
else would make another run and is refused, naming the first difference.
"""

from __future__ import annotations

from dataclasses import fields

from ..data.corpus import TextFormat
from ..data.sources import CorpusRequest, CorpusSource
from ..errors import ScriptRNNError
from ..paths import real_path
from ..model.network import ModelConfig
from .config import RESUME_OVERRIDES, TrainConfig, split_settings

_FLAGS = {"num_layers": "layers", "genres": "genre"}  # where a flag is not the setting's own name
_ADVICE = "leave it out or start a new run with --overwrite (or another --out)"


def resume_settings(record, source: CorpusSource | None, request: CorpusRequest, settings: dict) -> dict:
    """The settings a resume applies; refuses (one line) a corpus or setting that differs from the run's."""
    if source is not None:
        _check_corpus(source, request)
    settings = dict(settings)
    _check_parent(record.parent, settings.pop("init_from", None))
    model_settings, train_settings = split_settings(settings)  # an unknown name is refused as for a new run
    for section, given, cls in (("model", model_settings, ModelConfig), ("training", train_settings, TrainConfig)):
        recorded = getattr(record, section)  # the run's record (model.record.RunRecord), checked when read
        defaults = {f.name: f.default for f in fields(cls)}
        for name, value in given.items():
            had = recorded.get(name, defaults.get(name))
            if name not in RESUME_OVERRIDES and not _same(value, had):
                raise ScriptRNNError(f"--resume: {_shown(name, value)} differs from the run's "
                                     f"{_shown(name, had) if isinstance(had, bool) else had}; {_ADVICE}")
    return {k: v for k, v in settings.items() if k in RESUME_OVERRIDES}


def check_val_data(val, val_data) -> None:
    """--val-data on a resume must name the files the run validates on (``val``: the run's, or None)."""
    from ..data.corpus import as_path_list

    given = tuple(str(real_path(p)) for p in as_path_list(val_data))
    had = val.source.paths if val is not None else ()
    if given != had:
        theirs = ", ".join(had) or "(none: it validates on the end of its DATA)"
        raise ScriptRNNError(f"--resume: --val-data {', '.join(given)} differs from the run's {theirs}; {_ADVICE}")


def _check_parent(parent, init_from) -> None:
    """--init-from on a resume must name the parent the run started from (its weights are in the run now);
    ``parent``: the record's (model.record.ParentFacts), None for a run started from random weights."""
    if init_from is None:
        return
    if parent is not None and str(init_from) in (parent.init_from, parent.path):
        return
    from pathlib import Path

    if parent is not None and parent.path and real_path(str(init_from)) == Path(parent.path):
        return
    had = (parent.init_from if parent else None) or "(none: it started from random weights)"
    raise ScriptRNNError(f"--resume cannot change --init-from: {init_from} differs from the run's {had}; {_ADVICE}")


def _same(value, had) -> bool:
    # True == 1 in Python, but --tie-weights is not --layers 1: booleans only equal booleans.
    return isinstance(value, bool) == isinstance(had, bool) and value == had


def _check_corpus(source: CorpusSource, request: CorpusRequest) -> None:
    """DATA, --styles, --corpus and --genre, when given, must resolve to the run's source; --encoding and the
    CSV columns, when not the defaults, must be the run's."""
    asked = request.data or request.styles or request.genres or request.corpus != CorpusRequest.corpus
    given = request.resolve() if asked else None
    if given is not None:
        checks = [("DATA", _where(given), _where(source)), ("--styles", _styles(given), _styles(source)),
                  ("--genre", _genres(given), _genres(source)), ("--corpus", given.corpus, source.corpus)]
        for flag, mine, theirs in checks:
            if mine != theirs:
                raise ScriptRNNError(f"--resume: {flag} {mine} differs from the run's {theirs}; {_ADVICE}")
    default = TextFormat()
    for field in fields(TextFormat):
        mine, theirs = getattr(request.text_format, field.name), getattr(source.text_format, field.name)
        if (given is not None or mine != getattr(default, field.name)) and mine != theirs:
            flag = "--" + field.name.replace("_", "-")
            raise ScriptRNNError(f"--resume: {flag} {mine} differs from the run's {theirs}; {_ADVICE}")
    if given is not None and given != source:  # a difference the checks above do not name
        raise ScriptRNNError(f"--resume: the corpus asked for ({given.describe()}) differs from the run's "
                             f"({source.describe()}); {_ADVICE}")


def _where(source: CorpusSource) -> str:
    if source.styles:
        return "; ".join(f"{s.style}: {', '.join(s.paths) or s.corpus}" for s in source.styles)
    return ", ".join(source.paths) or f"(the built-in {source.corpus} corpus)"


def _styles(source: CorpusSource) -> str:
    return ", ".join(s.style for s in source.styles) or "(none)"


def _genres(source: CorpusSource) -> str:
    genres = source.genres or tuple(g for s in source.styles for g in s.genres)
    return " ".join(genres) or "(all)"


def _shown(name: str, value) -> str:
    if name == "lowercase":
        return "--lowercase" if value else "--keep-case"
    flag = "--" + _FLAGS.get(name, name).replace("_", "-")
    if isinstance(value, bool):
        return flag if value else "--no-" + flag[2:]
    return f"{flag} {value}"
