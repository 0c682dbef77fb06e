"""Storage URLs as users write them."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpflow.errors import UserError
from nlpflow.tuning.storage import resolve_url, safe_url


def test_urls_are_resolved_for_trials_that_run_elsewhere(tmp_path: Path) -> None:
    assert resolve_url("", tmp_path) == f"sqlite:///{tmp_path.resolve()}/tune/optuna.db"
    assert resolve_url("sqlite:///s.db", tmp_path) == f"sqlite:///{tmp_path.resolve()}/s.db"
    assert resolve_url("sqlite:////abs/s.db", tmp_path) == "sqlite:////abs/s.db"
    # a bare postgresql:// means psycopg2 to SQLAlchemy; the driver nlpflow installs is psycopg 3
    for bare in ("postgresql://u:pw@db.lan:5432/opt", "postgres://u:pw@db.lan:5432/opt"):
        assert resolve_url(bare, tmp_path) == "postgresql+psycopg://u:pw@db.lan:5432/opt"
    explicit = "postgresql+psycopg2://u@h/opt"
    assert resolve_url(explicit, tmp_path) == explicit
    assert safe_url("postgresql+psycopg://u:secret@h/opt") == "postgresql+psycopg://u:***@h/opt"
    with pytest.raises(UserError, match="is not a database URL"):
        resolve_url("db.lan/opt", tmp_path)


def test_workers_racing_to_create_a_new_database_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers on a fresh PostgreSQL database both create its tables; the loser gets
    DuplicateTable (seen once in CI on the two-worker test). The race cannot be forced here,
    so Optuna's storage is replaced by one that loses it once, with PostgreSQL's own error."""
    import optuna
    import sqlalchemy

    from nlpflow.tuning import storage as st

    real = optuna.storages.RDBStorage
    calls: list[int] = []

    def losing_once(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise sqlalchemy.exc.ProgrammingError(
                "CREATE TABLE alembic_version", {},
                Exception('relation "alembic_version" already exists'),
            )  # fmt: skip
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(optuna.storages, "RDBStorage", losing_once)
    storage = st.open_storage(f"sqlite:///{tmp_path}/o.db", heartbeat=False)
    assert len(calls) == 2 and isinstance(storage, real)
    storage.engine.dispose()
