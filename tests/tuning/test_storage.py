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
