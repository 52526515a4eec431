"""The sweep's runs as trials in one Optuna storage, which every worker on every machine shares.

    the plan       one Optuna study holding every run of the baseline, one-at-a-time and grid
                   studies, each enqueued once as a waiting trial (user attribute "run")
    each search    one Optuna study per kind = "optuna" study: TPE proposes, a median pruner
                   stops runs behind the others

Claiming. A worker takes a waiting trial the way Optuna's optimize() does, by moving it from
WAITING to RUNNING in the storage; the move succeeds for one worker only (a row lock on
PostgreSQL; on SQLite every transaction takes the write lock first, see _serialize_sqlite).
The plan is enqueued by the one worker whose create_study() made it (the study name is unique
in the storage); the others wait until it says it is complete, and complete it themselves when
its writer died before saying so (a run enqueued twice then runs once). A search's trials are counted
by their numbers, which the storage hands out one by one: a trial numbered past the study's
budget is marked surplus and never trains.

Retrying. Each running trial beats a heartbeat into the storage. A trial whose worker died (a
kill, a power cut, a lost machine) goes silent; after the grace period any worker fails it and
Optuna's retry callback enqueues a copy, which the next free worker claims. A worker that finds
a trial of its own machine whose process is gone does the same at once, without waiting. Ctrl-C
saves the run's resume point and retries the trial the same way. A retried trial trains in the
same run folder (same settings, same name), so where that folder is reachable it resumes from
its resume point; a finished run's folder holds its result and is never trained again.

The storage is the single source of truth: each ended trial keeps the run's outcome as a user
attribute, and the results table is built from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from ..model.directory import RESUME_FILE
from ..training.reporting import read_metrics
from .config import Study, format_value, study_runs
from .storage import MAX_RETRY, _dead_here, _optuna, _process_gone, _retry_callback, _this_process

SURPLUS = "surplus"  # user attribute of a trial asked for past the study's budget, or with nothing to run
PLANNED = "planned"  # the plan study's user attribute: how many runs it holds, set once all are enqueued
CREATOR = "creator"  # the plan study's user attribute: the process writing it (host, pid)


class RunFailed(Exception):
    """The run's settings did not train (diverged, too big): the trial ends FAIL, its outcome kept."""


class Surplus(Exception):
    """A trial with nothing to run: past the study's budget, or asked for when the queue was empty."""


# ---------------------------------------------------------------- the sweep's studies


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


