"""Trials as DVC experiments: run one, find it, read its metrics, mark it.

Each trial is ``dvc exp run --temp -n <name> -S path=value ...``:

- ``--temp`` runs it in its own directory under ``.dvc/tmp/exps``, so several run at once and
  the workspace is never touched; DVC releases its repository lock while the stages run, and
  ``--wait-for-lock`` makes concurrent starts queue for the lock instead of failing.
- ``--ignore-errors`` makes a failed stage still end in a committed experiment (its outputs
  missing), so a failed trial is visible in ``dvc exp show`` like any other; it is then
  renamed ``<name>-failed`` (``<name>-pruned`` for a pruned one), so the first column of
  ``dvc exp show`` says what happened.

Metrics are read back from the experiment's commit with :func:`nlpflow.revisions.read_at`
(git, else the DVC cache); experiments are found by their refs
(:func:`nlpflow.revisions.experiment_refs`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nlpflow.errors import UserError
from nlpflow.params import MODEL_METRICS, tune_metric_problem
from nlpflow.revisions import Revision, git, read_at

LOG_TAIL = 4000


def dvc_executable() -> str:
    """The ``dvc`` of this Python environment (falls back to the one on PATH)."""
    local = Path(sys.executable).parent / "dvc"
    return str(local) if local.exists() else "dvc"


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for DVC: this environment's ``python`` and ``dvc`` come first."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if extra:
        env.update(extra)
    return env


def dvc(
    args: Sequence[str],
    repo: str | Path,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``dvc --wait-for-lock ARGS`` in ``repo``."""
    cmd = [dvc_executable(), "--wait-for-lock", *args]
    proc = subprocess.run(
        cmd, cwd=repo, env=tool_env(env), text=True, capture_output=True, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise UserError(f"`dvc {' '.join(args)}` failed: " + " | ".join(tail))
    return proc


def dirty_files(repo: str | Path) -> list[str]:
    """Tracked files with uncommitted changes: `dvc exp run` carries them into every trial."""
    out = git(["status", "--porcelain", "--untracked-files=no"], repo)
    return [line[3:] for line in out.splitlines() if line.strip()]


def rename_experiment(repo: str | Path, old: str, new: str) -> bool:
    """``dvc exp rename OLD NEW``; False (and the old name kept) when DVC refuses."""
    return dvc(["exp", "rename", old, new], repo, check=False).returncode == 0


# --------------------------------------------------------------------------- metrics


class MetricError(UserError):
    """An objective or constraint names a metric that cannot be read."""


SAFETENSORS = "models/best/model.safetensors"


def parse_metric(spec: str) -> tuple[str, list[str]]:
    """``FILE:KEY.PATH`` -> (file, [key, path]). Refuses anything read from the test split."""
    problem = tune_metric_problem(spec)
    if problem is not None:
        raise MetricError(f"metric {spec!r} {problem}")
    file, _, key = spec.partition(":")
    return file, key.split(".")


def lookup(data: Any, parts: Sequence[str]) -> Any:
    """The value at ``parts`` (keys, or list indices as digits) inside parsed JSON ``data``;
    None when any step is missing."""
    node = data
    for part in parts:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


class MetricReader:
    """Reads metrics of one experiment commit, each file once."""

    def __init__(self, repo: str | Path, sha: str) -> None:
        self.repo, self.rev = repo, Revision(sha, sha)
        self._files: dict[str, Any] = {}

    def json(self, file: str) -> Any:
        """The parsed JSON of ``file`` at the experiment's commit; None when missing or invalid."""
        if file not in self._files:
            raw = read_at(self.repo, self.rev, file)
            try:
                self._files[file] = json.loads(raw) if raw is not None else None
            except json.JSONDecodeError:
                self._files[file] = None
        return self._files[file]

    def value(self, spec: str) -> float | None:
        """The number at ``spec``; None when missing or not a finite number."""
        if spec in MODEL_METRICS:
            return self._model_metric(spec)
        file, parts = parse_metric(spec)
        value = lookup(self.json(file), parts)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        value = float(value)
        return value if value == value and abs(value) != float("inf") else None

    def _model_metric(self, spec: str) -> float | None:
        """Parameters of models/best, counted from the safetensors header (no torch needed)."""
        raw = read_at(self.repo, self.rev, SAFETENSORS)
        if raw is None or len(raw) < 8:
            return None
        if spec == "model:size_mb":
            return round(len(raw) / 1e6, 3)
        size = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + size])
        total = 0
        for name, info in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in info["shape"]:
                count *= int(dim)
            total += count
        return float(total)


def exp_name(study: str, number: int) -> str:
    """The experiment name of trial ``number``: ``<study>-007``."""
    return f"{study}-{number:03d}"
