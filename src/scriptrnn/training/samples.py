"""Watching a run learn: a short sample at each validation check, shown and kept in samples.jsonl.

textgenrnn printed samples at several temperatures while it trained; a loss figure alone does
not say whether the model writes speeches yet. At every ``--sample-every``-th check rank 0
writes about 200 characters at temperatures 0.5 and 1.0 from a fixed seed (the run's), so one
check's text differs from the last only by what the model learned. The sample runs through the
same token loop as ``scriptrnn generate`` (generate.generation), which draws from its own
seeded generator: training's random state is never touched, and the model goes back to
training mode afterwards. Its time is counted in the run's wall clock like validation's
(``--time-budget`` includes it; each record says how many seconds it took), since under
torchrun the other processes wait for it anyway.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..generate.generation import advance
from ..generate.sampling import SamplingConfig
from ..generate.script_model import ScriptModel
from ..files import write_atomic
from .reporting import read_step_records

SAMPLES_FILE = "samples.jsonl"
SAMPLE_TEMPERATURES = (0.5, 1.0)  # conservative and wild: the two ends a reader compares
SAMPLE_TOKENS = {"char": 200, "word": 40, "subword": 60}  # about 200 characters at every level


class RunSamples:
    """The Trainer's ``sampler``: called at each validation check on rank 0, returns the records written."""

    def __init__(self, out_dir: Path, tokenizer, run_config, *, every: int, seed: int, start_step: int):
        self.path = Path(out_dir) / SAMPLES_FILE
        self.tokenizer, self.run_config = tokenizer, run_config
        self.every, self.seed = every, seed
        self._keep_until(start_step)

    def _keep_until(self, step: int) -> None:
        """A new run starts a new file; a resumed one keeps what came up to its checkpoint (a killed
        run's later samples are written again as it catches up), and a torn last line is dropped."""
        if not self.path.exists():
            return
        if step == 0:
            self.path.unlink()
            return
        kept = [r for r in read_samples(self.path.parent) if r["step"] <= step]
        write_atomic(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept).encode("utf-8"))

    def __call__(self, trainer) -> list[dict]:
        # Checks are numbered by step (the final one, between two, counts as the next), so a resumed
        # run keeps the same rhythm: checks 1, 1 + N, 1 + 2N, ...
        check = -(-trainer.state.step // trainer.config.eval_every)
        if (check - 1) % self.every:
            return []
        started = time.perf_counter()
        texts = write_samples(trainer.model, self.tokenizer, self.run_config, trainer.device, self.seed)
        took = round(time.perf_counter() - started, 3)
        records = [{"step": trainer.state.step, "elapsed_s": round(trainer.state.elapsed_s, 1),
                    "temperature": t, "text": text, "seconds": took} for t, text in zip(SAMPLE_TEMPERATURES, texts)]
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        return records


def write_samples(model, tokenizer, run_config, device, seed: int) -> list[str]:
    """One text per temperature, written together (one forward pass per token for both).

    The model is put in eval mode for it (no dropout) and back in the mode it was in; PyTorch's
    random state is forked so that even a future sampler that used it could not move training's.
    """
    was_training = model.training
    forked = [device] if torch.device(device).type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=forked):
            writer = ScriptModel(model, tokenizer, run_config, device=device)  # puts the model in eval mode
            length = SAMPLE_TOKENS[tokenizer.level]
            generations = [writer.start("", SamplingConfig(max_new_tokens=length, temperature=t, seed=seed))
                           for t in SAMPLE_TEMPERATURES]
            while not all(g.done for g in generations):
                advance([g for g in generations if not g.done])
            return [g.texts[0] for g in generations]
    finally:
        model.train(was_training)


def read_samples(run_dir: Path) -> list[dict]:
    """A run's samples.jsonl records, oldest first (a line a kill cut short is skipped)."""
    path = Path(run_dir) / SAMPLES_FILE
    return read_step_records(path) if path.exists() else []


def last_sample(run_dir: Path, temperature: float = SAMPLE_TEMPERATURES[0]) -> str | None:
    """The latest sample a run wrote at ``temperature`` (the model card shows it), None before the first."""
    texts = [r["text"] for r in read_samples(run_dir) if r.get("temperature") == temperature]
    return texts[-1] if texts else None


def format_samples(records: list[dict]) -> str:
    """What the terminal shows under the progress bar: each temperature's text, indented."""
    lines = []
    for r in records:
        lines.append(f"  sample at step {r['step']}, temperature {r['temperature']:g}:")
        lines.extend(f"    {line}" for line in r["text"].strip("\n").split("\n"))
    return "\n".join(lines)
