"""`nlpflow tune` refuses what would make a study dishonest, with one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from nlpflow.cli import main
from nlpflow.errors import UserError
from nlpflow.params import PRUNER_DIRECTIONS
from tests.conftest import run, suite_params


def project(tmp_path: Path, **tune: Any) -> Path:
    """A git repository holding params.yaml (no DVC needed to be refused)."""
    params = suite_params()
    params["tune"].update(tune)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], tmp_path)
    run(["git", "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-q", "--allow-empty",
         "-m", "init"], tmp_path)  # fmt: skip
    return tmp_path


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["tune", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_epochs_in_the_space(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = project(tmp_path, space={"train.epochs": {"type": "int", "low": 2, "high": 8}})
    assert "epoch budget" in refused(capsys, "--repo", str(repo))


def test_a_single_seed_decides_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = project(tmp_path)
    assert "tune.seeds must be 0 or >= 2" in refused(capsys, "--repo", str(repo), "--seeds", "1")


def test_selection_on_test_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = project(tmp_path, objectives=[{"metric": "metrics/evaluate.json:test.f1_macro"}])
    assert "leaks the test set" in refused(capsys, "--repo", str(repo))


def test_check_params_refuses_what_tune_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tune rules belong to params.yaml's schema: `nlpflow check-params` catches them too."""
    cases = [
        ({"objectives": [{"metric": "metrics/evaluate.json:test.f1_macro"}]},
         "tune.objectives[0].metric 'metrics/evaluate.json:test.f1_macro' reads the test split"),
        ({"constraints": [{"metric": "metrics/evaluate_test.json:accuracy", "min": 0.5}]},
         "tune.constraints[0].metric"),
        ({"pruner": {"kind": "median", "metric": "loss"}},
         "tune.pruner.metric 'loss' is one to minimize but the objective is one to maximize"),
    ]  # fmt: skip
    for n, (tune, message) in enumerate(cases):
        (tmp_path / str(n)).mkdir()
        repo = project(tmp_path / str(n), **tune)
        assert main(["check-params", "--params", str(repo / "params.yaml")]) == 2
        assert message in capsys.readouterr().err
    # several objectives: Optuna does not prune them, so any pruner metric is allowed
    two = [{"metric": "metrics/evaluate.json:validation.f1_macro"},
           {"metric": "model:parameters", "direction": "minimize"}]  # fmt: skip
    (tmp_path / "two").mkdir()
    repo = project(tmp_path / "two", objectives=two, pruner={"kind": "median", "metric": "loss"})
    assert main(["check-params", "--params", str(repo / "params.yaml")]) == 0


def test_a_pruner_metric_moving_the_wrong_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = project(tmp_path, pruner={"kind": "median", "metric": "loss"})
    assert "would stop the best trials" in refused(capsys, "--repo", str(repo))


def test_a_report_of_a_study_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = project(tmp_path)
    assert "no study named 'nlpflow'" in refused(capsys, "--repo", str(repo), "--report-only")


