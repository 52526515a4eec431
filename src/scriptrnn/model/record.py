"""A run's record: config.json as typed dataclasses, checked once when read and written from one place.

Every reader of a model directory's settings and facts (the loader, info, resume, evaluation,
the server, fine-tuning) gets a ``RunRecord`` from ``directory.read_config``; setup builds one
and ``to_dict`` writes it. A field of the wrong type is refused here, in one line that names
the file and the field, so no command meets it later as a traceback. Keys this version does
not know are kept (``extra``) and written back unchanged: a newer scriptrnn may have added them.

The ``model`` and ``training`` sections stay plain settings (name -> JSON value): their typed
forms are ``ModelConfig`` (model/network.py, which needs PyTorch) and ``TrainConfig``
(training/config.py), built from them by their owners. Here each value is only checked to be
a JSON scalar, and the sizes every reader shows to be whole numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import ScriptRNNError

# The model settings a reader may show without building the network (info, the server's model card).
_MODEL_WHOLE_NUMBERS = ("num_layers", "hidden_size", "embedding_size", "vocab_size")
_FLAGS = {"num_layers": "layers", "lowercase": "keep-case"}  # settings whose flag has another name
_SECTIONS = ("model", "training", "corpus", "metrics")  # present, each must be an object (null is not one)


class _Check:
    """Type checks that name the file and the field (``corpus.speakers[3]``) in one line."""

    def __init__(self, path):
        self.path = path

    def fail(self, where: str, what: str, value) -> None:
        shown = repr(value) if len(repr(value)) < 60 else type(value).__name__
        raise ScriptRNNError(f"{self.path}: '{where}' must be {what}, got {shown}")

    def text(self, value, where: str, *, optional: bool = True) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            self.fail(where, "a string", value)
        try:
            value.encode("utf-8")  # a lone surrogate (\ud800) parses as JSON but cannot be printed or sent
        except UnicodeEncodeError:
            raise ScriptRNNError(f"{self.path}: '{where}' holds a lone surrogate (\\ud800-\\udfff), "
                                 "which is not text") from None
        return value

    def whole(self, value, where: str) -> int | None:
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            self.fail(where, "a whole number >= 0", value)
        return value

    def number(self, value, where: str, *, finite: bool = True) -> float | None:
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value)
                                  or (finite and math.isinf(value))):
            self.fail(where, "a finite number" if finite else "a number", value)
        return value

    def section(self, value, where: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(where, "a JSON object", value)
        return value

    def texts(self, value, where: str) -> list[str]:
        if not isinstance(value, list):
            self.fail(where, "a list of strings", value)
        return [self.text(v, f"{where}[{i}]", optional=False) for i, v in enumerate(value)]

    def settings(self, value, where: str) -> dict:
        """A settings section: names to JSON scalars (null, true/false, numbers, strings)."""
        value = self.section(value, where)
        for name, setting in value.items():
            named, flag = f"{where}.{name}", f" (--{_FLAGS.get(name, name).replace('_', '-')})"  # what sets it
            if isinstance(setting, str):
                self.text(setting, named)
            elif setting is not None and not isinstance(setting, (bool, int, float)):
                self.fail(named, "a number, a string, true/false or null" + flag, setting)
            elif isinstance(setting, float) and not math.isfinite(setting):
                self.fail(named, "a finite number" + flag, setting)
        return value


def _known(cls, data: dict) -> tuple[dict, dict]:
    """``data`` split into (the fields ``cls`` has, the rest, kept as they were)."""
    names = {f.name for f in fields(cls)} - {"extra"}
    return {k: v for k, v in data.items() if k in names}, {k: v for k, v in data.items() if k not in names}


def _written(obj) -> dict:
    """A record part as JSON: its fields (None left out), then the keys it kept."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.name == "extra" or value is None:
            continue
        if isinstance(value, list):
            value = [v.to_dict() if hasattr(v, "to_dict") else v for v in value]
        out[f.name] = value.to_dict() if hasattr(value, "to_dict") else value
    return {**out, **obj.extra}


