"""The race's results: OUT.json saved per cell, the tables (OUT.md), the picture (OUT.png), and the time
scriptrnn takes to reach the transformer's loss.
"""

from __future__ import annotations

from pathlib import Path

from . import common
from scriptrnn.training.config import level_defaults

# scriptrnn with each --size mode (the column of the default's is marked); "scriptrnn" on the command
# line means the default's. Cells made when the method was "scriptrnn" (--size fixed the default
# then) are read as scriptrnn-fixed.
SCRIPTRNN = {"scriptrnn-auto": "auto", "scriptrnn-fixed": "fixed"}
METHODS = (*SCRIPTRNN, "transformer", "course")
DEFAULT_SCRIPTRNN = f"scriptrnn-{level_defaults('char')['size']}"
COURSE_PRECISION = "fp32"  # the course method has no bfloat16


class Store(common.JsonStore):
    """OUT.json — the race's text and every finished cell — rewritten whole (atomically) after each cell."""

    def __init__(self, out: Path, split):
        super().__init__(out.parent / (out.name + ".json"), {"text": split.facts(), "cells": {}})
        self.out = out
        self.data["cells"] = {self.key(c["method"], c["precision"], c["minutes"]): c
                              for c in map(_renamed, self.data["cells"].values())}
        if self.data["text"]["sha256"] != split.sha256:
            raise SystemExit(f"{self.path} holds a race on another text ({self.data['text']['path']}); "
                             "give another --out")

    @staticmethod
    def key(method: str, precision: str, minutes: float) -> str:
        return f"{method}|{precision}|{minutes:g}"

    def get(self, method: str, precision: str, minutes: float) -> dict | None:
        return self.data["cells"].get(self.key(method, precision, minutes))

    def put(self, record: dict, reach_budget: float) -> None:
        self.data["cells"][self.key(record["method"], record["precision"], record["minutes"])] = record
        self.data["reach_budget"] = reach_budget
        self.save()
        write_report(self.data, self.out)


def _renamed(cell: dict) -> dict:
    if cell["method"] != "scriptrnn":
        return cell
    return {**cell, "method": "scriptrnn-fixed", "renamed_from": "scriptrnn (run when --size fixed was the default)"}


def write_report(data: dict, out: Path) -> str:
    md = markdown(data)
    (out.parent / (out.name + ".md")).write_text(md + "\n")
    plot(data, out.parent / (out.name + ".png"))
    return md


def _precisions(cells: dict) -> list[str]:
    found = {c["precision"] for c in cells.values() if c["method"] != "course"} or {COURSE_PRECISION}
    return [p for p in ("auto", "bf16", "fp32") if p in found]


def _cell(cells: dict, method: str, precision: str, minutes: float) -> dict | None:
    return cells.get(Store.key(method, COURSE_PRECISION if method == "course" else precision, minutes))


def reach(cells: dict, precision: str, budget: float) -> dict | None:
    """Earliest validation check of any scriptrnn run at ``precision`` at or below the transformer's loss."""
    target = _cell(cells, "transformer", precision, budget)
    if target is None:
        return None
    hits = [(p["minutes"], p["loss"], c["minutes"], p["step"]) for c in cells.values()
            if c["method"] == DEFAULT_SCRIPTRNN and c["precision"] == precision
            for p in c["curve"] if p["loss"] <= target["loss"]]
    first = min(hits) if hits else None
    return {"transformer_loss": target["loss"], "budget": budget,
            "minutes": first[0] if first else None, "loss": first[1] if first else None,
            "run_minutes": first[2] if first else None, "step": first[3] if first else None}