class SharedSweep:
    """The sweep's Optuna studies in one storage: claim and run trials, and read the table back."""

    def __init__(self, sweep, storage, *, worker: int = 0, workers: int = 1, seeded: bool = True):
        self.optuna = _optuna()
        self.sweep, self.storage = sweep, storage
        self.worker, self.workers = worker, workers
        self.seeded = seeded  # a lone worker on its own file: the searches draw reproducibly
        base = {"baseline": sweep.config.baseline, "corpus": sweep.fingerprint}
        self.runs = self._plan_runs()
        fixed = [(s.kind, s.vary) for s in sweep.config.studies if s.kind != "optuna"]
        self.plan_name = f"scriptrnn-{_key(base, fixed)}-plan"
        self.searches = {s.name: f"scriptrnn-{_key(base, _search_identity(s))}-{s.name}"
                         for s in sweep.config.studies if s.kind == "optuna"}
        self.retry = _retry_callback(self.optuna).popitem()[1]
        self.current: tuple | None = None  # (study, trial number) of the trial this process runs

    def _plan_runs(self) -> dict:
        """Run name -> (PlannedRun, label): the baseline, then every fixed study's runs, each once."""
        sweep = self.sweep
        runs = {}
        baseline = sweep.plan(sweep.config.baseline)
        runs[baseline.name] = (baseline, "baseline")
        for study in sweep.config.studies:
            if study.kind != "optuna":
                for run in study_runs(study, sweep.config.baseline):
                    planned = sweep.plan(run.settings)
                    runs.setdefault(planned.name, (planned, f"{study.name}: {run.label}"))
        return runs

    # ------------------------------------------------------------ creating and loading

    def prepare(self) -> None:
        """Create the plan and enqueue its runs (once, whichever worker comes first), else wait for it.

        The plan is complete once PLANNED, written last, says so. A worker killed while enqueuing
        leaves a plan without it; a later worker completes that plan (``_wait_for_plan``), and a
        run enqueued twice runs once (``_run_planned``), so a restart always continues.
        """
        optuna = self.optuna
        try:
            plan = optuna.create_study(storage=self.storage, study_name=self.plan_name, direction="minimize")
        except optuna.exceptions.DuplicatedStudyError:
            self._wait_for_plan()
            return
        plan.set_user_attr(CREATOR, _this_process())  # a worker here sees at once if the writer died
        self._complete_plan(plan)

    def _complete_plan(self, plan) -> None:
        """Enqueue the runs the plan lacks (all of them, the first time), then mark it complete."""
        present = {t.user_attrs.get("run") for t in plan.get_trials(deepcopy=False)}
        for name in self.runs:
            if name not in present:
                plan.enqueue_trial({}, user_attrs={"run": name})
        plan.set_user_attr(PLANNED, len(self.runs))

    def _wait_for_plan(self, timeout_s: float = 60) -> None:
        """Wait for the worker writing the plan; complete it ourselves if that worker is gone.

        Gone: its process on this machine has ended, or the wait is over (writing a plan takes
        seconds; a worker on another machine cannot be asked).
        """
        deadline = time.monotonic() + timeout_s
        while PLANNED not in (plan := self._load(self.plan_name)).user_attrs:
            creator = plan.user_attrs.get(CREATOR)
            if time.monotonic() > deadline or (isinstance(creator, dict) and _process_gone(creator)):
                self.sweep.say("sweep: the plan was left unfinished by a worker that stopped while writing it; "
                               "completing it")
                self._complete_plan(plan)
                return
            time.sleep(0.5)

    def _load(self, name: str, study: Study | None = None):
        optuna = self.optuna
        if study is None:
            return optuna.load_study(study_name=name, storage=self.storage)
        seed = study.seed if self.seeded else int.from_bytes(os.urandom(4), "little")
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=study.startup_trials,
                                             constant_liar=self.workers > 1 or not self.seeded)
        pruner = (optuna.pruners.NopPruner() if study.pruner == "none" else optuna.pruners.MedianPruner(
            n_startup_trials=study.startup_trials, n_warmup_steps=study.warmup_steps))
        return optuna.create_study(storage=self.storage, study_name=name, direction="minimize", sampler=sampler,
                                   pruner=pruner, load_if_exists=True)

    # ------------------------------------------------------------ the worker's loop

    def work(self, poll_s: float = 2.0) -> None:
        """Claim and run trials until every run of every study has ended, here or elsewhere."""
        plan = self._load(self.plan_name)
        searches = [(s, self._load(self.searches[s.name], s)) for s in self.sweep.config.studies if s.kind == "optuna"]
        self._say_done_earlier(plan, searches)
        while True:
            worked = self._turn(plan, None) or any(self._turn(optuna_study, s) for s, optuna_study in searches)
            if worked:
                self.sweep.write_tables(self.rows())
                continue
            if self._all_ended(plan, searches):
                return
            time.sleep(poll_s)  # the rest runs elsewhere: wait for it to end, or to go silent and come back

    def _turn(self, optuna_study, study: Study | None) -> bool:
        """Run one trial of this study if one can be claimed; whether one ran."""
        self._fail_dead(optuna_study)
        trials = optuna_study.get_trials(deepcopy=False)
        if any(t.state.name == "WAITING" for t in trials):
            pass  # a planned run or a retry: claim it
        elif study is None or len(_slots(trials)) >= study.trials:
            return False
        objective = (lambda trial: self._run_planned(trial)) if study is None else \
            (lambda trial: self._run_search(study, optuna_study, trial))
        try:
            optuna_study.optimize(objective, n_trials=1, catch=(RunFailed, Surplus))
        except BaseException:  # Ctrl-C, SIGTERM: the run saved its resume point; queue it again
            self._retry_current(optuna_study)
            raise
        finally:
            self.current = None
        return True

    def _fail_dead(self, optuna_study) -> None:
        """Fail silent trials (Optuna's heartbeat) and this machine's trials whose process is gone; retry them."""
        self.optuna.storages.fail_stale_trials(optuna_study)
        storage = optuna_study._storage
        for trial in optuna_study.get_trials(deepcopy=False, states=(self.optuna.trial.TrialState.RUNNING,)):
            if not _dead_here(trial):
                continue
            try:
                if storage.set_trial_state_values(trial._trial_id, state=self.optuna.trial.TrialState.FAIL):
                    self.retry(optuna_study, storage.get_trial(trial._trial_id))
            except self.optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker got there first

    def _retry_current(self, optuna_study) -> None:
        if self.current is None:
            return
        trial = next(t for t in optuna_study.get_trials(deepcopy=False) if t.number == self.current)
        if trial.state.name == "FAIL" and "outcome" not in trial.user_attrs and SURPLUS not in trial.user_attrs:
            self.retry(optuna_study, trial)

    def _claim(self, trial) -> None:
        self.current = trial.number
        for key, value in {**_this_process(), "worker": self.worker}.items():
            trial.set_user_attr(key, value)

    # ------------------------------------------------------------ one trial

    def _run_planned(self, trial) -> float:
        self._claim(trial)
        run = trial.user_attrs.get("run")
        if run not in self.runs or _enqueued_before(trial, run):  # the queue emptied, or a completed plan's twin
            trial.set_user_attr(SURPLUS, True)
            raise Surplus(run)
        planned, label = self.runs[run]
        return self._ended(trial, self.sweep.run_one(planned, label))

    def _run_search(self, study: Study, optuna_study, trial) -> float:
        self._claim(trial)
        trials = optuna_study.get_trials(deepcopy=False)
        slots = _slots([t for t in trials if t.number != trial.number])
        origin = _origin(next(t for t in trials if t.number == trial.number))  # a FrozenTrial has the retry's origin
        if origin == trial.number and sum(n < origin for n in slots) >= study.trials:
            trial.set_user_attr(SURPLUS, True)  # another worker asked for the last trial first
            raise Surplus(trial.number)
        params = {name: _suggest(trial, name, spec) for name, spec in study.space.items()}
        planned = self.sweep.plan({**self.sweep.config.baseline, **params})
        _report_resumed(trial, self.sweep.run_dir(planned))
        number = 1 + sum(n < origin for n in slots)
        outcome = self.sweep.run_one(planned, f"{study.name}: trial {number}", callbacks=[_Pruning(trial)])
        return self._ended(trial, outcome)

    def _ended(self, trial, outcome: dict) -> float:
        trial.set_user_attr("outcome", outcome)
        if outcome["status"] == "pruned":
            raise self.optuna.TrialPruned(outcome["stopped_because"])
        if outcome["status"] == "failed":
            raise RunFailed(outcome.get("message", ""))
        return outcome["held_out_loss"]

    # ------------------------------------------------------------ reading the results back

    def _all_ended(self, plan, searches) -> bool:
        outcomes = self._plan_outcomes(plan.get_trials(deepcopy=False))
        if any(outcomes.get(name) is None for name in self.runs):
            return False
        for study, optuna_study in searches:
            slots = _slots(optuna_study.get_trials(deepcopy=False))
            if len(slots) < study.trials or any(_slot_outcome(group) is None for group in slots.values()):
                return False
        return True

    def _plan_outcomes(self, trials) -> dict:
        groups: dict[str, list] = {}
        for trial in trials:
            if "run" in trial.user_attrs and SURPLUS not in trial.user_attrs:
                groups.setdefault(trial.user_attrs["run"], []).append(trial)
        return {name: _slot_outcome(group) for name, group in groups.items()}

    def _say_done_earlier(self, plan, searches) -> None:
        done = sum(o is not None for o in self._plan_outcomes(plan.get_trials(deepcopy=False)).values())
        if done:
            self.sweep.say(f"sweep: {done} of {len(self.runs)} planned run(s) done earlier, skipped")
        for study, optuna_study in searches:
            slots = _slots(optuna_study.get_trials(deepcopy=False))
            ended = sum(_slot_outcome(group) is not None for group in slots.values())
            if ended:
                self.sweep.say(f"sweep: {study.name}: {ended} trial(s) done earlier, skipped")

    def rows(self) -> list[dict]:
        """The results table from the storage: each study's baseline, then its runs in order; ended ones only."""
        sweep, rows = self.sweep, []
        outcomes = self._plan_outcomes(self._load(self.plan_name).get_trials(deepcopy=False))
        baseline = sweep.plan(sweep.config.baseline)

        def add(study, planned, parameter, value, label, outcome):
            if outcome is not None:
                rows.append({"study": study.name, "kind": study.kind, "parameter": parameter, "value": value,
                             "label": label, "changed": planned.changed, **outcome})

        for study in sweep.config.studies:
            add(study, baseline, "baseline", "", "baseline", outcomes.get(baseline.name))
            if study.kind != "optuna":
                for run in study_runs(study, sweep.config.baseline):
                    planned = sweep.plan(run.settings)
                    add(study, planned, run.parameter, run.value, run.label, outcomes.get(planned.name))
                continue
            slots = _slots(self._load(self.searches[study.name]).get_trials(deepcopy=False))
            for number, origin in enumerate(sorted(slots), start=1):
                group = slots[origin]
                params = next((t.params for t in reversed(group) if set(t.params) == set(study.space)), None)
                if params is not None:
                    value = ", ".join(format_value(params[k]) for k in study.space)
                    add(study, sweep.plan({**sweep.config.baseline, **params}), ", ".join(study.space), value,
                        f"trial {number}", _slot_outcome(group))
        return rows


