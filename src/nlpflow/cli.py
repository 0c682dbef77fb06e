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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nlpflow",
        description="A reproducible NLP training pipeline on DVC. Run the pipeline with "
        "`dvc repro`; experiments with `dvc exp run -S train.lr=...`.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-params", help="validate params.yaml and exit")
    check.add_argument("--params", default="params.yaml", help="the params file to check")
    check.add_argument("--show", action="store_true", help="print the params with defaults filled in")
    check.set_defaults(func=_check_params)
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