def test_the_summary_warns_when_trials_tie_with_the_best(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a plateau the "best" is an arbitrary pick among equals: say so before its boundary."""
    import optuna

    from nlpflow.params import load_params
    from nlpflow.tuning.study import Tuner, TuneRequest

    repo = project(tmp_path)
    params = load_params(repo / "params.yaml")
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    # The study is created as `nlpflow tune` creates it; its trials are added by hand.
    study = Tuner(TuneRequest(repo, params.tune, raw, params)).open_study(to_run=False)
    dists = {
        "train.lr": optuna.distributions.FloatDistribution(0.0003, 0.01, log=True),
        "train.warmup_ratio": optuna.distributions.FloatDistribution(0.0, 0.3),
    }
    for n, (lr, warmup) in enumerate([(0.001, 0.29), (0.0005, 0.05), (0.004, 0.1)]):
        study.add_trial(optuna.trial.create_trial(
            params={"train.lr": lr, "train.warmup_ratio": warmup}, distributions=dists,
            values=[0.83], user_attrs={"exp": f"nlpflow-{n:03d}"}))  # fmt: skip
    assert main(["tune", "--repo", str(repo), "--report-only"]) == 0
    out = capsys.readouterr().out
    assert "tune: best trial 0 (nlpflow-000)" in out
    tie = out.index("trial(s) 1, 2 reached exactly the same value")
    assert tie < out.index("`train.warmup_ratio` = 0.29 lies in the upper tenth")
    report = (repo / "reports" / "tune.md").read_text()
    assert "Not estimated: they need at least 10 complete trials" in report


def test_params_rewritten_by_dvc_are_read_as_dvc_reads_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dvc exp apply` and `-S` rewrite params.yaml as YAML 1.2 and drop the quotes of "yes".

    Found on a real study: after `nlpflow tune --apply`, YAML 1.1 read `only_label: yes` as True
    and every later `nlpflow tune` refused the params."""
    from dvc.utils.serialize import modify_yaml

    repo = project(tmp_path)
    with modify_yaml(repo / "params.yaml") as data:  # DVC's own writer, as -S uses it
        data["train"]["lr"] = 0.001
    written = (repo / "params.yaml").read_text()
    assert "only_label: yes\n" in written  # unquoted: the case that broke
    err = refused(capsys, "--repo", str(repo), "--report-only")
    assert "no study named 'nlpflow'" in err  # past reading and checking the params


def test_a_pruner_metric_the_task_does_not_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pruner follows a metric the train stage writes per epoch, or tune stops at once
    (a trial would otherwise report another value in its place); per family."""
    from nlpflow.params import parse_params
    from nlpflow.tuning.command import check_pruner_metric

    repo = project(tmp_path, pruner={"kind": "median", "metric": "r2"})
    err = refused(capsys, "--repo", str(repo))
    assert "tune.pruner.metric r2 is not reported per epoch by a sequence task" in err
    assert "['loss', 'accuracy', 'f1_macro']" in err

    def check(data: dict[str, Any], metric: str, **train: Any) -> str | None:
        way = PRUNER_DIRECTIONS[metric]  # the objective moves as the pruner's metric does
        tune = {"pruner": {"kind": "median", "metric": metric},
                "objectives": [{"metric": "metrics/evaluate.json:validation.loss",
                                "direction": way}]}  # fmt: skip
        params = parse_params({"data": data, "train": train, "tune": tune})
        try:
            check_pruner_metric(params, params.tune)
        except UserError as bad:
            return str(bad)
        return None

    regression = {"source": "builtin:regression"}
    assert check(regression, "rmse") is None and check(regression, "pearson") is None
    assert "by a regression task (it reports ['loss', 'mse', 'rmse'" in str(
        check(regression, "f1_macro")
    )
    qa = {"source": "builtin:qa"}
    assert check(qa, "accuracy") is None
    assert "by a qa task (it reports ['loss', 'accuracy'])" in str(check(qa, "f1_macro"))
    t2t = {"source": "builtin:text2text"}
    assert check(t2t, "accuracy") is None
    assert "needs train.generation_sample" in str(check(t2t, "exact_match"))
    assert check(t2t, "exact_match", generation_sample=8) is None
    labels = {"source": "builtin:anagram", "task": "text2text", "text2text": {"label_task": True}}
    assert "by a text2text task" in str(check(labels, "f1_macro"))
    for source in ("builtin:entities", "builtin:multilabel", "builtin:choice", "data/x.csv"):
        assert check({"source": source}, "f1_macro") is None
    assert "by a sequence or token task" in str(check({"source": "data/x.csv"}, "rmse"))
    # nothing is pruned: nothing to check
    params = parse_params({"data": qa, "tune": {"pruner": {"kind": "none", "metric": "r2"}}})
    check_pruner_metric(params, params.tune)
