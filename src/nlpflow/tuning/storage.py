"""Where a study lives: an Optuna RDB storage shared by every worker and every trial.

SQLite (``tune/optuna.db`` in the project) by default; any SQLAlchemy URL with ``--storage``
(``postgresql://user@host/db`` for workers on several machines). The same URL reaches the train
stage of each trial (through the environment), which reports its validation metric there.

Two properties matter for workers sharing a study, and this module provides both:

- **No trial runs twice.** A queued (WAITING) trial is claimed by a compare-and-set from
  WAITING to RUNNING. PostgreSQL makes that atomic with ``SELECT ... FOR UPDATE``; SQLite
  ignores ``FOR UPDATE`` and Python's sqlite3 driver begins a transaction only at the first
  write, so two processes could both read WAITING and both claim the trial. SQLite connections
  made here therefore begin every transaction with ``BEGIN IMMEDIATE`` (SQLAlchemy's
  documented recipe), which serialises them.
- **No trial is lost.** Every running trial records a heartbeat; a trial whose worker died
  (killed, machine lost) goes stale and the next worker to look fails it and queues its
  configuration again (see :mod:`nlpflow.tuning.study`).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.errors import UserError

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

DEFAULT_DIR = "tune"
DEFAULT_FILE = "optuna.db"
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 120  # a running trial without a heartbeat for this long belongs to a dead worker
SQLITE_BUSY_SECONDS = 60


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning (heartbeats, callbacks) and its info logging.

    The features are stable in practice and pinned in requirements.lock; a warning on every
    worker start would only teach people to ignore warnings.
    """
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def default_url(root: str | Path) -> str:
    """``sqlite:///<root>/tune/optuna.db`` (absolute: trials run in other directories)."""
    path = Path(root).resolve() / DEFAULT_DIR / DEFAULT_FILE
    return f"sqlite:///{path}"


def resolve_url(url: str, root: str | Path) -> str:
    """The storage URL with relative SQLite paths made absolute (trials run elsewhere)."""
    if not url:
        url = default_url(root)
    if not re.match(r"^[a-z][a-z0-9+]*://", url):
        raise UserError(
            f"--storage {url!r} is not a database URL; use sqlite:///path/to/file.db or "
            "postgresql://user:password@host/db"
        )
    # SQLAlchemy reads a bare postgresql:// as psycopg2; nlpflow installs psycopg 3 instead.
    url = re.sub(r"^postgres(?:ql)?://", "postgresql+psycopg://", url)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url.removeprefix("sqlite:///")
        if rel and rel != ":memory:":
            url = f"sqlite:///{(Path(root) / rel).resolve()}"
    return url


def safe_url(url: str) -> str:
    """The URL with any password masked, for logs and reports."""
    return re.sub(r"(://[^:/@]+):[^@]+@", r"\1:***@", url)


def _prepare_sqlite_dir(url: str) -> None:
    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    if str(path) == ":memory:":
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # The database must never be committed, nor stashed into an experiment by `dvc exp run`.
    ignore = path.parent / ".gitignore"
    if path.parent.name == DEFAULT_DIR and not ignore.exists():
        ignore.write_text("# nlpflow tune: the Optuna database (not versioned)\n*\n")


def open_storage(
    url: str,
    *,
    heartbeat: bool = True,
    stale_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> optuna.storages.RDBStorage:
    """An RDB storage for ``url``; SQLite gets serialised transactions and a busy timeout.

    ``heartbeat``: running trials record a heartbeat every ``HEARTBEAT_SECONDS`` (Optuna's
    RDB heartbeat), and a trial without one for ``GRACE_SECONDS`` is failed by the next
    ``fail_stale_trials`` (``study.optimize`` calls it before each trial), which then calls
    ``stale_callback(study, failed_trial)``.

    Raises:
        UserError: the URL names no reachable database, or its driver is missing.
    """
    import optuna
    import sqlalchemy

    _prepare_sqlite_dir(url)
    sqlite = url.startswith("sqlite:")
    engine_kwargs: dict[str, Any] = {}
    if sqlite:
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_SECONDS}
    kwargs: dict[str, Any] = {}
    if heartbeat:
        kwargs = {
            "heartbeat_interval": HEARTBEAT_SECONDS,
            "grace_period": GRACE_SECONDS,
            "heartbeat_stale_trial_callback": stale_callback,
        }
    with _creation_lock(url):
        for attempt in range(10):
            try:
                with quiet_optuna():
                    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
                break
            except (
                sqlalchemy.exc.OperationalError,
                sqlalchemy.exc.IntegrityError,
                sqlalchemy.exc.ProgrammingError,  # PostgreSQL: DuplicateTable
            ) as err:
                # Workers starting together race to create the tables of a new database
                # (SQLite: "already exists" / "UNIQUE constraint"; PostgreSQL: DuplicateTable,
                # or "duplicate key value" on its catalogue).
                text = str(err)
                racing = any(
                    s in text for s in ("already exists", "UNIQUE constraint", "duplicate key")
                )
                if racing and attempt < 9:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                raise UserError(f"cannot open the study storage {safe_url(url)}: {err}") from None
            except (ImportError, sqlalchemy.exc.ArgumentError) as err:
                raise UserError(f"cannot open the study storage {safe_url(url)}: {err}") from None
    if sqlite:
        _serialise_sqlite(storage.engine)
    # A storage dropped by its owner (a finished reporter, a worker's study) closes its pooled
    # connections then, instead of leaving open server connections to the garbage collector.
    weakref.finalize(storage, storage.engine.dispose)
    return storage


@contextlib.contextmanager
def _creation_lock(url: str) -> Iterator[None]:
    """Processes on this machine open a SQLite database one at a time (table creation races)."""
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        yield
        return
    import fcntl

    lock = Path(url.removeprefix("sqlite:///") + ".lock")
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _serialise_sqlite(engine: Any) -> None:
    """Every SQLite transaction starts with BEGIN IMMEDIATE (a write lock from the start).

    https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver stops emitting its own BEGIN

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the listeners existed are dropped


def retry_of(trial: FrozenTrial) -> int | None:
    """The number of the trial ``trial`` reruns (re-queued by Optuna's
    ``RetryHeartbeatStaleTrialCallback`` after its worker died or was interrupted), or None."""
    import optuna

    with quiet_optuna():
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def retry_history(trial: FrozenTrial) -> list[int]:
    """The trials ``trial``'s configuration ran as before, oldest first (empty: a first run)."""
    import optuna

    with quiet_optuna():
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(trial)


def worker_identity() -> dict[str, Any]:
    """Who runs a trial: recorded on it, so a dead worker's trials can be recognised."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process on this machine that could be an nlpflow worker."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        with contextlib.suppress(OSError):
            text = cmdline.read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            if "nlpflow" not in text and "python" not in text:
                return False  # the pid was reused by something else
    return True
