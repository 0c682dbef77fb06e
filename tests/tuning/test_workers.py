"""Workers sharing one study: no trial lost, none run twice; killed workers; resuming.

These tests are about the storage semantics (claims, budget, heartbeats, re-queueing), so
each worker runs the fake runner of tests/tuning/fakes.py: a "trial" appends a line to a log
and sleeps a moment. With real DVC experiments the same checks would take minutes; the DVC
side (real `dvc exp run` trials, in parallel) is tested in test_tune_dvc.py and, on the real
pipeline, in test_tune_pipeline.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from nlpflow.tuning.runner import TrialResult
from nlpflow.tuning.storage import retry_of
from nlpflow.tuning.study import Tuner
from tests.conftest import ROOT
from tests.tuning.fakes import FakeRunner, request, runs

# Each test ends in seconds; a hung worker fails it at this, well before the suite limit.
pytestmark = pytest.mark.timeout(120)

GRID = {
    "train.lr": {"type": "float", "low": 0.0003, "high": 0.01, "log": True,
                 "grid": [0.0005, 0.002, 0.008]},
    "train.warmup_ratio": {"type": "float", "low": 0.0, "high": 0.3, "grid": [0.0, 0.1]},
    "train.schedule": {"type": "categorical", "choices": ["linear", "cosine"]},
}  # fmt: skip


_started: list[tuple[subprocess.Popen[str], Path]] = []


@pytest.fixture(autouse=True)
def _stop_workers() -> Iterator[None]:
    """Every worker a test started is killed after it, passed or failed: none outlives it."""
    yield
    while _started:
        proc, _ = _started.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def start_worker(workdir: Path, url: str, seconds: float = 0.02, hang: bool = False,
                 **tune: Any) -> subprocess.Popen[str]:  # fmt: skip
    """A worker process (tests/tuning/worker.py); its output goes to a file, not a pipe."""
    cmd = [sys.executable, "-m", "tests.tuning.worker", str(workdir), url, json.dumps(tune),
           str(seconds)] + (["hang"] if hang else [])  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = workdir / f"worker-{len(_started)}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, text=True, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    _started.append((proc, log))
    return proc


def output(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """Wait (at most ``timeout`` seconds) for a worker to end; its output."""
    proc.wait(timeout=timeout)
    return next(log for p, log in _started if p is proc).read_text()


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    out = output(proc, timeout)
    assert proc.returncode == 0, out
    return out


def load(url: str, name: str = "nlpflow") -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    finally:
        storage.engine.dispose()  # no pooled connection left for the garbage collector


def wait_for(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_workers_share_a_study_without_losing_or_repeating_trials(
    tmp_path: Path, url: str
) -> None:
    workers = [start_worker(tmp_path, url, n_trials=16, jobs=2, sampler="random") for _ in "ab"]
    outputs = [finish(w) for w in workers]
    assert all(re.search(r"^trial \d+ \[", out, re.M) for out in outputs), "a worker ran none"

    trials = load(url)
    ran = runs(tmp_path)
    assert {t.state.name for t in trials} == {"COMPLETE"}  # none left running or waiting
    # The budget is the study's: 16 trials in all (4 concurrent deciders may overshoot by 3).
    assert 16 <= len(trials) <= 19
    names = [r["exp"] for r in ran]
    assert len(names) == len(set(names)), "a trial ran twice"
    assert sorted(names) == sorted(t.user_attrs["exp"] for t in trials), "a trial was lost"
    assert len({r["pid"] for r in ran}) == 2


def test_two_workers_run_each_grid_combination_exactly_once(tmp_path: Path, url: str) -> None:
    workers = [start_worker(tmp_path, url, jobs=2, sampler="grid", space=GRID) for _ in "ab"]
    for w in workers:
        finish(w)
    combos = [json.dumps(r["params"], sort_keys=True) for r in runs(tmp_path)]
    assert len(combos) == 12 and len(set(combos)) == 12
    trials = load(url)
    assert len(trials) == 12 and {t.state.name for t in trials} == {"COMPLETE"}


def test_a_killed_workers_trial_is_requeued_and_the_study_resumes(tmp_path: Path, url: str) -> None:
    doomed = start_worker(tmp_path, url, seconds=60, n_trials=3)
    wait_for(lambda: len(runs(tmp_path)) == 1)
    doomed.send_signal(signal.SIGKILL)  # no chance to clean up: its trial stays RUNNING
    doomed.wait(timeout=30)
    (lost,) = load(url)
    assert lost.state.name == "RUNNING"

    out = finish(start_worker(tmp_path, url, n_trials=3))
    assert "trial 0 lost its worker" in out and "re-queued" in out
    trials = load(url)
    states = Counter(t.state.name for t in trials)
    assert states == {"FAIL": 1, "COMPLETE": 3}  # the lost trial does not count
    (retry,) = [t for t in trials if retry_of(t) == 0]
    assert retry.params == trials[0].params and retry.state.name == "COMPLETE"


def test_a_killed_workers_finished_experiment_is_recovered_not_rerun(
    tmp_path: Path, url: str
) -> None:
    # The experiment finishes, then the worker dies before telling the study.
    doomed = start_worker(tmp_path, url, seconds=0, hang=True, n_trials=2)
    wait_for(lambda: any((tmp_path / "results").glob("*.json")))
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)

    out = finish(start_worker(tmp_path, url, n_trials=2))
    assert "its result was recovered" in out
    trials = load(url)
    (recovered,) = [t for t in trials if t.user_attrs.get("recovered_from") == 0]
    assert recovered.state.name == "COMPLETE" and recovered.user_attrs["exp"] == "nlpflow-000"
    assert sum(r["exp"] == "nlpflow-000" for r in runs(tmp_path)) == 1  # not run again
    assert Counter(t.state.name for t in trials) == {"FAIL": 1, "COMPLETE": 2}


def test_sigterm_stops_requeues_and_the_same_command_resumes(tmp_path: Path, url: str) -> None:
    worker = start_worker(tmp_path, url, seconds=60, n_trials=2, jobs=2)
    wait_for(lambda: len(runs(tmp_path)) == 2)
    worker.send_signal(signal.SIGTERM)
    out = output(worker)
    assert worker.returncode == 130, out
    assert out.count("was interrupted") == 2
    assert Counter(t.state.name for t in load(url)) == {"FAIL": 2, "WAITING": 2}

    finish(start_worker(tmp_path, url, n_trials=2))
    trials = load(url)
    assert Counter(t.state.name for t in trials) == {"FAIL": 2, "COMPLETE": 2}
    assert {retry_of(t) for t in trials if t.state.name == "COMPLETE"} == {0, 1}


class FailingRunner(FakeRunner):
    """Every trial's experiment fails, as with a stage that raises."""

    def run(self, name: str, overrides: Any, env: Any, message: str) -> TrialResult:
        super().run(name, overrides, env, message)
        return TrialResult(name, None, errors=["ERROR: failed to reproduce 'train'"])


def test_failed_trials_do_not_use_the_budget_and_a_failing_worker_stops(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    lines: list[str] = []
    tuner = Tuner(request(tmp_path, url, n_trials=3, sampler="random"),
                  runner=FailingRunner(tmp_path), log=lines.append)  # fmt: skip
    report = tuner.optimize()
    assert (report.started, report.failed, report.complete) == (3, 3, 0)
    assert [t.state.name for t in load(url)] == ["FAIL"] * 3
    assert load(url)[0].user_attrs["error"] == "failed: ERROR: failed to reproduce 'train'"
    assert any("3 trials failed in a row; stopping this worker" in line for line in lines)

    # with results again, the same command fills the study: the failures used no budget
    Tuner(request(tmp_path, url, n_trials=3, sampler="random"),
          runner=FakeRunner(tmp_path), log=lines.append).optimize()  # fmt: skip
    assert Counter(t.state.name for t in load(url)) == {"FAIL": 3, "COMPLETE": 3}
