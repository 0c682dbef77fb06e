"""Reading the processed and tokenized splits, with errors that name the file and what to do."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.errors import UserError

if TYPE_CHECKING:
    from datasets import DatasetDict

LABEL_COLUMN = "label"
# The aligned label of special tokens and non-first sub-tokens in data/tokenized (token tasks):
# what the loss, the metrics and the word-level predictions skip.
IGNORE_INDEX = -100


@dataclass(frozen=True)
class DataMeta:
    """What ``data/processed/meta.json`` says about the columns of the processed splits."""

    text_fields: list[str]
    label_names: list[str]
    metadata_fields: list[str]
    task: str = "sequence"  # "sequence" or "token" (a list of words, a tag per word)


def read_meta(processed_dir: str | Path) -> DataMeta:
    """Read ``meta.json`` of the processed data; a missing or malformed file is a UserError."""
    path = Path(processed_dir) / "meta.json"
    if not path.is_file():
        raise UserError(f"{path} not found; run the preprocess stage first (dvc repro preprocess)")
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON at line {err.lineno}: {err.msg}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a JSON object")

    def str_list(key: str, required: bool = True) -> list[str]:
        value = raw.get(key, None if required else [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UserError(f"{path}: '{key}' must be a list of strings (got {value!r})")
        return list(value)

    task = raw.get("task", "sequence")
    if task not in ("sequence", "token"):
        raise UserError(f"{path}: 'task' must be 'sequence' or 'token' (got {task!r})")
    meta = DataMeta(
        text_fields=str_list("text_fields"),
        label_names=str_list("label_names"),
        metadata_fields=str_list("metadata_fields", required=False),
        task=task,
    )
    if not 1 <= len(meta.text_fields) <= 2:
        raise UserError(f"{path}: 'text_fields' must name 1 or 2 columns")
    if task == "token" and len(meta.text_fields) != 1:
        raise UserError(f"{path}: a token task has one text field (the list of words)")
    if len(meta.label_names) < 2:
        raise UserError(f"{path}: 'label_names' must name at least 2 labels")
    return meta


def load_dataset_dict(path: str | Path, splits: list[str], columns: list[str]) -> DatasetDict:
    """Load a ``save_to_disk`` DatasetDict and check it has ``splits`` with ``columns``."""
    from datasets import DatasetDict, load_from_disk

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} not found; run the earlier pipeline stages first (dvc repro)")
    try:
        data = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"{path}: not a saved dataset ({str(err).splitlines()[0]})") from None
    if not isinstance(data, DatasetDict):
        raise UserError(f"{path}: expected a dataset with splits, found a single split")
    for split in splits:
        if split not in data:
            raise UserError(f"{path}: split '{split}' is missing (found {sorted(data)})")
        missing = [c for c in columns if c not in data[split].column_names]
        if missing:
            raise UserError(
                f"{path}/{split}: column(s) {missing} missing (found {data[split].column_names})"
            )
    return data


def class_label_names(data: DatasetDict, split: str, path: str | Path) -> list[str] | None:
    """The ``.names`` of the label column when it is a ClassLabel, else None."""
    feature = data[split].features.get(LABEL_COLUMN)
    # A token task's label is a Sequence (or list) of ClassLabel: the names are inside.
    inner = getattr(feature, "feature", None)
    if inner is None and isinstance(feature, list) and feature:
        inner = feature[0]
    names = getattr(inner if inner is not None else feature, "names", None)
    if names is None:
        return None
    if not isinstance(names, list):
        raise UserError(f"{path}/{split}: the '{LABEL_COLUMN}' feature has no label names")
    return [str(n) for n in names]
