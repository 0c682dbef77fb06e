"""reports/tune.md and its PNGs: what the study found, how sure it is, and how to apply it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.io import write_json, write_text
from nlpflow.markdown import interval, level_label, table
from nlpflow.tuning import analysis as an
from nlpflow.tuning.config import StudyConfig, short_number
from nlpflow.tuning.space import BoundaryWarning, SearchSpace, boundary_warnings
from nlpflow.tuning.storage import safe_url

if TYPE_CHECKING:
    import optuna


@dataclass
class Summary:
    """Everything the report shows (also written as JSON next to it)."""

    study: str
    storage: str
    config: dict[str, Any]
    counts: dict[str, int]
    epochs_total: int  # training epochs spent by all trials (the compute the search cost)
    best: list[dict[str, Any]]  # best trial (single objective) or the Pareto front
    boundaries: list[str]
    importances: dict[str, dict[str, float]]
    seed_stats: list[dict[str, Any]]
    paired_test: dict[str, Any] | None
    apply: list[str]
    ties: list[int] = field(default_factory=list)  # other configurations with the best's value
    trials: list[dict[str, Any]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)


def summarize(
    study: optuna.Study,
    config: StudyConfig,
    space: SearchSpace,
    raw_params: dict[str, Any],
    storage: Any,
    url: str,
    top: int,
    host: str = "",
) -> tuple[Summary, list[an.TrialRow], list[an.SeedStats]]:
    """Everything reports/tune.md and reports/tune.json say about ``study``: state counts,
    training epochs spent, the best configuration(s) (by mean over seeds when ``--seeds`` ran,
    else the best single run; the Pareto front with several objectives), ties, boundary
    warnings, importances; with the per-trial rows and seed statistics the plots draw."""
    rows = an.rows(study)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    epochs = sum(int(r.epochs_run or 0) for r in rows)
    stats, test = an.seed_stats(study, config, storage, top)
    # With seeds, the configuration with the best mean wins, not the luckiest run.
    ranked = an.chosen(study, config, stats)
    best = [
        {
            "trial": t.number,
            "exp": t.user_attrs.get("exp", ""),
            "params": dict(t.params),
            "values": list(t.values),
            "host": t.user_attrs.get("host", ""),
        }
        for t in ranked
    ]
    ties: list[int] = []
    if ranked and not config.multi_objective and not stats:
        same = an.top_trials(study, config, 10**6)
        ties = [t.number for t in same[1:] if t.values[0] == ranked[0].values[0]]
    warnings: list[BoundaryWarning] = []
    if ranked:
        warnings = boundary_warnings(
            space, ranked[0].params, raw_params, grid=config.sampler == "grid"
        )
    apply: list[str] = []
    if ranked:
        name = str(ranked[0].user_attrs.get("exp", ""))
        other_host = best[0]["host"] and host and best[0]["host"] != host
        if other_host:
            apply.append(f"dvc exp pull origin {name}   # it ran on {best[0]['host']}")
        apply.append(f"dvc exp apply {name}")
        apply.append(f"dvc exp branch {name} tuned-{study.study_name}   # or keep it as a branch")
    summary = Summary(
        study=study.study_name,
        storage=safe_url(url),
        config=config.to_json(),
        counts=counts,
        epochs_total=epochs,
        best=best,
        boundaries=[w.message() for w in warnings],
        importances=an.importances(study, config),
        seed_stats=[
            {
                **asdict(s),
                "mean": [s.mean(i) for i in range(len(s.values))],
                "sd": [_nan_none(s.sd(i)) for i in range(len(s.values))],
            }
            for s in stats
        ],
        paired_test=asdict(test) if test else None,
        apply=apply,
        ties=ties,
        trials=[asdict(r) for r in rows],
    )
    return summary, rows, stats


def _nan_none(x: float) -> float | None:
    return None if isinstance(x, float) and math.isnan(x) else x


# --------------------------------------------------------------------------- plots


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(rows: list[an.TrialRow], config: StudyConfig, path: Path) -> None:
    """``path`` (PNG): the first objective of each complete, pruned and infeasible trial by
    trial number, and the best complete value so far."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    sign = 1.0 if config.directions[0] == "maximize" else -1.0
    styles = {
        "complete": ("o", "tab:blue"),
        "pruned": ("x", "tab:orange"),
        "infeasible": ("s", "tab:gray"),
    }
    for state, (marker, color) in styles.items():
        pts = [(r.number, r.values[0]) for r in rows if r.state == state and r.values]
        if pts:
            ax.scatter(*zip(*pts, strict=True), marker=marker, color=color, label=state)
    best, xs, ys = None, [], []
    for r in sorted(rows, key=lambda r: r.number):
        if r.state == "complete" and r.values:
            v = r.values[0]
            best = v if best is None or sign * v > sign * best else best
        if best is not None:
            xs.append(r.number)
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(config.objectives[0]["metric"].split(":")[-1])
    ax.set_title("Optimisation history")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_intermediate(rows: list[an.TrialRow], config: StudyConfig, path: Path) -> bool:
    """``path`` (PNG): the validation metric per evaluation of every trial that reported one
    (pruned ones in orange); False (nothing written) when no trial reported."""
    curves = [r for r in rows if r.intermediate]
    if not curves:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {"pruned": "tab:orange", "complete": "tab:blue"}
    for r in curves:
        steps = sorted(r.intermediate)
        ax.plot(
            steps,
            [r.intermediate[s] for s in steps],
            color=colors.get(r.state, "tab:gray"),
            alpha=0.7,
            marker=".",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"val {config.pruner.get('metric', '')}")
    ax.set_title("Validation metric per epoch (orange: pruned)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_parallel(
    rows: list[an.TrialRow], config: StudyConfig, space: SearchSpace, path: Path
) -> bool:
    """``path`` (PNG): parallel coordinates of the parameters, lines coloured by the first
    objective; False when fewer than two complete (or infeasible) trials."""
    done = [r for r in rows if r.state in ("complete", "infeasible") and r.values]
    if len(done) < 2:
        return False
    plt = _plt()
    import numpy as np

    axes_names = [*space.paths, config.objectives[0]["metric"].split(":")[-1]]
    matrix = np.zeros((len(done), len(axes_names)))
    labels: list[list[str]] = []
    for j, dim in enumerate(space):
        # A trial may lack a parameter (one added to the space later): NaN breaks its line
        # there instead of failing the whole report.
        col = [r.params.get(dim.path) for r in done]
        if dim.numeric:
            vals = np.array([math.nan if v is None else float(v) for v in col])
            # `is None`, not `or`: a range starting at 0 must keep its 0
            lo = float(np.nanmin(vals) if dim.spec.low is None else dim.spec.low)
            hi = float(np.nanmax(vals) if dim.spec.high is None else dim.spec.high)
            if dim.spec.log:
                vals, lo, hi = np.log10(vals), math.log10(lo), math.log10(hi)
            matrix[:, j] = (vals - lo) / (hi - lo) if hi > lo else 0.5
            labels.append([f"{dim.spec.low:g}", f"{dim.spec.high:g}"])
        else:
            choices: list[Any] = list(dim.spec.choices)
            matrix[:, j] = [
                choices.index(v) / max(1, len(choices) - 1) if v in choices else math.nan
                for v in col
            ]
            labels.append([str(choices[0]), str(choices[-1])])
    obj = np.array([r.values[0] for r in done if r.values])
    lo, hi = float(obj.min()), float(obj.max())
    matrix[:, -1] = (obj - lo) / (hi - lo) if hi > lo else 0.5
    labels.append([f"{lo:.4g}", f"{hi:.4g}"])
    fig, ax = plt.subplots(figsize=(max(6, 2 * len(axes_names)), 4))
    cmap = plt.get_cmap("viridis")
    order = np.argsort(matrix[:, -1] if config.directions[0] == "maximize" else -matrix[:, -1])
    for i in order:
        ax.plot(range(len(axes_names)), matrix[i], color=cmap(matrix[i, -1]), alpha=0.8)
    for j, (lo_label, hi_label) in enumerate(labels):
        ax.axvline(j, color="black", linewidth=0.8)
        ax.text(j, -0.08, lo_label, ha="center", va="top", fontsize=7)
        ax.text(j, 1.04, hi_label, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(axes_names)))
    ax.set_xticklabels(axes_names, fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.15, 1.12)
    ax.set_title(
        "Parallel coordinates (colour: objective; log axes for log parameters)", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_importances(imp: dict[str, dict[str, float]], path: Path) -> bool:
    """``path`` (PNG): the importance (share of the objective's variation, 0-1) of each
    parameter; False when none were estimated."""
    if not imp:
        return False
    metric, values = next(iter(imp.items()))
    if not values:
        return False
    plt = _plt()
    names = list(values)[::-1]
    fig, ax = plt.subplots(figsize=(6, max(2.5, 1 + 0.4 * len(names))))
    ax.barh(names, [values[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance (share)")
    ax.set_title(f"Parameter importances for {metric.split(':')[-1]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_pareto(rows: list[an.TrialRow], front: list[int], config: StudyConfig, path: Path) -> bool:
    """``path`` (PNG): the first two objectives of every complete trial, the Pareto front
    (trial numbers ``front``) marked; False with one objective."""
    if len(config.objectives) < 2:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    done = [r for r in rows if r.state in ("complete", "infeasible") and r.values]
    for state, color in (("infeasible", "tab:gray"), ("complete", "tab:blue")):
        pts = [(r.values[0], r.values[1]) for r in done if r.state == state and r.values]
        if pts:
            ax.scatter(*zip(*pts, strict=True), color=color, label=state, alpha=0.6)
    fr = sorted((r.values[0], r.values[1]) for r in done if r.number in front and r.values)
    if fr:
        ax.plot(*zip(*fr, strict=True), color="tab:red", marker="o", label="Pareto front")
    ax.set_xlabel(config.objectives[0]["metric"].split(":")[-1])
    ax.set_ylabel(config.objectives[1]["metric"].split(":")[-1])
    ax.legend(fontsize=8)
    ax.set_title("Pareto front")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- markdown


def write_report(
    study: optuna.Study,
    config: StudyConfig,
    space: SearchSpace,
    raw_params: dict[str, Any],
    storage: Any,
    url: str,
    out: str | Path,
    top: int,
    host: str = "",
) -> Summary:
    """Write ``out`` (markdown), its PNGs in ``<out without .md>/`` and ``<out>.json``."""
    out = Path(out)
    images = out.with_suffix("")
    images.mkdir(parents=True, exist_ok=True)
    summary, rows, stats = summarize(study, config, space, raw_params, storage, url, top, host)
    shown: list[tuple[str, str]] = []
    rel = images.name

    history = images / "history.png"
    if any(r.values for r in rows):
        plot_history(rows, config, history)
        shown.append(("Optimisation history", f"{rel}/history.png"))
    if plot_intermediate(rows, config, images / "intermediate.png"):
        shown.append(("Validation metric per epoch", f"{rel}/intermediate.png"))
    if plot_parallel(rows, config, space, images / "parallel.png"):
        shown.append(("Parallel coordinates", f"{rel}/parallel.png"))
    if plot_importances(summary.importances, images / "importances.png"):
        shown.append(("Parameter importances", f"{rel}/importances.png"))
    front = [b["trial"] for b in summary.best] if config.multi_objective else []
    if plot_pareto(rows, front, config, images / "pareto.png"):
        shown.append(("Pareto front", f"{rel}/pareto.png"))
    summary.images = [p for _, p in shown]

    text = render(summary, config, space, stats, shown)
    write_text(out, text)
    write_json(out.with_suffix(".json"), _jsonable(asdict(summary)))
    return summary


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def render(
    s: Summary,
    config: StudyConfig,
    space: SearchSpace,
    stats: list[an.SeedStats],
    images: list[tuple[str, str]],
) -> str:
    """reports/tune.md: the markdown of a :class:`Summary`, with links to ``images``
    ((title, path relative to the report) pairs)."""
    objectives = ", ".join(f"{o['direction']} `{o['metric']}`" for o in config.objectives)
    counts = ", ".join(f"{n} {state}" for state, n in sorted(s.counts.items()))
    pruner = config.pruner.get("kind", "none") if config.pruning else "none"
    lines = [
        f"# Tuning report: study `{s.study}`",
        "",
        f"- **Objective{'s' if len(config.objectives) > 1 else ''}**: {objectives}",
    ]
    for c in config.constraints:
        bounds = " and ".join(
            f"{'>=' if k == 'min' else '<='} {c[k]:g}"
            for k in ("min", "max")
            if c.get(k) is not None
        )
        lines.append(f"- **Constraint**: `{c['metric']}` {bounds} (otherwise infeasible)")
    lines += [
        f"- **Sampler**: {config.sampler} (seed {config.sampler_seed}); **pruner**: {pruner}"
        + (f" on val {config.pruner.get('metric')} per epoch" if pruner != "none" else ""),
        f"- **Epoch budget**: {config.epochs} epochs per trial, the same as the final training",
        f"- **Baseline commit**: `{config.baseline[:10]}`; **storage**: `{s.storage}`",
        f"- **Trials**: {counts or 'none'}; {s.epochs_total} training epochs in all",
        "",
    ]

    # best
    lines += ["## Best configuration", ""]
    if not s.best:
        lines += ["No trial completed feasibly yet.", ""]
    elif config.multi_objective:
        lines += [
            f"No single best: {len(s.best)} trial(s) on the Pareto front (none is better in "
            "every objective). Pick by the trade-off you need.",
            "",
        ]
        header = [
            "trial",
            "experiment",
            *space.paths,
            *[o["metric"].split(":")[-1] for o in config.objectives],
        ]
        lines += _table(
            header,
            [
                [
                    b["trial"],
                    f"`{b['exp']}`",
                    *[short_number(b["params"].get(p)) for p in space.paths],
                    *[short_number(v) for v in b["values"]],
                ]
                for b in s.best
            ],
        )
    else:
        b = s.best[0]
        confirmed = bool(stats) and stats[0].trial == b["trial"]
        value = short_number(b["values"][0])
        if confirmed:
            st = stats[0]
            value = f"{short_number(st.mean())} ± {short_number(st.sd())} (mean ± SD over {len(st.seeds)} seeds)"
        lines += [f"Trial {b['trial']}, experiment `{b['exp']}`: **{value}**", ""]
        if s.ties:
            others = ", ".join(str(n) for n in s.ties)
            lines += [
                f"Trial(s) {others} reached exactly the same value with other parameters: "
                "this study cannot tell them apart.",
                "",
            ]
        lines += _table(
            ["parameter", "value"], [[f"`{k}`", short_number(v)] for k, v in b["params"].items()]
        )
        if not stats:
            lines += [
                "> **Unconfirmed.** This is one run with one seed; a lucky seed can beat a better "
                "configuration. Rerun the top configurations with several seeds before trusting "
                f"the ranking: `nlpflow tune --study {s.study} --seeds 3`.",
                "",
            ]
    if s.apply:
        lines += [
            "Apply it to the workspace (params, metrics and outputs) with one command:",
            "",
            "```bash",
        ]
        lines += s.apply
        lines += ["```", ""]

    # boundaries
    lines += ["## Boundaries of the search space", ""]
    if s.boundaries:
        lines += [f"- ⚠️ {w}" for w in s.boundaries] + [""]
        if s.ties:
            lines += [
                "These concern the best trial only; configurations that tie with it lie "
                "elsewhere, so the evidence that the optimum is beyond the range is weak.",
                "",
            ]
    elif s.best:
        lines += [
            "No numeric parameter of the best configuration lies in the outer tenth of its range.",
            "",
        ]
    else:
        lines += ["Nothing to judge yet.", ""]

    # seeds
    lines += ["## Seed statistics", ""]
    if not stats:
        lines += [
            "Not measured: no configuration was rerun with other seeds (`--seeds K`).",
            "",
        ]
    else:
        metric = config.objectives[0]["metric"].split(":")[-1]
        lines += _table(
            ["trial", "experiment", f"mean {metric}", "SD", "seeds", "per seed"],
            [
                [
                    st.trial,
                    f"`{st.exp}`",
                    short_number(st.mean()),
                    short_number(st.sd()),
                    len(st.seeds),
                    ", ".join(
                        f"{seed}: {short_number(v)}"
                        for seed, v in zip(st.seeds, st.values[0], strict=True)
                    ),
                ]
                for st in stats
            ],
        )
        t = s.paired_test
        if t:
            verdict = (
                f"**significant** at the {an.ALPHA:g} level: trial {t['a']} is better"
                if t["significant"]
                else f"**not significant** at the {an.ALPHA:g} level: with {t['n']} seeds the "
                "top two cannot be told apart; prefer the simpler or cheaper one, or add seeds"
            )
            lines += [
                f"Top two, paired over {t['n']} common seeds: trial {t['a']} − trial {t['b']} = "
                f"{short_number(t['mean_diff'])} ({level_label(1 - an.ALPHA)} "
                f"{interval(t['ci_low'], t['ci_high'], signed=True)}, "
                f"paired t-test p = {short_number(t['p_value'])}): {verdict}.",
                "",
            ]
        else:
            lines += ["Only one configuration has seed reruns: nothing to compare it with.", ""]

    # importances
    lines += ["## Parameter importances", ""]
    if s.importances:
        for metric, values in s.importances.items():
            lines += [f"For `{metric}` (PED-ANOVA, share of variation explained):", ""]
            lines += _table(
                ["parameter", "importance"], [[f"`{k}`", f"{v:.3f}"] for k, v in values.items()]
            )
    else:
        lines += [
            f"Not estimated: they need at least {an.MIN_IMPORTANCE_TRIALS} complete trials "
            "(PED-ANOVA compares the top tenth of the trials with all; with fewer the top is "
            "one trial and the shares are noise) whose objective values differ (when every "
            "trial reaches the same value there is nothing to explain).",
            "",
        ]

    # images
    if images:
        lines += ["## Plots", ""]
        for title, path in images:
            lines += [f"### {title}", "", f"![{title}]({path})", ""]

    # all trials
    lines += ["## Trials", ""]
    header = [
        "#",
        "state",
        "experiment",
        *space.paths,
        *[o["metric"].split(":")[-1] for o in config.objectives],
        "epochs",
        "seconds",
    ]
    body = []
    for r in s.trials:
        shown: list[Any] = r["values"] or [None] * len(config.objectives)
        cells = [short_number(v) for v in shown[: len(config.objectives)]]
        if r["state"] == "pruned" and r["values"]:
            # Optuna keeps a pruned trial's last reported value: the epoch it stopped at,
            # not its experiment's metrics file (models/best, its best epoch until then).
            cells = [f"{v} (last reported)" for v in cells]
        state = r["state"] + (
            f" ({r['error']})" if r["error"] and r["state"] in ("failed", "lost") else ""
        )
        body.append(
            [
                r["number"],
                state,
                f"`{r['exp']}`" if r["exp"] else "-",
                *[short_number(r["params"].get(p)) for p in space.paths],
                *cells,
                short_number(r["epochs_run"]),
                short_number(r["seconds"]),
            ]
        )
    lines += _table(header, body) if body else ["No trials yet.", ""]
    if any(r["state"] == "pruned" and r["values"] for r in s.trials):
        lines += [
            "A pruned trial's value is the validation metric its train stage reported last, "
            "at the epoch it was pruned; its experiment's metrics file holds the evaluation of "
            "its best epoch until then, which can differ.",
            "",
        ]
    lines += [
        "Every trial is a DVC experiment: `dvc exp show` lists them with their params and "
        "metrics (pruned and failed ones carry a `-pruned` / `-failed` suffix). Hide the tune "
        "section's own params with `dvc exp show --drop 'tune\\.'`.",
        "",
    ]
    return "\n".join(lines)


def _table(header: list[str], body: list[list[Any]]) -> list[str]:
    return [*table(header, body, limit=200), ""]
