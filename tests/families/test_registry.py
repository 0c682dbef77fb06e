"""Every task family named in ``families.names.TASKS`` has all four sides registered, and a
task name that is not a family is one clear line wherever it is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlpflow.errors import UserError
from nlpflow.families.data import builtin_names, data_family
from nlpflow.families.evaluate import eval_family
from nlpflow.families.model import model_family
from nlpflow.families.names import TASKS
from nlpflow.families.train import train_family


@pytest.mark.parametrize("task", TASKS)
def test_every_family_has_four_sides(task: str) -> None:
    for lookup in (data_family, model_family, train_family, eval_family):
        assert lookup(task).name == task


def test_builtin_sources_are_unique_and_listed() -> None:
    names = builtin_names()
    assert len(names) == len(set(names))
    assert {"builtin:anagram", "builtin:entities", "builtin:regression"} <= set(names)


def test_an_unknown_task_is_refused() -> None:
    for lookup in (data_family, model_family, train_family, eval_family):
        with pytest.raises(UserError) as info:
            lookup("regresion")
        assert "unknown task 'regresion'" in str(info.value)


def test_data_task_param_suggests_the_nearest_family() -> None:
    from nlpflow.params import parse_params

    with pytest.raises(UserError) as info:
        parse_params({"data": {"task": "regresion"}})
    assert "data.task" in str(info.value) and "did you mean 'regression'" in str(info.value)


def test_early_stopping_metric_suggests_the_nearest_of_all_families() -> None:
    from nlpflow.params import parse_params

    for typo, nearest in (("f1_macr", "f1_macro"), ("rmes", "rmse"), ("spearmann", "spearman")):
        with pytest.raises(UserError) as info:
            parse_params({"train": {"early_stopping": {"metric": typo}}})
        assert f"did you mean '{nearest}'?" in str(info.value)


def test_meta_with_an_unknown_task_names_the_file(tmp_path: Path) -> None:
    from nlpflow.data.saved import read_meta

    meta = {"task": "ranking", "text_fields": ["text"], "label_names": ["a", "b"]}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError) as info:
        read_meta(tmp_path)
    assert str(tmp_path / "meta.json") in str(info.value) and "'ranking'" in str(info.value)
