"""``nlpflow tune``: command-line options over params.yaml's ``tune`` section."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

from nlpflow.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", default=".", help="the DVC project (default: %(default)s)")
    p.add_argument("--params", default="params.yaml", help="params file, relative to --repo")
    p.add_argument("--study", help="study name (default: tune.study); trials are <study>-NNN")
    p.add_argument(
        "--storage",
        help="SQLAlchemy URL shared by all workers (default: tune.storage, else SQLite in "
        "tune/optuna.db); e.g. postgresql://user:pass@host/db for several machines",
    )
    p.add_argument(
        "--n-trials", type=int, help="trials in the whole study (default: tune.n_trials)"
    )
    p.add_argument(
        "--jobs", "-j", type=int, help="trials at a time on this machine (default: tune.jobs)"
    )
    p.add_argument("--sampler", choices=["tpe", "random", "grid"], help="default: tune.sampler")
    p.add_argument(
        "--sampler-seed", type=int, help="default: tune.sampler_seed, else the global seed"
    )
    p.add_argument(
        "--pruner", choices=["median", "hyperband", "none"], help="default: tune.pruner.kind"
    )
    p.add_argument(
        "--seeds",
        type=int,
        help="rerun the top configurations with K seeds (K >= 2) and compare them "
        "(default: tune.seeds)",
    )
    p.add_argument("--top", type=int, help="configurations --seeds reruns (default: tune.top)")
    p.add_argument(
        "--timeout", type=float, help="seconds after which no new trial starts (default: none)"
    )
    p.add_argument(
        "--epoch-budget",
        type=int,
        help="stop starting trials when one more could take the study past this many "
        "training epochs in all (compare searches at equal compute)",
    )
    p.add_argument(
        "--allow-epochs",
        action="store_true",
        help="allow train.epochs in the search space (tuning should use the final budget)",
    )
    p.add_argument(
        "--allow-baseline-change",
        action="store_true",
        help="resume a study whose earlier trials ran on another commit",
    )
    p.add_argument(
        "--lr-from-range",
        nargs="?",
        const="metrics/lr_range.json",
        metavar="METRICS",
        help="centre the train.lr range of tune.space on the learning-rate range test's "
        "suggestion (default file: %(const)s, relative to --repo), keeping its width",
    )
    p.add_argument("--report", default="reports/tune.md", help="report path, relative to --repo")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--report-only", action="store_true", help="only (re)write the report")
    mode.add_argument(
        "--apply", action="store_true", help="`dvc exp apply` the study's best trial and exit"
    )


def _override(args: argparse.Namespace, tune: Any) -> Any:
    changes: dict[str, Any] = {}
    for arg, key in (
        ("study", "study"), ("storage", "storage"), ("n_trials", "n_trials"), ("jobs", "jobs"),
        ("sampler", "sampler"), ("sampler_seed", "sampler_seed"), ("seeds", "seeds"),
        ("top", "top"),
    ):  # fmt: skip
        value = getattr(args, arg)
        if value is not None:
            changes[key] = value
    if args.allow_epochs:
        changes["allow_epochs"] = True
    if args.pruner is not None:
        changes["pruner"] = dataclasses.replace(tune.pruner, kind=args.pruner)
    tune = dataclasses.replace(tune, **changes)
    tune.validate("tune")  # the command line obeys the same rules as params.yaml
    return tune


def epoch_metrics(params: Any) -> tuple[str, tuple[str, ...]]:
    """The task of ``params`` (its ``data`` section) and the validation metrics its train
    stage reports each epoch (``val_<name>`` in ``plots/train/epochs.tsv``): what a pruner
    can follow. ``data.task: auto`` on files is a sequence or token task, both reporting
    ``loss``, ``accuracy`` and ``f1_macro``."""
    from nlpflow.families.data import builtin_source
    from nlpflow.families.train import train_family

    data = params.data
    task, shown = data.task, data.task
    if task == "auto":
        found = None if data.files else builtin_source(data.source)
        task = found[0].name if found is not None else "sequence"
        shown = task if found is not None else "sequence or token"
    family = train_family(task)
    family.configure(params.train, None)
    return shown, family.metric_names([])


def check_pruner_metric(params: Any, tune: Any) -> None:
    """A UserError, before any trial runs, when the pruner would follow a metric the task
    does not report per epoch (each trial would report another value in its place).
    Nothing to check when nothing is pruned (``kind: none``, several objectives)."""
    if tune.pruner.kind == "none" or len(tune.objectives) > 1:
        return
    metric = tune.pruner.metric
    task, names = epoch_metrics(params)
    if metric in names:
        return
    hint = (
        "; exact_match needs train.generation_sample (validation rows generated per epoch)"
        if metric == "exact_match" and task == "text2text"
        else ""
    )
    raise UserError(
        f"params.yaml: tune.pruner.metric {metric} is not reported per epoch by a {task} "
        f"task (it reports {list(names)}); set tune.pruner.metric to one of those{hint}"
    )


def lr_centred_on_range(tune: Any, metrics: Path) -> Any:
    """``tune`` with ``tune.space['train.lr']`` moved (log scale, same width, grid too) so that
    its geometric middle is the range test's suggested learning rate in ``metrics``."""
    from nlpflow.training.lr_range import centred_range, read_suggestion

    spec = tune.space.get("train.lr")
    if spec is None or spec.type != "float" or spec.low is None or spec.high is None:
        raise UserError(
            "--lr-from-range: tune.space has no float train.lr range to centre; add one, e.g. "
            "train.lr: {type: float, low: 0.0003, high: 0.01, log: true}"
        )
    suggestion = read_suggestion(metrics)
    low, high = centred_range(spec.low, spec.high, suggestion)
    factor = suggestion / math.sqrt(spec.low * spec.high)
    grid = [float(f"{float(v) * factor:.3g}") for v in spec.grid]
    moved = dataclasses.replace(spec, low=low, high=high, grid=grid)
    print(
        f"tune: train.lr range centred on the range test's suggestion {suggestion:.3g} "
        f"({metrics.name}): [{low:g}, {high:g}], was [{spec.low:g}, {spec.high:g}]"
    )
    return dataclasses.replace(tune, space={**tune.space, "train.lr": moved})


