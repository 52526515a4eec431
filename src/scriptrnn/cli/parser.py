"""The ``scriptrnn`` command's flags: one subparser per command.

Defaults shown in help come from where they live: the per-level training defaults
(training.config.level_defaults), SamplingConfig and ServerLimits, so that the help
says what a run or a request really uses.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..data.corpus import TextFormat
from ..data.sources import CorpusRequest
from ..version import __version__
from .commands import EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    """argparse, but bad flags exit with one line, like every other error here, and no number is NaN or infinite."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("type", float, _finite)  # every type=float flag of every command, present and future

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"scriptrnn: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        # Flags no command knows are named by that command's parser, so the hint points at its --help.
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            command = getattr(self, "commands", {}).get(getattr(parsed, "command", None), self)
            command.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed


def _finite(text: str) -> float:
    """A float flag's value: NaN and infinity compare false with every bound, so no range check could catch them."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _add_corpus_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="*", help="text, dialogue (Name: line), CSV or .fountain files, or folders of "
                                            "them; none: the built-in corpus")
    p.add_argument("--corpus", default=CorpusRequest.corpus, help="built-in corpus used when no DATA is given")
    p.add_argument("--genre", nargs="+", dest="genres", metavar="GENRE",
                   help="built-in Shakespeare only: comedies histories problems roman romances tragedies")
    p.add_argument("--encoding", default=TextFormat.encoding,
                   help=f"text encoding of the files (default {TextFormat.encoding})")
    p.add_argument("--speaker-column", default=TextFormat.speaker_column, help="CSV column with the speaker's name")
    p.add_argument("--dialogue-column", default=TextFormat.dialogue_column, help="CSV column with the line spoken")


# The AWD-LSTM recipe (model/regularisation.py): training only, added to --dropout.
_REGULARISATION = [
    (f"--{name.replace('_', '-')}", name, {"type": float, "metavar": "P", "help": text}) for name, text in [
        ("dropout_input", "locked dropout on the embeddings entering the first layer, one mask per sequence"),
        ("dropout_hidden", "locked dropout between recurrent layers"),
        ("dropout_output", "locked dropout on the last layer's output"),
        ("embedding_dropout", "drop whole tokens: each dropped word or character is gone from the whole batch"),
        ("weight_drop", "DropConnect on the hidden-to-hidden weights (PyTorch's fused kernels kept); --size auto "
                        "sets 0.2 for a run it predicts will read its text more than 12 times"),
    ]]


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model on a corpus")
    _add_corpus_args(p)
    p.add_argument("--styles", choices=["genre", "file"],
                   help="one model, many styles: a style per genre of the built-in plays (with --genre: those), "
                        "or per DATA file; also DATA written FILE:STYLE, or a STYLES.toml manifest")
    p.add_argument("--out", type=Path, default=Path("runs/latest"), help="run directory (default runs/latest)")
    p.add_argument("--resume", nargs="?", const=True, metavar="DIR",
                   help="continue the run in DIR (or --out) from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--dry-run", action="store_true",
                   help="print each setting the run would train with and what decided it (default, level, parent, "
                        "user, ...), then stop: the corpus is read, nothing is trained or written")
    p.add_argument("--init-from", metavar="DIR|hf:OWNER/NAME|builtin",
                   help="fine-tune from this run's (a Hub model's, the built-in model's) weights: its shape and level, "
                        "new characters or words get new rows (subword: the parent's byte pairs as they are)")
    p.add_argument("--val-data", nargs="+", metavar="FILE",
                   help="validate (early stopping, the best checkpoint) on these files and train on all of DATA "
                        "(default: hold out the end of DATA, --val-fraction)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar and no samples shown (samples.jsonl is still written)")
    p.add_argument("--tensorboard", type=Path, metavar="DIR",
                   help="also write TensorBoard event files (loss, learning rate, tokens/s, samples) into DIR")
    g = p.add_argument_group("tokens")
    g.add_argument("--level", choices=["char", "word", "subword"],
                   help=f"char, word or subword (byte-pair) tokens ({_default_text('level')})")
    case = g.add_mutually_exclusive_group()
    case.add_argument("--lowercase", dest="lowercase", action="store_true", default=None,
                      help="word level: fold the text to lower case, as the course projects did "
                           "(default keeps the corpus's case)")
    case.add_argument("--keep-case", dest="lowercase", action="store_false", default=None,
                      help="word level: keep the corpus's case (the default)")
    g.add_argument("--vocab-size", type=int, dest="subword_vocab_size", metavar="N",
                   help=f"subword level: byte-pair tokens to learn ({_default_text('subword_vocab_size')})")
    g.add_argument("--min-count", type=int,
                   help=f"word level: words seen fewer times become <unk> ({_default_text('min_count')})")
    g = p.add_argument_group("model")
    for flag, name, extra in [
        ("--cell", "cell", {"choices": ["lstm", "gru", "rnn"], "help": "recurrent cell"}),
        ("--layers", "num_layers", {"type": int, "dest": "num_layers", "help": "recurrent layers"}),
        ("--hidden-size", "hidden_size", {"type": int, "help": "units per layer"}),
        ("--embedding-size", "embedding_size", {"type": int, "help": "token embedding size"}),
        ("--dropout", "dropout", {"type": float, "help": "dropout between layers and before the output"}),
        ("--tie-weights", "tie_weights", {"action": argparse.BooleanOptionalAction, "default": None,
                                          "help": "share input and output embeddings"}),
        ("--softmax", "softmax", {"choices": ["full", "adaptive"],
                                  "help": "output layer: full or adaptive (faster for large word vocabularies)"}),
        *_REGULARISATION,
    ]:
        g.add_argument(flag, **{**extra, "help": f"{extra['help']} ({_default_text(name)})"})
    g = p.add_argument_group("training")
    for flag, kind, text in [
        ("--seq-len", int, "tokens per window; state carries across windows"),
        ("--batch-size", int, "parallel streams per batch"),
        ("--lr", float, "peak learning rate (AdamW)"),
        ("--weight-decay", float, "AdamW weight decay on the weight matrices (not embeddings or biases)"),
        ("--grad-clip", float, "max gradient norm"),
        ("--warmup-steps", int, "linear warm-up steps before cosine decay"),
        ("--epochs", float, "passes over the training text; none under --time-budget unless given"),
        ("--max-steps", int, "optimizer steps"),
        ("--time-budget", float, "minutes of wall-clock training"),
        ("--val-fraction", float, "share of the corpus end held out for validation"),
        ("--eval-every", int, "steps between validation checks and checkpoints"),
        ("--eval-tokens", int, "validation tokens per check (the final check uses all)"),
        ("--patience", int, "early stop after this many checks without improvement"),
        ("--cooldown-checks", int, "under --time-budget, once a check in its first half fails to beat the best, "
                                   "cool the learning rate to its floor over this many checks and stop; 0 off"),
        ("--sample-every", int, "a short sample at every Nth validation check, shown and in samples.jsonl; 0 never"),
        ("--seed", int, "random seed"),
    ]:
        g.add_argument(flag, type=kind, help=f"{text} ({_default_text(flag.lstrip('-').replace('-', '_'))})")
    g.add_argument("--save-every", type=_save_every, metavar="N|Mm",
                   help="also save a resume checkpoint every N steps (500) or every M minutes (10m); "
                        "default: only at each --eval-every check")
    g.add_argument("--size", choices=["auto", "fixed"],
                   help="auto: under --time-budget, choose the layers, hidden size, batch and window not given "
                        f"from this machine's speed, measured in the first seconds ({_default_text('size')})")
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    g.add_argument("--precision", choices=["auto", "bf16", "fp32"],
                   help="auto (default): bfloat16 arithmetic where the CPU or GPU has it natively, else fp32")
    g = p.add_argument_group("several processes (start with torchrun; see the README)")
    timeout = _dist_timeout()
    g.add_argument("--dist-timeout", type=float, default=timeout, metavar="SECONDS",
                   help="how long a process waits for the others before stopping with an error "
                        f"({f'default {timeout:g}' if timeout else 'training needs PyTorch'})")


def _save_every(text: str) -> dict:
    """'500' -> every 500 steps; '10m' (or '10min') -> every 10 minutes."""
    number = text.strip().lower().removesuffix("min").removesuffix("m")
    try:
        value = _finite(number) if number != text.strip().lower() else int(number)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not N steps or M minutes (e.g. 500 or 10m)") from None
    return {"save_every_minutes" if isinstance(value, float) else "save_every": value}


def _has_torch() -> bool:
    """False for an install for exported models only: the parser still builds, without training's defaults."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _dist_timeout() -> float | None:
    """training.distributed's DEFAULT_TIMEOUT_S (None without PyTorch: no training to wait in)."""
    if not _has_torch():
        return None
    from ..training.distributed import DEFAULT_TIMEOUT_S

    return DEFAULT_TIMEOUT_S


