"""A throwaway PostgreSQL server for the storage tests: the `--storage postgresql://...` path.

Started from the machine's PostgreSQL binaries (Debian's `postgresql` package; `.ci/run`
installs it) in a temporary directory, reachable only through a Unix socket in that directory,
and removed afterwards. PostgreSQL refuses to run as root, so under root the server runs as the
`postgres` user that package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "nlpflow"


def binaries() -> Path | None:
    """The directory holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    for found in (shutil.which("initdb"), *sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))):
        if found and Path(found).with_name("pg_ctl").exists():
            return Path(found).resolve().parent
    return None


def why_unavailable() -> str | None:
    if binaries() is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run does)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the psycopg driver is missing (make setup installs it)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None


@contextmanager
def server() -> Iterator[str]:
    """Yield a maintenance URL (``postgresql+psycopg://nlpflow@/postgres?host=<socket dir>``)."""
    bindir = binaries()
    assert bindir is not None
    root = Path(tempfile.mkdtemp(prefix="nlpflow-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(root, pg.pw_uid, pg.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"

    def pg(*args: str) -> None:
        # Output to a file, never a pipe: the server `pg_ctl start` leaves running would hold
        # a pipe open, and a wait on it would last as long as the server.
        with open(root / "pg_ctl.log", "a") as out:
            proc = subprocess.run(
                [*as_user, *args], stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60
            )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {(root / 'pg_ctl.log').read_text()}")

    try:
        pg(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", USER, "--no-sync")
        options = f"-k {root} -c listen_addresses='' -c fsync=off"
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
        try:
            yield f"postgresql+psycopg://{USER}@/postgres?host={root}"
        finally:
            pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(maintenance_url: str, name: str) -> str:
    """Create database ``name`` on the server and return its URL."""
    import psycopg

    host = maintenance_url.split("host=", 1)[1]
    with psycopg.connect(host=host, user=USER, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return maintenance_url.replace("@/postgres?", f"@/{name}?")
