"""What a sweep runs: a baseline, a budget and studies, from a TOML file and/or the command line.

    [sweep]                        # optional: the corpus, as `scriptrnn train` takes it
    data = ["scripts.txt"]         # paths relative to this file; none: the built-in corpus
    out = "runs/my-sweep"          # where runs and results go (relative to this file)

    [baseline]                     # training settings by their scriptrnn.train() names
    hidden_size = 128
    seq_len = 64

    [budget]                       # how long every run trains: time_budget (minutes), epochs, max_steps
    max_steps = 300

    [[study]]                      # each value alone, everything else as in the baseline
    kind = "one_at_a_time"
    vary = { seq_len = [32, 128], lr = [1e-3, 1e-2] }

    [[study]]                      # every combination
    kind = "grid"
    vary = { hidden_size = [128, 256], num_layers = [1, 2] }

    [[study]]                      # Optuna's TPE search; runs behind the median are pruned
    kind = "optuna"
    trials = 20
    space = { lr = { low = 1e-4, high = 1e-2, log = true }, hidden_size = [128, 256, 512] }

Everything is checked here, before the first run starts: a typo in the last study must
not surface an hour into the sweep.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..data.corpus import TextFormat
from ..data.sources import CorpusRequest
from ..errors import ScriptRNNError
from ..model.network import ModelConfig
from ..training.config import TrainConfig, level_defaults

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KINDS = ("one_at_a_time", "grid", "optuna")
LIMITS = ("time_budget", "epochs", "max_steps")  # the [budget] keys
ALIASES = {"layers": "num_layers", "vocab_size": "subword_vocab_size"}  # the CLI flag's name for a setting
MAX_GRID_RUNS = 1000  # more is almost surely a typo (a grid of six 4-value lists is 4,096 runs)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # a study's name becomes a file name


@dataclass
class Source:
    """The corpus every run trains on: api.train's arguments for it, flat as [sweep] and results.json have them.

    The defaults are CorpusRequest's and TextFormat's, read from there.
    """

    data: list[str] = field(default_factory=list)  # files or folders; empty: the built-in corpus
    corpus: str = CorpusRequest.corpus
    genres: list[str] = field(default_factory=list)
    encoding: str = TextFormat.encoding
    speaker_column: str = TextFormat.speaker_column
    dialogue_column: str = TextFormat.dialogue_column


@dataclass
class Study:
    name: str  # unique in the sweep; names its plots
    kind: str  # one of KINDS
    vary: dict[str, list] = field(default_factory=dict)  # one_at_a_time, grid: values per setting
    space: dict[str, list | dict] = field(default_factory=dict)  # optuna: choices or {low, high, log, step}
    trials: int = 0  # optuna: trials that finish (pruned ones count)
    seed: int = 0  # optuna: the sampler's seed (every run trains with the baseline's seed)
    pruner: str = "median"  # optuna: "median" or "none"
    startup_trials: int = 0  # optuna: random trials before TPE, and trials before any pruning
    warmup_steps: int = 0  # optuna: no pruning before this training step


@dataclass
class SweepConfig:
    baseline: dict  # every setting of the baseline run, budget included, defaults filled in
    studies: list[Study]
    source: Source
    out: Path | None = None  # None: the command line's --out or its default

    def to_dict(self) -> dict:
        return {"baseline": self.baseline, "studies": [asdict(s) for s in self.studies],
                "source": asdict(self.source), "out": str(self.out) if self.out else None}


# ---------------------------------------------------------------- settings


def _setting_types() -> dict[str, str]:
    """Setting name -> its annotation ('int', 'float | None', ...), for every trainable setting."""
    def text(kind) -> str:  # a string under `from __future__ import annotations`, else the type itself
        return kind if isinstance(kind, str) else getattr(kind, "__name__", None) or str(kind)

    return {f.name: text(f.type) for cls in (ModelConfig, TrainConfig) for f in fields(cls) if f.name != "vocab_size"}


def default_settings(level: str = TrainConfig.level) -> dict:
    """What `scriptrnn train --level LEVEL` uses for every setting a baseline leaves out.

    training.config.level_defaults (the one merge of the dataclasses' defaults and the level's own),
    less vocab_size (the corpus decides it), and with ``level`` itself left at its default, so that
    a baseline at another level says so in the report.
    """
    try:
        settings = level_defaults(level)
    except ScriptRNNError:  # an unknown level: check_run_settings refuses it, naming where it came from
        settings = level_defaults(TrainConfig.level)
    del settings["vocab_size"]
    return {**settings, "level": TrainConfig.level}


def setting_name(key: str, where: str) -> str:
    """The setting's name as scriptrnn.train() takes it; 'hidden-size' and 'layers' work too."""
    name = ALIASES.get(key.replace("-", "_"), key.replace("-", "_"))
    if name not in _setting_types():
        close = difflib.get_close_matches(name, list(_setting_types()) + list(ALIASES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ScriptRNNError(f"{where}: unknown setting {key!r}{hint}")
    return name


def setting_value(name: str, value, where: str):
    """``value`` checked against the setting's type; the string "none" switches an optional limit off."""
    kinds = _setting_types()[name]
    if "None" in kinds and isinstance(value, str) and value.lower() == "none":
        return None
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "bool": isinstance(value, bool), "str": isinstance(value, str)}
    if not any(ok.get(kind.strip(), False) for kind in kinds.split("|")):
        words = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "text",
                 "None": "\"none\""}
        wanted = " or ".join(words[kind.strip()] for kind in kinds.split("|"))
        raise ScriptRNNError(f"{where}: {name} must be {wanted}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ScriptRNNError(f"{where}: {name} must be finite, got {value!r}")
    if "float" in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # lr = 1 and lr = 1.0 are one setting, and must name one run
    return value


def check_run_settings(settings: dict, where: str) -> None:
    """Refuse settings that scriptrnn.train() would refuse, naming where they came from."""
    model_keys = {f.name for f in fields(ModelConfig)}
    model = {k: v for k, v in settings.items() if k in model_keys}
    train = {k: v for k, v in settings.items() if k not in model_keys}
    try:
        TrainConfig(**train).validate()
    except ScriptRNNError as e:
        raise ScriptRNNError(f"{where}: {e}") from None
    # The vocabulary comes from the corpus, later. Refuse here only what no vocabulary could make
    # valid (a char-level one or a word-level one); the rest train() judges when the run starts.
    errors = []
    for vocab_size in (100, 50_000):
        try:
            ModelConfig(**model, vocab_size=vocab_size).validate()
            return
        except ScriptRNNError as e:
            errors.append(e)
    raise ScriptRNNError(f"{where}: {errors[0]}")


def _settings_table(table, where: str) -> dict:
    if not isinstance(table, dict):
        raise ScriptRNNError(f"{where} must be a table of settings")
    checked = {}
    for key, value in table.items():
        name = setting_name(key, where)
        checked[name] = setting_value(name, value, f"{where}.{key}")
    return checked


def _budget(table, baseline: dict) -> dict:
    """The run limits: [budget] (or the baseline's own), the other limits switched off."""
    if not isinstance(table, dict):
        raise ScriptRNNError("[budget] must be a table: time_budget (minutes), epochs or max_steps")
    table = {setting_name(k, "[budget]"): v for k, v in table.items()}
    unknown = set(table) - set(LIMITS)
    if unknown:
        raise ScriptRNNError(f"[budget] takes time_budget (minutes), epochs and max_steps, not "
                             f"{', '.join(sorted(unknown))}")
    limits = {k: setting_value(k, v, f"[budget].{k}") for k, v in table.items()}
    if not limits:  # no [budget]: the baseline's own limits, if it gives any
        limits = {k: baseline[k] for k in LIMITS if k in baseline}
    if not any(v is not None for v in limits.values()):
        raise ScriptRNNError("give each run a budget: [budget] with time_budget (minutes), epochs or max_steps "
                             "(or --time-budget, --epochs, --max-steps)")
    return {**dict.fromkeys(LIMITS), **limits}


# ---------------------------------------------------------------- studies


def _values(values, where: str, name: str) -> list:
    if not isinstance(values, list) or not values:
        raise ScriptRNNError(f"{where}: {name} needs a non-empty list of values, e.g. {name} = [64, 128]")
    checked = [setting_value(name, v, f"{where}.{name}") for v in values]
    if len({repr(v) for v in checked}) != len(checked):
        raise ScriptRNNError(f"{where}: {name} lists a value twice")
    return checked


def _vary(table, where: str) -> dict[str, list]:
    if not isinstance(table, dict) or not table:
        raise ScriptRNNError(f"{where} needs vary = {{ setting = [values], ... }}")
    vary = {}
    for key, values in table.items():
        name = setting_name(key, where)
        if name in vary:
            raise ScriptRNNError(f"{where}: {name} is given twice")
        vary[name] = _values(values, where, name)
    return vary


def _space(table, where: str) -> dict[str, list | dict]:
    """Optuna's search space: a list of choices, or {low, high, log, step} for a range."""
    if not isinstance(table, dict) or not table:
        raise ScriptRNNError(f"{where} needs space = {{ setting = [choices] or {{ low = .., high = .. }} }}")
    space = {}
    for key, spec in table.items():
        name = setting_name(key, where)
        space[name] = _values(spec, where, name) if isinstance(spec, list) else _range(name, spec, where)
    return space


def _range(name: str, spec, where: str) -> dict:
    if not isinstance(spec, dict) or not {"low", "high"} <= set(spec) or set(spec) - {"low", "high", "log", "step"}:
        raise ScriptRNNError(f"{where}.{name} must be a list of choices or {{ low = .., high = .., log = false, "
                             "step = .. }}")
    low, high = (setting_value(name, spec[k], f"{where}.{name}.{k}") for k in ("low", "high"))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high:
        raise ScriptRNNError(f"{where}.{name}: low must be a number below high, got low={low!r} high={high!r}")
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise ScriptRNNError(f"{where}.{name}.log must be true or false, got {log!r}")
    if log and low <= 0:
        raise ScriptRNNError(f"{where}.{name}: a log range needs low > 0, got {low!r}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0 or log):
        raise ScriptRNNError(f"{where}.{name}.step must be a positive number, and not given with log = true")
    whole = "int" in _setting_types()[name] and "float" not in _setting_types()[name]
    return {"low": low, "high": high, "log": log, "step": step, "int": whole}


_STUDY_KEYS = {"one_at_a_time": {"kind", "name", "vary"}, "grid": {"kind", "name", "vary"},
               "optuna": {"kind", "name", "space", "trials", "seed", "pruner", "startup_trials", "warmup_steps"}}


def _study(table, index: int) -> Study:
    where = f"study {index + 1}"
    if not isinstance(table, dict):
        raise ScriptRNNError(f"{where} must be a table ([[study]])")
    kind = table.get("kind")
    if kind not in KINDS:
        raise ScriptRNNError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    unknown = set(table) - _STUDY_KEYS[kind]
    if unknown:
        raise ScriptRNNError(f"{where}: a {kind} study takes {', '.join(sorted(_STUDY_KEYS[kind]))}, not "
                             f"{', '.join(sorted(unknown))}")
    name = table.get("name", kind.replace("_", "-"))
    if not isinstance(name, str) or not _NAME.match(name):
        raise ScriptRNNError(f"{where}: name must be letters, digits, '.', '_' or '-' (it names files), got {name!r}")
    where = f"study {name!r}"
    if kind != "optuna":
        study = Study(name, kind, vary=_vary(table.get("vary"), where))
        if kind == "grid" and math.prod(len(v) for v in study.vary.values()) > MAX_GRID_RUNS:
            raise ScriptRNNError(f"{where}: the grid has {math.prod(len(v) for v in study.vary.values()):,} "
                                 f"runs; more than {MAX_GRID_RUNS:,} is refused (use kind = \"optuna\")")
        return study
    return _optuna_study(table, name, where)


def _optuna_study(table: dict, name: str, where: str) -> Study:
    numbers = {}
    for key, low, default in (("trials", 1, None), ("seed", 0, 0), ("startup_trials", 0, None),
                              ("warmup_steps", 0, 0)):
        value = table.get(key, default)
        if key == "trials" and value is None:
            raise ScriptRNNError(f"{where}: an optuna study needs trials = N")
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
            raise ScriptRNNError(f"{where}: {key} must be a whole number >= {low}, got {value!r}")
        numbers[key] = value
    if numbers["startup_trials"] is None:  # Optuna's 10 random trials first would be most of a small study
        numbers["startup_trials"] = min(10, max(2, numbers["trials"] // 3))
    pruner = table.get("pruner", Study.pruner)
    if pruner not in ("median", "none"):
        raise ScriptRNNError(f"{where}: pruner must be \"median\" or \"none\", got {pruner!r}")
    return Study(name, "optuna", space=_space(table.get("space"), where), pruner=pruner, **numbers)


def unique_names(studies: list[Study]) -> list[Study]:
    """Default names repeat ("grid", "grid"): number the later ones; refuse a name given twice."""
    seen: set[str] = set()
    for study in studies:
        name, k = study.name, 2
        while name in seen:
            if study.name != study.kind.replace("_", "-"):
                raise ScriptRNNError(f"two studies are named {study.name!r}")
            name, k = f"{study.name}-{k}", k + 1
        study.name = name
        seen.add(name)
    return studies


# ---------------------------------------------------------------- whole configurations


def read_toml(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ScriptRNNError(f"no such sweep file: {path}" if not path.exists() else f"{path} is not a file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ScriptRNNError(f"{path}: not UTF-8 text; a sweep file is TOML") from None
    except tomllib.TOMLDecodeError as e:
        raise ScriptRNNError(f"{path}: not valid TOML ({e})") from None


def _source(table, base: Path) -> tuple[Source, Path | None]:
    if not isinstance(table, dict):
        raise ScriptRNNError("[sweep] must be a table")
    keys = {f.name for f in fields(Source)} | {"out"}
    unknown = set(table) - keys
    if unknown:
        raise ScriptRNNError(f"[sweep] takes {', '.join(sorted(keys))}, not {', '.join(sorted(unknown))}")
    values = dict(table)
    for key in ("data", "genres"):
        value = values.get(key, [])
        values[key] = [value] if isinstance(value, str) else value
        if not isinstance(values[key], list) or not all(isinstance(v, str) for v in values[key]):
            raise ScriptRNNError(f"[sweep].{key} must be a list of names, got {value!r}")
    for key in keys - {"data", "genres"}:
        if key in values and not isinstance(values[key], str):
            raise ScriptRNNError(f"[sweep].{key} must be a string, got {values[key]!r}")
    values["data"] = [str(base / p) for p in values["data"]]
    out = values.pop("out", None)
    return Source(**values), (base / out if out else None)


def build_config(raw: dict, base: Path = Path(".")) -> SweepConfig:
    """A checked SweepConfig from a TOML document (paths in it relative to ``base``)."""
    unknown = set(raw) - {"sweep", "baseline", "budget", "study"}
    if unknown:
        raise ScriptRNNError(f"unknown section(s) {', '.join(sorted(unknown))}; a sweep file has [sweep], "
                             "[baseline], [budget] and [[study]]")
    source, out = _source(raw.get("sweep", {}), base)
    given = _settings_table(raw.get("baseline", {}), "[baseline]")
    limits = _budget(raw.get("budget", {}), given)
    baseline = {**default_settings(given.get("level", TrainConfig.level)), **given, **limits}
    check_run_settings(baseline, "[baseline]")
    studies = raw.get("study", [])
    if not isinstance(studies, list) or not studies:
        raise ScriptRNNError("nothing to sweep: add a [[study]] (or --vary / --grid on the command line)")
    config = SweepConfig(baseline, unique_names([_study(t, i) for i, t in enumerate(studies)]), source, out)
    for study in config.studies:
        for where, settings in study_settings(study, baseline):
            check_run_settings(settings, where)
    return config


@dataclass
class PlannedValue:
    """One run a one-at-a-time or grid study asks for."""

    parameter: str  # what the study varies: "seq_len", or "hidden_size, cell" in a grid
    value: str  # its value here, as the tables show it: "64", or "256, gru"
    label: str  # both, for logs and plot legends: "seq_len=64", "hidden_size=256, cell=gru"
    settings: dict  # the run's settings: the baseline's with these changes


def format_value(value) -> str:
    """A setting's value as tables and run names show it: 0.001, 1e-05, 256, gru."""
    if not isinstance(value, float):
        return str(value)
    for digits in (4, 6):  # short, but never showing two values the user wrote as one
        if float(text := f"{value:.{digits}g}") == value:
            return text
    return f"{value:.4g}"  # a value Optuna drew: four digits say enough


def study_runs(study: Study, baseline: dict) -> list[PlannedValue]:
    """The runs of a one-at-a-time or grid study, in order."""
    if study.kind == "one_at_a_time":
        return [PlannedValue(name, format_value(v), f"{name}={format_value(v)}", {**baseline, name: v})
                for name, values in study.vary.items() for v in values]
    names = list(study.vary)
    return [PlannedValue(", ".join(names), ", ".join(format_value(v) for v in combo),
                         ", ".join(f"{k}={format_value(v)}" for k, v in zip(names, combo)),
                         {**baseline, **dict(zip(names, combo))})
            for combo in itertools.product(*study.vary.values())]


def study_settings(study: Study, baseline: dict) -> list[tuple[str, dict]]:
    """(where, settings) of every run a study may make; for Optuna each choice and each range end."""
    where = f"study {study.name!r}"
    if study.kind != "optuna":
        return [(f"{where}, {run.label}", run.settings) for run in study_runs(study, baseline)]
    ends = {k: v if isinstance(v, list) else [v["low"], v["high"]] for k, v in study.space.items()}
    return [(f"{where}, {name}={format_value(value)}", {**baseline, name: value})
            for name, values in ends.items() for value in values]


# ---------------------------------------------------------------- the command line


def parse_assignment(text: str, flag: str) -> tuple[str, list]:
    """'hidden_size=256,512' -> ('hidden_size', [256, 512]); each value read as TOML, else as a string."""
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise ScriptRNNError(f"{flag} {text!r}: write SETTING=VALUE[,VALUE...], e.g. {flag} hidden_size=128,256")
    return name.strip(), [_toml_value(v.strip()) for v in values.split(",")]


def _toml_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: cell=gru


def command_line_config(raw: dict, *, sets=(), vary=(), grid=(), budget=None, source=None, out=None) -> dict:
    """The TOML document with the command line's additions: --set, --vary, --grid, the budget and corpus."""
    raw = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v) for k, v in raw.items()}
    for text in sets:
        name, values = parse_assignment(text, "--set")
        if len(values) != 1:
            raise ScriptRNNError(f"--set {text!r} gives several values; --set takes one (use --vary or --grid)")
        raw.setdefault("baseline", {})[name] = values[0]
    if budget:
        raw["budget"] = budget  # the command line's budget replaces the file's
    studies = list(raw.get("study", []))
    for kind, texts in (("one_at_a_time", vary), ("grid", grid)):
        if texts:
            flag = "--vary" if kind == "one_at_a_time" else "--grid"
            studies.append({"kind": kind, "vary": dict(parse_assignment(t, flag) for t in texts)})
    raw["study"] = studies
    if source:
        raw["sweep"] = {**raw.get("sweep", {}), **source}
    if out is not None:
        raw.setdefault("sweep", {})["out"] = str(out)
    return raw
