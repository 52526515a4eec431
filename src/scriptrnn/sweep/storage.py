"""The Optuna storage a sweep lives in: opening it (SQLite by default, any URL with --storage),
retrying trials whose worker died, and telling which trials' processes died on this machine."""

from __future__ import annotations

import os
import socket
import time
import warnings
from pathlib import Path

from ..errors import ScriptRNNError
from ..paths import real_path

MAX_RETRY = 3  # a run whose worker dies more often than this is recorded as failed (it likely kills it)


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ScriptRNNError("scriptrnn sweep keeps its studies in Optuna's storage: pip install 'scriptrnn[sweep]'") \
            from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed or pruned run: the sweep says so itself
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def default_storage(out: Path) -> str:
    return f"sqlite:///{real_path(out) / 'sweep.db'}"


def open_storage(url: str, heartbeat_s: int):
    """Optuna's RDBStorage at ``url``, with heartbeats and retries of trials whose worker died."""
    optuna = _optuna()
    url = _with_driver(url)
    sqlite = url.startswith("sqlite")
    # isolation_level None: pysqlite leaves BEGIN to us (_serialize_sqlite); wait for a busy file.
    engine = {"connect_args": {"timeout": 60, "isolation_level": None}} if sqlite else {}
    retry = _retry_callback(optuna)
    for attempt in range(5):  # workers started together race to create the tables
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat_s,
                                                 grace_period=2 * heartbeat_s, **retry)
            break
        except ImportError as e:
            raise ScriptRNNError(f"--storage {_safe(url)}: {e} (for PostgreSQL: pip install 'psycopg[binary]')") \
                from None
        except Exception as e:  # noqa: BLE001 - SQLAlchemy's errors, a server not up yet
            if attempt == 4:
                raise ScriptRNNError(f"cannot open the sweep's storage {_safe(url)}: {e}") from None
            time.sleep(0.5 * (attempt + 1))
    if storage.engine.name == "sqlite":
        _serialize_sqlite(storage.engine)
    return storage


def _with_driver(url: str) -> str:
    """postgresql:// means psycopg2 to SQLAlchemy 2.0 and psycopg (3) to 2.1: name the one installed."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is not None:
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _retry_callback(optuna) -> dict:
    storages = optuna.storages
    if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):  # Optuna 5 renamed it
        return {"heartbeat_stale_trial_callback": storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)}
    return {"failed_trial_callback": storages.RetryFailedTrialCallback(max_retry=MAX_RETRY)}


def _serialize_sqlite(engine) -> None:
    """Every SQLite transaction takes the write lock first (BEGIN IMMEDIATE).

    Optuna claims a waiting trial by reading its state, then writing RUNNING. PostgreSQL locks
    the row in between (SELECT ... FOR UPDATE); SQLite ignores FOR UPDATE, so two workers could
    both read WAITING and both claim the run. With the lock taken at BEGIN they cannot.
    """
    from sqlalchemy import event

    event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    head, _, rest = url.partition("://")
    if "@" in rest:
        who, _, where = rest.rpartition("@")
        rest = f"{who.split(':', 1)[0]}:***@{where}" if ":" in who else rest
    return f"{head}://{rest}"


def _this_process() -> dict:
    """Who runs a trial: a later worker on the same machine sees at once whether it still lives."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return {"host": f"{socket.gethostname()}/{boot}", "pid": os.getpid()}


def _dead_here(trial) -> bool:
    return _process_gone(trial.user_attrs)


def _process_gone(attrs: dict) -> bool:
    """Whether the process ``_this_process`` described has ended; False when it ran on another machine."""
    if attrs.get("host") != _this_process()["host"] or not isinstance(attrs.get("pid"), int):
        return False
    try:
        os.kill(attrs["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
