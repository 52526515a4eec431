"""Sweeps shared by several workers through Optuna's storage: SQLite by default, a real PostgreSQL.

Two worker processes share one study, one is killed mid-run (SIGKILL) and started again; the
table must list every run once, and no run that had finished may train again.
"""

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from scriptrnn.cli import main
from scriptrnn.sweep.runner import OUTCOME_FILE

from .test_sweep import TINY_SETS, read_rows, start_sweep, write_study

optuna = pytest.importorskip("optuna")

LABELS = ["baseline", "seq_len=8", "seq_len=32"]


@pytest.fixture
def postgres_url():
    """A fresh database on the server SCRIPTRNN_TEST_POSTGRES names (.ci/run starts one), dropped after."""
    base = os.environ.get("SCRIPTRNN_TEST_POSTGRES")
    if not base:
        pytest.skip("SCRIPTRNN_TEST_POSTGRES is not set: these tests need a PostgreSQL server "
                    "(bash .ci/run --postgres-only starts one and prints the URL)")
    psycopg = pytest.importorskip("psycopg", reason="SQLAlchemy's PostgreSQL driver: pip install 'psycopg[binary]'")
    from sqlalchemy.engine import make_url

    name = f"scriptrnn_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(base, autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def plan_trials(url: str) -> list:
    """The trials of the sweep's plan (every one-at-a-time run) in the storage at ``url``; none yet: []."""
    import sqlalchemy

    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return []
    try:
        storage = optuna.storages.RDBStorage(url)
    except sqlalchemy.exc.SQLAlchemyError:  # the workers are creating the tables just now
        return []
    try:
        names = [s.study_name for s in storage.get_all_studies() if s.study_name.endswith("-plan")]
        if not names:
            return []
        return storage.get_all_trials(storage.get_study_id_from_name(names[0]))
    finally:
        storage.engine.dispose()


def test_two_workers_on_one_machine_share_the_runs(tmp_path, dialogue_file, capfd):
    path = write_study(tmp_path, "[budget]\nmax_steps = 20\n"
                                 "[[study]]\nkind = 'one_at_a_time'\nvary = { seq_len = [8, 32] }\n"
                                 "[[study]]\nkind = 'optuna'\ntrials = 2\nstartup_trials = 1\n"
                                 "space = { lr = { low = 1e-3, high = 3e-2, log = true } }\n", data=dialogue_file)
    assert main(["sweep", str(path), "--workers", "2", "--quiet"]) == 0
    err = capfd.readouterr().err  # the workers' messages come from their own processes
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert f"2 workers on this machine, {threads} CPU thread(s) each" in err
    assert "[worker 1] sweep:" in err and "[worker 2] sweep:" in err
    rows = read_rows(tmp_path / "out")
    assert [(r["study"], r["label"]) for r in rows] == [
        ("one-at-a-time", "baseline"), ("one-at-a-time", "seq_len=8"), ("one-at-a-time", "seq_len=32"),
        ("optuna", "baseline"), ("optuna", "trial 1"), ("optuna", "trial 2")]
    assert all(r["status"] in ("finished", "pruned") for r in rows)
    trials = plan_trials(f"sqlite:///{tmp_path / 'out' / 'sweep.db'}")
    assert sorted(t.user_attrs["run"] for t in trials) == sorted({r["run"] for r in rows[:3]})  # each run once
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert (tmp_path / "out" / "report.md").exists()


def _killed_mid_run(proc, url: str, out: Path):
    """True once ``proc`` runs a trial whose run has saved a resume point and not yet ended."""
    for trial in plan_trials(url):
        if trial.state.name == "RUNNING" and trial.user_attrs.get("pid") == proc.pid:
            run = out / "runs" / trial.user_attrs["run"]
            return (run / "resume.safetensors").exists() and not (run / OUTCOME_FILE).exists()
    return False


def _share_kill_and_restart(tmp_path, dialogue_file, url: str, outs: list[Path]) -> dict:
    """Two workers on one study; the first killed in a run and started again. The finished results then."""
    def args(out):
        return ["sweep", "--vary", "seq_len=8,32", "--max-steps", "40", "--data", dialogue_file,
                *TINY_SETS, "--set", "eval_every=20", "--out", out, "--quiet", "--storage", url, "--heartbeat", "1"]

    # 0.1 s a step: the kill window (checkpoint at step 20 to the end at 40) stays ~2 s even on a loaded machine
    first, second = start_sweep(args(outs[0]), delay=0.1), start_sweep(args(outs[1]), delay=0.1)
    deadline = time.monotonic() + 120
    while not _killed_mid_run(first, url, outs[0]):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    finished = {p: p.stat().st_mtime_ns for out in set(outs) for p in (out / "runs").glob(f"*/{OUTCOME_FILE}")}

    again = start_sweep(args(outs[0]), delay=0.03)
    for proc in (second, again):
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    for path, mtime in finished.items():  # no finished run trained again
        assert path.stat().st_mtime_ns == mtime, path
    trials = plan_trials(url)
    ended = [t.user_attrs["run"] for t in trials if "outcome" in t.user_attrs]
    assert len(ended) == len(set(ended)) == len(LABELS)  # every run ended once
    assert any("failed_trial" in t.system_attrs for t in trials)  # the killed run came back as Optuna's retry
    tables = []
    for out in sorted(set(outs)):
        rows = read_rows(out)
        assert [r["label"] for r in rows] == LABELS  # complete, no duplicates, on every machine
        assert all(r["status"] == "finished" and r["steps"] == "40" for r in rows)
        tables.append(rows)
    return {r["label"]: r for r in tables[0]}


def test_two_workers_share_a_sqlite_study_and_a_killed_one_is_recovered(tmp_path, dialogue_file):
    out = tmp_path / "out"
    rows = _share_kill_and_restart(tmp_path, dialogue_file, f"sqlite:///{out / 'sweep.db'}", [out, out])
    # One machine, one folder: whichever worker took the killed run over resumed it from its checkpoint.
    assert sum(r["resumed"] == "True" for r in rows.values()) == 1


def test_two_machines_share_a_postgresql_study_and_a_killed_one_is_recovered(tmp_path, dialogue_file,
                                                                             postgres_url):
    # Two folders, as two machines would have: the run taken over elsewhere starts again there.
    _share_kill_and_restart(tmp_path, dialogue_file, postgres_url, [tmp_path / "a", tmp_path / "b"])