def _default_text(name: str) -> str:
    """'default 64; word level 32': what each level really starts from (training.config.level_defaults)."""
    if not _has_torch():
        return "training needs PyTorch"
    from ..training.config import ADAPTIVE_DEFAULT_VOCAB, TrainConfig, level_defaults

    char = level_defaults(TrainConfig.level)[name]
    text = f"default {_shown(char)}"
    if name == "level":
        return text
    if name == "softmax":  # the policy in training.config.output_layer
        return f"{text}; word level adaptive from {ADAPTIVE_DEFAULT_VOCAB:,} words"
    for level in ("word", "subword"):
        if level_defaults(level)[name] != char:
            text += f"; {level} level {_shown(level_defaults(level)[name])}"
    return text


def _shown(value) -> str:
    return {True: "on", False: "off", None: "none"}.get(value, str(value)) if isinstance(value, (bool, type(None))) \
        else str(value)


def _add_generate_parser(sub) -> None:
    from ..generate.sampling import SamplingConfig as S  # the sampling defaults live there, once

    p = sub.add_parser("generate", help="write new text with a trained model")
    p.add_argument("model_dir", nargs="?", type=Path,
                   help="run directory, exported directory or hf:OWNER/NAME[@revision] (default: the "
                        "built-in Shakespeare model)")
    p.add_argument("--prime", default="", help="start text: a speaker ('jerry') or whole lines")
    p.add_argument("--max-new-tokens", type=int, default=S.max_new_tokens,
                   help=f"tokens to write (default {S.max_new_tokens})")
    p.add_argument("--temperature", type=float, default=S.temperature,
                   help=f"0 = greedy; higher = wilder (default {S.temperature})")
    p.add_argument("--top-k", type=int, help="sample from the k most likely tokens")
    p.add_argument("--top-p", type=float, help="sample from the smallest set reaching probability p")
    p.add_argument("--repetition-penalty", type=float, help=">1 discourages repeating tokens")
    p.add_argument("--greedy", dest="do_sample", action="store_false", help="always take the most likely token")
    p.add_argument("--num-return-sequences", type=int, default=S.num_return_sequences,
                   help="texts to write, as one batch")
    p.add_argument("--stop-after-lines", type=int, help="stop each text after this many line breaks, blank lines "
                   "included (--lines counts only lines with words)")
    p.add_argument("--seed", type=int, help="random seed for repeatable text")
    p.add_argument("--output", type=Path, help="also write the text to this file (atomically); "
                                               "a .fountain, .pdf or .html name sets --format")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    p.add_argument("--threads", type=int, help="CPU threads of PyTorch or onnxruntime (default: the library's own)")
    g = p.add_argument_group("scripts")
    g.add_argument("--style", help="write in one of the model's styles (scriptrnn info lists them)")
    g.add_argument("--speaker", help="start with this speaker's line (--prime: their first words)")
    g.add_argument("--cast", help="only these speakers, comma-separated: --cast jerry,george,elaine")
    g.add_argument("--lines", type=int, help="stop after this many lines with words (speeches, directions)")
    g.add_argument("--scenes", type=int, help="stop after this many scenes (a blank line ends a scene)")
    # On by default here, unlike the API's SamplingConfig: a terminal reader wants no half line.
    g.add_argument("--whole-lines", action=argparse.BooleanOptionalAction, default=True,
                   help="end on a whole line: a last line cut short by --max-new-tokens is dropped (default on)")
    g.add_argument("--format", choices=["text", "fountain", "html", "pdf"],
                   help="text (default), a Fountain screenplay, or one rendered as HTML or PDF (needs --output)")