def _search_identity(study: Study) -> dict:
    """What a search's trials were drawn for; its trial count is not: a longer search keeps its trials."""
    return {"space": study.space, "seed": study.seed, "pruner": study.pruner, "startup": study.startup_trials,
            "warmup": study.warmup_steps}


def _enqueued_before(trial, run: str) -> bool:
    """Whether an earlier trial of the plan holds ``run`` and still counts: waiting, running or ended.

    Two workers completing an unfinished plan at once may both enqueue a run; the later copy is
    surplus. A failed trial without an outcome (its worker died) does not count: its retry runs.
    """
    return any(t.number < trial.number and t.user_attrs.get("run") == run and SURPLUS not in t.user_attrs
               and (t.state.name != "FAIL" or "outcome" in t.user_attrs)
               for t in trial.study.get_trials(deepcopy=False))


def _origin(trial) -> int:
    """The number of the trial a retry stands for; a trial's own number if it is no retry."""
    failed = trial.system_attrs.get("failed_trial")
    return failed if isinstance(failed, int) else trial.number


def _slots(trials) -> dict[int, list]:
    """A search's trials grouped by the trial they stand for (a trial and its retries), surplus left out."""
    slots: dict[int, list] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        if SURPLUS not in trial.user_attrs:
            slots.setdefault(_origin(trial), []).append(trial)
    return slots


