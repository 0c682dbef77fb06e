"""Batched inference with dynamic padding, and the per-example prediction records."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from nlpflow.errors import UserError
from nlpflow.evaluation.metrics import FloatArray, IntArray

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel


def load_classifier(
    model_dir: str | Path, label_names: Sequence[str], task: str = "sequence"
) -> tuple[Any, int]:
    """Load a saved classifier; return it (in eval mode) and its padding token id.

    ``task``'s family (:mod:`nlpflow.families.model`) gives the Auto class
    (``sequence``: AutoModelForSequenceClassification, ``token``:
    AutoModelForTokenClassification, ...) and checks the config against the data: a model
    whose label ids mean something else would be scored against the wrong classes.
    """
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    from nlpflow.families.model import model_family
    from nlpflow.modeling.tokenizers import load_tokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir}/config.json not found; run the train stage first")
    config = AutoConfig.from_pretrained(str(model_dir))
    family = model_family(task)
    family.check_config(config, label_names, model_dir)
    if not sys.stderr.isatty():
        hf_logging.disable_progress_bar()  # no "Loading weights" bars in dvc and CI logs
    auto = family.auto_class()
    if (model_dir / "adapter_config.json").is_file():  # a LoRA adapter (models/adapter)
        model = _base_with_adapter(model_dir, auto, config)
    else:
        try:
            model = auto.from_pretrained(str(model_dir))
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


def _base_with_adapter(model_dir: Path, auto: Any, config: Any) -> Any:
    """The base model named in ``model_dir``'s config (``nlpflow_lora.base_model``, as
    params.yaml gave it) with the LoRA adapter of ``model_dir`` merged in; ``config`` (the
    trained model's: labels, text2text settings) replaces the base's."""
    from nlpflow.modeling.lora import CONFIG_KEY, load_adapter

    record = getattr(config, CONFIG_KEY, None)
    if not isinstance(record, dict) or not record.get("base_model"):
        raise UserError(
            f"{model_dir}: an adapter without nlpflow's record of its base model "
            f"(config.json {CONFIG_KEY}); give the directory the train stage wrote"
        )
    base_name = str(record["base_model"])
    try:
        base = auto.from_pretrained(base_name, config=config)
    except (OSError, ValueError) as err:
        raise UserError(
            f"{model_dir}: cannot load the adapter's base model '{base_name}' (a path is read "
            f"from the current directory): {str(err).splitlines()[0]}"
        ) from None
    return load_adapter(base, model_dir)


def _pad(rows: list[list[int]], value: int) -> list[list[int]]:
    # Right padding: absolute position embeddings (BERT) then see the same positions as
    # unpadded, and the attention mask hides the rest.
    width = max(len(r) for r in rows)
    return [r + [value] * (width - len(r)) for r in rows]


def forward_batches(
    model: PreTrainedModel,
    input_ids: Sequence[list[int]],
    batch_size: int,
    pad_id: int,
    token_type_ids: Sequence[list[int]] | None,
    progress: bool | None,
    softmax: bool = True,
) -> Iterator[tuple[IntArray, Any]]:
    """``(example indices, float64 softmax of the logits)`` per batch, in length order
    (``softmax`` False: the logits themselves, float64, e.g. a regression model's outputs).

    Batches are formed from examples sorted by length (stable), so each batch pads only to
    its own longest input. The order is a pure function of the lengths, so the same inputs
    give the same batches and the same numbers.
    """
    import torch

    n = len(input_ids)
    if any(len(ids) == 0 for ids in input_ids):
        raise UserError("a tokenized example has no input ids; rerun the tokenize stage")
    # Models without segment embeddings (DistilBERT, ...) reject a token_type_ids argument.
    accepts_types = "token_type_ids" in inspect.signature(model.forward).parameters
    use_types = token_type_ids is not None and accepts_types
    device = next(model.parameters()).device
    order = np.argsort(np.fromiter((len(x) for x in input_ids), np.int64, n), kind="stable")
    if progress is None:
        progress = sys.stderr.isatty()  # quiet in CI and in dvc logs
    starts: Iterable[int] = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="predict", unit="batch", leave=False)
    with torch.inference_mode():
        for start in starts:
            idx = order[start : start + batch_size]
            ids = [list(input_ids[i]) for i in idx]
            if ids and isinstance(ids[0][0], list):  # N sequences per example: (B, N, T)
                from nlpflow.families.choice.encoding import pad_choices

                types = [list(token_type_ids[i]) for i in idx] if use_types else None  # type: ignore[index]
                arrays = pad_choices(ids, pad_id, types)
                logits = model(
                    **{k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
                ).logits
                yield idx, torch.softmax(logits.double(), dim=-1).cpu().numpy()
                continue
            batch = {
                "input_ids": torch.tensor(_pad(ids, pad_id), device=device),
                "attention_mask": torch.tensor(_pad([[1] * len(r) for r in ids], 0), device=device),
            }
            if use_types:
                assert token_type_ids is not None
                types = [list(token_type_ids[i]) for i in idx]
                batch["token_type_ids"] = torch.tensor(_pad(types, 0), device=device)
            output = model(**batch)
            if hasattr(output, "logits"):
                logits = output.logits
            else:  # a QA head: start and end logits per token, (B, T, 2)
                logits = torch.stack([output.start_logits, output.end_logits], dim=-1)
            # Softmax in float64 so the probabilities of an example sum to 1 within 1e-12.
            if not softmax:
                yield idx, logits.double().cpu().numpy()
                continue
            yield idx, torch.softmax(logits.double(), dim=-1).cpu().numpy()


def predict_probabilities(
    model: PreTrainedModel,
    input_ids: Sequence[list[int]],
    batch_size: int,
    pad_id: int,
    token_type_ids: Sequence[list[int]] | None = None,
    progress: bool | None = None,
) -> FloatArray:
    """Softmax probabilities, shape ``(N, num_labels)``, in the order of ``input_ids``."""
    n = len(input_ids)
    num_labels = int(getattr(model.config, "num_labels", 0))
    probs = np.empty((n, num_labels), dtype=np.float64)
    if n == 0:
        return probs
    for idx, batch_probs in forward_batches(
        model, input_ids, batch_size, pad_id, token_type_ids, progress
    ):
        probs[idx] = batch_probs
    return probs


def predict_token_probabilities(
    model: PreTrainedModel,
    input_ids: Sequence[list[int]],
    starts: Sequence[list[int]],
    batch_size: int,
    pad_id: int,
    token_type_ids: Sequence[list[int]] | None = None,
    progress: bool | None = None,
) -> list[FloatArray]:
    """Per example, the probabilities at its words' first sub-tokens: ``(words, K)`` float64.

    ``starts[i]`` holds, per word of example ``i``, the position of its first sub-token in
    ``input_ids[i]`` (from the encoding's ``word_ids``, :func:`nlpflow.modeling.encoder.
    word_starts`), or -1 for a word without one (no sub-token, or cut off by truncation):
    that word's row is NaN. Each word keeps its own row, so a missing word shifts nothing.
    """
    n = len(input_ids)
    num_labels = int(getattr(model.config, "num_labels", 0))
    out: list[FloatArray] = [np.zeros((0, num_labels))] * n
    if n == 0:
        return out
    for idx, batch_probs in forward_batches(
        model, input_ids, batch_size, pad_id, token_type_ids, progress
    ):
        for row, i in enumerate(idx):
            where = np.asarray(starts[int(i)], dtype=np.int64)
            probs = np.full((len(where), num_labels), np.nan, dtype=np.float64)
            seen = where >= 0
            probs[seen] = batch_probs[row, where[seen]]
            out[int(i)] = probs
    return out


def predict_split(model: Any, tokenized: Dataset, batch_size: int, pad_id: int) -> FloatArray:
    """Probabilities for one tokenized split (columns ``input_ids``, maybe ``token_type_ids``)."""
    types = (
        list(tokenized["token_type_ids"]) if "token_type_ids" in tokenized.column_names else None
    )
    return predict_probabilities(
        model, list(tokenized["input_ids"]), batch_size, pad_id, token_type_ids=types
    )


@dataclass
class TokenPredictions:
    """Word-level output of a token-classification split.

    ``probabilities[i]``: ``(words of row i, K)`` float64, NaN rows for words without output;
    ``empty_words[i]``: the words of row i with no sub-token; ``truncated_words[i]``: how many
    words of row i fell past max_length.
    """

    probabilities: list[FloatArray]
    empty_words: list[list[int]]
    truncated_words: list[int]


def predict_token_split(
    model: Any,
    tokenized: Dataset,
    words: Sequence[list[str]],
    tokenizer: Any,
    batch_size: int,
    pad_id: int,
    where: str = "",
) -> TokenPredictions:
    """Word-level probabilities of one token-classification split, aligned by ``word_ids``.

    The processed ``words`` are encoded again by the :class:`Encoder` (the tokenize stage's)
    to learn which sub-token starts each word; the ids must equal the stored ones (else a
    UserError: data/tokenized was made by another tokenizer). ``max_length`` need not be
    known: a split truncated at M has rows of length M and none longer, so encoding at the
    longest stored length reproduces every row.
    """
    from nlpflow.modeling.encoder import Encoder, word_starts

    stored = [list(ids) for ids in tokenized["input_ids"]]
    types = (
        list(tokenized["token_type_ids"]) if "token_type_ids" in tokenized.column_names else None
    )
    longest = max((len(ids) for ids in stored), default=1)
    encoder = Encoder(tokenizer, ["tokens"], max(longest, 1), task="token", segments=False)
    enc = encoder.encode([list(words)], where=where)
    for r, (a, b) in enumerate(zip(enc.input_ids, stored, strict=True)):
        if a != b:
            raise UserError(
                f"{where or 'tokenized data'} row {r}: the stored ids differ from what the "
                "model's tokenizer makes of the row's words; rerun the tokenize stage"
            )
    starts = [word_starts(ids, len(w)) for ids, w in zip(enc.word_ids, words, strict=True)]
    probs = predict_token_probabilities(
        model, stored, starts, batch_size, pad_id, token_type_ids=types
    )
    return TokenPredictions(probs, enc.empty_words, enc.truncated_words)


def prediction_rows(
    processed: Dataset,
    probabilities: FloatArray,
    text_fields: Sequence[str],
    metadata_fields: Sequence[str],
    label_names: Sequence[str],
    predicted: IntArray | None = None,
) -> list[dict[str, Any]]:
    """One record per example, in the processed split's row order.

    Keys: ``id``, the text fields, the metadata fields, ``label`` and ``prediction`` (label
    names), ``confidence`` (probability of the prediction) and ``probabilities`` (name -> p).
    ``predicted`` overrides the arg-max (a binary task's decision threshold).
    """
    if len(processed) != len(probabilities):
        raise ValueError(f"{len(processed)} rows but {len(probabilities)} probability rows")
    columns = {c: list(processed[c]) for c in ["id", *text_fields, *metadata_fields, "label"]}
    if predicted is None:
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


def token_prediction_rows(
    processed: Dataset,
    predictions: TokenPredictions,
    text_field: str,
    metadata_fields: Sequence[str],
    label_names: Sequence[str],
    fallback: int,
) -> list[dict[str, Any]]:
    """One record per sentence: ``label``/``prediction``/``confidence`` are lists, one per word.

    ``probabilities`` is a list of ``{tag: p}`` per word. A word without model output (cut off
    by truncation, or with no sub-token at all) is predicted ``label_names[fallback]`` (``O``)
    with confidence and probabilities ``null``: an entity through it is missed. ``truncated``
    and ``empty_words`` count those words; neither moves any other word's prediction.
    """
    word_probabilities = predictions.probabilities
    if len(processed) != len(word_probabilities):
        raise ValueError(f"{len(processed)} rows but {len(word_probabilities)} predictions")
    columns = {c: list(processed[c]) for c in ["id", text_field, *metadata_fields, "label"]}
    rows: list[dict[str, Any]] = []
    for i in range(len(processed)):
        tokens = list(columns[text_field][i])
        gold = [label_names[int(t)] for t in columns["label"][i]]
        probs = word_probabilities[i]
        if probs.shape[0] != len(tokens):
            raise ValueError(f"row {i}: {len(tokens)} words but {probs.shape[0]} predictions")
        prediction: list[str] = []
        confidence: list[float | None] = []
        per_word: list[dict[str, float] | None] = []
        for p in probs:
            if np.isnan(p).any():
                prediction.append(label_names[fallback])
                confidence.append(None)
                per_word.append(None)
            else:
                j = int(p.argmax())
                prediction.append(label_names[j])
                confidence.append(float(p[j]))
                per_word.append({name: float(p[k]) for k, name in enumerate(label_names)})
        row: dict[str, Any] = {"id": str(columns["id"][i]), text_field: tokens}
        for field_ in metadata_fields:
            row[field_] = columns[field_][i]
        row.update(
            label=gold,
            prediction=prediction,
            confidence=confidence,
            probabilities=per_word,
            truncated=predictions.truncated_words[i],
            empty_words=len(predictions.empty_words[i]),
        )
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


def token_records_to_arrays(
    rows: Sequence[dict[str, Any]], label_names: Sequence[str]
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """True tag ids and probabilities of every word the model saw (words without output left
    out: truncated ones and those with no sub-token)."""
    index = {name: i for i, name in enumerate(label_names)}
    true: list[int] = []
    probs: list[list[float]] = []
    for r in rows:
        for tag, p in zip(r["label"], r["probabilities"], strict=True):
            if p is not None:
                true.append(index[tag])
                probs.append([float(p[name]) for name in label_names])
    return (
        np.asarray(true, dtype=np.int64),
        np.asarray(probs, dtype=np.float64).reshape(len(true), len(label_names)),
    )
