"""Commands that may leave processes behind (DVC queue workers, tuning workers), run so that a
test can never hang on them.

``subprocess.run(..., capture_output=True)`` waits until every process holding the pipes has
closed them, not only the one it started: ``dvc queue start`` spawns queue workers that inherit
the pipes and live on, and one full run of the suite once waited 600 s there. So here:

- output goes to files, never to pipes, so nothing but the started process is waited for;
- each command runs in a session of its own, with a deadline; past it the whole process group
  is killed and the test fails with the output so far;
- :func:`dvc_queue` stops the queue workers it started (``dvc queue stop --kill``) in a
  ``finally``, then kills any process still working in the repository.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import tool_env

TIMEOUT = 180.0  # seconds: a command here takes seconds to a minute or two on a loaded machine


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_bounded(
    cmd: list[str], cwd: Path, timeout: float = TIMEOUT, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` to completion within ``timeout`` seconds, output through files.

    Raises AssertionError (with the output) when it fails (``check``) or runs past the
    deadline; in that case its whole process group has been killed.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=tool_env(), text=True, stdin=subprocess.DEVNULL,
            stdout=out, stderr=err, start_new_session=True,
        )  # fmt: skip
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())
    shown = f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    if result.returncode == -signal.SIGKILL:
        raise AssertionError(f"{' '.join(cmd)} ran past {timeout:.0f}s and was killed\n{shown}")
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode})\n{shown}")
    return result


def processes_in(root: Path) -> list[int]:
    """Pids of processes whose working directory is ``root`` or below it (Linux /proc)."""
    root = root.resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd == root or root in cwd.parents:
            found.append(int(entry.name))
    return found


def wait_until_gone(root: Path, timeout: float = 30.0) -> list[int]:
    """Wait for processes working in ``root`` to end; SIGKILL those left at the deadline.

    Returns the pids that had to be killed (empty when everything ended by itself)."""
    deadline = time.monotonic() + timeout
    while (left := processes_in(root)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return left


@contextlib.contextmanager
def dvc_queue(repo: Path, jobs: int) -> Iterator[None]:
    """``dvc queue start -j JOBS`` for the body of the ``with``; the workers are stopped after
    it, whatever happens, and the test fails if any had to be killed."""
    run_bounded(["dvc", "queue", "start", "-j", str(jobs)], repo, timeout=60)
    try:
        yield
    finally:
        run_bounded(["dvc", "queue", "stop", "--kill"], repo, timeout=60, check=False)
        killed = wait_until_gone(repo)
    assert not killed, f"queue processes {killed} outlived `dvc queue stop --kill`"


def wait_for_queue(repo: Path, timeout: float) -> str:
    """Poll ``dvc queue status`` until nothing is queued or running; returns the last status.

    Raises AssertionError with the status when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        status = run_bounded(["dvc", "queue", "status"], repo, timeout=60).stdout
        if "Queued" not in status and "Running" not in status:
            return status
        assert time.monotonic() < deadline, f"queue not done after {timeout:.0f}s:\n{status}"
        time.sleep(1)
