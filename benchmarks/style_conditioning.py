"""One model conditioned on style tags against separate models, with the same total training time.

    python -m benchmarks.style_conditioning --minutes 20 [--genres comedies tragedies] [--out benchmarks/results]

The built-in plays split by genre (default: comedies and tragedies). The conditioned run
trains on all the genres at once, each chunk tagged with its genre, for the whole budget.
Each separate run trains on one genre for its share of the budget, in proportion to the
genre's size, which is how the conditioned run's time is spent among them. Every run is a
styled run (the separate ones with a single style), so each genre's held-out end is the
same text for all of them, and ``scriptrnn.evaluate`` scores it per genre.

Also recorded: the conditioned model's loss on each genre's held-out end read after each
genre's tag (a model that ignored its tags would score the same whatever the tag), and a
short sample per genre. ``--steps N`` gives a budget in optimizer steps instead of minutes
(the same work on any machine; shares as above).

Writes style_conditioning.json (every figure and setting) and style_conditioning.md (a
fragment for benchmarks/RESULTS.md) into --out; the runs go to --runs.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch

import scriptrnn
from scriptrnn.evaluation.scoring import evaluate_loss
from scriptrnn.data.sources import load_styled_corpus
from scriptrnn.data.styles import style_sources


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=20.0, help="total training minutes (default 20)")
    budget.add_argument("--steps", type=int, help="total optimizer steps instead of minutes")
    p.add_argument("--genres", nargs="+", default=["comedies", "tragedies"], help="the styles (default: two)")
    p.add_argument("--level", default="char", choices=["char", "word"])
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch-size", type=int, help="default: the level's default")
    p.add_argument("--seq-len", type=int, help="default: the level's default")
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--device", default="auto")
    p.add_argument("--runs", type=Path, default=Path("runs/style_bench"), help="where the runs go")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where the JSON and Markdown go")
    return p.parse_args(argv)


def settings(args, share: float) -> dict:
    """Training settings for a run that gets ``share`` of the budget; only the budget limits it."""
    limit = {"max_steps": max(1, round(args.steps * share))} if args.steps else {"time_budget": args.minutes * share}
    sizes = {k: v for k, v in (("batch_size", args.batch_size), ("seq_len", args.seq_len)) if v}
    return dict(level=args.level, hidden_size=args.hidden_size, num_layers=args.layers, eval_every=args.eval_every,
                seed=args.seed, device=args.device, epochs=None, patience=None, progress=False, overwrite=True,
                **limit, **sizes)


def train(args, genres: list[str], share: float, name: str) -> dict:
    print(f"training {name} ({', '.join(genres)}) for {share:.0%} of the budget", file=sys.stderr, flush=True)
    result = scriptrnn.train(out=args.runs / name, styles="genre", genres=genres, **settings(args, share))
    report = scriptrnn.evaluate(args.runs / name)
    return {"run": str(args.runs / name), "genres": genres, "share": share, "steps": result.steps,
            "minutes": round(result.elapsed_s / 60, 2), "stopped_because": result.stopped_because,
            "held_out": {g: report["styles"][g] for g in genres}}


def tag_swaps(args, run: Path, genres: list[str]) -> tuple[dict, dict]:
    """loss[held-out genre][tag read before it] for the conditioned model, and the tags in each held-out end."""
    model = scriptrnn.load(run, device=args.device)
    corpus = load_styled_corpus(style_sources(None, by="genre", genres=genres))  # the run's own text
    held_out = corpus.split(model.config.val_fraction).val_by_style
    table = {}
    for genre in genres:
        table[genre] = {}
        for tag_genre in genres:
            text = held_out[genre].replace(corpus.styles[genre], model.styles[tag_genre])
            ids = model.tokenizer.encode(text, strict=False)
            table[genre][tag_genre] = evaluate_loss(model.model, ids, device=model.device)[0]
    return table, {g: held_out[g].count(corpus.styles[g]) for g in genres}


def samples(run: Path, genres: list[str]) -> dict:
    model = scriptrnn.load(run)
    return {g: model.generate(style=g, max_new_tokens=1500, max_lines=6, whole_lines=True, seed=1,
                              temperature=0.8)[0] for g in genres}


def shares(genres: list[str]) -> dict[str, float]:
    """Each genre's part of the training text, which is how a conditioned run spends its time."""
    corpus = load_styled_corpus(style_sources(None, by="genre", genres=genres))
    sizes = {p.name: sum(map(len, p.chunks)) for p in corpus.parts}
    return {g: sizes[g] / sum(sizes.values()) for g in genres}


