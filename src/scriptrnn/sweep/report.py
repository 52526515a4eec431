"""A sweep's results: results.csv and results.json (one row per run of each study), report.md
with one conclusion per parameter, and plots/ (validation curves overlaid, loss against time)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from ..files import write_atomic
from ..training.reporting import read_metrics
from ..training.config import TrainConfig
from ..evaluation.text_report import column_names
from .config import default_settings, format_value

COLUMNS = ["study", "kind", "parameter", "value", "label", "run", "status", "held_out_loss", "perplexity",
           "bits_per_char", "final_train_loss", "steps", "wall_clock_s", "tokens_per_s", "peak_rss_mib",
           "peak_rss_scope", "gpu_util_percent", "gpu_memory_mib", "device", "resumed", "stopped_because", "message"]
# With `scriptrnn sweep --samples N`: the samples' text report (text_report.TextReport.columns()).
TEXT_COLUMNS = column_names()
NOT_AVAILABLE = "n/a"  # what the CSV and the report show for a figure that does not apply (GPU use on a CPU)
PLOTS_DIR = "plots"


# ---------------------------------------------------------------- tables


def write_tables(out: Path, rows: list[dict], meta: dict) -> None:
    """results.csv (flat, "n/a" where a figure does not apply) and results.json (null there)."""
    text = io.StringIO()
    columns = COLUMNS + (TEXT_COLUMNS if _has_text(rows) else [])
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: NOT_AVAILABLE if row.get(k) is None else row[k] for k in columns})
    write_atomic(Path(out) / "results.csv", text.getvalue().encode("utf-8"))
    document = {"sweep": meta, "runs": rows}
    write_atomic(Path(out) / "results.json", (json.dumps(document, indent=2) + "\n").encode("utf-8"))


def write_report(out: Path, rows: list[dict], meta: dict, plots: bool = True) -> Path:
    """report.md: how it was made, a conclusion per parameter, each study's plots and table."""
    out = Path(out)
    studies = list(dict.fromkeys(row["study"] for row in rows))
    lines = ["# Sweep results", "", *_header(meta), "", "## Conclusions", ""]
    lines += [f"- {line}" for line in all_conclusions(rows, meta["baseline"])]
    for study in studies:
        study_rows = _of(rows, study)
        lines += ["", f"## Study `{study}` ({study_rows[0]['kind'].replace('_', ' ')})", ""]
        if plots:
            for kind, title in plot_study(out, study, study_rows):
                lines += [f"![{title}]({PLOTS_DIR}/{kind})", ""]
        lines += _table(study_rows)
    lines += ["", *_method_notes()]
    path = out / "report.md"
    write_atomic(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def _of(rows: list[dict], study: str) -> list[dict]:
    return [row for row in rows if row["study"] == study]


def _header(meta: dict) -> list[str]:
    baseline, defaults = meta["baseline"], default_settings(meta["baseline"].get("level", TrainConfig.level))
    own = {k: v for k, v in baseline.items() if k not in defaults or repr(defaults[k]) != repr(v)}
    limits = [f"{k} = {format_value(v)}{' (minutes)' if k == 'time_budget' else ''}"
              for k in ("time_budget", "epochs", "max_steps") if (v := baseline.get(k)) is not None]
    until = " or ".join(limits) + (", whichever comes first" if len(limits) > 1 else "")
    return [
        f"Made with `{meta.get('command') or 'scriptrnn sweep'}` (scriptrnn {meta.get('scriptrnn', '?')}) on "
        f"{meta.get('machine', 'this machine')}.",
        f"Corpus: {meta.get('corpus', '?')} ({meta.get('corpus_characters', 0):,} characters). "
        f"Every run trains until {until}, with seed {baseline.get('seed')}.",
        "Baseline: " + (", ".join(f"`{k} = {format_value(v)}`" for k, v in own.items()
                                   if k not in ("time_budget", "epochs", "max_steps")) or "scriptrnn's defaults")
        + "; everything else as `scriptrnn train` does by default.",
    ]


_TABLE = [("parameter", "parameter", None), ("value", "value", None), ("held-out loss", "held_out_loss", ".4f"),
          ("final train loss", "final_train_loss", ".4f"), ("wall-clock (s)", "wall_clock_s", ".1f"),
          ("tokens/s", "tokens_per_s", ",.0f"), ("peak RSS (MiB)", "peak_rss_mib", ",.0f"),
          ("GPU util (%)", "gpu_util_percent", ".0f"), ("GPU memory (MiB)", "gpu_memory_mib", ",.0f"),
          ("steps", "steps", None), ("status", "status", None)]


# The text report's figures a study's table shows (all of them are in results.csv and results.json).
_TEXT_TABLE = [("known speakers", "text_known_speakers", ".1%"), ("real words", "text_real_words", ".1%"),
               ("distinct-2", "text_distinct_2", ".3f"), ("copied spans", "text_copied_share", ".1%"),
               ("longest copy (chars)", "text_longest_copy_chars", ",d")]


def _has_text(rows: list[dict]) -> bool:
    return any(row.get("text_characters") is not None for row in rows)


def _table(rows: list[dict]) -> list[str]:
    table = _TABLE[:-2] + _TEXT_TABLE + _TABLE[-2:] if _has_text(rows) else _TABLE
    lines = ["| " + " | ".join(title for title, _, _ in table) + " |", "|" + "---|" * len(table)]
    for row in rows:
        cells = []
        for _, key, spec in table:
            value = row.get(key)
            cells.append(NOT_AVAILABLE if value is None else format(value, spec) if spec else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _method_notes() -> list[str]:
    return [
        "How each figure is measured:",
        "",
        "- **held-out loss**: the run's best weights scored on the whole held-out end of the corpus (nats per token).",
        "- **final train loss**: the mean training loss over the run's last logged steps (up to 10).",
        "- **wall-clock**: the training loop's time, validation checks included, summed over sessions if the run "
        "was resumed; **tokens/s** is the training tokens divided by it.",
        "- **peak RSS**: the process's peak resident memory during the run (Linux VmHWM, reset when the run "
        "starts), PyTorch's tensors included.",
        "- **GPU util / GPU memory**: the mean of NVML's utilisation readings every 0.5 s, and the most memory "
        "PyTorch's allocator held; n/a on a CPU.",
        "- **known speakers, real words, distinct-2, copied spans, longest copy** (with `--samples N`): the text "
        "report of N samples written after training (`scriptrnn evaluate RUN --samples N` shows it in full): "
        "speeches whose speaker the corpus knows, words of the corpus (char and subword level), unique word pairs, "
        "40-character (word level: 8-word) spans found verbatim in the training text, and the longest such span.",
    ]


# ---------------------------------------------------------------- conclusions


def _ok(row: dict | None) -> bool:
    return bool(row) and row.get("status") == "finished" and row.get("held_out_loss") is not None


def all_conclusions(rows: list[dict], baseline: dict) -> list[str]:
    studies = list(dict.fromkeys(row["study"] for row in rows))
    return [line for study in studies for line in conclusions(_of(rows, study), baseline)]


def conclusions(rows: list[dict], baseline: dict) -> list[str]:
    """One line per parameter of a one-at-a-time study; one line for a grid or an Optuna search."""
    base = next((r for r in rows if r["parameter"] == "baseline"), None)
    base = base if _ok(base) else None
    if rows[0]["kind"] != "one_at_a_time":
        return [_best_of_study(rows, base)]
    parameters = list(dict.fromkeys(r["parameter"] for r in rows if r["parameter"] != "baseline"))
    return [_best_value(p, [r for r in rows if r["parameter"] == p], base, baseline) for p in parameters]


def _best_value(parameter: str, tried: list[dict], base: dict | None, baseline: dict) -> str:
    # A value equal to the baseline's is the baseline's own run: nothing to compare it with.
    finished = [r for r in tried if _ok(r) and not (base and r.get("run") and r["run"] == base.get("run"))]
    failed = [r["value"] for r in tried if not _ok(r)]
    note = f" ({', '.join(failed)} did not finish)" if failed else ""
    own = format_value(baseline.get(parameter))
    if not finished and not base:
        return f"**{parameter}**: no run finished{note}."
    if not base:
        best = min(finished, key=lambda r: r["held_out_loss"])
        return (f"**{parameter}**: {best['value']} is best (held-out {best['held_out_loss']:.3f}); the baseline "
                f"did not finish, so there is no gain to report{note}.")
    if not finished or base["held_out_loss"] <= min(r["held_out_loss"] for r in finished):
        runner_up = min(finished, key=lambda r: r["held_out_loss"]) if finished else None
        rest = (f"; the next best, {runner_up['value']}, is {runner_up['held_out_loss'] - base['held_out_loss']:.3f} "
                f"nats worse in {_time_ratio(runner_up, base)} the time" if runner_up else "")
        return f"**{parameter}**: the baseline's {own} stays best (held-out {base['held_out_loss']:.3f}){rest}{note}."
    best = min(finished, key=lambda r: r["held_out_loss"])
    return (f"**{parameter}**: {best['value']} beats the baseline's {own}: held-out {best['held_out_loss']:.3f} vs "
            f"{base['held_out_loss']:.3f} ({base['held_out_loss'] - best['held_out_loss']:.3f} nats better), in "
            f"{_time_ratio(best, base)} the baseline's time ({_seconds(best)} vs {_seconds(base)}){note}.")


def _best_of_study(rows: list[dict], base: dict | None) -> str:
    study, kind = rows[0]["study"], rows[0]["kind"]
    tried = [r for r in rows if r["parameter"] != "baseline"]
    finished = [r for r in tried if _ok(r)]
    counts = {s: sum(r.get("status") == s for r in tried) for s in ("pruned", "failed")}
    what = f"{len(finished)} finished {'trials' if kind == 'optuna' else 'runs'}" + "".join(
        f", {n} {s}" for s, n in counts.items() if n)
    params = tried[0]["parameter"] if tried else ""
    head = f"**{study}** ({kind.replace('_', ' ')} over {params}; {what})"
    if not finished:
        return f"{head}: no run finished."
    best = min(finished, key=lambda r: r["held_out_loss"])
    line = f"{head}: best {_settings_text(best)}, held-out {best['held_out_loss']:.3f}"
    if not base:
        return line + "; the baseline did not finish, so there is no gain to report."
    gain = base["held_out_loss"] - best["held_out_loss"]
    verdict = f"{gain:.3f} nats better than" if gain > 0 else f"{-gain:.3f} nats worse than"
    return (f"{line}, {verdict} the baseline's {base['held_out_loss']:.3f}, in {_time_ratio(best, base)} its time "
            f"({_seconds(best)} vs {_seconds(base)}).")


def _settings_text(row: dict) -> str:
    return ", ".join(f"{k} = {format_value(v)}" for k, v in row.get("changed", {}).items()) or "(the baseline)"


def _seconds(row: dict) -> str:
    seconds = row["wall_clock_s"]
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def _time_ratio(row: dict, base: dict) -> str:
    if not base.get("wall_clock_s"):
        return "? x"
    return f"{row['wall_clock_s'] / base['wall_clock_s']:.2f}x"


# ---------------------------------------------------------------- plots


def plot_study(out: Path, study: str, rows: list[dict]) -> list[tuple[str, str]]:
    """The study's two PNGs under out/plots/; (file name, title) of each."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and none is assumed
    runs = [(row["label"], read_metrics(Path(out) / "runs" / row["run"])) for row in rows if row.get("run")]
    (Path(out) / PLOTS_DIR).mkdir(parents=True, exist_ok=True)
    made = []
    for suffix, title, draw in (("validation", "Validation loss of every run", _validation_curves),
                                ("loss-vs-time", "Loss against wall-clock time, per run", _loss_against_time)):
        figure = draw(runs, f"{study}: {title.lower()}")
        name = f"{study}-{suffix}.png"
        _save(figure, Path(out) / PLOTS_DIR / name)
        made.append((name, title))
    return made


def _validation_curves(runs, title):
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for label, records in runs:
        points = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
        if points:
            style = {"color": "black", "linestyle": "--", "linewidth": 2} if label == "baseline" else {}
            ax.plot(*zip(*points), marker="o", markersize=3, label=label, **style)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small", ncol=2 if len(ax.lines) > 8 else 1)
    return figure


def _loss_against_time(runs, title):
    import matplotlib.pyplot as plt

    columns = min(4, max(1, len(runs)))
    lines = math.ceil(len(runs) / columns) or 1
    figure, axes = plt.subplots(lines, columns, figsize=(3.4 * columns, 2.6 * lines + 0.6), dpi=100,
                                sharey=True, squeeze=False)
    longest = max((r.get("elapsed_s", 0) for _, records in runs for r in records), default=0)
    unit, scale = ("minutes", 60) if longest > 180 else ("seconds", 1)
    for ax, (label, records) in zip(axes.flat, runs):
        train = [(r["elapsed_s"] / scale, r["train_loss"]) for r in records if "train_loss" in r and "elapsed_s" in r]
        val = [(r["elapsed_s"] / scale, r["val_loss"]) for r in records if "val_loss" in r and "elapsed_s" in r]
        if train:
            ax.plot(*zip(*train), linewidth=1, alpha=0.8, label="train")
        if val:
            ax.plot(*zip(*val), marker="o", markersize=3, label="validation")
        ax.set_title(label, fontsize="small")
        ax.set_xlabel(unit, fontsize="small")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(runs):]:
        ax.set_visible(False)
    axes.flat[0].set_ylabel("loss (nats per token)", fontsize="small")
    if axes.flat[0].lines:
        axes.flat[0].legend(fontsize="x-small")
    figure.suptitle(title)
    return figure


def _save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png")
    plt.close(figure)
    write_atomic(path, image.getvalue())