def markdown(data: dict) -> str:
    cells, t, budget = data["cells"], data["text"], data.get("reach_budget", 5)
    strides = sorted({c["eval_stride"] for c in cells.values() if "eval_stride" in c}) or [8]
    minutes = sorted({c["minutes"] for c in cells.values()})
    machines = sorted({_machine_line(c["machine"]) for c in cells.values()})
    parts = [f"Text: `{t['path']}`, {t['characters']:,} characters, vocabulary {t['vocab_size']}: the first "
             f"{t['train_chars']:,} trained on, the last {t['held_out_chars']:,} held out and every position of "
             "them scored (recurrent models: one stream, state carried; transformer: a 64-character window "
             f"sliding by {'/'.join(map(str, strides))}). Held-out loss in nats/char (bits/char). "
             f"Machine: {'; '.join(machines)}."]
    methods = [m for m in METHODS if any(c["method"] == m for c in cells.values())]
    for precision in _precisions(cells):
        rows = []
        for m in minutes:
            row = [f"{m:g}"]
            for method in methods:
                c = _cell(cells, method, precision, m)
                shape = f", {c['model']['num_layers']}x{c['model']['hidden_size']}" if c and method in SCRIPTRNN else ""
                steps = f"{c['steps']:,}{shape}" if c else ""
                row += [f"{c['loss']:.3f} ({c['bits_per_char']:.3f})", steps] if c else ["pending", ""]
            rows.append(row)
        names = {DEFAULT_SCRIPTRNN: f"{DEFAULT_SCRIPTRNN} (the default)", "course": "course method (fp32)"}
        header = ["minutes"] + [x for m in methods for x in (names.get(m, m), "steps")]
        parts += [f"### `--precision {precision}`", common.table(header, rows), _reach_line(cells, precision, budget)]
    return "\n\n".join(parts)


def _machine_line(m: dict) -> str:
    flags = ", ".join(m["flags"]) or "no avx512/amx flags"
    gpu = f"{m['gpu']} with " if m.get("gpu") else ""
    return f"{gpu}{m['cpu']} ({flags}), {m['threads']} threads, torch {m['torch']}"


def _reach_line(cells: dict, precision: str, budget: float) -> str:
    r = reach(cells, precision, budget)
    if r is None:
        return f"scriptrnn's time to reach the transformer's {budget:g}-minute loss: pending."
    if r["minutes"] is None:
        return (f"No {DEFAULT_SCRIPTRNN} run at `--precision {precision}` reached the transformer's {budget:g}-minute loss "
                f"({r['transformer_loss']:.3f}) at any of its validation checks.")
    return (f"{DEFAULT_SCRIPTRNN} (the default) reached the transformer's {budget:g}-minute loss ({r['transformer_loss']:.3f}) after "
            f"**{r['minutes']:.2f} minutes** ({r['loss']:.3f} at step {r['step']} of its {r['run_minutes']:g}-minute "
            "run, from its own validation checks).")


def plot(data: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return  # the JSON and the table are the results; the picture is a convenience
    cells, precisions = data["cells"], _precisions(data["cells"])
    fig, axes = plt.subplots(1, len(precisions), figsize=(6.5 * len(precisions), 4.5), squeeze=False, sharey=True)
    for ax, precision in zip(axes[0], precisions):
        for c in cells.values():  # scriptrnn's validation checks along each run
            if c["method"] == DEFAULT_SCRIPTRNN and c["precision"] == precision and c["curve"]:
                ax.plot([p["minutes"] for p in c["curve"]], [p["loss"] for p in c["curve"]], color="C0", alpha=0.3)
        styles = ((DEFAULT_SCRIPTRNN, "o-"), ("transformer", "s-"), ("course", "^--"),
                  (next(m for m in SCRIPTRNN if m != DEFAULT_SCRIPTRNN), "o:"))
        for i, (method, style) in enumerate(styles):
            points = sorted((m, c["loss"]) for m in {c["minutes"] for c in cells.values()}
                            if (c := _cell(cells, method, precision, m)))
            if points:
                ax.plot(*zip(*points), style, color=f"C{i}", label=f"{method}, end of each budget")
        if (r := reach(cells, precision, data.get("reach_budget", 5))) is not None:
            ax.axhline(r["transformer_loss"], ls=":", color="C1", alpha=0.7,
                       label=f"transformer after {r['budget']:g} min")
        ax.set(xlabel="wall-clock minutes of training", title=f"--precision {precision}")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel("held-out loss (nats/char)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
