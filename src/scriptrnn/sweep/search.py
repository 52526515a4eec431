"""An Optuna study: TPE proposes settings, a median pruner stops runs already behind.

Each trial is an ordinary run of the sweep (same folders, same skip-or-resume rules).
Optuna's own state is not stored: the study keeps a ledger of the settings it asked
for (OUT/optuna/<study>.json), and a restarted sweep rebuilds the study from it: runs
that ended go back in as finished or pruned trials with their validation curves, and
the interrupted one is asked for again and resumes from its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..model.checkpoint import RESUME_FILE, read_json, write_json
from ..errors import ScriptRNNError
from ..training.reporting import read_metrics
from .config import Study, format_value


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ScriptRNNError("a kind = \"optuna\" study needs Optuna: pip install 'scriptrnn[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def run_optuna(sweep, study: Study, baseline) -> None:
    """Run the study's trials through ``sweep`` (a runner.Sweep) until ``study.trials`` have ended."""
    optuna = _optuna()
    distributions = {name: _distribution(optuna, spec) for name, spec in study.space.items()}
    search = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(
        seed=study.seed, n_startup_trials=study.startup_trials), pruner=_pruner(optuna, study))
    ledger_path = sweep.out / "optuna" / f"{study.name}.json"
    key = _ledger_key(sweep, study)
    ledger = _read_ledger(ledger_path, key)
    waiting = []  # ledger positions of trials that never ended: the interrupted one
    for number, params in enumerate(ledger):
        planned = sweep.plan({**sweep.config.baseline, **params})
        outcome = sweep.finished_outcome(planned)
        if outcome is None:
            waiting.append(number)
            continue
        if outcome["status"] != "failed":  # a failed trial teaches TPE nothing
            search.add_trial(_ended_trial(optuna, params, distributions, outcome, sweep.run_dir(planned)))
        _record(sweep, study, planned, number, params)
    if len(ledger) > len(waiting):
        sweep.say(f"sweep: {study.name}: {len(ledger) - len(waiting)} trial(s) done earlier, skipped")
    for _ in range(study.trials - (len(ledger) - len(waiting))):
        if waiting:
            number = waiting.pop(0)
            search.enqueue_trial(ledger[number])  # the same settings: the same folder, which resumes
            trial = search.ask(distributions)
        else:
            trial = search.ask(distributions)
            number = len(ledger)
            ledger.append(trial.params)
            write_json(ledger_path, {"key": key, "trials": ledger})  # before training: a restart must find it
        _run_trial(sweep, study, search, trial, number)


def _run_trial(sweep, study: Study, search, trial, number: int) -> None:
    optuna = _optuna()
    planned = sweep.plan({**sweep.config.baseline, **trial.params})
    run_dir = sweep.run_dir(planned)
    if (run_dir / RESUME_FILE).is_file():  # resuming: the pruner needs the checks made before the kill
        done = _checkpoint_step(run_dir)
        for step, loss in _validation_curve(run_dir).items():
            if step <= done:
                trial.report(loss, step)
    outcome = sweep.run_one(planned, f"{study.name}: trial {number + 1}", callbacks=[_Pruning(trial)])
    if outcome["status"] == "finished":
        search.tell(trial, outcome["held_out_loss"])
    else:
        state = optuna.trial.TrialState.PRUNED if outcome["status"] == "pruned" else optuna.trial.TrialState.FAIL
        search.tell(trial, state=state)
    _record(sweep, study, planned, number, trial.params)


def _record(sweep, study: Study, planned, number: int, params: dict) -> None:
    value = ", ".join(format_value(params[k]) for k in study.space)
    sweep.record(study, planned, ", ".join(study.space), value, f"trial {number + 1}")


class _Pruning:
    """Trainer callback: report each validation check to the trial; end the run when Optuna says prune."""

    def __init__(self, trial):
        self.trial = trial

    def __call__(self, event: str, trainer) -> None:
        if event != "on_eval":
            return
        step, loss = trainer.state.step, trainer.last_val_loss
        self.trial.report(loss, step)
        # A run at its budget's end has nothing left to save: it finished, whatever its rank.
        if trainer.progress() < 1 and self.trial.should_prune():
            trainer.finish_requested = (f"pruned: validation loss {loss:.4f} at step {step} was behind the "
                                        "median of earlier trials")


def _distribution(optuna, spec):
    d = optuna.distributions
    if isinstance(spec, list):
        return d.CategoricalDistribution(spec)
    if spec["int"]:
        return d.IntDistribution(spec["low"], spec["high"], log=spec["log"], step=int(spec["step"] or 1))
    return d.FloatDistribution(spec["low"], spec["high"], log=spec["log"], step=spec["step"])


def _pruner(optuna, study: Study):
    if study.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=study.startup_trials, n_warmup_steps=study.warmup_steps)


def _ended_trial(optuna, params, distributions, outcome: dict, run_dir: Path):
    finished = outcome["status"] == "finished"
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE if finished else optuna.trial.TrialState.PRUNED,
        value=outcome["held_out_loss"] if finished else None, params=params, distributions=distributions,
        intermediate_values=_validation_curve(run_dir))


def _validation_curve(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["val_loss"] for r in read_metrics(run_dir) if "val_loss" in r}


def _checkpoint_step(run_dir: Path) -> int:
    from safetensors import safe_open

    try:
        with safe_open(str(run_dir / RESUME_FILE), "pt") as f:
            return int(json.loads(f.metadata()["loop"])["step"])
    except Exception:  # a damaged resume point: the resume itself will say so; report nothing old
        return -1


def _ledger_key(sweep, study: Study) -> str:
    """What the trials were drawn for: a different baseline, space or corpus starts a new ledger."""
    what = {"baseline": sweep.config.baseline, "space": study.space, "corpus": sweep.fingerprint}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def _read_ledger(path: Path, key: str) -> list[dict]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        return []
    ledger = read_json(path, "the Optuna study's trials")
    trials = ledger.get("trials")
    if ledger.get("key") != key or not isinstance(trials, list) or not all(isinstance(t, dict) for t in trials):
        return []  # another configuration's trials; their runs stay in runs/ and are reused if asked again
    return trials
