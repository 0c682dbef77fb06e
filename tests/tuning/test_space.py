"""The search space: parsing from params.yaml, the tuning rules, grids, boundary warnings."""

from __future__ import annotations

from typing import Any

import pytest

from nlpflow.params import ParamsError, parse_params
from nlpflow.tuning.experiments import MetricError, parse_metric
from nlpflow.tuning.space import SpaceError, boundary_warnings, build_space, set_override
from tests.conftest import suite_params


def raw_params(**space: Any) -> dict[str, Any]:
    raw = suite_params()
    if space:
        raw["tune"]["space"] = space
    return raw


def space_of(raw: dict[str, Any], **tune: Any) -> Any:
    raw = dict(raw)
    raw["tune"] = {**raw["tune"], **tune}
    return build_space(parse_params(raw).tune, raw)


def test_default_space_is_valid_and_has_a_grid() -> None:
    raw = raw_params()
    space = space_of(raw)
    assert space.paths == ["train.lr", "train.warmup_ratio", "train.schedule"]
    grid = space.grid()
    assert len(grid) == 3 * 2 * 2
    assert {"train.lr": 0.0005, "train.warmup_ratio": 0.0, "train.schedule": "linear"} in grid


def test_epochs_are_refused_unless_allowed() -> None:
    raw = raw_params(**{"train.epochs": {"type": "int", "low": 2, "high": 20}})
    with pytest.raises(SpaceError) as err:
        space_of(raw)
    assert "epoch budget" in str(err.value) and "allow_epochs" in str(err.value)
    assert space_of(raw, allow_epochs=True).paths == ["train.epochs"]


def test_seed_unknown_keys_and_sections_are_refused() -> None:
    with pytest.raises(SpaceError, match="--seeds"):
        space_of(raw_params(seed={"type": "int", "low": 0, "high": 9}))
    with pytest.raises(SpaceError, match=r"'train\.lrr' is not a parameter"):
        space_of(raw_params(**{"train.lrr": {"type": "float", "low": 0.1, "high": 1.0}}))
    with pytest.raises(SpaceError, match="is a section"):
        space_of(raw_params(**{"train.early_stopping": {"type": "categorical", "choices": [1, 2]}}))


def test_values_must_pass_the_stages_own_validation() -> None:
    raw = raw_params(**{"train.warmup_ratio": {"type": "float", "low": 0.0, "high": 1.0}})
    with pytest.raises(SpaceError) as err:
        space_of(raw)
    assert "train.warmup_ratio must be in [0, 1)" in str(err.value)
    raw = raw_params(**{"train.schedule": {"type": "categorical", "choices": ["linear", "cubic"]}})
    with pytest.raises(SpaceError, match="cubic"):
        space_of(raw)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "must be > 0 on a log scale"),
        ({"type": "float", "low": 0.5, "high": 0.1}, "must be > low"),
        ({"type": "int", "low": 1.5, "high": 4}, "whole number"),
        ({"type": "categorical", "choices": ["a"]}, "at least 2 values"),
        ({"type": "categorical", "choices": ["a", "b"], "low": 1.0}, "give choices"),
        ({"type": "float", "low": 0.1, "high": 0.2, "grid": [0.5]}, "outside [low, high]"),
        ({"type": "float", "low": 0.1}, "high is required"),
    ],
)
def test_bad_specs_name_the_key(spec: dict[str, Any], message: str) -> None:
    raw = raw_params(**{"train.weight_decay": spec})
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    assert "tune.space.train.weight_decay" in str(err.value)
    assert message in str(err.value)


def test_yaml_strings_like_1e_3_are_numbers_in_grids() -> None:
    raw = raw_params(**{"train.lr": {"type": "float", "low": "1e-4", "high": "1e-2", "log": True,
                                     "grid": ["1e-3", 0.005]}})  # fmt: skip
    assert space_of(raw).grid() == [{"train.lr": 0.001}, {"train.lr": 0.005}]


