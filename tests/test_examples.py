"""Every ``examples/<name>/params.yaml`` is a complete params file the schema accepts, with a
README beside it, and its data source is the family's built-in data."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpflow.params import load_params

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*/params.yaml"))


def test_there_are_examples() -> None:
    assert {p.parent.name for p in EXAMPLES} >= {"entities", "regression"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_params_are_complete_and_documented(path: Path) -> None:
    from nlpflow.families.data import builtin_source

    params = load_params(path)
    assert (path.parent / "README.md").is_file()
    found = builtin_source(params.data.source)
    assert found is not None, f"{path}: data.source {params.data.source} is not built in"
    family, builtin = found
    assert params.data.text_fields == list(builtin.text_fields)
    assert params.data.label_field == builtin.label_field
    from nlpflow.families.train import train_family

    # The metric early stopping watches is one the family measures.
    train_family(family.name).check_monitor(params.train.early_stopping.metric, ["B-X", "O"])
