"""Hyperparameter studies in one command: ``scriptrnn sweep STUDY.toml``.

    config.py   the TOML file and --set/--vary/--grid: baseline, budget, studies, all checked up front
    runner.py   each run an ordinary training run in OUT/runs/<name>/; finished ones skipped, the
                interrupted one resumed
    search.py   the runs as trials in Optuna's storage (SQLite in OUT, or --storage URL), which any
                number of workers share; Optuna studies: TPE sampler, median pruner
    workers.py  --workers N: worker processes on this machine, one per GPU or a share of the cores
    storage.py  the Optuna storage: opened, dead workers' trials retried
    usage.py    peak memory, GPU utilisation and GPU memory of one run
    report.py   results.csv, results.json, report.md with a conclusion per parameter, plots/

"""

from __future__ import annotations

from pathlib import Path

from .config import Study, SweepConfig, build_config, command_line_config, read_toml
from .runner import Sweep, SweepInterrupted

__all__ = ["Study", "Sweep", "SweepConfig", "SweepInterrupted", "build_config", "command_line_config",
           "read_toml", "run_sweep"]

DEFAULT_OUT = Path("runs/sweep")


def run_sweep(config: str | Path | dict | SweepConfig, out: str | Path | None = None, *, progress: bool = True,
              tensorboard: str | Path | None = None, storage: str | None = None, workers: int = 1) -> list[dict]:
    """Run a sweep from a TOML file, a dict of the same shape, or a SweepConfig; the result rows.

    ``out`` defaults to the file's ``[sweep] out``, else runs/sweep. ``storage`` is an Optuna storage
    URL (default: OUT/sweep.db); ``workers`` the runs trained at once by this machine.
    """
    if not isinstance(config, SweepConfig):
        if isinstance(config, dict):
            config = build_config(config)
        else:
            config = build_config(read_toml(Path(config)), Path(config).parent)
    out = Path(out) if out is not None else config.out or DEFAULT_OUT
    sweep = Sweep(config, out, progress=progress, tensorboard=Path(tensorboard) if tensorboard else None,
                  storage=storage, workers=workers)
    return sweep.run()
