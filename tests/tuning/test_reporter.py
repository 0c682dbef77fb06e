"""TrialReporter: the train stage's side of pruning, tested standalone (no DVC, no training)."""

from __future__ import annotations

import optuna

from nlpflow.tuning.config import CONFIG_ATTR, StudyConfig
from nlpflow.tuning.reporter import DVC_EXP_NAME, TrialReporter, trial_environment
from nlpflow.tuning.storage import open_storage

OBJECTIVE = {"metric": "metrics/evaluate.json:validation.f1_macro", "direction": "maximize"}


def make_study(
    url: str,
    objectives: list[dict[str, str]] | None = None,
    intermediate: dict[int, float] | None = None,
) -> optuna.Study:
    """A study as `nlpflow tune` creates it, with one finished trial to compare against."""
    objectives = objectives or [OBJECTIVE]
    config = StudyConfig(
        study="s",
        sampler="random",
        sampler_seed=0,
        objectives=objectives,
        pruner={"kind": "median", "metric": "f1_macro", "startup_trials": 1, "warmup_epochs": 0},
        epochs=3,
    )
    storage = open_storage(url, heartbeat=False)
    study = optuna.create_study(
        study_name="s", storage=storage, directions=[o["direction"] for o in objectives]
    )
    study.set_user_attr(CONFIG_ATTR, config.to_json())
    if len(objectives) == 1:
        dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": 0.5},
                distributions=dist,
                value=0.8,
                intermediate_values=intermediate or {1: 0.5, 2: 0.7, 3: 0.8},
            )
        )
    return study


def env_for(url: str, number: int, exp: str = "s-001") -> dict[str, str]:
    return {**trial_environment(url, "s", number, exp), DVC_EXP_NAME: exp}


def test_outside_a_trial_there_is_no_reporter() -> None:
    lines: list[str] = []
    assert TrialReporter.from_env({}, log=lines.append) is None
    assert lines == []  # nothing to say when no tuning variable is set


def test_variables_left_in_a_shell_never_report(url: str) -> None:
    make_study(url)
    lines: list[str] = []
    env = env_for(url, 1)
    env[DVC_EXP_NAME] = "someone-elses-exp"  # e.g. a plain `dvc exp run` from that shell
    assert TrialReporter.from_env(env, log=lines.append) is None
    del env[DVC_EXP_NAME]  # e.g. `dvc repro`
    assert TrialReporter.from_env(env, log=lines.append) is None
    assert len(lines) == 2 and "not that DVC experiment" in lines[0]


def test_an_unknown_study_is_logged_and_training_goes_on(url: str) -> None:
    make_study(url)
    lines: list[str] = []
    env = {**env_for(url, 1), "NLPFLOW_TUNE_STUDY": "nope"}
    assert TrialReporter.from_env(env, log=lines.append) is None
    assert "cannot reach trial 1 of study nope" in lines[0]


def test_reports_and_prunes_with_the_median_rule(url: str) -> None:
    study = make_study(url)
    trial = study.ask()  # trial 1, RUNNING, as the tuner leaves it while DVC runs
    lines: list[str] = []
    reporter = TrialReporter.from_env(env_for(url, trial.number), log=lines.append)
    assert reporter is not None and reporter.metric == "f1_macro"
    assert reporter.report(1, 0.6) is False  # better than trial 0 at epoch 1 (0.5)
    assert reporter.report(2, 0.4) is True  # worse than trial 0 at epoch 2 (0.7)
    assert "median pruner" in reporter.detail and "epoch 2" in reporter.detail
    # a resumed run repeats an epoch: not reported twice (Optuna would warn), same answer
    assert reporter.report(2, 0.4) is True
    # the run's last evaluation is recorded without asking: worse than 0.8, yet not pruned
    assert reporter.report(3, 0.1, ask=False) is False
    frozen = study.trials[trial.number]
    assert frozen.intermediate_values == {1: 0.6, 2: 0.4, 3: 0.1}


def test_a_trial_its_worker_gave_up_stops(url: str) -> None:
    study = make_study(url)
    trial = study.ask()
    reporter = TrialReporter.from_env(env_for(url, trial.number))
    assert reporter is not None
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert reporter.report(1, 0.9) is True
    assert "fail" in reporter.detail


def test_multi_objective_studies_do_not_prune(url: str) -> None:
    size = {"metric": "model:parameters", "direction": "minimize"}
    study = make_study(url, [OBJECTIVE, size])
    trial = study.ask()
    reporter = TrialReporter.from_env(env_for(url, trial.number))
    assert reporter is not None and reporter.pruning is False
    assert reporter.report(1, 0.0) is False
    assert study.trials[trial.number].intermediate_values == {}


def test_pruners_follow_the_training_budget() -> None:
    from nlpflow.tuning.config import build_pruner

    def config(**pruner: object) -> StudyConfig:
        return StudyConfig(
            study="s", sampler="tpe", sampler_seed=0, objectives=[OBJECTIVE],
            pruner={"metric": "f1_macro", **pruner}, epochs=12, evaluations=12,
        )  # fmt: skip

    hyperband = build_pruner(config(kind="hyperband", min_epochs=2, reduction_factor=3))
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
    assert (hyperband._min_resource, hyperband._max_resource) == (2, 12)
    unknown = config(kind="hyperband")
    unknown.evaluations = 0  # train.eval_every_steps: Hyperband infers the maximum
    assert build_pruner(unknown)._max_resource == "auto"  # type: ignore[attr-defined]
    median = build_pruner(config(kind="median", startup_trials=4, warmup_epochs=2))
    assert isinstance(median, optuna.pruners.MedianPruner)
    assert median._n_startup_trials == 4 and median._n_warmup_steps == 3  # never at epoch <= 2
    assert isinstance(build_pruner(config(kind="none")), optuna.pruners.NopPruner)
