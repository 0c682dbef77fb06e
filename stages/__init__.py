"""The pipeline's stages: thin command-line modules over the nlpflow library, one per DVC stage."""

from __future__ import annotations

import argparse


def stage_parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """The argument parser every stage starts from: its usage line names the module DVC runs,
    its help shows the module docstring as written, and ``--params`` is there."""
    parser = argparse.ArgumentParser(
        prog=f"python -m stages.{name}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--params", default="params.yaml", help="params file (default: %(default)s)"
    )
    return parser
