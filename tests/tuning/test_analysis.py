"""Honest conclusions: ranking, Pareto front, seed statistics and the paired test, the report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest
from scipy import stats as st

from nlpflow.tuning import analysis as an
from nlpflow.tuning.config import SEEDS_SUFFIX, StudyConfig
from nlpflow.tuning.report import write_report
from nlpflow.tuning.space import build_space
from tests.tuning.fakes import request

F1 = "metrics/evaluate.json:validation.f1_macro"
DIST = {"train.lr": optuna.distributions.FloatDistribution(0.0003, 0.01, log=True)}


def config(*directions: str) -> StudyConfig:
    objectives = [{"metric": f"m{i}.json:validation.x", "direction": d}
                  for i, d in enumerate(directions)]  # fmt: skip
    objectives[0]["metric"] = F1
    return StudyConfig(study="s", sampler="tpe", sampler_seed=0, objectives=objectives,
                       pruner={"kind": "none"}, epochs=4, global_seed=42)  # fmt: skip


def add(study: optuna.Study, lr: float, values: list[float], **attrs: Any) -> None:
    study.add_trial(
        optuna.trial.create_trial(
            params={"train.lr": lr}, distributions=DIST, values=values,
            user_attrs={"exp": f"s-{len(study.trials):03d}", **attrs},
        )
    )  # fmt: skip


def stats_of(values: list[float], seeds: list[int], trial: int = 0) -> an.SeedStats:
    return an.SeedStats(trial, "e", {}, seeds, [values])


def test_paired_test_matches_scipy_and_says_when_the_top_two_differ() -> None:
    a = stats_of([0.80, 0.82, 0.81], [42, 43, 44], trial=1)
    b = stats_of([0.78, 0.80, 0.80], [42, 43, 44], trial=2)
    test = an.paired_test(a, b)
    assert test is not None and (test.a, test.b, test.n) == (1, 2, 3)
    assert test.p_value == pytest.approx(st.ttest_rel(a.values[0], b.values[0]).pvalue)
    assert test.mean_diff == pytest.approx(0.01 + 0.02 / 3)
    assert test.ci_low < test.mean_diff < test.ci_high and test.significant
    noisy = an.paired_test(a, stats_of([0.83, 0.78, 0.80], [42, 43, 44]))
    assert noisy is not None and not noisy.significant and noisy.ci_low < 0 < noisy.ci_high
    # only the seeds both ran are paired; one common seed decides nothing
    assert an.paired_test(a, stats_of([0.9, 0.9], [42, 99])) is None


def test_ranking_skips_infeasible_trials_and_repeated_configurations(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    add(study, 0.001, [0.9], feasible=False)
    add(study, 0.002, [0.8])
    add(study, 0.002, [0.8])  # the same configuration again
    add(study, 0.004, [0.7])
    top = an.top_trials(study, config("maximize"), 3)
    assert [t.number for t in top] == [1, 3]


def test_pareto_front_keeps_only_non_dominated_trials() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for lr, values in [(0.001, [0.9, 5.0]), (0.002, [0.8, 1.0]), (0.003, [0.7, 2.0]),
                       (0.004, [0.9, 5.0])]:  # fmt: skip
        add(study, lr, values)
    front = an.pareto_front(an.complete_feasible(study.trials), ["maximize", "minimize"])
    assert [t.number for t in front] == [0, 3, 1]  # trial 2 is worse than 1 in both


def test_seed_statistics_and_the_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/o.db"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    add(study, 0.001, [0.90])  # lucky: best single run, worse on average
    add(study, 0.003, [0.88])
    add(study, 0.0003, [0.50])
    seeds = optuna.create_study(study_name="s" + SEEDS_SUFFIX, storage=url, direction="maximize")
    for config_trial, values in ((0, [0.84, 0.83]), (1, [0.89, 0.87])):
        for seed, value in zip((43, 44), values, strict=True):
            add(seeds, 0.001, [value], config_trial=config_trial, seed=seed)
    cfg = config("maximize")
    stats, test = an.seed_stats(study, cfg, url, top=2)
    assert [s.trial for s in stats] == [1, 0]  # ranked by mean, not by the lucky run
    assert stats[0].seeds == [42, 43, 44] and stats[0].values[0] == [0.88, 0.89, 0.87]
    assert stats[0].mean() == pytest.approx(0.88) and stats[0].sd() == pytest.approx(0.01)
    assert test is not None and (test.a, test.b, test.n) == (1, 0, 3)

    req = request(tmp_path, url, space={"train.lr": {"type": "float", "low": 0.0003,
                                                     "high": 0.01, "log": True}})  # fmt: skip
    space = build_space(req.tune, req.raw_params)
    out = tmp_path / "reports" / "tune.md"
    summary = write_report(study, cfg, space, req.raw_params, url, url, out, top=2)
    text = out.read_text()
    assert summary.best[0]["trial"] == 1
    assert "Trial 1, experiment `s-001`: **0.88 ± 0.01 (mean ± SD over 3 seeds)**" in text
    assert "Unconfirmed" not in text
    assert "paired t-test" in text
    assert "dvc exp apply s-001" in text
    assert "## Boundaries" in text and "lower tenth" not in text
    assert summary.images
    for image in summary.images:
        assert (out.parent / image).stat().st_size > 1000


def test_a_single_run_report_is_unconfirmed_and_names_ties(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/o.db"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    add(study, 0.0003, [0.8])
    add(study, 0.003, [0.8])
    req = request(tmp_path, url, space={"train.lr": {"type": "float", "low": 0.0003,
                                                     "high": 0.01, "log": True}})  # fmt: skip
    space = build_space(req.tune, req.raw_params)
    out = tmp_path / "tune.md"
    summary = write_report(study, config("maximize"), space, req.raw_params, url, url, out, 2)
    text = out.read_text()
    assert "**Unconfirmed.**" in text and "--seeds 3" in text
    assert summary.ties == [1] and "Trial(s) 1 reached exactly the same value" in text
    # the best (trial 0, lr at the low end) lies at the boundary
    assert "lower tenth" in text and "[5.2e-05, 0.01]" in text


def test_importances_are_not_invented_when_every_trial_ties(tmp_path: Path) -> None:
    """Optuna shares zero variation out equally; the report must not present that as a result."""
    dist = {**DIST, "train.warmup_ratio": optuna.distributions.FloatDistribution(0.0, 0.3)}

    def study_with(values: list[float]) -> optuna.Study:
        study = optuna.create_study(direction="maximize")
        for n, v in enumerate(values):
            study.add_trial(optuna.trial.create_trial(
                params={"train.lr": 0.0005 * (n + 1), "train.warmup_ratio": 0.02 * n},
                distributions=dist, values=[v]))  # fmt: skip
        return study

    assert an.importances(study_with([0.83] * 12), config("maximize")) == {}
    varied = an.importances(study_with([0.5 + 0.03 * n for n in range(12)]), config("maximize"))
    assert set(varied[F1]) == {"train.lr", "train.warmup_ratio"}
    assert sum(varied[F1].values()) == pytest.approx(1.0)
    # below MIN_IMPORTANCE_TRIALS the top tenth is one trial: nothing is reported
    assert an.importances(study_with([0.5, 0.6, 0.7, 0.8] * 2), config("maximize")) == {}


def test_importances_find_the_one_parameter_that_matters() -> None:
    """Twelve trials whose value depends on lr alone (warm-up drawn at random): lr first."""
    import random

    rng = random.Random(0)
    dist = {**DIST, "train.warmup_ratio": optuna.distributions.FloatDistribution(0.0, 0.3)}
    study = optuna.create_study(direction="maximize")
    for n in range(12):
        lr = 0.0003 * (0.01 / 0.0003) ** (n / 11)
        study.add_trial(optuna.trial.create_trial(
            params={"train.lr": lr, "train.warmup_ratio": rng.uniform(0.0, 0.3)},
            distributions=dist, values=[0.9 - abs(math.log10(lr) + 2.5) / 5]))  # fmt: skip
    found = an.importances(study, config("maximize"))[F1]
    assert found["train.lr"] > found["train.warmup_ratio"]


def test_a_pruned_trials_value_is_marked_as_its_last_report(tmp_path: Path) -> None:
    """Optuna keeps a pruned trial's last intermediate value as its value: the table says
    so, instead of showing it as the experiment's metrics-file value."""
    url = f"sqlite:///{tmp_path}/o.db"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    add(study, 0.001, [0.9])
    trial = study.ask(DIST)  # as the train stage reports and the runner tells it
    trial.set_user_attr("exp", "s-001")
    trial.report(0.61, 1)
    trial.report(0.5772, 2)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert study.trials[1].values == [0.5772]  # Optuna's own rule
    req = request(tmp_path, url, space={"train.lr": {"type": "float", "low": 0.0003,
                                                     "high": 0.01, "log": True}})  # fmt: skip
    space = build_space(req.tune, req.raw_params)
    out = tmp_path / "tune.md"
    write_report(study, config("maximize"), space, req.raw_params, url, url, out, 2)
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| 1 | pruned"))
    assert "0.5772 (last reported)" in row
    assert "A pruned trial's value is the validation metric its train stage reported last" in text
    complete = next(line for line in text.splitlines() if line.startswith("| 0 | complete"))
    assert "0.9 " in complete and "last reported" not in complete
