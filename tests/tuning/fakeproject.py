"""A tiny real git + DVC project whose one stage stands in for train + evaluate.

Its stage computes a learning curve from the params in a fraction of a second, reports each
epoch through :class:`nlpflow.tuning.reporter.TrialReporter` exactly as the train stage does,
and can be pruned; ``train.lr >= 0.5`` makes it fail like a diverged run. DVC itself is real:
every trial is a real ``dvc exp run --temp``, so these tests check the DVC side (names,
params, metrics, pruned/failed marking, apply) in seconds per trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import merge, run, tiny_params

STAGE = '''"""Fake train + evaluate: a learning curve computed from the params."""

import json
import math
import os
import sys

from nlpflow.params import load_params
from nlpflow.tuning.reporter import TrialReporter

params = load_params("params.yaml")
tp = params.train
if tp.lr >= 0.5:
    print("error: the loss diverged (train.lr too large)", file=sys.stderr)
    sys.exit(1)
reporter = TrialReporter.from_env()
noise = ((params.seed * 7919) % 100) / 5000  # the seed moves the result a little
quality = 0.9 - 0.1 * math.log10(tp.lr / 3e-3) ** 2 - 0.5 * (tp.warmup_ratio - 0.1) ** 2 + noise
stop, epoch, f1 = "max_epochs", 0, 0.0
for epoch in range(1, tp.epochs + 1):
    f1 = quality * (1 - 0.5**epoch)
    if reporter is not None and reporter.report(epoch, f1):
        stop = "pruned"
        break
os.makedirs("metrics", exist_ok=True)
train = {"epochs_run": epoch, "stop_reason": stop, "pruned": int(stop == "pruned"),
         "best": {"val_f1_macro": f1}, "cost": round(tp.lr * 1000, 6)}
evaluate = {"validation": {"f1_macro": f1, "accuracy": f1 + 0.02, "n": 100},
            "test": {"f1_macro": f1 - 0.01, "accuracy": f1, "n": 100}}
for name, data in (("train", train), ("evaluate", evaluate)):
    with open(f"metrics/{name}.json", "w") as fh:
        json.dump(data, fh, indent=2)
'''

DVC_YAML = {
    "stages": {
        "train": {
            "cmd": "python fake_train.py",
            "deps": ["fake_train.py"],
            "params": ["seed", "train"],
            "outs": [
                {"metrics/train.json": {"cache": False}},
                {"metrics/evaluate.json": {"cache": False}},
            ],
        }
    },
    "metrics": ["metrics/train.json", "metrics/evaluate.json"],
}


def make_fake_project(parent: Path, **override: Any) -> Path:
    """A committed git + DVC repository with the fake stage, reproduced once."""
    repo = parent / "fake"
    repo.mkdir()
    params = merge(tiny_params(train={"epochs": 4}), override)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / "fake_train.py").write_text(STAGE)
    (repo / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (repo / ".gitignore").write_text("/reports/\n")
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "config", "user.email", "test@example.com"], repo)
    run(["git", "config", "user.name", "nlpflow test"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "core.analytics", "false"], repo)
    run(["dvc", "repro", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "fake project"], repo)
    return repo


def experiments(repo: Path) -> dict[str, dict[str, Any]]:
    """Experiment name -> {"params": flat params.yaml, "metrics": {file: data}} from
    ``dvc exp show --json`` (the view a person gets)."""
    import json

    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    out: dict[str, dict[str, Any]] = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data") or {}
                params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
                metrics = {f: (m or {}).get("data") for f, m in (data.get("metrics") or {}).items()}
                out[rev.get("name") or rev["rev"]] = {"params": params, "metrics": metrics}
    return out
