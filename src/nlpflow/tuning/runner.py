"""Running one trial: the DVC experiment, and the results read back from it.

:class:`DvcRunner` is what ``nlpflow tune`` uses. Tests of storage semantics (many trials,
several workers) pass a fast fake with the same interface, so that they can run hundreds of
trials in seconds; the real runner is tested separately with real experiments.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nlpflow.revisions import experiment_refs
from nlpflow.tuning import experiments as ex

TRAIN_METRICS = "metrics/train.json"


@dataclass
class TrialResult:
    """What one trial produced, as read back from its experiment."""

    exp: str  # the experiment name
    sha: str | None  # its commit; None when no experiment was committed
    metrics: dict[str, float | None] = field(default_factory=dict)  # metric spec -> value
    epochs_run: int | None = None
    stop_reason: str | None = None
    errors: list[str] = field(default_factory=list)
    log_tail: str = ""

    @property
    def pruned(self) -> bool:
        return self.stop_reason == "pruned"


class Runner(Protocol):
    def run(
        self, name: str, overrides: Mapping[str, str], env: Mapping[str, str], message: str
    ) -> TrialResult: ...

    def read(self, name: str) -> TrialResult | None:
        """The results of an existing experiment (None if there is none)."""
        ...

    def mark(self, name: str, suffix: str) -> str:
        """Rename the experiment to ``<name>-<suffix>``; returns the name it now has."""
        ...

    def existing(self, prefix: str) -> list[str]:
        """Names of experiments starting with ``prefix``."""
        ...

    def terminate(self) -> None:
        """Stop every running trial (on Ctrl-C or SIGTERM)."""
        ...


class DvcRunner:
    """Trials as ``dvc exp run --temp`` in ``repo``; metrics read from the experiment commit."""

    def __init__(self, repo: str | Path, metrics: Sequence[str], baseline: str) -> None:
        self.repo = Path(repo)
        self.baseline = baseline
        self.metrics = list(dict.fromkeys(metrics))
        self._procs: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self._terminated = False

    def run(
        self, name: str, overrides: Mapping[str, str], env: Mapping[str, str], message: str
    ) -> TrialResult:
        args = ["exp", "run", "--temp", "--ignore-errors", "-n", name]
        for key, value in overrides.items():
            args += ["-S", f"{key}={value}"]
        if message:
            args += ["-m", message]
        cmd = [str(Path(ex.dvc_executable())), "--wait-for-lock", *args]
        with self._lock:
            if self._terminated:
                return TrialResult(name, None, errors=["not started: the worker is stopping"])
        proc = subprocess.Popen(
            cmd,
            cwd=self.repo,
            env=ex.tool_env(env),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # our own signal handling decides when trials stop
        )
        with self._lock:
            self._procs.add(proc)
        try:
            output, _ = proc.communicate()
        finally:
            with self._lock:
                self._procs.discard(proc)
        errors = [
            line.strip()
            for line in output.splitlines()
            if "(ignored)" in line or line.startswith("ERROR")
        ]
        sha = experiment_refs(self.repo, self.baseline).get(name) if proc.returncode == 0 else None
        if proc.returncode != 0 and not errors:
            errors = [f"dvc exp run exited with {proc.returncode}"]
        result = self._results(name, sha) if sha else TrialResult(name, None)
        result.errors = errors
        result.log_tail = output[-ex.LOG_TAIL :]
        return result

    def _results(self, name: str, sha: str) -> TrialResult:
        reader = ex.MetricReader(self.repo, sha)
        values = {spec: reader.value(spec) for spec in self.metrics}
        train = reader.json(TRAIN_METRICS) or {}
        epochs = train.get("epochs_run")
        return TrialResult(
            name,
            sha,
            values,
            epochs_run=int(epochs) if isinstance(epochs, int | float) else None,
            stop_reason=train.get("stop_reason"),
        )

    def read(self, name: str) -> TrialResult | None:
        sha = experiment_refs(self.repo, self.baseline).get(name)
        return self._results(name, sha) if sha else None

    def mark(self, name: str, suffix: str) -> str:
        new = f"{name}-{suffix}"
        return new if ex.rename_experiment(self.repo, name, new) else name

    def existing(self, prefix: str) -> list[str]:
        return sorted(n for n in experiment_refs(self.repo, self.baseline) if n.startswith(prefix))

    def terminate(self) -> None:
        with self._lock:
            self._terminated = True
            procs = list(self._procs)
        for proc in procs:
            # SIGINT to the whole group: DVC stops its stage and cleans its temp directory.
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except (ProcessLookupError, PermissionError):
                continue
