"""Fast stand-ins for DVC in tests of storage semantics (many trials, several workers).

The fake runner records every run in a log file (one line per run, appended atomically), so
a test can check that no trial ran twice and none was lost. Real DVC experiments are tested in
test_tune_dvc.py and test_tune_pipeline.py.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nlpflow.params import parse_params
from nlpflow.tuning.runner import TrialResult
from nlpflow.tuning.study import TuneRequest
from tests.conftest import tiny_params

OBJECTIVE = "metrics/evaluate.json:validation.f1_macro"


def score(overrides: Mapping[str, str]) -> float:
    """A smooth objective with its optimum at lr = 3e-3, warmup_ratio = 0.1."""
    lr = float(overrides.get("train.lr", "0.002"))
    warmup = float(overrides.get("train.warmup_ratio", "0.1"))
    bonus = 0.01 if overrides.get("train.schedule") == "cosine" else 0.0
    return 0.9 - 0.1 * (math.log10(lr / 3e-3)) ** 2 - 0.5 * (warmup - 0.1) ** 2 + bonus


class FakeRunner:
    """Runs a "trial" by appending to ``log`` and sleeping ``seconds``.

    ``hang_after_result``: write the trial's result (as if DVC had committed the experiment)
    and then hang, so a test can kill the worker between the experiment and the study update.
    """

    def __init__(
        self, workdir: Path, seconds: float = 0.0, hang_after_result: bool = False
    ) -> None:
        self.workdir = Path(workdir)
        self.log = self.workdir / "runs.log"
        self.results = self.workdir / "results"
        self.results.mkdir(parents=True, exist_ok=True)
        self.seconds = seconds
        self.hang = hang_after_result
        self._stop = threading.Event()

    def run(
        self, name: str, overrides: Mapping[str, str], env: Mapping[str, str], message: str
    ) -> TrialResult:
        line = json.dumps({"exp": name, "params": dict(overrides), "pid": os.getpid()}) + "\n"
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        if self._stop.wait(self.seconds):
            return TrialResult(name, None, errors=["terminated"])
        result = {"metrics": {OBJECTIVE: score(overrides)}, "epochs": 3}
        (self.results / f"{name}.json").write_text(json.dumps(result))
        if self.hang:
            time.sleep(3600)
        return self.read(name) or TrialResult(name, None)

    def read(self, name: str) -> TrialResult | None:
        path = self.results / f"{name}.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return TrialResult(
            name,
            f"sha-{name}",
            data["metrics"],
            epochs_run=data["epochs"],
            stop_reason="max_epochs",
        )

    def mark(self, name: str, suffix: str) -> str:
        return f"{name}-{suffix}"

    def existing(self, prefix: str) -> list[str]:
        return []

    def terminate(self) -> None:
        self._stop.set()


def runs(workdir: Path) -> list[dict[str, Any]]:
    log = Path(workdir) / "runs.log"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def request(repo: Path, storage: str, **tune: Any) -> TuneRequest:
    """A TuneRequest on the tests' tiny params with ``tune`` overrides."""
    raw = tiny_params()
    raw["tune"] = {**raw.get("tune", {}), **tune}
    params = parse_params(raw)
    return TuneRequest(repo=repo, tune=params.tune, raw_params=raw, params=params, storage=storage,
                       baseline="fake")  # fmt: skip
