"""Every ``examples/<name>/params.yaml`` is a complete params file the schema accepts, with a
README beside it, and its data source is the family's built-in data."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpflow.params import load_params

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*/params.yaml"))


def test_there_are_examples() -> None:
    assert {p.parent.name for p in EXAMPLES} >= {"entities", "multilabel", "regression"}


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

    # The metric early stopping watches is one the family measures (data.task names the
    # family when a classification source runs as text2text).
    train = train_family(family.name if params.data.task == "auto" else params.data.task)
    train.configure(params.train, None)
    train.check_monitor(params.train.early_stopping.metric, ["B-X", "O"])
    # and the metric the tuning pruner follows is one the family reports per epoch
    from nlpflow.tuning.command import check_pruner_metric

    check_pruner_metric(params, params.tune)


PARAMS_FILES = [EXAMPLES[0].parents[2] / "params.yaml", *EXAMPLES]


@pytest.mark.parametrize(
    "path", PARAMS_FILES, ids=lambda p: "root" if p == PARAMS_FILES[0] else p.parent.name
)
def test_params_file_holds_every_key_dvc_yaml_names(path: Path) -> None:
    """`dvc repro` stops at a stage whose params key the file lacks (DVC reads the file, not
    the schema's defaults): the root params.yaml and every example must name them all."""
    import yaml

    from nlpflow.params import read_yaml

    values = read_yaml(path.read_text())
    stages = yaml.safe_load((EXAMPLES[0].parents[2] / "dvc.yaml").read_text())["stages"]
    missing = set()
    for name, stage in stages.items():
        for entry in stage.get("params", []):
            keys = entry if isinstance(entry, str) else None
            if keys is None:
                continue
            node: object = values
            for part in keys.split("."):
                if not isinstance(node, dict) or part not in node:
                    missing.add(f"{name}: {keys}")
                    break
                node = node[part]
    assert not missing, f"{path}: {sorted(missing)}"
