"""What a training run shows and leaves behind: progress bar, metrics log, loss curve, TensorBoard events."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

from ..files import write_atomic
from ..errors import ScriptRNNError

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "loss_curve.png"


def _tqdm():
    """tqdm's notebook bar (a widget) inside a Jupyter kernel that can draw one, its terminal bar elsewhere.

    Without ipywidgets the notebook shows the terminal bar as text (tqdm.auto would warn instead).
    """
    if "ipykernel" in sys.modules:  # never import IPython just to ask
        try:
            import ipywidgets  # noqa: F401
            from IPython import get_ipython
            from tqdm.notebook import tqdm

            if get_ipython() is not None and "IPKernelApp" in get_ipython().config:
                return tqdm
        except ImportError:
            pass
    from tqdm import tqdm

    return tqdm


class ProgressBar:
    """A bar over the run's progress (0..1) with loss, tokens/s and time left."""

    def __init__(self, enabled: bool = True, start: float = 0.0):
        self.bar = _tqdm()(
            total=1000,
            initial=int(start * 1000),
            disable=not enabled,
            file=sys.stderr,
            bar_format="{percentage:3.0f}%|{bar}|{postfix}",
            dynamic_ncols=True,
        )

    def update(self, progress: float, *, step: int, loss: float, tokens_per_s: float, eta_s: float | None) -> None:
        self.bar.n = min(1000, int(progress * 1000))
        left = "?" if eta_s is None or not math.isfinite(eta_s) else _clock(eta_s)
        self.bar.set_postfix_str(f"step {step} loss {loss:.3f} {tokens_per_s:,.0f} tok/s {left} left", refresh=False)
        self.bar.refresh()

    def write(self, line: str) -> None:
        self.bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class MetricsLog:
    """Metrics as JSON lines beside the checkpoint; kept in memory too, for the plot."""

    def __init__(self, out_dir: Path, resume: bool):
        self.path = Path(out_dir) / METRICS_FILE
        self.records: list[dict] = []
        if resume and self.path.exists():
            self.records = read_step_records(self.path)
        elif self.path.exists():
            self.path.unlink()

    def append(self, record: dict) -> None:
        self.records.append(record)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """On resume, forget what a killed run logged after its last checkpoint (and any torn last line)."""
        kept = [r for r in self.records if r["step"] <= step]
        if len(kept) != len(self.records) or self.path.exists() and not self.path.read_bytes().endswith(b"\n"):
            self.records = kept
            write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept).encode())


def read_metrics(run_dir: Path) -> list[dict]:
    """A run's metrics.jsonl records (none if it has no log yet)."""
    path = Path(run_dir) / METRICS_FILE
    return read_step_records(path) if path.exists() else []


class DiscardLog:
    """A MetricsLog that keeps nothing: what the ranks other than 0 of a multi-process run log to."""

    records: list[dict] = []

    def append(self, record: dict) -> None:
        pass

    def truncate_after(self, step: int) -> None:
        pass


def read_step_records(path: Path) -> list[dict]:
    """A JSON-lines file's records that carry a step (metrics.jsonl, samples.jsonl); a line a kill
    cut short (or any other unreadable one) is skipped."""
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def plot_loss_curve(records: list[dict], path: Path, title: str) -> None:
    """Train and validation loss against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and none is assumed
    import matplotlib.pyplot as plt

    train = [(r["step"], r["train_loss"]) for r in records if "train_loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train", linewidth=1, alpha=0.8)
    if val:
        ax.plot(*zip(*val), label="validation", marker="o", markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png")
    plt.close(fig)
    write_atomic(Path(path), image.getvalue())


class TensorBoardLogger:
    """A trainer callback that writes every metrics record as TensorBoard scalars (``--tensorboard DIR``),
    and each validation check's samples as text.

    Use it as a context manager so that the event file is flushed and closed however the run ends.
    """

    TAGS = {"train_loss": "train/loss", "lr": "train/lr", "tokens_per_s": "train/tokens_per_s",
            "val_loss": "validation/loss", "val_bits_per_char": "validation/bits_per_char"}

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ScriptRNNError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        self.log_dir = Path(log_dir)
        self._make_writer = SummaryWriter
        self.writer = None

    def __call__(self, event: str, trainer) -> None:
        if event == "on_samples" and self.writer is not None:  # a check's metrics always come first
            for sample in trainer.last_samples:
                # Indented: TensorBoard renders text as Markdown, and a code block keeps the lines.
                text = "\n".join("    " + line for line in sample["text"].split("\n"))
                self.writer.add_text(f"samples/temperature {sample['temperature']:g}", text, sample["step"])
            self.writer.flush()
        if event != "on_metrics":
            return
        record = trainer.last_metrics
        if self.writer is None:
            # purge_step hides what an earlier session logged from this step on: after a resume,
            # the steps a killed run logged past its checkpoint are trained (and logged) again.
            self.writer = self._make_writer(str(self.log_dir), purge_step=record["step"])
        for key, tag in self.TAGS.items():
            if key in record:
                self.writer.add_scalar(tag, record[key], record["step"])
        if "val_loss" in record:
            self.writer.flush()  # checks are rare; make each visible at once

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> "TensorBoardLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
