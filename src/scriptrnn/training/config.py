"""Every training default in one place, and the one function that decides a run's settings from them.

The dataclass holds the defaults of a char-level run; ``LEVEL_DEFAULTS`` says where word
level starts elsewhere (and where char level departs from the network's own defaults);
``level_defaults`` gives the merged view that ``scriptrnn train --help`` prints. ``resolve``
layers them with a fine-tuning parent, the user's settings, the time budget, the vocabulary
and --size auto into the run's (TrainConfig, ModelConfig), recording which layer decided each
field: setup, fine-tuning, sizing's caller and sweeps (through ``train()``) all go through it,
and ``train --dry-run`` prints its record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Callable

from ..errors import ScriptRNNError
from ..model.network import ModelConfig

LEVELS = ("char", "word", "subword")  # the token levels a run can train at (data/tokenizer.py, data/subword.py)
PRECISIONS = ("auto", "bf16", "fp32")
SIZES = ("auto", "fixed")

# --size auto's rule (training/sizing.py): each candidate's held-out loss is predicted from its
# recurrent-layer parameters N, the training tokens D it would see in the budget at the speed the probe
# measured, and the text's training tokens U: L = E - a ln(N / 1e6) + b (D_eff / 1e7)^-beta - g [one layer],
# D_eff = S (1 - exp(-D / S)), S = k U^2 / N (SIZING_PASSES_SCALE below), and the lowest wins. E, what no
# size or length removes, is the same for every candidate and drops out. The form is Chinchilla's
# E + A N^-alpha + B D^-beta in the limit the fit ran to (alpha -> 0: on these runs a size's gain grows with
# the log of its parameters), with reread tokens saturating. In N and D, not in minutes, so one rule serves
# fast and slow machines: fp32 at 2 minutes lands on the same surface as bf16 at about 1. Fitted by
# `python -m benchmarks.sizing --fit` on the 22 runs of the grid in benchmarks/results/sizing.md (2026-11-29
# and 30, AMD EPYC, 2 cores, ~1 MB of the plays, char level; bf16 at 1, 2, 5 and 30 minutes, fp32 at 2 and
# 5; the 30-minute run the text ended included): rmse 0.019 nats/char with each run left out in turn, and in
# each cell it picks the size that was best there. Checked on other texts (0.3 MB of the plays, Seinfeld's
# 3.4 MB) in RESULTS, "Defaults that hold". Measured up to 27M tokens and 3.3M parameters; beyond, extrapolated.
SIZING_LOSS_PER_E_FOLD = 0.164  # a: held-out nats/char gained per e-fold of parameters, at equal tokens
SIZING_TOKEN_TERM = (0.3018, 0.57)  # (b, beta): the loss still to lose at 1e7 tokens, and how fast it goes
# g: how far below the surface a one-layer size lands at the same N and D (the ladder's one-layer rung, 1x128,
# reached nearly what 2x128 did on the same tokens, with under half the weights)
SIZING_ONE_LAYER_GAIN = 0.0831
# k: how fast rereading the text stops paying. A run of D tokens over a text of U learns as if from
# D_eff = S (1 - exp(-D / S)) new tokens, S = k U^2 / N: the more weights per token of text, the sooner
# they memorise it rather than learn from it (Muennighoff et al.'s data-constrained scaling, with the
# saturation tied to the model's size, as our runs need: 1x128 still gained at its 42nd pass over 1 MB,
# 2x512 had stopped by its 11th). Fitted with the terms above, the runs the text ended included.
SIZING_PASSES_SCALE = 20.0
# A run the rule predicts will have used its text up gets weight drop on its hidden-to-hidden matrices
# (unless --weight-drop was given): none while under START of what it reads is used up (1 - D_eff / D),
# rising to MOST at FULL. Anchored on two runs (2026-11-30, AMD EPYC, ~1 MB of the plays, 2x512 bf16):
# 30 minutes, ~88% used up, 1.479 with weight drop 0.2 against 1.523 without; 5 minutes, ~46% used up,
# no gain beside the output dropout (1.534 against 1.530). Between them it is interpolated, not measured.
USED_UP_WEIGHT_DROP = (0.5, 0.8, 0.2)  # (START, FULL, MOST)


@dataclass
class TrainConfig:
    # --- tokens
    level: str = "char"  # char (novels, plays), word (course-style scripts) or subword (byte-pair tokens)
    # Word level: fold case (--lowercase), as the course projects did. Off: a script keeps its own
    # capitals (names, "I", sentence starts), which a writer would otherwise restore by hand; a
    # folding model is scored on lower-cased text and says so (evaluation/scoring.py).
    lowercase: bool = False
    # Subword level: tokens in the byte-pair vocabulary (256 bytes + merges), learnt from the training
    # part of the corpus. A starting point, not measured yet: 4,096 keeps the output layer small
    # beside a ~20k word vocabulary while most words and every frequent speaker name are one token.
    subword_vocab_size: int = 4096
    # Word level: rarer words become <unk>. 2 (the words seen once) gives <unk> real training text, so
    # new text's unknown words are scored by what the model learned of rare words (Good-Turing: the
    # share of words seen once estimates the share of unseen ones). Every word vocabulary has <unk>.
    min_count: int = 2
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
    # Under --time-budget the cosine schedule follows the clock, but a small text can be used up long
    # before the clock runs out (a fast machine, a long budget): the held-out loss then turns up while
    # the learning rate is still high, and the best checkpoint is one the schedule never cooled. So the
    # first check that fails to beat the best, in the first half of the budget, starts a cool-down: the
    # rate falls linearly from where it is to its floor over this many checks' steps, and the run ends.
    # Later the cosine is cooling anyway (10 minutes on ~1 MB of plays: a cool-down from 62% of the
    # budget scored 1.527, the cosine alone 1.521; 30 minutes: from 16%, 1.523 against 1.535).
    # 0 or None: the clock's schedule.
    cooldown_checks: int | None = 2
    # A ~200-character sample at temperatures 0.5 and 1.0 at every Nth validation check (0: never),
    # shown under the progress bar and kept in samples.jsonl (training/samples.py). Counted in
    # checks, not steps: each sample then sits beside a validation loss to read it against.
    sample_every: int = 1
    # --- run
    seed: int = 1234
    device: str = "auto"  # auto: CUDA when present, else CPU
    # Arithmetic of the forward and backward pass; weights and optimizer stay float32.
    # auto: bfloat16 where the hardware multiplies it natively (CPUs with AMX/AVX512-BF16,
    # CUDA GPUs from Ampere on), measured 2.4-2.9x faster on this project's CPU; else float32.
    precision: str = "auto"  # auto | bf16 | fp32
    # auto: under --time-budget, the sizes not given (layers, hidden, batch, window) are chosen
    # from this machine's measured speed (training/sizing.py); fixed: the defaults above. Char level
    # defaults to auto (LEVEL_DEFAULTS); word level, with no sizing figures yet, to fixed.
    size: str = "fixed"  # auto | fixed

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
        if not (isinstance(self.sample_every, int) and not isinstance(self.sample_every, bool)
                and 0 <= self.sample_every <= 10**12):
            raise ScriptRNNError(f"--sample-every must be a whole number >= 0 (0: never), got {self.sample_every!r}")
        if self.cooldown_checks is not None and not (isinstance(self.cooldown_checks, int)
                                                     and not isinstance(self.cooldown_checks, bool)
                                                     and 0 <= self.cooldown_checks <= 10**6):
            raise ScriptRNNError(f"--cooldown-checks must be a whole number >= 0 (0: off), got {self.cooldown_checks!r}")
        for name, value in (("--max-steps", self.max_steps), ("--save-every", self.save_every),
                            ("--patience", self.patience), ("--eval-tokens", self.eval_tokens)):
            if value is not None:
                _positive(name, value, 10**15)
        if self.epochs is None and self.max_steps is None and self.time_budget is None:
            raise ScriptRNNError("give at least one of --epochs, --max-steps or --time-budget")
        if self.level not in LEVELS:
            raise ScriptRNNError(f"--level must be one of {', '.join(LEVELS)}, got {self.level!r}")
        if not isinstance(self.lowercase, bool) or not isinstance(self.device, str):
            raise ScriptRNNError("lowercase must be true or false and device a name such as 'cpu'")
        if self.lowercase and self.level == "subword":
            raise ScriptRNNError("--lowercase is for word level; subword tokens keep the corpus's case")
        _positive("--vocab-size", self.subword_vocab_size, 1 << 20)
        if self.subword_vocab_size < 256:
            raise ScriptRNNError(f"--vocab-size must be at least 256 (the bytes), got {self.subword_vocab_size}")
        _positive("--min-count", self.min_count, 10**12)
        if self.size not in SIZES:
            raise ScriptRNNError(f"--size must be one of {', '.join(SIZES)}, got {self.size!r}")
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


# Per-level starting points over the dataclass defaults (ModelConfig's and TrainConfig's);
# anything passed by name wins. Char level: 2x512 beat 2x256 on held-out loss after 5 minutes
# in bf16 (benchmarks/sweeps/char-defaults), and is what runs limited by epochs or steps get;
# under --time-budget, --size auto chooses instead: in the race (benchmarks/RESULTS.md, AMD EPYC,
# bf16, ~1 MB of the plays) it beat the fixed 2x512 after 1, 2 and 5 minutes. Word level: ~20k-word vocabularies make the
# output layer the cost, so windows are smaller, the embedding is shared with the output
# layer, and runs are shorter (a script corpus of ~1M words overfits after a few epochs;
# early stopping ends it).
# Char level's locked dropout on the output: of the AWD-LSTM regularisers tried one at a time
# (benchmarks/sweeps/regularisation.toml; 2026-11-29, AMD EPYC, 2 cores, 2x512, 5 minutes on ~1 MB of
# the plays) it and weight drop 0.2 each gained ~0.016 nats/char held out (1.530 against 1.546/1.548);
# together they gained less (1.534). Locked output dropout costs no speed; weight drop runs one kernel
# call per layer. Embedding dropout, input and between-layer locked dropout and weight decay did not help.
LEVEL_DEFAULTS = {
    "char": {"hidden_size": 512, "size": "auto", "dropout_output": 0.25},
    "word": {"embedding_size": 256, "tie_weights": True, "dropout": 0.3,
             "batch_size": 32, "seq_len": 64, "epochs": 10.0},
    # Subword level: word level's start (a tied 256-wide embedding, dropout 0.3, short runs), with a
    # longer window since a token covers ~3-4 characters, not a whole word. Not measured yet; fixed
    # size, as --size auto's ladder was fitted on char runs.
    "subword": {"embedding_size": 256, "tie_weights": True, "dropout": 0.3,
                "batch_size": 32, "seq_len": 96, "epochs": 10.0},
}

# Fine-tuning (--init-from) starts from these instead of the scratch ones above (anything passed by
# name still wins). Measured by benchmarks/finetune.py (2026-11-29, AMD EPYC, 2 cores): from the ready
# model (2x512), on the first 300 KB of Seinfeld at char level, the peak learning rate that gave the
# best held-out loss at both 1 and 2 minutes was scratch's own 3e-3 (1.329 / 1.310 nats/char; 1e-3:
# 1.421 / 1.348; 3e-4: 1.605 / 1.463): a short fine-tuning run has too few steps to spend them timidly.
# The warm-up is shorter than scratch's (20 steps, not 50; not varied): the parent already writes.
FINETUNE_DEFAULTS = {"lr": 3e-3, "warmup_steps": 20}

ADAPTIVE_DEFAULT_VOCAB = 5_000  # word vocabularies from this size train with the adaptive softmax by default

# What a resumed run may change: how long it goes on, and where. Anything else would
# make it a different run than the one being continued.
# (precision too: it changes rounding, and a bf16 run must be able to go on where bf16 is not native.)
RESUME_OVERRIDES = {"max_steps", "epochs", "time_budget", "patience", "save_every", "save_every_minutes", "device",
                    "precision", "sample_every", "cooldown_checks"}


def level_defaults(level: str) -> dict:
    """Every model and training default a run at ``level`` starts from (what --help shows)."""
    if level not in LEVEL_DEFAULTS:
        raise ScriptRNNError(f"--level must be one of {', '.join(LEVELS)}, got {level!r}")
    dataclass_defaults = {f.name: f.default for cls in (ModelConfig, TrainConfig) for f in fields(cls)}
    return {**dataclass_defaults, **LEVEL_DEFAULTS[level], "level": level}


def run_limits(settings: dict) -> dict:
    """Under --time-budget the budget is the run's limit: the level's default epoch limit is dropped.

    The sizing rule was fitted on runs with no epoch limit, and a default one cut the short runs it
    sizes: in the race at 2 minutes in fp32 (AMD EPYC, 2 cores) 1x128 stopped at its 20 epochs after 101
    of its 120 seconds, at 1.723 nats/char; given the whole 2 minutes it reached 1.702
    (benchmarks/RESULTS.md, "Race"). Early stopping (--patience) and the cool-down still end a run
    that has stopped improving, and its best checkpoint is kept. An --epochs given by name still
    applies beside the budget: the first limit reached ends the run.
    """
    if settings.get("time_budget") is not None and "epochs" not in settings:
        return {**settings, "epochs": None}
    return settings


def split_settings(settings: dict) -> tuple[dict, dict]:
    """Settings by name, as (ModelConfig's, TrainConfig's); an unknown name is an error."""
    model_keys = {f.name for f in fields(ModelConfig)}
    train_keys = {f.name for f in fields(TrainConfig)}
    unknown = set(settings) - model_keys - train_keys
    if unknown:
        raise ScriptRNNError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
    return ({k: v for k, v in settings.items() if k in model_keys},
            {k: v for k, v in settings.items() if k in train_keys})


def output_layer(model_settings: dict, asked: dict, vocab_size: int, level: str) -> dict:
    """Word level with a large vocabulary defaults to the adaptive softmax, where it was measured to win.

    On Seinfeld (20,319 words) it reached 4.06 nats/word held out in 2 minutes against 4.34 for
    the tied full softmax (benchmarks/RESULTS.md, section 2); below ADAPTIVE_DEFAULT_VOCAB words
    the full softmax is cheap and stays. Settings the caller gave are never overridden.
    """
    if level != "word" or vocab_size < ADAPTIVE_DEFAULT_VOCAB or "softmax" in asked or "tie_weights" in asked:
        return model_settings
    return {**model_settings, "softmax": "adaptive", "tie_weights": False}


# ---------------------------------------------------------------- resolving a run's settings

# The layers a run's settings come from, lowest first: each one that sets a field overrides those before
# it, and the record (``Resolved.decided_by``) says which one decided it. Word level's adaptive softmax
# (``output_layer``) and --size auto only fill what the user left unset, so the user's word always stands.
DEFAULT, LEVEL, FINE_TUNING, PARENT, USER = "default", "level", "fine-tuning", "parent", "user"
TIME_BUDGET, VOCABULARY, SIZE_AUTO, SIZING_WEIGHT_DROP = "--time-budget", "vocabulary", "--size auto", \
    "sizing's weight drop"
ON_RESUME = "user, on --resume"  # a setting a resume changed (RESUME_OVERRIDES)
SIZE_AUTO_LATER = "--size auto (chosen when the run starts)"  # a dry run's: the probe needs the machine's time
LATER = "when the run starts"  # a dry run's sizing choice
SIZED = ("num_layers", "hidden_size", "batch_size", "seq_len")  # what --size auto chooses

# Fine-tuning: the settings a child takes from its parent (a flag that says otherwise is refused), and
# the regularisers that are the parent's unless given (they change no weight's shape).
SHAPE = ("cell", "num_layers", "hidden_size", "embedding_size", "tie_weights", "softmax")
REGULARISERS = ("dropout", "dropout_input", "dropout_hidden", "dropout_output", "embedding_dropout", "weight_drop")


@dataclass
class ParentSettings:
    """What a fine-tuning parent decides: its shape, regularisers and tokens (training/init_from.py)."""

    label: str  # --init-from as given, for messages
    settings: dict  # SHAPE, REGULARISERS, level (and lowercase at word level)


@dataclass
class Resolved:
    """A run's settings and, for each, the layer that decided it."""

    train: TrainConfig
    model: ModelConfig | None  # None until the vocabulary is known
    decided_by: dict[str, str] = field(default_factory=dict)
    sizing: dict | None = None  # --size auto's record for config.json (training/sizing.py)

    def table(self) -> list[tuple[str, object, str]]:
        """(setting, value, decided by), in the dataclasses' order: what --dry-run and info print."""
        values = {**vars(self.train), **(self.model.to_dict() if self.model else {})}
        return [(name, values.get(name), self.decided_by[name]) for name in values if name in self.decided_by]