def run(args: argparse.Namespace) -> int:
    """``nlpflow tune``: run this worker's share of the study (then seed reruns), or only
    write the report (``--report-only``), or apply the best trial (``--apply``).

    Returns 0, or 130 when interrupted (the study can be resumed). Raises UserError for a
    study that does not exist (report, apply) or settings that differ from the study's."""

    from nlpflow.params import load_params, read_yaml
    from nlpflow.tuning import experiments as ex
    from nlpflow.tuning.report import write_report
    from nlpflow.tuning.study import Interrupted, Tuner, TuneRequest

    repo = Path(args.repo).resolve()
    params_path = repo / args.params
    params = load_params(params_path)
    # YAML 1.2 as DVC writes it: after `dvc exp apply`, `only_label: yes` is unquoted
    raw = read_yaml(params_path.read_text(encoding="utf-8")) or {}
    tune = _override(args, params.tune)
    if not (args.report_only or args.apply):
        check_pruner_metric(params, tune)
    if args.lr_from_range:
        tune = lr_centred_on_range(tune, repo / args.lr_from_range)
    request = TuneRequest(
        repo=repo,
        tune=tune,
        raw_params=raw,
        params=params,
        storage=tune.storage,
        timeout=args.timeout,
        epoch_budget=args.epoch_budget,
        allow_baseline_change=args.allow_baseline_change,
    )
    import optuna

    # Our own lines say what happens to each trial; Optuna would repeat failures with tracebacks
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    tuner = Tuner(request)

    exists = tune.study in optuna.get_all_study_names(tuner.storage)
    if (args.report_only or args.apply) and not exists:
        raise UserError(f"no study named '{tune.study}' in {tuner.url}; run `nlpflow tune` first")
    study = tuner.open_study(to_run=not (args.report_only or args.apply))
    report_path = repo / args.report

    if args.apply:
        from nlpflow.tuning.analysis import chosen, seed_stats

        stats, _ = seed_stats(study, tuner.config, tuner.storage, tune.top)
        best = chosen(study, tuner.config, stats)
        if not best:
            raise UserError(f"study '{tune.study}' has no complete, feasible trial to apply")
        if len(best) > 1:
            names = ", ".join(str(t.user_attrs.get("exp")) for t in best)
            raise UserError(
                f"study '{tune.study}' has several objectives and no single best; its Pareto "
                f"front is {names}: apply the one you want with `dvc exp apply <name>`"
            )
        name = str(best[0].user_attrs.get("exp"))
        ex.dvc(["exp", "apply", name], repo)
        print(f"applied {name} (trial {best[0].number}) to the workspace")
        return 0

    if not args.report_only:
        _preflight(repo)
        began = time.monotonic()
        try:
            report = tuner.optimize()
            if tune.seeds >= 2:
                tuner.run_seeds(tune.seeds, tune.top)
        except Interrupted:
            print(
                "tune: interrupted. Running trials were failed and re-queued; run the same "
                "command to resume the study.",
                file=sys.stderr,
            )
            return 130
        print(
            f"tune: this worker ran {report.started} trial(s) in {report.seconds:.0f}s: "
            f"{report.complete} complete, {report.pruned} pruned, {report.failed} failed"
            + (f"; re-queued lost trials {report.requeued}" if report.requeued else "")
            + (f"; recovered {report.recovered}" if report.recovered else "")
            + (
                f"; then {report.seed_runs} seed rerun(s), {time.monotonic() - began:.0f}s in all"
                if report.seed_runs
                else ""
            )
        )
    summary = write_report(
        study,
        tuner.config,
        tuner.space,
        raw,
        tuner.storage,
        tuner.url,
        report_path,
        tune.top,
        host=str(tuner.identity["host"]),
    )
    print(f"tune: report written to {report_path.relative_to(repo)}")
    if summary.best and not tuner.config.multi_objective:
        b = summary.best[0]
        print(
            f"tune: best trial {b['trial']} ({b['exp']}): {b['values'][0]:.4g} with {b['params']}"
        )
        if summary.ties:
            others = ", ".join(str(n) for n in summary.ties)
            print(
                f"tune: warning: trial(s) {others} reached exactly the same value with other "
                "parameters: this study cannot rank them (boundary warnings below are weak "
                "evidence); `--seeds K` or a harder validation set can"
            )
    for w in summary.boundaries:
        print(f"tune: warning: {w}")
    for line in summary.apply[:2]:
        print(f"tune: apply with: {line}")
    return 0


def _preflight(repo: Path) -> None:
    """Warnings that save a wasted study."""
    from nlpflow.revisions import git
    from nlpflow.tuning import experiments as ex

    dirty = ex.dirty_files(repo)
    if dirty:
        shown = ", ".join(dirty[:5]) + (" ..." if len(dirty) > 5 else "")
        print(
            f"tune: warning: uncommitted changes ({shown}) go into every trial; commit them "
            "so that the study's baseline says what was tuned",
            file=sys.stderr,
        )
    if not git(["ls-tree", "--name-only", "HEAD", "dvc.lock"], repo, check=False).strip():
        print(
            "tune: warning: the baseline commit has no dvc.lock, so every trial runs every "
            "stage; run `dvc repro` and commit first so trials rerun only what the search "
            "space changes",
            file=sys.stderr,
        )
