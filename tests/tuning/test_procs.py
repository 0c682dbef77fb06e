"""The helpers the tuning tests start background work with never wait on it (the suite once
hung 600 s on a pipe `dvc queue start`'s workers inherited)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.tuning.procs import processes_in, run_bounded, wait_until_gone

pytestmark = pytest.mark.timeout(60)


def test_a_command_that_leaves_a_child_holding_its_output_returns_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = run_bounded(["sh", "-c", "sleep 30 & echo $!"], tmp_path)
    child = int(proc.stdout.strip())
    try:
        # subprocess.run(capture_output=True) would wait the child's 30 s for the pipe to close
        assert time.monotonic() - started < 10
        assert processes_in(tmp_path) == [child]
    finally:
        os.kill(child, signal.SIGKILL)
    assert wait_until_gone(tmp_path, timeout=10) == []


def test_a_command_past_its_deadline_is_killed_with_its_group(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError) as err:
        run_bounded(["sh", "-c", "echo working; sleep 30 & sleep 30"], tmp_path, timeout=1)
    assert "ran past 1s and was killed" in str(err.value) and "working" in str(err.value)
    assert time.monotonic() - started < 10
    assert wait_until_gone(tmp_path, timeout=10) == []  # the background sleep went too
