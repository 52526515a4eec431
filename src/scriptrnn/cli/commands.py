"""The ``scriptrnn`` commands: each takes the parsed arguments, calls the API and prints the result."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from ..errors import ScriptRNNError
from ..paths import real_path

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


_NOT_SETTINGS = {"command", "data", "corpus", "genres", "styles", "encoding", "speaker_column", "dialogue_column",
                 "out", "resume", "overwrite", "quiet", "tensorboard", "argv", "dist_timeout", "val_data", "dry_run"}


def cmd_train(args) -> int:
    from ..api import train
    from ..training.distributed import is_main_process
    from ..training.schedule import NothingToTrain

    settings = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS and v is not None}
    settings.update(settings.pop("save_every", {}))
    if args.dry_run:
        return _dry_run(args, settings)
    out = Path(args.resume) if isinstance(args.resume, str) else args.out
    try:
        with _tensorboard(args.tensorboard) as callbacks:
            result = train(args.data, out, corpus=args.corpus, genres=args.genres, styles=args.styles,
                           encoding=args.encoding,
                           speaker_column=args.speaker_column, dialogue_column=args.dialogue_column,
                           resume=bool(args.resume), overwrite=args.overwrite, progress=not args.quiet,
                           callbacks=callbacks, dist_timeout=args.dist_timeout, val_data=args.val_data, **settings)
    except NothingToTrain as e:  # a finished run resumed with nothing new: said, and not a failure
        if is_main_process():
            print(f"scriptrnn: {e}", file=sys.stderr)
        return 0
    except KeyboardInterrupt:  # outside the training loop (reading the corpus, the final evaluation)
        from ..model.directory import RESUME_FILE

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
    unit = _loss_unit(out)
    print(f"done: {result.stopped_because}; {result.steps} steps in {result.elapsed_s / 60:.1f} min\n"
          f"held-out loss {m['loss']:.4f} {unit} (perplexity {m['perplexity']:.2f}{extra}), every held-out token; "
          "the validation losses above score a sample of them\n"
          f"model saved in {out}; write with: scriptrnn generate {out}\n{result.time_line}")
    return 0


def _loss_unit(model_dir) -> str:
    """nats/char or nats/word: what one token of this model is (its tokenizer.json says)."""
    from ..model.directory import read_tokenizer_dict
    from ..model.loader import model_directory

    level = read_tokenizer_dict(model_directory(model_dir)).get("level")
    return f"nats/{level}" if isinstance(level, str) else "nats/token"


def _dry_run(args, settings: dict) -> int:
    """train --dry-run: the settings a new run would take, each with the layer that decided it; nothing written."""
    from ..api import plan_training

    if args.resume:
        raise ScriptRNNError("--dry-run shows a new run's settings; a resumed run's are in its config.json "
                             "(scriptrnn info DIR --settings)")
    resolved = plan_training(args.data, corpus=args.corpus, genres=args.genres, styles=args.styles,
                             encoding=args.encoding, speaker_column=args.speaker_column,
                             dialogue_column=args.dialogue_column, **settings)
    print(f"dry run: nothing trained or written (--out {args.out})")
    print(format_settings(resolved.table()))
    if resolved.sizing:
        print("size: auto (chosen when the run starts)" if resolved.sizing.get("choice") else resolved.sizing["reason"])
    return 0


def format_settings(rows) -> str:
    """(setting, value, decided by) rows as an aligned table."""
    rows = [("setting", "value", "decided by"), *((n, "none" if v is None else str(v), d) for n, v, d in rows)]
    wide = [max(len(r[i]) for r in rows) for i in (0, 1)]
    return "\n".join(f"{n:<{wide[0]}}  {v:<{wide[1]}}  {d}".rstrip() for n, v, d in rows)


@contextlib.contextmanager
def _tensorboard(log_dir: Path | None):
    """The trainer callbacks that --tensorboard asks for (none without it), closed when training ends."""
    if log_dir is None:
        yield []
        return
    from ..training.reporting import TensorBoardLogger

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
    from ..files import write_atomic
    from ..data.fountain import format_script
    from ..model.loader import load
    from ..generate.sampling import SamplingConfig

    fmt = _output_format(args)
    if args.output:
        _check_writable(args.output)  # before the work, not after it
    script_model = load(args.model_dir, device=args.device, threads=args.threads)
    config = SamplingConfig(max_new_tokens=args.max_new_tokens, do_sample=args.do_sample,
                            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                            repetition_penalty=args.repetition_penalty,
                            num_return_sequences=args.num_return_sequences, seed=args.seed,
                            stop_after_lines=args.stop_after_lines, max_lines=args.lines, max_scenes=args.scenes,
                            whole_lines=args.whole_lines).validate()
    script = {"style": args.style, "speaker": args.speaker, "cast": args.cast}
    stream = script_model.stream(args.prime, config, **script)
    if fmt == "text" and config.num_return_sequences == 1:
        texts = [_stream_to_terminal(stream)]
    else:
        texts = ["".join(column) for column in zip(*stream)]
        for i, text in enumerate(texts if fmt == "text" else [], 1):
            print(f"===== {i} =====\n{text}\n")
    if any(stream.cut):
        which = "" if len(texts) == 1 else " " + ", ".join(str(i) for i, c in enumerate(stream.cut, 1) if c)
        print(f"scriptrnn: no whole line within --max-new-tokens {config.max_new_tokens}, so text{which} is cut at "
              "a word end; raise --max-new-tokens for whole lines", file=sys.stderr)
    _say_short(texts, config)
    data = format_script(texts, fmt, sentence_case=getattr(script_model.tokenizer, "lowercase", False))
    if fmt in ("fountain", "html") and not args.output:
        sys.stdout.write(data.decode("utf-8"))
    if args.output:
        write_atomic(args.output, data)
    return 0


def _say_short(texts: list[str], config) -> None:
    """--lines N that --max-new-tokens cut short: said on stderr, not left for the reader to count."""
    if not config.max_lines:
        return
    for i, text in enumerate(texts, 1):
        lines = sum(1 for line in text.split("\n") if line.strip())
        if lines < config.max_lines:
            which = f"text {i} has" if len(texts) > 1 else "wrote"
            print(f"scriptrnn: {which} {lines} of --lines {config.max_lines}: --max-new-tokens "
                  f"{config.max_new_tokens} ran out first; raise it for more", file=sys.stderr)


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
    import json

    from ..api import evaluate
    from ..data.sources import CorpusRequest

    if args.write_samples and not args.samples:
        raise ScriptRNNError("--write-samples writes the samples of --samples N; add --samples")
    if args.write_samples:
        _check_writable(args.write_samples)
    corpus = args.corpus or (CorpusRequest.corpus if args.genres else None)  # None: the run's own corpus
    if sys.stderr.isatty():  # minutes on a large corpus: say what is happening (not into a log)
        text = " ".join(map(str, args.data or [])) or corpus or "the run's corpus"
        which = "the held-out end of " if args.held_out else ""
        print(f"scriptrnn: scoring {which}{text} (read and tokenized whole first)...", file=sys.stderr)
    report = evaluate(args.model_dir, args.data, corpus=corpus, genres=args.genres, encoding=args.encoding,
                      speaker_column=args.speaker_column, dialogue_column=args.dialogue_column,
                      held_out=args.held_out, device=args.device)
    text = _text_report(args) if args.samples is not None else None
    if args.json:
        print(json.dumps({**report, **({"text": text.to_dict()} if text else {})}, indent=2, ensure_ascii=False))
        return 0
    if report.get("warning"):  # tokens left out of the score: said first, and where it cannot be missed
        print(f"scriptrnn: {report['warning']}", file=sys.stderr)
    for key, value in report.items():
        if key == "warning":
            continue
        if key == "styles":
            for name, style_report in value.items():  # a styled run: each style's held-out end
                figures = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                    for k, v in style_report.items() if k != "warning")
                print(f"style {name}: {figures}")
        elif key == "loss":
            print(f"loss: {value:.4f} {_loss_unit(args.model_dir)}")
        else:
            print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    if report.get("warning"):
        print(f"NOT SCORED: {report['dropped']:,} tokens (see the warning above)")
    if text:
        print(f"\n{text.table()}")
    return 0


def _text_report(args):
    """--samples N: the samples' text report (and --write-samples: the samples themselves)."""
    from ..api import sample_report
    from ..files import write_atomic

    report, texts = sample_report(args.model_dir, args.samples, max_new_tokens=args.max_new_tokens,
                                  temperature=args.temperature, seed=args.seed, device=args.device)
    if args.write_samples:
        joined = "".join(f"===== {i} =====\n{text}\n" for i, text in enumerate(texts, 1))
        write_atomic(args.write_samples, joined.encode("utf-8"))
    return report


