"""Batched inference with dynamic padding, and the prediction records, on a tiny saved model."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nlpflow.errors import UserError
from nlpflow.evaluation.predict import (
    load_classifier,
    predict_probabilities,
    predict_split,
    prediction_rows,
    records_to_arrays,
)
from tests.evaluation import tiny


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from datasets import load_from_disk

    paths = tiny.make_all(tmp_path_factory.mktemp("tiny"))
    model, pad_id = load_classifier(paths["model"], tiny.LABEL_NAMES)
    return {
        **paths,
        "model_obj": model,
        "pad_id": pad_id,
        "processed_ds": load_from_disk(str(paths["processed"])),
        "tokenized_ds": load_from_disk(str(paths["tokenized"])),
    }


def test_probabilities_are_a_distribution_in_input_order(assets: dict[str, Any]) -> None:
    split = assets["tokenized_ds"]["test"]
    probs = predict_split(assets["model_obj"], split, batch_size=64, pad_id=assets["pad_id"])
    assert probs.shape == (len(split), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    # Batch size 1 has no padding at all: the reference each padded batch must reproduce,
    # which also shows the length-sorted batches are put back in the input order.
    one = predict_split(assets["model_obj"], split, batch_size=1, pad_id=assets["pad_id"])
    three = predict_split(assets["model_obj"], split, batch_size=3, pad_id=assets["pad_id"])
    np.testing.assert_allclose(probs, one, atol=1e-6)
    np.testing.assert_allclose(three, one, atol=1e-6)
    # The tiny model is untrained but not constant: both classes and a spread of confidence.
    assert len(set(probs.argmax(axis=1))) == 2
    assert probs.max(axis=1).std() > 0.01


def test_same_inputs_give_bit_identical_probabilities(assets: dict[str, Any]) -> None:
    split = assets["tokenized_ds"]["validation"]
    a = predict_split(assets["model_obj"], split, batch_size=4, pad_id=assets["pad_id"])
    b = predict_split(assets["model_obj"], split, batch_size=4, pad_id=assets["pad_id"])
    np.testing.assert_array_equal(a, b)


def test_token_type_ids_are_optional(assets: dict[str, Any]) -> None:
    split = assets["tokenized_ds"]["test"].remove_columns("token_type_ids")
    probs = predict_split(assets["model_obj"], split, batch_size=8, pad_id=assets["pad_id"])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)


def test_empty_input_gives_an_empty_matrix(assets: dict[str, Any]) -> None:
    probs = predict_probabilities(assets["model_obj"], [], batch_size=4, pad_id=0)
    assert probs.shape == (0, 2)


def test_prediction_rows_follow_the_contract(assets: dict[str, Any]) -> None:
    processed = assets["processed_ds"]["test"]
    probs = predict_split(
        assets["model_obj"], assets["tokenized_ds"]["test"], batch_size=8, pad_id=assets["pad_id"]
    )
    rows = prediction_rows(
        processed, probs, tiny.TEXT_FIELDS, tiny.METADATA_FIELDS, tiny.LABEL_NAMES
    )
    assert [r["id"] for r in rows] == list(processed["id"])  # stable row order
    expected_keys = {"id", "first", "second", "kind", "label", "prediction", "confidence"}
    for row, source in zip(rows, processed, strict=True):
        assert set(row) == expected_keys | {"probabilities"}
        assert row["first"] == source["first"] and row["kind"] == source["kind"]
        assert row["label"] == tiny.LABEL_NAMES[source["label"]]
        assert set(row["probabilities"]) == set(tiny.LABEL_NAMES)
        assert math.isclose(sum(row["probabilities"].values()), 1.0, abs_tol=1e-12)
        assert row["prediction"] == max(row["probabilities"], key=row["probabilities"].get)
        assert row["confidence"] == row["probabilities"][row["prediction"]]
        json.dumps(row, allow_nan=False)  # plain JSON types only
    y_true, back = records_to_arrays(rows, tiny.LABEL_NAMES)
    np.testing.assert_array_equal(y_true, processed["label"])
    np.testing.assert_array_equal(back, probs)


def test_model_with_other_labels_is_a_user_error(assets: dict[str, Any]) -> None:
    with pytest.raises(UserError, match=r"model's labels \['no', 'yes'\] differ"):
        load_classifier(assets["model"], ["negative", "positive"])


def test_missing_model_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"config\.json not found; run the train stage"):
        load_classifier(tmp_path / "nowhere", tiny.LABEL_NAMES)


def test_model_without_weights_is_a_user_error(assets: dict[str, Any], tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(assets["model"], broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(UserError, match="cannot load the model"):
        load_classifier(broken, tiny.LABEL_NAMES)
