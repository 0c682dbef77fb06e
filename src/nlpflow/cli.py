"""The ``nlpflow`` command: helpers around the DVC pipeline. Heavy imports stay inside commands."""

from __future__ import annotations

import argparse
import json
import sys

from nlpflow.errors import UserError


def _check_params(args: argparse.Namespace) -> int:
    from nlpflow.params import as_dict, load_params

    params = load_params(args.params)
    if args.show:
        print(json.dumps(as_dict(params), indent=2))
    else:
        print(f"{args.params}: ok")
    return 0


def _dvc_deps(args: argparse.Namespace) -> int:
    """``nlpflow dvc-deps``: dvc.yaml's code deps and params against the stages' imports and
    inputs classes (see nlpflow.dvcdeps)."""
    from pathlib import Path

    from nlpflow.dvcdeps import drift, write

    root = Path(args.root)
    if args.write:
        changed = write(root)
        print(f"{root / 'dvc.yaml'}: {'updated' if changed else 'already up to date'}")
        return 0
    problems = drift(root)
    for line in problems:
        print(f"dvc.yaml drift: {line}", file=sys.stderr)
    if problems:
        print(
            f"error: {len(problems)} difference(s) between dvc.yaml and the stages; "
            "run `nlpflow dvc-deps --write`",
            file=sys.stderr,
        )
        return 1
    print(f"{root / 'dvc.yaml'}: deps and params agree with the stages")
    return 0


def _add_dvc_deps_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    deps = sub.add_parser(
        "dvc-deps",
        help="check or write dvc.yaml's code deps and params from the stages' imports",
        description="For every stage: the project files stages/<name>.py imports "
        "(transitively) and the params its inputs class (nlpflow.contracts) reads. --check "
        "names every difference with dvc.yaml and exits 1; --write updates dvc.yaml in "
        "place, keeping its other deps, order and comments.",
    )
    mode = deps.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 naming any drift")
    mode.add_argument("--write", action="store_true", help="update dvc.yaml")
    deps.add_argument("--root", default=".", help="the project root (default: %(default)s)")
    deps.set_defaults(func=_dvc_deps)


def _compare(args: argparse.Namespace) -> int:
    """``nlpflow compare A B``: B against A on the same test set (see evaluation.compare)."""
    from nlpflow.evaluation.compare import compare, read_side, render
    from nlpflow.io import write_text

    a = read_side(args.a, args.split, args.repo)
    b = read_side(args.b, args.split, args.repo)
    result = compare(
        a, b, args.resamples, args.seed, args.level, args.positive, args.entity_mode,
        args.entity_scheme,
    )  # fmt: skip
    text = json.dumps(result.as_json(), indent=2) if args.json else render(result, args.max_flips)
    if args.out:
        write_text(args.out, text + "\n")
        print(f"compare: {args.b} vs {args.a} -> {args.out}")
    else:
        print(text)
    if args.max_regressions is not None and len(result.regressions) > args.max_regressions:
        print(
            f"error: {len(result.regressions)} examples flipped from right to wrong "
            f"(--max-regressions {args.max_regressions})",
            file=sys.stderr,
        )
        return 1
    return 0


def _add_compare_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmp = sub.add_parser(
        "compare",
        help="compare two experiments on the same test set (paired bootstrap, McNemar, flips)",
        description="Compare the predictions of B against A on the same test set: metric "
        "differences with paired bootstrap intervals, McNemar's test, and the examples that "
        "flipped from right to wrong. A and B are git revisions or DVC experiment names "
        "(read from the DVC cache), 'workspace', predictions files or project directories.",
    )
    cmp.add_argument("a", help="the reference: main, a commit, an experiment, a path")
    cmp.add_argument("b", help="the candidate (default: workspace)", nargs="?", default="workspace")
    cmp.add_argument("--split", default="test", help="predictions split (default: %(default)s)")
    cmp.add_argument("--repo", default=".", help="the DVC project (default: %(default)s)")
    cmp.add_argument(
        "--resamples", type=int, default=1000, help="paired bootstrap resamples (default: 1000)"
    )
    cmp.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    cmp.add_argument("--level", type=float, default=0.95, help="interval level (default: 0.95)")
    cmp.add_argument("--positive", default="", help="binary tasks: the positive label")
    cmp.add_argument(
        "--entity-mode",
        choices=["default", "strict"],
        default="default",
        help="token tasks: entity reading, as evaluate.entity_mode (default: %(default)s)",
    )
    cmp.add_argument(
        "--entity-scheme",
        choices=["IOB1", "IOB2"],
        default="IOB2",
        help="token tasks, strict mode: the tag scheme (default: %(default)s)",
    )
    cmp.add_argument("--max-flips", type=int, default=20, help="flipped examples shown")
    cmp.add_argument(
        "--max-regressions",
        type=int,
        default=None,
        help="exit 1 when more examples than this flipped from right to wrong (a CI gate)",
    )
    cmp.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    cmp.add_argument("--out", default="", help="write the report to this file")
    cmp.set_defaults(func=_compare)


# Commands whose module brings its own `add_arguments(parser)` and `run(args)`: the module is
# imported when the parser is built (its arguments), and its `run` when the command runs.
MODULE_COMMANDS: dict[str, tuple[str, str, str]] = {
    "tune": (
        "nlpflow.tuning.command",
        "hyperparameter search: an Optuna study whose every trial is a DVC experiment",
        "Search the space in params.yaml's tune section. Every trial is a DVC experiment "
        "(`dvc exp show` lists them); workers sharing --storage share the study; the same "
        "command resumes an interrupted study. Writes reports/tune.md.",
    ),
    "review": (
        "nlpflow.review",
        "markdown review of a change (params, metrics with intervals, changed plots)",
        "Compare the workspace (or an experiment, or a revision) against a base revision: "
        "params diff, metrics diff with the evaluate stage's intervals, and the changed plots "
        "as images, in one markdown file for a pull request.",
    ),
    "predict": (
        "nlpflow.predict",
        "predict a new file with a trained model (JSONL/CSV out, rejected rows listed)",
        "Run the trained model (models/best) on a new file in any format the data loader "
        "reads (no labels needed), through the same reading, cleaning and encoding as "
        "training. Writes one record per row with the predicted label(s) and scores; rows "
        "that cannot be used go to a rejects file with their row numbers, and inputs longer "
        "than the model's max_length are counted as truncated.",
    ),
    "notebook": (
        "nlpflow.notebook",
        "write reports/notebook.ipynb: the experiment, executed, from the pipeline's outputs",
        "Write an executed Jupyter notebook of the workspace's experiment (or of a git "
        "revision or DVC experiment) in the course's checklist order, from the pipeline's "
        "outputs, without retraining.",
    ),
}


def _add_module_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str
) -> None:
    import importlib

    module_name, help_line, description = MODULE_COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = sub.add_parser(name, help=help_line, description=description)
    module.add_arguments(parser)
    parser.set_defaults(func=lambda args: importlib.import_module(module_name).run(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nlpflow",
        description="A reproducible NLP training pipeline on DVC. Run the pipeline with "
        "`dvc repro`; experiments with `dvc exp run -S train.lr=...`.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-params", help="validate params.yaml and exit")
    check.add_argument("--params", default="params.yaml", help="the params file to check")
    check.add_argument(
        "--show", action="store_true", help="print the params with defaults filled in"
    )
    check.set_defaults(func=_check_params)
    _add_dvc_deps_parser(sub)
    _add_compare_parser(sub)
    for name in MODULE_COMMANDS:
        _add_module_command(sub, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
