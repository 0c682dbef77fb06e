"""`nlpflow tune` on the real pipeline (tiny params): two parallel trials on PostgreSQL (as on
several machines; SQLite where it is not installed), applied; and the real train stage
pruned through TrialReporter on both storages."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import copy_project, run, tool_env
from tests.tuning.fakeproject import experiments
from tests.tuning.procs import run_bounded

# func_only: the module fixture (a real `dvc repro`) is bounded by the suite-wide timeout
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300, func_only=True)]

# Evaluation and error analysis cut to their cheapest; the trials are about tuning train.
FAST = {
    "evaluate": {"bootstrap_resamples": 0, "baselines": ["majority"]},
    "error_analysis": {"behaviour": {"invariance": [], "directional": [], "templates": "",
                                     "max_examples": 5}},
    "tune": {"n_trials": 2, "jobs": 2},
}  # fmt: skip


@pytest.fixture(scope="module")
def repo(reproduced_template: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the suite's reproduced tiny project with evaluation cut to its cheapest
    (only evaluate and error_analysis rerun for that), committed as the trials' baseline."""
    repo = copy_project(reproduced_template[0], tmp_path_factory.mktemp("tune"))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in FAST.items():
        for key, value in values.items():
            params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "baseline"], repo)
    return repo


@pytest.fixture
def study_storage(request: pytest.FixtureRequest) -> str | None:
    """The storage URL of the end-to-end study: a real PostgreSQL server (the several-machines
    setup, installed by .ci/run) as a user writes its URL, or None (the default SQLite file
    in tune/optuna.db) where PostgreSQL is not installed. The SQLite path of the stages'
    reports is also tested with the real train stage below, on both storages."""
    from tests.tuning import postgres

    if postgres.why_unavailable():
        return None
    server = request.getfixturevalue("postgres_server")
    # the URL as a user writes it: nlpflow picks the psycopg 3 driver it installs
    return postgres.fresh_database(server, "study_e2e").replace(
        "postgresql+psycopg://", "postgresql://"
    )


def test_two_real_trials_run_in_parallel_report_each_epoch_and_the_best_is_applied(
    repo: Path, study_storage: str | None
) -> None:
    """Two parallel real trials (the real pipeline, tiny params) as DVC experiments, their
    train stages reporting every epoch to the study's storage, the report, and --apply."""
    storage_args = ["--storage", study_storage] if study_storage else []
    proc = run_bounded(["nlpflow", "tune", *storage_args], repo, timeout=240)
    assert "2 complete" in proc.stdout, proc.stdout + proc.stderr

    exps = experiments(repo)
    if study_storage:
        url = study_storage.replace("postgresql://", "postgresql+psycopg://")
        assert "postgresql+psycopg://nlpflow@/study_e2e" in (repo / "reports/tune.md").read_text()
    else:
        url = f"sqlite:///{repo}/tune/optuna.db"
    storage = optuna.storages.RDBStorage(url)
    try:
        trials = optuna.load_study(study_name="nlpflow", storage=storage).get_trials()
    finally:
        storage.engine.dispose()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert [t.user_attrs["exp"] for t in trials] == ["nlpflow-000", "nlpflow-001"]
    starts = sorted(t.datetime_start for t in trials)
    ends = sorted(t.datetime_complete for t in trials)
    assert starts[1] < ends[0], "the two trials should have run at the same time"
    for t in trials:
        exp = exps[t.user_attrs["exp"]]
        assert exp["params"]["train"]["lr"] == pytest.approx(t.params["train.lr"])
        assert exp["params"]["train"]["schedule"] == t.params["train.schedule"]
        validation = exp["metrics"]["metrics/evaluate.json"]["validation"]
        assert t.values == [pytest.approx(validation["f1_macro"])]
        train = exp["metrics"]["metrics/train.json"]
        assert t.user_attrs["epochs_run"] == train["epochs_run"] >= 1
        assert sorted(t.intermediate_values) == list(range(1, train["epochs_run"] + 1))
    assert (repo / "reports/tune.md").exists()

    run_bounded(["nlpflow", "tune", "--apply", *storage_args], repo)
    best = max(trials, key=lambda t: (t.values[0], -t.number))
    applied = yaml.safe_load((repo / "params.yaml").read_text())["train"]
    assert applied["lr"] == pytest.approx(best.params["train.lr"])


def test_the_train_stage_reports_to_its_trial_and_is_pruned(
    repo: Path, tmp_path: Path, url: str
) -> None:
    """The real train stage, in a trial's environment, against a study whose finished trial
    was perfect at every epoch: the median rule prunes it after its first evaluation. On
    SQLite and on PostgreSQL: the stage process reaches the study through the URL alone."""
    from tests.tuning.test_reporter import env_for, make_study

    study = make_study(url, intermediate={1: 1.0, 2: 1.0, 3: 1.0})
    trial = study.ask()
    out = tmp_path / "out"
    env = {**tool_env(), **env_for(url, trial.number)}
    cmd = ["python", "-m", "stages.train", "--data", "data/tokenized", "--tokenizer",
           "models/tokenizer", "--probe", "data/probe/plan.json", "--models", str(out / "models"),
           "--checkpoints", str(out / "ckpt"), "--metrics", str(out / "train.json"),
           "--plots", str(out / "plots")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=repo, env=env, text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "train.json").read_text())
    reported = study.trials[trial.number].intermediate_values
    assert summary["stop_reason"] == "pruned" and summary["pruned"] == 1, summary
    assert summary["epochs_run"] == 1 and list(reported) == [1]
    assert reported[1] == pytest.approx(summary["final"]["val_f1_macro"])
    assert summary["trial"] == trial.number