def test_a_float_range_without_grid_values_cannot_be_gridded() -> None:
    raw = raw_params(**{"train.weight_decay": {"type": "float", "low": 0.0, "high": 0.1}})
    with pytest.raises(SpaceError, match="needs grid"):
        space_of(raw).grid()


def test_test_split_metrics_are_refused() -> None:
    assert parse_metric("metrics/evaluate.json:validation.f1_macro") == (
        "metrics/evaluate.json",
        ["validation", "f1_macro"],
    )
    with pytest.raises(MetricError, match="leaks the test set"):
        parse_metric("metrics/evaluate.json:test.f1_macro")


def test_set_override_quotes_what_hydra_would_misread() -> None:
    assert set_override(0.001) == "0.001"
    assert set_override(3) == "3"
    assert set_override(True) == "true"
    assert set_override("cosine") == "cosine"
    assert set_override("a,b") == "'a,b'"  # a comma would make a sweep
    assert set_override("it's") == "'it\\'s'"


# --------------------------------------------------------------------------- boundaries


def test_log_parameter_near_its_low_end_proposes_a_wider_range() -> None:
    raw = raw_params(**{"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}})
    space = space_of(raw)
    # 2e-4 is at 15% of the range on the log scale, 1.2e-4 at 4%.
    assert boundary_warnings(space, {"train.lr": 2e-4}, raw) == []
    (w,) = boundary_warnings(space, {"train.lr": 1.2e-4}, raw)
    assert (w.side, w.proposal) == ("low", 1e-5)  # 1e-4 / sqrt(100)
    assert "lower tenth" in w.message() and "(log scale)" in w.message()
    assert "[1e-05, 0.01]" in w.message()
    # On a linear scale the same value would be in the lower tenth of [1e-4, 1e-2] too, but
    # 2e-3 would not be judged low on the log scale (it is at 65%).
    assert boundary_warnings(space, {"train.lr": 2e-3}, raw) == []


def test_a_parameter_at_its_own_limit_cannot_be_extended() -> None:
    raw = raw_params(**{"train.warmup_ratio": {"type": "float", "low": 0.0, "high": 0.3}})
    space = space_of(raw)
    (w,) = boundary_warnings(space, {"train.warmup_ratio": 0.01}, raw)
    assert w.proposal is None
    assert "cannot be extended" in w.message() and "must be in [0, 1)" in w.message()
    (w,) = boundary_warnings(space, {"train.warmup_ratio": 0.29}, raw)
    assert (w.side, w.proposal) == ("high", 0.45)


def test_extension_is_pulled_back_to_the_valid_region() -> None:
    raw = raw_params(**{"model.dropout": {"type": "float", "low": 0.2, "high": 0.9}})
    space = space_of(raw)
    (w,) = boundary_warnings(space, {"model.dropout": 0.88}, raw)
    assert (w.side, w.proposal) == ("high", 0.99)  # 1.25 would break "dropout < 1"


def test_int_parameters_extend_by_whole_steps() -> None:
    raw = raw_params(**{"model.num_layers": {"type": "int", "low": 2, "high": 6}})
    space = space_of(raw)
    (w,) = boundary_warnings(space, {"model.num_layers": 6}, raw)
    assert (w.side, w.proposal) == ("high", 8)
    (w,) = boundary_warnings(space, {"model.num_layers": 2}, raw)
    assert (w.side, w.proposal) == ("low", 1)  # 0 would break "num_layers must be >= 1"
    raw = raw_params(**{"model.num_layers": {"type": "int", "low": 1, "high": 6}})
    (w,) = boundary_warnings(space_of(raw), {"model.num_layers": 1}, raw)
    assert w.proposal is None and "must be >= 1" in w.reason


def test_grid_studies_are_judged_on_the_span_of_their_grid() -> None:
    raw = raw_params()
    space = space_of(raw)
    best = {"train.lr": 0.008, "train.warmup_ratio": 0.0, "train.schedule": "linear"}
    warned = {w.path: w.side for w in boundary_warnings(space, best, raw, grid=True)}
    assert warned == {"train.lr": "high", "train.warmup_ratio": "low"}
