"""Shared fixtures: tiny params files and a copy of the project in a temporary git repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from nlpflow.params import Params, as_dict, parse_params, read_yaml

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: one thread each (and in the stages they
    # start), since oversubscribed threads slow small models many times over.
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")

ROOT = Path(__file__).resolve().parents[1]

# The suite's params never come from the checkout's params.yaml (which `dvc exp run -S` and
# `dvc exp apply` rewrite): they are the typed schema's defaults (nlpflow.params), then the
# project settings below that the tests rely on, then the tiny overrides.
PROJECT_SETTINGS: dict[str, Any] = {
    "error_analysis": {
        "behaviour": {
            "directional": [
                {
                    "name": f"a {kind} letter lowers p(yes)",
                    "perturbation": perturbation,
                    "fields": ["second"],
                    "only_label": "yes",
                    "target": "yes",
                    "expect": "decrease",
                }
                for kind, perturbation in [
                    ("substituted", "substitute_char"),
                    ("dropped", "drop_char"),
                ]
            ],
            "templates": "builtin:anagram",
            "max_template_cases": 100,
        }
    },
    "tune": {
        "space": {
            "train.lr": {
                "type": "float",
                "low": 0.0003,
                "high": 0.01,
                "log": True,
                "grid": [0.0005, 0.002, 0.008],
            },
            "train.warmup_ratio": {"type": "float", "low": 0.0, "high": 0.3, "grid": [0.0, 0.1]},
            "train.schedule": {"type": "categorical", "choices": ["linear", "cosine"]},
        }
    },
}

# Small enough that the whole pipeline runs in seconds on two cores.
TINY_OVERRIDES: dict[str, Any] = {
    "data": {"anagram": {"size": 240, "min_word_length": 3, "max_word_length": 5}},
    "tokenizer": {"vocab_size": 64, "max_length": 32},
    "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32},
    "probe": {"max_batch_size": 16, "max_candidates": 8},
    "train": {"epochs": 2, "effective_batch_size": 16, "lr": 0.003},
    "lr_range": {"steps": 20, "min_lr": 1e-4},
    "evaluate": {"batch_size": 32},
}


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own directory: a stage called with default paths must never
    write into the checkout."""
    monkeypatch.chdir(tmp_path)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: ``override`` wins, nested sections are merged key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def suite_params() -> dict[str, Any]:
    """The suite's base params: schema defaults and :data:`PROJECT_SETTINGS`, checked by the
    schema; never the checkout's params.yaml."""
    base = merge(as_dict(Params()), PROJECT_SETTINGS)
    parse_params(base)  # a setting the schema rejects fails here, not deep in a test
    return base


def tiny_params(**override: Any) -> dict[str, Any]:
    """The suite's params with the tiny overrides (and any given) applied."""
    return merge(merge(suite_params(), TINY_OVERRIDES), override)


def dump_params(params: dict[str, Any]) -> str:
    """params.yaml text that reads back (YAML 1.2, as DVC reads it) to ``params``."""
    text = yaml.safe_dump(params, sort_keys=False)
    assert read_yaml(text) == params, "params do not survive a YAML round trip"
    return text


@pytest.fixture
def write_params(tmp_path: Path) -> Callable[..., Path]:
    """Write a tiny params.yaml into tmp_path (with overrides) and return its path."""

    def _write(**override: Any) -> Path:
        path = tmp_path / "params.yaml"
        path.write_text(dump_params(tiny_params(**override)))
        return path

    return _write


def tool_env() -> dict[str, str]:
    """The environment for subprocesses: this interpreter's `python` and `dvc` come first."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = ""  # stages are imported from the temporary repo, nlpflow from the install
    return env


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(), text=True, capture_output=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode})\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "stages", "src"]


def make_project(parent: Path) -> Path:
    """A copy of the project in a new git + DVC repository with tiny params, committed."""
    repo = parent / "project"
    repo.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, repo / name)
    (repo / "params.yaml").write_text(dump_params(tiny_params()))
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "config", "user.email", "test@example.com"], repo)
    run(["git", "config", "user.name", "nlpflow test"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "core.analytics", "false"], repo)
    # The project's custom plot templates (referenced by name in dvc.yaml's plots).
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "tiny project"], repo)
    return repo


@pytest.fixture(scope="session")
def reproduced_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``(repo, dvc repro's stdout)``: a tiny copy of the project after one real `dvc repro`,
    committed on main. Never modified: tests work on copies (:func:`copy_project`), so the
    suite pays for one tiny pipeline run instead of one per module."""
    repo = make_project(tmp_path_factory.mktemp("reproduced"))
    proc = run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "baseline run"], repo)
    return repo, proc.stdout


def copy_project(template: Path, parent: Path) -> Path:
    """A copy of a reproduced project (git history, DVC cache and outputs) under ``parent``."""
    repo = parent / "project"
    shutil.copytree(template, repo, symlinks=True)
    return repo


@pytest.fixture(scope="session")
def reproduced_project(
    reproduced_template: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The reproduced tiny project shared by the slow tests that read its outputs (the
    browser test also adds a DVC experiment to it, which leaves the experiment's results in
    the workspace)."""
    return copy_project(reproduced_template[0], tmp_path_factory.mktemp("reproduced-shared"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh tiny project in a temporary git + DVC repository."""
    return make_project(tmp_path)


# The slowest test files (seconds of a serial run, `pytest --durations`), heaviest first:
# `make test` starts them first so the two workers finish together (longest job first).
HEAVIEST_FILES = [
    "tests/tuning/test_tune_pipeline.py",  # ~220 s: a real tune study on the tiny project
    "tests/pipeline/test_dvc_pipeline.py",  # ~300 s: dvc repro and exp run, bit-identical rerun
    "tests/tuning/test_tune_dvc.py",  # ~150 s
    "tests/tuning/test_workers.py",  # ~125 s
    "tests/test_notebook.py",  # ~80 s
    "tests/browser/test_plots_render.py",  # ~80 s
    "tests/pipeline/test_dvc_status.py",  # ~75 s
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the tests for pytest-xdist (``make test``: ``-n 2 --dist loadfile
    --no-loadscope-reorder``): the heaviest files first (Python's sort is stable: every file's
    own order is kept). ``loadfile`` keeps each file on one worker, so a file's module-scoped
    fixtures (trained tiny models, reproduced projects) are built once. (Not ``loadgroup``
    with ``xdist_group`` marks: pytest 9.2 derives ``nodeid`` from a structured id, so the
    group suffix xdist 3.8 writes into ``_nodeid`` is lost and every test is its own group.)
    """
    rank = {name: i for i, name in enumerate(HEAVIEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.relative_to(ROOT).as_posix(), len(rank)))
