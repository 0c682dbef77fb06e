"""What a finished study says, honestly: best configuration, Pareto front, boundaries,
parameter importances and seed statistics.

A single run never decides: with ``--seeds K`` the top configurations are rerun with K seeds
(their original run counts as the first) and compared by mean, with a paired t-test between
the top two (the same seed gives both the same data split, initialisation and order, so the
pairing removes that shared noise). Without seed reruns the report says the ranking is
unconfirmed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nlpflow.tuning.config import SEEDS_SUFFIX, StudyConfig
from nlpflow.tuning.storage import retry_of

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

ALPHA = 0.05


def is_feasible(trial: FrozenTrial) -> bool:
    """Whether the trial met every constraint of the study (``feasible`` recorded by the
    worker, and Optuna's constraint values <= 0 where the sampler was given them)."""
    if trial.user_attrs.get("feasible") is False:
        return False
    return all(v <= 0 for k, v in trial.system_attrs.items() if k.startswith("constraints:"))


def complete_feasible(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The complete trials that met every constraint and have objective values."""
    return [
        t for t in trials if t.state.name == "COMPLETE" and t.values is not None and is_feasible(t)
    ]


def _key(config: StudyConfig, index: int = 0) -> Any:
    sign = -1.0 if config.directions[index] == "maximize" else 1.0
    return lambda t: (sign * t.values[index], t.number)


def pareto_front(trials: Sequence[FrozenTrial], directions: Sequence[str]) -> list[FrozenTrial]:
    """Non-dominated complete feasible trials, by the first objective."""
    signs = [1.0 if d == "maximize" else -1.0 for d in directions]

    def better_or_equal(a: FrozenTrial, b: FrozenTrial) -> bool:
        return all(s * x >= s * y for s, x, y in zip(signs, a.values, b.values, strict=True))

    front = []
    for t in trials:
        dominated = any(
            better_or_equal(o, t) and list(o.values) != list(t.values) for o in trials if o is not t
        )
        if not dominated:
            front.append(t)
    return sorted(front, key=lambda t: (-signs[0] * t.values[0], t.number))


def top_trials(study: optuna.Study, config: StudyConfig, top: int) -> list[FrozenTrial]:
    """The ``top`` best distinct configurations (single objective), or the Pareto front's
    first ``top`` by the first objective (multi-objective)."""
    trials = complete_feasible(study.get_trials(deepcopy=False))
    if config.multi_objective:
        ranked = pareto_front(trials, config.directions)
    else:
        ranked = sorted(trials, key=_key(config))
    out: list[FrozenTrial] = []
    seen: list[dict[str, Any]] = []
    for t in ranked:
        if t.params in seen:
            continue
        seen.append(t.params)
        out.append(t)
        if len(out) == top:
            break
    return out


# --------------------------------------------------------------------------- seeds


@dataclass
class SeedStats:
    """One configuration rerun with several seeds: its objective values per seed."""

    trial: int  # the configuration (its trial number in the main study)
    exp: str
    params: dict[str, Any]
    seeds: list[int]
    values: list[list[float]]  # per objective, one value per seed (in ``seeds`` order)

    def mean(self, i: int = 0) -> float:
        """Mean over seeds of objective ``i`` (in the objective's own units)."""
        return sum(self.values[i]) / len(self.values[i])

    def sd(self, i: int = 0) -> float:
        """Sample standard deviation over seeds of objective ``i``; nan with one seed."""
        v = self.values[i]
        if len(v) < 2:
            return float("nan")
        m = self.mean(i)
        return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


@dataclass
class PairedTest:
    """The paired t-test of the top two configurations on their common seeds."""

    a: int  # trial numbers of the configurations compared (a ranked first)
    b: int
    n: int  # common seeds
    mean_diff: float  # a - b, in the objective's own direction-less units
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool


def seed_stats(
    study: optuna.Study, config: StudyConfig, storage: Any, top: int
) -> tuple[list[SeedStats], PairedTest | None]:
    """Mean and SD over seeds of the top configurations, and the paired test of the top two."""
    import optuna as _optuna

    names = _optuna.get_all_study_names(storage)
    seeds_name = study.study_name + SEEDS_SUFFIX
    if seeds_name not in names:
        return [], None
    seeds_study = _optuna.load_study(study_name=seeds_name, storage=storage)
    reruns = [
        t
        for t in seeds_study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE" and t.values is not None
    ]
    stats = []
    n_obj = len(config.directions)
    for trial in top_trials(study, config, top):
        by_seed: dict[int, list[float]] = {config.global_seed: list(trial.values)}
        for r in reruns:
            if r.user_attrs.get("config_trial") == trial.number:
                by_seed.setdefault(int(r.user_attrs["seed"]), list(r.values))
        if len(by_seed) < 2:
            continue
        seeds = sorted(by_seed)
        stats.append(
            SeedStats(
                trial.number,
                str(trial.user_attrs.get("exp", "")),
                dict(trial.params),
                seeds,
                [[by_seed[s][i] for s in seeds] for i in range(n_obj)],
            )
        )
    sign = 1.0 if config.directions[0] == "maximize" else -1.0
    stats.sort(key=lambda s: (-sign * s.mean(0), s.trial))
    test = paired_test(stats[0], stats[1]) if len(stats) >= 2 else None
    return stats, test


def paired_test(a: SeedStats, b: SeedStats, alpha: float = ALPHA) -> PairedTest | None:
    """Paired t-test (scipy's ``ttest_rel``) of ``a`` - ``b`` on the seeds both ran with, first
    objective: the mean difference, its ``1 - alpha`` confidence interval and p-value; None
    when fewer than two seeds are common."""
    from scipy import stats as st

    common = sorted(set(a.seeds) & set(b.seeds))
    if len(common) < 2:
        return None
    va = {s: v for s, v in zip(a.seeds, a.values[0], strict=True)}
    vb = {s: v for s, v in zip(b.seeds, b.values[0], strict=True)}
    diffs = [va[s] - vb[s] for s in common]
    n = len(diffs)
    mean = sum(diffs) / n
    if all(d == diffs[0] for d in diffs):  # no spread: scipy's t is undefined (nan)
        p = 0.0 if mean != 0 else 1.0
        low = high = mean
    else:
        res = st.ttest_rel([va[s] for s in common], [vb[s] for s in common])
        p = float(res.pvalue)
        ci = res.confidence_interval(confidence_level=1 - alpha)
        low, high = float(ci.low), float(ci.high)
    return PairedTest(a.trial, b.trial, n, mean, low, high, p, p < alpha)


# --------------------------------------------------------------------------- importances


def _objective(i: int) -> Callable[[FrozenTrial], float]:
    def target(trial: FrozenTrial) -> float:
        return float(trial.values[i])

    return target


# PED-ANOVA compares the parameters of the top 10% of trials (its target quantile) with
# all: below 10 complete trials that top is a single trial, and the shares it gives are
# about equal whatever the objective does (six trials of the built-in task: 0.37, 0.37,
# 0.27 in two studies whose landscapes differed).
MIN_IMPORTANCE_TRIALS = 10


def importances(study: optuna.Study, config: StudyConfig) -> dict[str, dict[str, float]]:
    """Parameter importances per objective (Optuna's default evaluator, PED-ANOVA), computed
    on complete trials; none below :data:`MIN_IMPORTANCE_TRIALS` complete trials, and an
    objective is left out when every trial reached the same value (there is then no
    variation to explain, and Optuna would share it out equally, which reads as a finding)."""
    import warnings

    import optuna as _optuna

    out: dict[str, dict[str, float]] = {}
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(trials) < MIN_IMPORTANCE_TRIALS:
        return out
    for i, objective in enumerate(config.objectives):
        values = [float(t.values[i]) for t in trials]
        if max(values) - min(values) <= 1e-12 * max(1.0, abs(max(values))):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                imp = _optuna.importance.get_param_importances(study, target=_objective(i))
        except (RuntimeError, ValueError, ZeroDivisionError):
            continue
        out[objective["metric"]] = {k: float(v) for k, v in imp.items()}
    return out


@dataclass
class TrialRow:
    """One trial as the report's table shows it (``lost``: failed with its worker, re-queued or
    recovered under another number, named in ``error``)."""

    number: int
    state: str  # complete, pruned, failed, infeasible, running, waiting
    exp: str
    params: dict[str, Any]
    values: list[float] | None
    epochs_run: int | None
    seconds: float | None
    host: str = ""
    error: str = ""
    intermediate: dict[int, float] = field(default_factory=dict)


def chosen(study: optuna.Study, config: StudyConfig, stats: list[SeedStats]) -> list[FrozenTrial]:
    """The configuration(s) to apply: the best mean over seeds when there are seed reruns
    (``stats``, from :func:`seed_stats`), else the best single run; with several objectives,
    the Pareto front."""
    if config.multi_objective:
        return top_trials(study, config, 10**6)
    if stats:
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        return [by_number[stats[0].trial]]
    return top_trials(study, config, 1)


def rows(study: optuna.Study) -> list[TrialRow]:
    """Every trial of ``study``, in trial order, as :class:`TrialRow`."""
    out = []
    trials = study.get_trials(deepcopy=False)
    replaced = {n: (t.number, "re-queued as") for t in trials
                if (n := retry_of(t)) is not None}  # fmt: skip
    replaced.update({int(t.user_attrs["recovered_from"]): (t.number, "recovered as")
                     for t in trials if "recovered_from" in t.user_attrs})  # fmt: skip
    for t in trials:
        state = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}.get(
            t.state.name, t.state.name.lower()
        )
        if state == "complete" and not is_feasible(t):
            state = "infeasible"
        error = str(t.user_attrs.get("error", ""))
        if state == "failed" and t.number in replaced:
            number, how = replaced[t.number]
            cause = "interrupted" if error == "interrupted" else "worker lost"
            state, error = "lost", f"{cause}; {how} trial {number}"
        out.append(
            TrialRow(
                t.number,
                state,
                str(t.user_attrs.get("exp", "")),
                dict(t.params),
                list(t.values) if t.values is not None else None,
                t.user_attrs.get("epochs_run"),
                t.user_attrs.get("seconds"),
                str(t.user_attrs.get("host", "")),
                error,
                dict(t.intermediate_values),
            )
        )
    return out
