"""The model, probe and train sections of params.yaml: new keys are checked before any work."""

from __future__ import annotations

from typing import Any

import pytest

from nlpflow.params import ParamsError, parse_params


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"train": {"early_stopping": {"metric": "f1_macr"}}},
            # (the list goes on with every task family's metrics; the hint: tests/families)
            "train.early_stopping.metric must be one of ['loss', 'accuracy', 'f1_macro', "
            "'entity_f1', ",
        ),
        (
            {
                "train": {
                    "early_stopping": {
                        "metric": "loss",
                        "mode": "min",
                        "target": 0.1,
                        "divergence": 0.05,
                    }
                }
            },
            "train.early_stopping.divergence must be on the bad side of target (0.1) for mode min",
        ),
        (
            {"train": {"schedule": "one_cycle", "warmup_ratio": 0.0}},
            "train.schedule one_cycle needs a warm-up",
        ),
        ({"train": {"class_weights": {"spam": -1}}}, "train.class_weights must be >= 0"),
        ({"train": {"class_weights": "balance"}}, "train.class_weights must be"),
        ({"train": {"batching": "sorted"}}, "train.batching must be one of"),
        ({"train": {"precision": "fp8"}}, "train.precision must be one of"),
        ({"train": {"keep_checkpoints": 0}}, "train.keep_checkpoints must be >= 1"),
        ({"train": {"processes": 0}}, "train.processes must be >= 1"),
        ({"train": {"label_smoothing": 1.0}}, "train.label_smoothing must be in [0, 1)"),
        ({"model": {"dropout": 1.5}}, "model.dropout must be in [0, 1)"),
    ],
)
def test_bad_values_are_one_clear_line(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamsError) as info:
        parse_params(section)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_good_values() -> None:
    params = parse_params(
        {
            "model": {"dropout": None, "freeze_embeddings": True},
            "train": {
                "class_weights": {"spam": 4.0}, "schedule": "one_cycle", "warmup_steps": 10,
                "warmup_ratio": 0.0, "optimizer": "sgd", "early_stopping": {"patience": 0,
                "target": 0.9, "divergence": 0.2, "metric": "entity_f1"},
            },
        }
    )  # fmt: skip
    assert params.model.dropout is None and params.train.class_weights == {"spam": 4.0}
    assert params.train.threads == 1 and params.train.batching == "length_grouped"