def markdown(result: dict) -> str:
    genres, budget = result["genres"], result["budget"]
    cond, sep = result["conditioned"], result["separate"]
    unit = "nats/char" if result["settings"]["level"] == "char" else "nats/token"
    named = ", ".join(genres[:-1]) + " and " + genres[-1] if len(genres) > 1 else genres[0]
    lines = [f"## One model for many styles: {named} ({result['date']})", "",
             f"    {result['command']}", "",
             f"The built-in plays by genre; {result['settings_text']}. One run conditioned on genre tags for "
             f"the whole budget ({budget}) against one run per genre for its share of it (by size). Held-out "
             "text: each genre's own last 10%, the same for every run.", "",
             f"| held-out genre | conditioned ({cond['steps']} steps, {cond['minutes']} min) | separate model "
             f"(steps, min) | conditioned - separate |", "|---|---|---|---|"]
    for g in genres:
        c, s = cond["held_out"][g]["loss"], sep[g]["held_out"][g]["loss"]
        lines.append(f"| {g} | {c:.4f} {unit} | {s:.4f} ({sep[g]['steps']}, {sep[g]['minutes']}) | {c - s:+.4f} |")
    c, s = result["weighted"]["conditioned"], result["weighted"]["separate"]
    tags, k = sum(result["held_out_tags"].values()), len(genres)
    tokens = sum(cond["held_out"][g]["tokens"] for g in genres)
    lines += [f"| all, weighted by held-out tokens | {c:.4f} | {s:.4f} | {c - s:+.4f} |", "",
              f"Both sides score every position, tags included. The held-out ends hold {tags} tags in {tokens:,} "
              f"tokens; guessing which of {k} tags comes next costs a conditioned model about ln {k} nats each "
              f"(a separate model nothing), about {tags * math.log(k) / tokens:.5f} {unit} of the difference.", "",
              "The conditioned model on each genre's held-out end, read after each genre's tag "
              "(the diagonal is its own tag):", "", "| held-out genre | " + " | ".join(f"{g} tag" for g in genres)
              + " |", "|---|" + "---|" * len(genres)]
    for g in genres:
        lines.append(f"| {g} | " + " | ".join(f"{result['tag_swaps'][g][t]:.4f}" for t in genres) + " |")
    lines += ["", "Samples from the conditioned model (`--style GENRE --lines 6 --seed 1`):", ""]
    for g in genres:
        lines += [f"{g}:", "", "```", result["samples"][g].rstrip(), "```", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.time()
    part = shares(args.genres)
    conditioned = train(args, args.genres, 1.0, "conditioned")
    separate = {g: train(args, [g], part[g], f"only-{g}") for g in args.genres}
    tokens = {g: conditioned["held_out"][g]["tokens"] for g in args.genres}
    weighted = {name: sum(losses[g] * tokens[g] for g in args.genres) / sum(tokens.values()) for name, losses in (
        ("conditioned", {g: conditioned["held_out"][g]["loss"] for g in args.genres}),
        ("separate", {g: separate[g]["held_out"][g]["loss"] for g in args.genres}))}
    result = {
        "date": date.today().isoformat(), "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                   f"torch {torch.__version__}, cuda {torch.cuda.is_available()}",
        "genres": args.genres, "shares": part,
        "budget": f"{args.steps} steps" if args.steps else f"{args.minutes:g} minutes",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "settings_text": f"{args.level} level, LSTM {args.layers}x{args.hidden_size}",
        "conditioned": conditioned, "separate": separate, "weighted": weighted,
        "samples": samples(args.runs / "conditioned", args.genres),
        **dict(zip(("tag_swaps", "held_out_tags"), tag_swaps(args, args.runs / "conditioned", args.genres))),
        "wall_minutes": round((time.time() - started) / 60, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "style_conditioning.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    (args.out / "style_conditioning.md").write_text(markdown(result) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