def resolve(asked: dict, *, parent: ParentSettings | None = None, vocab_size: int | None = None,
            size: Callable | None = None) -> Resolved:
    """The run's (TrainConfig, ModelConfig) from every layer, each field's deciding layer recorded.

    ``asked``: the user's settings by name. ``parent``: a fine-tuning run's parent. ``vocab_size``:
    the run's vocabulary (None before the corpus is read: the model is then left out). ``size``:
    --size auto's probe, ``size(model_settings, train_config, asked_and_parent, vocab_size)`` ->
    (model settings, TrainConfig, sizing record), as training.sizing.auto_size; None when there is
    none to run. A dry run's ``size`` answers ``{"choice": LATER}`` where the probe would run: the
    sizes are then recorded as chosen when the run starts.
    """
    layers = [(DEFAULT, _dataclass_defaults()), *_upper_layers(asked, parent)]
    merged = {k: v for _, values in layers for k, v in values.items()}
    level = merged["level"]
    layers.insert(1, (LEVEL, LEVEL_DEFAULTS[_checked_level(level)]))
    merged = {k: v for _, values in layers for k, v in values.items()}
    decided = {k: layer for layer, values in layers for k in values}
    given = {k: v for k, v in merged.items() if decided[k] in (FINE_TUNING, PARENT, USER)}  # what sizing keeps
    if run_limits(given) is not given:
        merged["epochs"], decided["epochs"] = None, TIME_BUDGET
    model_settings, train_settings = split_settings(merged)
    train = TrainConfig(**train_settings).validate()
    if vocab_size is None:
        return Resolved(train, None, decided)
    model_settings.pop("vocab_size", None)
    adapted = output_layer(model_settings, given, vocab_size, level)
    decided.update({k: VOCABULARY for k in adapted if adapted[k] != model_settings.get(k)})
    sizing = None
    if train.size == "auto" and size is not None:
        sized, train, sizing = size(adapted, train, given, vocab_size)
        _record_sizing(decided, adapted, sized, given, sizing)
        adapted = sized
    model = ModelConfig(**{**adapted, "vocab_size": vocab_size}).validate()
    decided["vocab_size"] = VOCABULARY
    return Resolved(train, model, decided, sizing)


