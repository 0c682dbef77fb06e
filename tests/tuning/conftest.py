"""Storage fixtures: the tuning tests that touch an Optuna storage run on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    from tests.tuning import postgres

    why = postgres.why_unavailable()
    if why:
        pytest.skip(why)
    with postgres.server() as maintenance_url:
        yield maintenance_url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The default SQLite file, and a real PostgreSQL server (what `--storage postgresql://...`
    gives workers on several machines), each test with a fresh database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/optuna.db"
    from tests.tuning import postgres

    server = request.getfixturevalue("postgres_server")
    return postgres.fresh_database(server, f"t{abs(hash(request.node.nodeid)) % 10**12}")
