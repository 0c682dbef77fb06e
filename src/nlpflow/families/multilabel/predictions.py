"""The multi-label prediction records (``data/predictions/<split>.jsonl``) and reading them back.

One record per example: ``id``, the text and metadata fields, ``label`` (the true label
list), ``prediction`` (the predicted list, at the thresholds applied) and ``probabilities``
(label -> sigmoid score, every label). Lists follow the label-name order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nlpflow.errors import UserError
from nlpflow.evaluation.metrics import FloatArray


def prediction_records(
    base: Sequence[dict[str, Any]],
    truth: npt.ArrayLike,
    predicted: npt.ArrayLike,
    scores: npt.ArrayLike,
    label_names: Sequence[str],
) -> list[dict[str, Any]]:
    """``base`` (per example: ``id``, text and metadata fields) with ``label``,
    ``prediction`` and ``probabilities`` added. Raises ValueError when the lengths differ."""
    y, p = np.asarray(truth), np.asarray(predicted)
    s = np.asarray(scores, dtype=np.float64)
    if not len(base) == y.shape[0] == p.shape[0] == s.shape[0]:
        raise ValueError(f"{len(base)} records but {y.shape[0]}/{p.shape[0]}/{s.shape[0]} rows")
    out = []
    for i, row in enumerate(base):
        record = dict(row)
        record["label"] = [label_names[j] for j in np.flatnonzero(y[i]).tolist()]
        record["prediction"] = [label_names[j] for j in np.flatnonzero(p[i]).tolist()]
        record["probabilities"] = {name: float(s[i, j]) for j, name in enumerate(label_names)}
        out.append(record)
    return out


def records_to_arrays(
    rows: Sequence[dict[str, Any]], label_names: Sequence[str], path: Path | str = "predictions"
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8], FloatArray]:
    """``(truth, predicted, scores)``, each ``(n, k)``, from prediction records.

    Raises UserError naming ``path`` and the record (1-based line) for a record that is not
    a multi-label one of these labels (a predictions file of another task or label set:
    rerun evaluate).
    """
    index = {name: j for j, name in enumerate(label_names)}
    k = len(label_names)
    truth = np.zeros((len(rows), k), dtype=np.int8)
    predicted = np.zeros((len(rows), k), dtype=np.int8)
    scores = np.zeros((len(rows), k), dtype=np.float64)
    for i, row in enumerate(rows):
        where = f"{path}, line {i + 1}"
        probs = row.get("probabilities")
        if not isinstance(probs, dict) or set(probs) != set(label_names):
            raise UserError(
                f"{where}: 'probabilities' must map every label {list(label_names)} to a score; "
                "rerun the evaluate stage"
            )
        for key, target in (("label", truth), ("prediction", predicted)):
            value = row.get(key)
            if not isinstance(value, list) or any(v not in index for v in value):
                raise UserError(
                    f"{where}: '{key}' must be a list of the labels {list(label_names)}, got "
                    f"{value!r}; rerun the evaluate stage"
                )
            for v in value:
                target[i, index[v]] = 1
        for name, j in index.items():
            scores[i, j] = float(probs[name])
    return truth, predicted, scores


def load_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a predictions file, one a line. Raises UserError for a bad line."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(
                f"{path}, line {number}: not JSON ({err.msg}); rerun evaluate"
            ) from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}, line {number}: not a JSON object; rerun evaluate")
        rows.append(obj)
    return rows