@dataclass
class StyleFacts:
    """One style of a styled run: its name, the tag character that starts its chunks, its speakers."""

    name: str
    tag: str
    characters: int | None = None
    speakers: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @classmethod
    def read(cls, data, check: _Check, where: str) -> "StyleFacts":
        data, extra = _known(cls, check.section(data, where))
        return cls(check.text(data.get("name"), f"{where}.name", optional=False),
                   check.text(data.get("tag"), f"{where}.tag", optional=False),
                   check.whole(data.get("characters"), f"{where}.characters"),
                   check.texts(data.get("speakers", []), f"{where}.speakers"), extra)

    def to_dict(self) -> dict:
        return _written(self)


@dataclass
class CorpusFacts:
    """What the run read: the text's name, size, fingerprint and source, its speakers and styles."""

    name: str | None = None
    characters: int | None = None
    speakers: list[str] = field(default_factory=list)  # most speeches first
    source: dict | None = None  # data.sources.CorpusSource.to_dict(); from_dict checks it
    sha256: str | None = None
    styles: list[StyleFacts] = field(default_factory=list)
    val_data: dict | None = None  # data.val_data.ValData.facts(): --val-data's files
    train_tokens: int | None = None  # ids[:train_tokens] are trained on
    val_characters: int | None = None  # characters of the held-out text (bits per character)
    extra: dict = field(default_factory=dict)

    @classmethod
    def read(cls, data, check: _Check) -> "CorpusFacts":
        data, extra = _known(cls, check.section(data, "corpus"))
        styles = data.get("styles")
        if styles is not None and not isinstance(styles, list):
            check.fail("corpus.styles", "a list", styles)
        val_data = data.get("val_data")
        return cls(check.text(data.get("name"), "corpus.name"),
                   check.whole(data.get("characters"), "corpus.characters"),
                   check.texts(data.get("speakers", []), "corpus.speakers"),
                   check.section(data.get("source"), "corpus.source") or None,
                   check.text(data.get("sha256"), "corpus.sha256"),
                   [StyleFacts.read(s, check, f"corpus.styles[{i}]") for i, s in enumerate(styles or [])],
                   None if val_data is None else check.section(val_data, "corpus.val_data"),
                   check.whole(data.get("train_tokens"), "corpus.train_tokens"),
                   check.whole(data.get("val_characters"), "corpus.val_characters"), extra)

    def to_dict(self) -> dict:
        data = _written(self)
        if not self.styles:
            data.pop("styles", None)  # as runs have always been written: no key for a run without styles
        return data


# The held-out figures that are words, not numbers: what a case-folding model was scored on
# (evaluation/coverage.py case_note), and a warning of tokens left out of the score.
VAL_NOTES = ("scored_on", "warning")


@dataclass
class Metrics:
    """How the run ended: the final held-out figures (``val``: loss, perplexity, ...), steps, time."""

    val: dict[str, float] = field(default_factory=dict)
    best_val_loss_sampled: float | None = None
    steps: int | None = None
    elapsed_s: float | None = None
    stopped_because: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def read(cls, data, check: _Check) -> "Metrics":
        data, extra = _known(cls, check.section(data, "metrics"))
        val = check.section(data.get("val"), "metrics.val")
        for name, value in val.items():
            if name in VAL_NOTES:
                check.text(value, f"metrics.val.{name}")
            else:
                check.number(value, f"metrics.val.{name}")
        return cls(val, check.number(data.get("best_val_loss_sampled"), "metrics.best_val_loss_sampled",
                                                finite=False),
                   check.whole(data.get("steps"), "metrics.steps"),
                   check.number(data.get("elapsed_s"), "metrics.elapsed_s"),
                   check.text(data.get("stopped_because"), "metrics.stopped_because"), extra)

    @property
    def loss(self) -> float | None:
        return self.val.get("loss")

    def to_dict(self) -> dict:
        return _written(self)