def _slot_outcome(group: list) -> dict | None:
    """The run's outcome, or None while it may still run (running, waiting, or about to be retried)."""
    for trial in group:
        if "outcome" in trial.user_attrs:
            return trial.user_attrs["outcome"]
    if len(group) > MAX_RETRY and all(t.state.name == "FAIL" for t in group):
        return {"run": None, "status": "failed",
                "message": f"its worker died {len(group)} times; gave up (out of memory? see the workers' messages)"}
    return None


def _suggest(trial, name: str, spec):
    """The trial's value for one setting: drawn by TPE, or the value a retried trial already has."""
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    if spec["int"]:
        return trial.suggest_int(name, spec["low"], spec["high"], step=int(spec["step"] or 1), log=spec["log"])
    return trial.suggest_float(name, spec["low"], spec["high"], step=spec["step"], log=spec["log"])


def _report_resumed(trial, run_dir: Path) -> None:
    """A retried trial resuming a run: the pruner needs the checks made before the checkpoint."""
    if not (run_dir / RESUME_FILE).is_file():
        return
    done = _checkpoint_step(run_dir)
    for record in read_metrics(run_dir):
        if "val_loss" in record and record["step"] <= done:
            trial.report(record["val_loss"], record["step"])


def _checkpoint_step(run_dir: Path) -> int:
    from safetensors import safe_open

    try:
        with safe_open(str(run_dir / RESUME_FILE), "pt") as f:
            return int(json.loads(f.metadata()["loop"])["step"])
    except Exception:  # a damaged resume point: the resume itself will say so; report nothing old
        return -1


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