def cmd_info(args) -> int:
    import json

    from ..api import info

    facts = info(args.model_dir)
    if args.json:
        print(json.dumps(facts, indent=2, ensure_ascii=False))
        return 0
    print(_format_info(facts, args.all))
    if args.settings:
        rows = [(name, value, layer) for name, (value, layer) in facts["settings"].items()]
        print(format_settings(rows) if rows else "settings: not recorded (a run from before scriptrnn recorded what "
                                                 "decided each; its config.json holds the values)")
    elif facts["settings"]:
        print(f"settings: {len(facts['settings'])} recorded, each with what decided it (--settings lists them)")
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
        lines.append(f"held-out loss: {val['loss']:.4f} nats/{facts['level']} (perplexity {val['perplexity']:.2f})"
                     + (f"; scored on {val['scored_on']}" if "scored_on" in val else ""))
    for style in facts["styles"]:
        lines.append(f"style {style['name']}: {style.get('characters', 0):,} characters; speakers: "
                     f"{', '.join(style.get('speakers', [])[:10]) or 'none'}")
    if not facts["styles"]:
        lines.append("styles: none (trained without styles)")
    lines.append(f"speakers ({len(facts['speakers'])}, most speeches first): {', '.join(shown) or 'none'}{more}")
    return "\n".join(lines)