def _add_evaluate_parser(sub) -> None:
    from ..generate.sampling import SamplingConfig as S

    p = sub.add_parser("evaluate", help="held-out loss, perplexity and bits per character; with --samples, "
                                        "a report on the text the model writes")
    p.add_argument("model_dir", type=Path, help="run directory")
    _add_corpus_args(p)
    p.set_defaults(corpus=None)  # no DATA and no --corpus: score on the corpus the run trained on
    p.add_argument("--all", dest="held_out", action="store_false",
                   help="score the whole text, not only its held-out end")
    p.add_argument("--device", default="cpu")
    g = p.add_argument_group("the text itself")
    g.add_argument("--samples", type=int, metavar="N",
                   help="also write N samples and score them against the run's training and held-out text: "
                        "known speakers, real words, distinct-1/2/3, copying, line lengths")
    g.add_argument("--max-new-tokens", type=int, help="length of each sample (default 4000 char, 800 word level)")
    g.add_argument("--temperature", type=float, default=S.temperature,
                   help=f"sampling temperature (default {S.temperature})")
    g.add_argument("--seed", type=int, default=0, help="random seed of the samples (default 0)")
    g.add_argument("--write-samples", type=Path, metavar="FILE", help="also write the samples to FILE, to read")
    p.add_argument("--json", action="store_true", help="the figures (and the text report) as JSON")