def _dataclass_defaults() -> dict:
    """Every dataclass default, model and training (the lowest layer)."""
    return {f.name: f.default for cls in (ModelConfig, TrainConfig) for f in fields(cls)}


def _checked_level(level) -> str:
    level_defaults(level)  # an unknown level is refused in one line
    return level


def _upper_layers(asked: dict, parent: ParentSettings | None) -> list[tuple[str, dict]]:
    split_settings(asked)  # an unknown name is refused before anything else
    if parent is None:
        return [(USER, dict(asked))]
    for name in (*SHAPE, "level", "lowercase", "subword_vocab_size"):
        if name in asked and name in parent.settings and asked[name] != parent.settings[name]:
            flag = {"num_layers": "layers", "lowercase": "keep-case", "subword_vocab_size": "vocab-size"}.get(name, name).replace("_", "-")
            raise ScriptRNNError(f"--init-from {parent.label}: --{flag} {_shown(asked[name])} contradicts the "
                                 f"parent's {_shown(parent.settings[name])}; a fine-tuned model keeps its parent's "
                                 "shape (leave the flag out)")
    return [(FINE_TUNING, dict(FINETUNE_DEFAULTS)), (PARENT, dict(parent.settings)), (USER, dict(asked))]


def _shown(value) -> str:
    return {True: "on", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)


def _record_sizing(decided: dict, before: dict, after: dict, given: dict, sizing: dict) -> None:
    if sizing.get("choice") is None:
        return  # fixed sizes: nothing was chosen
    decided.update({k: SIZE_AUTO_LATER if sizing["choice"] == LATER else SIZE_AUTO for k in SIZED if k not in given})
    if after.get("weight_drop") != before.get("weight_drop"):
        decided["weight_drop"] = SIZING_WEIGHT_DROP