@dataclass
class ParentFacts:
    """A fine-tuned run's parent: where it was, which weights, how good (training/init_from.py)."""

    init_from: str | None = None  # as given: "builtin" or a directory
    path: str | None = None  # resolved
    weights_sha256: str | None = None
    held_out_loss: float | None = None
    corpus: str | None = None
    vocab_size: int | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def read(cls, data, check: _Check) -> "ParentFacts | None":
        if data is None:
            return None
        data, extra = _known(cls, check.section(data, "parent"))
        return cls(*(check.text(data.get(k), f"parent.{k}") for k in ("init_from", "path", "weights_sha256")),
                   check.number(data.get("held_out_loss"), "parent.held_out_loss"),
                   check.text(data.get("corpus"), "parent.corpus"),
                   check.whole(data.get("vocab_size"), "parent.vocab_size"), extra)

    def to_dict(self) -> dict:
        return {**_written(self), "held_out_loss": self.held_out_loss, "corpus": self.corpus}


@dataclass
class RunRecord:
    """config.json of a training run or an exported model."""

    format: str  # "scriptrnn-checkpoint" (a run) or "scriptrnn-onnx" (an export): model/directory.py
    format_version: int
    created_by: str | None = None  # "scriptrnn VERSION"
    command: str | None = None  # the command that started the run, as typed (for the model card, hub/card.py)
    machine: str | None = None  # where it trained, in a line (hub/card.py machine)
    model: dict = field(default_factory=dict)  # ModelConfig's fields by name
    training: dict = field(default_factory=dict)  # TrainConfig's fields by name
    corpus: CorpusFacts = field(default_factory=CorpusFacts)
    sizing: dict | None = None  # --size auto's choice and measurements (training/sizing.py)
    parent: ParentFacts | None = None  # fine-tuned runs only
    metrics: Metrics | None = None  # None until the run ends
    decided_by: dict[str, str] = field(default_factory=dict)  # setting -> the layer that decided it
    export: dict | None = None  # exported models only (model/export.py)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict, path: Path | str = "config.json") -> "RunRecord":
        """``data`` (config.json's content), checked: a wrong type is one ScriptRNNError naming ``path`` and field."""
        check = _Check(path)
        data, extra = _known(cls, check.section(data, "(the file)"))
        for name in _SECTIONS:
            if name in data and not isinstance(data[name], dict):
                check.fail(name, "a JSON object", data[name])
        model = check.settings(data.get("model"), "model")
        for name in _MODEL_WHOLE_NUMBERS:
            check.whole(model.get(name), f"model.{name}")
        check.text(model.get("cell"), "model.cell")
        training = check.settings(data.get("training"), "training")
        fraction = training.get("val_fraction")  # evaluation reads it without building a TrainConfig
        if fraction is not None and not (isinstance(fraction, (int, float)) and not isinstance(fraction, bool)
                                         and 0 < fraction < 1):
            check.fail("training.val_fraction", "a number between 0 and 1 (--val-fraction)", fraction)
        version = data.get("format_version")
        sizing = data.get("sizing")
        sizing = None if sizing is None else check.section(sizing, "sizing")
        if sizing is not None:
            check.number(sizing.get("probe_s"), "sizing.probe_s")
        decided = check.section(data.get("decided_by"), "decided_by")
        for name, layer in decided.items():
            check.text(layer, f"decided_by.{name}", optional=False)
        export = data.get("export")
        return cls(format=check.text(data.get("format"), "format", optional=False), format_version=version,
                   created_by=check.text(data.get("created_by"), "created_by"), command=check.text(data.get("command"), "command"),
                   machine=check.text(data.get("machine"), "machine"), model=model, training=training,
                   corpus=CorpusFacts.read(data.get("corpus"), check), sizing=sizing,
                   parent=ParentFacts.read(data.get("parent"), check),
                   metrics=None if data.get("metrics") is None else Metrics.read(data["metrics"], check),
                   decided_by=decided, export=None if export is None else check.section(export, "export"),
                   extra=extra)

    def to_dict(self) -> dict:
        """config.json's content, as runs have always written it (empty parts left out)."""
        data = _written(self)
        if not self.decided_by:
            del data["decided_by"]  # runs from before the record, and exports of them
        return data

    @property
    def val_fraction(self) -> float | None:
        """The share of the corpus held out from its end (None: not recorded); checked when read."""
        return self.training.get("val_fraction")

    @property
    def probe_s(self) -> float:
        """Seconds --size auto's probe took out of the time budget (0 when it did not run)."""
        return (self.sizing or {}).get("probe_s") or 0.0