def _add_serve_parser(sub) -> None:
    from ..server.protocol import ServerLimits

    d = ServerLimits()
    p = sub.add_parser("serve", help="serve models over HTTP: a web page, TGI and OpenAI-style APIs")
    p.add_argument("model_dirs", nargs="*", type=Path,
                   help="run directories or exported directories, mixed as you like (default: the built-in model)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on every route but /health and the page "
                                     "(visible in ps: prefer --api-key-file or SCRIPTRNN_API_KEY)")
    p.add_argument("--api-key-file", type=Path, help="read the API key from this file (kept out of ps)")
    p.add_argument("--allowed-hosts", type=lambda text: [h.strip() for h in text.split(",") if h.strip()],
                   help="comma-separated Host header values to answer, '*' for any (default: 127.0.0.1, "
                        "localhost and ::1 when bound to loopback, any otherwise)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help="cap per sequence")
    p.add_argument("--max-prime-chars", type=int, default=d.max_prime_chars, help="cap on the prime's length")
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help="cap on a request body")
    p.add_argument("--max-return-sequences", type=int, default=d.max_return_sequences, help="cap on n")
    p.add_argument("--max-queue", type=int, default=d.max_queue, help="requests waiting before 503")
    p.add_argument("--max-batch", type=int, default=d.max_batch, help="sequences stepped together")
    p.add_argument("--timeout", type=float, default=d.request_timeout_s, help="seconds per request")
    p.add_argument("--read-timeout", type=float, default=d.read_timeout_s,
                   help=f"seconds a client has to send its request's headers, and again its body "
                        f"(default {d.read_timeout_s:g}: slow clients must not hold connections)")
    p.add_argument("--max-stops", type=int, default=d.max_stops,
                   help=f"stop sequences per request (default {d.max_stops}; TGI and OpenAI allow 4)")
    p.add_argument("--max-stop-chars", type=int, default=d.max_stop_chars,
                   help=f"characters of all a request's stop sequences together (default {d.max_stop_chars})")
    p.add_argument("--threads", type=int, default=1,
                   help="PyTorch (or onnxruntime) CPU threads (default 1: one-token steps gain nothing from more, "
                        "and the HTTP side needs a core; see benchmarks/RESULTS.md)")


def _add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX, to generate and serve without PyTorch")
    p.add_argument("model_dir", nargs="?", type=Path,
                   help="run directory or hf:OWNER/NAME (default: the built-in model)")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="onnx (the only format so far)")
    p.add_argument("--out", type=Path, required=True, help="directory to write (must be new or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    p.add_argument("--quantize", choices=["int8"],
                   help="int8: dynamic quantization (smaller; see benchmarks/RESULTS.md for speed and loss)")


