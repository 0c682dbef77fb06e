"""Batched inference with dynamic padding, and the per-example prediction records."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from nlpflow.errors import UserError
from nlpflow.evaluation.metrics import FloatArray

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel


def load_classifier(model_dir: str | Path, label_names: Sequence[str]) -> tuple[Any, int]:
    """Load a saved sequence classifier; return it (in eval mode) and its padding token id.

    The model's ``id2label`` must equal the data's label names in order: a model whose
    label ids mean something else would be scored against the wrong classes.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from nlpflow.modeling.tokenizers import load_tokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir}/config.json not found; run the train stage first")
    config = AutoConfig.from_pretrained(str(model_dir))
    id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    model_labels = [id2label.get(i, "?") for i in range(len(id2label))]
    if model_labels != list(label_names):
        raise UserError(
            f"{model_dir}: the model's labels {model_labels} differ from the data's "
            f"{list(label_names)}; retrain the model on this data (dvc repro train)"
        )
    if not sys.stderr.isatty():
        hf_logging.disable_progress_bar()  # no "Loading weights" bars in dvc and CI logs
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    except (OSError, ValueError) as err:
        raise UserError(
            f"cannot load the model in {model_dir}: {str(err).splitlines()[0]}"
        ) from None
    import torch

    # A GPU when there is one (the design's "used when present"); inference needs no seed.
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    model.eval()
    tokenizer = load_tokenizer(model_dir)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = getattr(config, "pad_token_id", None)
    # Padded positions are masked out, so any id works when neither names one.
    return model, int(pad_id) if pad_id is not None else 0


def _pad(rows: list[list[int]], value: int) -> list[list[int]]:
    # Right padding: absolute position embeddings (BERT) then see the same positions as
    # unpadded, and the attention mask hides the rest.
    width = max(len(r) for r in rows)
    return [r + [value] * (width - len(r)) for r in rows]


def predict_probabilities(
    model: PreTrainedModel,
    input_ids: Sequence[list[int]],
    batch_size: int,
    pad_id: int,
    token_type_ids: Sequence[list[int]] | None = None,
    progress: bool | None = None,
) -> FloatArray:
    """Softmax probabilities, shape ``(N, num_labels)``, in the order of ``input_ids``.

    Batches are formed from examples sorted by length (stable), so each batch pads only to
    its own longest input; the result is put back in the input order. The order is a pure
    function of the lengths, so the same inputs give the same batches and the same numbers.
    """
    import torch

    n = len(input_ids)
    num_labels = int(getattr(model.config, "num_labels", 0))
    if n == 0:
        return np.zeros((0, num_labels), dtype=np.float64)
    if any(len(ids) == 0 for ids in input_ids):
        raise UserError("a tokenized example has no input ids; rerun the tokenize stage")
    # Models without segment embeddings (DistilBERT, ...) reject a token_type_ids argument.
    accepts_types = "token_type_ids" in inspect.signature(model.forward).parameters
    use_types = token_type_ids is not None and accepts_types
    device = next(model.parameters()).device
    order = np.argsort(np.fromiter((len(x) for x in input_ids), np.int64, n), kind="stable")
    probs = np.empty((n, num_labels), dtype=np.float64)
    if progress is None:
        progress = sys.stderr.isatty()  # quiet in CI and in dvc logs
    starts = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="predict", unit="batch", leave=False)
    with torch.inference_mode():
        for start in starts:
            idx = order[start : start + batch_size]
            ids = [list(input_ids[i]) for i in idx]
            batch = {
                "input_ids": torch.tensor(_pad(ids, pad_id), device=device),
                "attention_mask": torch.tensor(_pad([[1] * len(r) for r in ids], 0), device=device),
            }
            if use_types:
                assert token_type_ids is not None
                types = [list(token_type_ids[i]) for i in idx]
                batch["token_type_ids"] = torch.tensor(_pad(types, 0), device=device)
            logits = model(**batch).logits
            # Softmax in float64 so the probabilities of an example sum to 1 within 1e-12.
            probs[idx] = torch.softmax(logits.double(), dim=-1).cpu().numpy()
    return probs


def predict_split(model: Any, tokenized: Dataset, batch_size: int, pad_id: int) -> FloatArray:
    """Probabilities for one tokenized split (columns ``input_ids``, maybe ``token_type_ids``)."""
    types = (
        list(tokenized["token_type_ids"]) if "token_type_ids" in tokenized.column_names else None
    )
    return predict_probabilities(
        model, list(tokenized["input_ids"]), batch_size, pad_id, token_type_ids=types
    )


def prediction_rows(
    processed: Dataset,
    probabilities: FloatArray,
    text_fields: Sequence[str],
    metadata_fields: Sequence[str],
    label_names: Sequence[str],
) -> list[dict[str, Any]]:
    """One record per example, in the processed split's row order.

    Keys: ``id``, the text fields, the metadata fields, ``label`` and ``prediction`` (label
    names), ``confidence`` (probability of the prediction) and ``probabilities`` (name -> p).
    """
    if len(processed) != len(probabilities):
        raise ValueError(f"{len(processed)} rows but {len(probabilities)} probability rows")
    columns = {c: list(processed[c]) for c in ["id", *text_fields, *metadata_fields, "label"]}
    predicted = probabilities.argmax(axis=1)
    rows: list[dict[str, Any]] = []
    for i in range(len(processed)):
        row: dict[str, Any] = {"id": str(columns["id"][i])}
        for field in [*text_fields, *metadata_fields]:
            row[field] = columns[field][i]
        pred = int(predicted[i])
        row["label"] = label_names[int(columns["label"][i])]
        row["prediction"] = label_names[pred]
        row["confidence"] = float(probabilities[i, pred])
        row["probabilities"] = {
            name: float(probabilities[i, j]) for j, name in enumerate(label_names)
        }
        rows.append(row)
    return rows


def records_to_arrays(
    rows: Sequence[dict[str, Any]], label_names: Sequence[str]
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """True label ids and the probability matrix back from prediction records.

    The inverse of :func:`prediction_rows`, so metrics can be recomputed from a predictions
    file alone (the tests check them against scikit-learn this way).
    """
    index = {name: i for i, name in enumerate(label_names)}
    y_true = np.asarray([index[r["label"]] for r in rows], dtype=np.int64)
    probs = np.asarray(
        [[float(r["probabilities"][name]) for name in label_names] for r in rows],
        dtype=np.float64,
    ).reshape(len(rows), len(label_names))
    return y_true, probs
