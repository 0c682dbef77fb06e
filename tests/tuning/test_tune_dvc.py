"""`nlpflow tune` and DVC sweeps with real DVC experiments, on the fake-stage project.

The stage computes its "training" in a fraction of a second (tests/tuning/fakeproject.py) but
reports through TrialReporter like the train stage, so these tests check everything on the
DVC side: trials listed by `dvc exp show` with their params and metrics, pruned and failed
trials marked in both DVC and the study, seed reruns, the report, and applying the best.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from tests.conftest import run
from tests.tuning.fakeproject import experiments, make_fake_project
from tests.tuning.procs import dvc_queue, run_bounded, wait_for_queue

pytestmark = pytest.mark.slow


def with_tune(repo: Path, tune: dict[str, Any]) -> None:
    """Replace the tune section of the project's params.yaml, and commit it."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["tune"] = {**params["tune"], **tune}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "commit", "-q", "-am", "tune settings"], repo)


def study_trials(repo: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    url = f"sqlite:///{repo}/tune/optuna.db"
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


@pytest.mark.timeout(300)
def test_grid_study_marks_pruned_and_failed_trials_reruns_seeds_and_applies_the_best(
    tmp_path: Path,
) -> None:
    repo = make_fake_project(tmp_path)
    with_tune(
        repo,
        {
            "study": "grid",
            "sampler": "grid",
            "pruner": {"kind": "median", "metric": "f1_macro", "startup_trials": 1,
                       "warmup_epochs": 0},
            # lr 0.03 learns too slowly (pruned at epoch 1); 0.6 diverges (the stage fails)
            "space": {"train.lr": {"type": "float", "low": 0.0005, "high": 0.9, "log": True,
                                   "grid": [0.001, 0.003, 0.03, 0.6]}},
        },
    )  # fmt: skip
    proc = run_bounded(["nlpflow", "tune"], repo)
    assert "4 trial(s)" in proc.stdout and "1 pruned, 1 failed" in proc.stdout

    # DVC: every trial is an experiment with its params and metrics; the suffix says how it ended
    exps = experiments(repo)
    assert {"grid-000", "grid-001", "grid-002-pruned", "grid-003-failed"} <= exps.keys()
    lrs = {n: e["params"]["train"]["lr"] for n, e in exps.items() if n.startswith("grid")}
    assert lrs == {"grid-000": 0.001, "grid-001": 0.003, "grid-002-pruned": 0.03,
                   "grid-003-failed": 0.6}  # fmt: skip
    pruned = exps["grid-002-pruned"]["metrics"]["metrics/train.json"]
    assert pruned["pruned"] == 1 and pruned["stop_reason"] == "pruned"
    assert pruned["epochs_run"] == 1
    assert not exps["grid-003-failed"]["metrics"].get("metrics/train.json")

    # Optuna: the same four outcomes
    trials = study_trials(repo, "grid")
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"]
    assert "diverged" in trials[3].user_attrs["log_tail"]
    assert trials[2].intermediate_values.keys() == {1}

    report = (repo / "reports/tune.md").read_text()
    assert "Trial 1, experiment `grid-001`" in report and "**Unconfirmed.**" in report
    assert "dvc exp apply grid-001" in report
    assert (repo / "reports/tune/history.png").stat().st_size > 0

    # --seeds: the top two rerun with a second seed, compared pairwise; nothing else reruns
    proc = run_bounded(["nlpflow", "tune", "--seeds", "2", "--top", "2", "--jobs", "2"], repo)
    assert "ran 0 trial(s)" in proc.stdout and "0 complete" in proc.stdout  # none of the study
    assert "then 2 seed rerun(s)" in proc.stdout
    exps = experiments(repo)
    assert {"grid-000-seed43", "grid-001-seed43"} <= exps.keys()
    assert exps["grid-001-seed43"]["params"]["seed"] == 43
    assert len(study_trials(repo, "grid")) == 4
    report = (repo / "reports/tune.md").read_text()
    assert "mean ± SD over 2 seeds" in report and "paired t-test" in report
    summary = json.loads((repo / "reports/tune.json").read_text())
    assert [s["trial"] for s in summary["seed_stats"]] == [1, 0]

    # one command applies the best to the workspace
    run_bounded(["nlpflow", "tune", "--apply"], repo)
    assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["lr"] == 0.003


@pytest.mark.timeout(240)
def test_multi_objective_with_a_floor_reports_the_pareto_front(tmp_path: Path) -> None:
    repo = make_fake_project(tmp_path)
    with_tune(
        repo,
        {
            "study": "mo",
            "sampler": "random",
            "sampler_seed": 3,
            "n_trials": 4,
            "jobs": 1,  # parallel trials are tested elsewhere; here they raced DVC (1 FAIL in 4 suites)
            "objectives": [
                {"metric": "metrics/evaluate.json:validation.f1_macro", "direction": "maximize"},
                {"metric": "metrics/train.json:cost", "direction": "minimize"},
            ],
            "constraints": [{"metric": "metrics/evaluate.json:validation.accuracy", "min": 0.86}],
            "space": {"train.lr": {"type": "float", "low": 0.0003, "high": 0.03, "log": True}},
        },
    )
    run_bounded(["nlpflow", "tune"], repo)
    trials = study_trials(repo, "mo")
    assert len(trials) == 4 and {t.state.name for t in trials} == {"COMPLETE"}
    exps = experiments(repo)
    for t in trials:
        accuracy = t.user_attrs["metrics"]["metrics/evaluate.json:validation.accuracy"]
        infeasible = accuracy < 0.86
        assert t.user_attrs["exp"].endswith("-infeasible") == infeasible
        assert t.user_attrs["exp"] in exps
        assert (
            t.system_attrs["constraints:metrics/evaluate.json:validation.accuracy"] > 0
        ) == infeasible
    report = (repo / "reports/tune.md").read_text()
    assert "on the Pareto front" in report and "(otherwise infeasible)" in report
    assert (repo / "reports/tune/pareto.png").exists()


@pytest.mark.timeout(300)
def test_a_dvc_grid_sweep_runs_every_combination(tmp_path: Path) -> None:
    """The sweep syntax the README documents: DVC's own queue, no nlpflow involved. The queue
    workers outlive `dvc queue start`: nothing here waits on their output, the queue is
    polled with its own deadline, and the workers are stopped (and checked gone) after."""
    repo = make_fake_project(tmp_path)
    run_bounded(["dvc", "exp", "run", "--queue", "-S", "train.lr=0.001,0.01",
                 "-S", "train.warmup_ratio=0,0.1"], repo)  # fmt: skip
    with dvc_queue(repo, jobs=2):
        status = wait_for_queue(repo, timeout=180)
    assert Counter(line.split()[-1] for line in status.splitlines() if "  " in line and
                   line.split()[-1] in ("Success", "Failed")) == {"Success": 4}  # fmt: skip
    exps = experiments(repo).values()
    combos = {(e["params"]["train"]["lr"], e["params"]["train"]["warmup_ratio"]) for e in exps}
    assert combos == {(0.001, 0), (0.001, 0.1), (0.01, 0), (0.01, 0.1)}
    assert all(e["metrics"]["metrics/evaluate.json"]["validation"]["f1_macro"] > 0 for e in exps)