def _add_share_parsers(sub) -> None:
    p = sub.add_parser("push", help="upload a run or an export to the Hugging Face Hub (what loading needs, "
                                    "with its model card)")
    p.add_argument("model_dir", type=Path, help="run directory or exported directory")
    p.add_argument("repo", metavar="OWNER/NAME", help="the Hub repository (created if it does not exist)")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--revision", help="the branch to push to (default: main)")
    p = sub.add_parser("share", help="copy what a shared model needs (config, tokenizer, weights, card) into a "
                                     "folder, to share by hand")
    p.add_argument("model_dir", type=Path, help="run directory or exported directory")
    p.add_argument("--out", type=Path, required=True, help="folder to write (new or empty)")
    p.add_argument("--repo", metavar="OWNER/NAME", default=None, help="the Hub name the card shows")
    p.add_argument("--overwrite", action="store_true", help="replace the files in a folder that has some")


def _add_sweep_parser(sub) -> None:
    p = sub.add_parser("sweep", help="hyperparameter studies (one at a time, grid, Optuna) with tables and plots")
    p.add_argument("config", nargs="?", type=Path, help="a study file (TOML; see the README's Experiments)")
    p.add_argument("--vary", action="append", default=[], metavar="SETTING=V1,V2",
                   help="a one-at-a-time study: each value alone, the rest as the baseline (repeatable)")
    p.add_argument("--grid", action="append", default=[], metavar="SETTING=V1,V2",
                   help="a grid study: every combination of the values of all --grid settings")
    p.add_argument("--set", action="append", default=[], metavar="SETTING=VALUE",
                   help="a baseline setting, by its train() name (over the file's [baseline])")
    p.add_argument("--time-budget", type=float, metavar="MINUTES",
                   help="minutes per run (replaces the file's [budget])")
    p.add_argument("--epochs", type=float, metavar="EPOCHS",
                   help="epochs per run (replaces the file's [budget])")
    p.add_argument("--max-steps", type=int, metavar="STEPS",
                   help="steps per run (replaces the file's [budget])")
    p.add_argument("--data", nargs="+", metavar="PATH", help="corpus files or folders (default: the file's, "
                                                              "else the built-in corpus)")
    p.add_argument("--corpus", help="built-in corpus used when no data is given")
    p.add_argument("--genre", nargs="+", dest="genres", metavar="GENRE", help="built-in Shakespeare only")
    p.add_argument("--out", type=Path, help="folder for runs and results (default: the file's [sweep] out, "
                                            "else runs/sweep)")
    p.add_argument("--tensorboard", type=Path, metavar="DIR", help="also write each run's TensorBoard events "
                                                                   "into DIR/<run>")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="runs at once on this machine: one per GPU where there are GPUs, else the CPU cores "
                        "split between them (default 1)")
    p.add_argument("--storage", metavar="URL",
                   help="the Optuna storage the study lives in, shared by every worker that names it, e.g. "
                        "postgresql://user:password@host/db (default: sqlite in the --out folder)")
    p.add_argument("--heartbeat", type=_positive_int, default=60, metavar="SECONDS",
                   help="how often a worker says it is alive; a run silent for twice this is taken over by "
                        "another worker (default 60)")
    p.add_argument("--samples", type=int, default=0, metavar="N",
                   help="after each run, write N samples and add their text report's figures to the tables "
                        "(known speakers, real words, distinct-2, copying)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scriptrnn", description="Train recurrent networks on scripts and books; write new ones.")
    parser.add_argument("--version", action="version", version=f"scriptrnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    parser.commands = sub.choices  # name -> its parser
    _add_train_parser(sub)
    _add_generate_parser(sub)
    _add_evaluate_parser(sub)
    _add_serve_parser(sub)
    _add_sweep_parser(sub)
    _add_export_parser(sub)
    _add_share_parsers(sub)
    p = sub.add_parser("corpus", help="statistics of a corpus")
    _add_corpus_args(p)
    p = sub.add_parser("info", help="what a model is: level, cell, sizes, styles and the speakers it knows")
    p.add_argument("model_dir", nargs="?", type=Path, help="run directory (default: the built-in model)")
    p.add_argument("--all", action="store_true", help="list every speaker, not the first 30")
    p.add_argument("--json", action="store_true", help="the facts as JSON")
    p.add_argument("--settings", action="store_true",
                   help="every setting the run trained with and what decided it (as train --dry-run prints)")
    return parser