def cmd_corpus(args) -> int:
    from ..data.corpus import TextFormat, format_stats
    from ..data.scan import CorpusScan
    from ..data.sources import stream_corpus

    # Streamed (data/stream.py): the figures of a corpus larger than memory, in the memory of a small one.
    corpus = stream_corpus(args.data or None, corpus=args.corpus, genres=args.genres,
                           text_format=TextFormat(args.encoding, args.speaker_column, args.dialogue_column))
    stats = CorpusScan.of(corpus.pieces(), stats=True).stats(corpus.name)
    print(f"corpus: {corpus.name}")
    print(format_stats(stats))
    return 0


def cmd_serve(args) -> int:
    from ..server import api_key_from, serve

    limits = {"max_new_tokens": args.max_new_tokens, "max_prime_chars": args.max_prime_chars,
              "max_body_bytes": args.max_body_bytes, "max_return_sequences": args.max_return_sequences,
              "max_queue": args.max_queue, "max_batch": args.max_batch, "request_timeout_s": args.timeout,
              "read_timeout_s": args.read_timeout, "max_stops": args.max_stops,
              "max_stop_chars": args.max_stop_chars}
    serve(args.model_dirs, host=args.host, port=args.port, api_key=api_key_from(args.api_key, args.api_key_file),
          device=args.device, threads=args.threads, allowed_hosts=args.allowed_hosts, **limits)
    return 0


def cmd_export(args) -> int:
    from ..model.loader import pretrained_dir
    from ..model.export import export_onnx
    from ..training.samples import last_sample

    run = args.model_dir or pretrained_dir()
    facts = export_onnx(run, args.out, quantize=args.quantize, overwrite=args.overwrite,
                        sample=last_sample(run) if Path(run).is_dir() else None)
    size = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    kind = f", {facts['quantize']}" if facts["quantize"] else ""
    print(f"exported to {args.out} (ONNX{kind}, {size / 1e6:.1f} MB)\n"
          f"write with: scriptrnn generate {args.out}   (needs only: pip install 'scriptrnn[runtime]')")
    return 0


def cmd_push(args) -> int:
    from ..hub.share import push

    url = push(args.model_dir, args.repo, private=args.private, revision=args.revision)
    print(f"pushed to https://huggingface.co/{args.repo} ({url})\n"
          f"write with: scriptrnn generate hf:{args.repo}")
    return 0


def cmd_share(args) -> int:
    from ..hub.card import PLACEHOLDER
    from ..hub.share import share

    names = share(args.model_dir, args.out, repo_id=args.repo or PLACEHOLDER, overwrite=args.overwrite)
    size = sum((args.out / name).stat().st_size for name in names)
    print(f"copied {', '.join(names)} to {args.out} ({size / 1e6:.1f} MB)")
    return 0


def cmd_sweep(args) -> int:
    import os
    import shlex

    if os.environ.get("WORLD_SIZE", "1") != "1":
        raise ScriptRNNError("scriptrnn sweep starts its own workers (--workers N); start it with scriptrnn, "
                             "not torchrun")

    from ..sweep import DEFAULT_OUT, Sweep, SweepInterrupted, build_config, command_line_config, read_toml
    from ..sweep.report import all_conclusions

    raw, base = (read_toml(args.config), args.config.parent) if args.config else ({}, Path("."))
    source = {k: v for k, v in (("data", [str(real_path(p)) for p in args.data or []]),
                                ("corpus", args.corpus), ("genres", args.genres)) if v}
    budget = {k: getattr(args, k) for k in ("time_budget", "epochs", "max_steps") if getattr(args, k) is not None}
    raw = command_line_config(raw, sets=args.set, vary=args.vary, grid=args.grid, budget=budget, source=source,
                              out=real_path(args.out) if args.out else None)
    config = build_config(raw, base)
    command = shlex.join(["scriptrnn", *args.argv])
    sweep = Sweep(config, config.out or DEFAULT_OUT, progress=not args.quiet, tensorboard=args.tensorboard,
                  command=command, storage=args.storage, workers=args.workers, heartbeat_s=args.heartbeat,
                  samples=args.samples)
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
