"""Turn a data source into train/validation/test splits with stable label ids."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.data import anagram
from nlpflow.data.files import Row, read_rows, split_files
from nlpflow.data.split import label_names_from, stratified_split
from nlpflow.errors import UserError
from nlpflow.params import SPLITS, DataParams

if TYPE_CHECKING:
    from datasets import DatasetDict

BUILTIN_PREFIX = "builtin:"


@dataclass
class PreparedData:
    """Rows per split with label names as strings; everything a data report needs."""

    splits: dict[str, list[Row]]
    text_fields: list[str]
    label_field: str
    label_names: list[str]
    metadata_fields: list[str]

    def meta(self) -> dict[str, Any]:
        return {
            "text_fields": self.text_fields,
            "label_field": self.label_field,
            "label_names": self.label_names,
            "metadata_fields": self.metadata_fields,
        }


def _split_by_fraction(rows: list[Row], params: DataParams, label: str, seed: int) -> dict[str, list[Row]]:
    idx = stratified_split([r[label] for r in rows], {s: params.splits[s] for s in SPLITS}, seed)
    return {split: [rows[i] for i in idx[split]] for split in SPLITS}


def _carve_validation(rows: list[Row], params: DataParams, label: str, seed: int) -> tuple[list[Row], list[Row]]:
    """Validation taken from train, in the proportion the splits params give them."""
    share = params.splits["validation"] / (params.splits["train"] + params.splits["validation"])
    idx = stratified_split([r[label] for r in rows], {"train": 1 - share, "validation": share}, seed)
    return [rows[i] for i in idx["train"]], [rows[i] for i in idx["validation"]]


def load_splits(params: DataParams, seed: int) -> PreparedData:
    """Read ``params.source`` and return the three splits."""
    source = params.source
    if source.startswith(BUILTIN_PREFIX):
        name = source[len(BUILTIN_PREFIX):]
        if name != "anagram":
            raise UserError(f"params.yaml: data.source '{source}' is unknown; use 'builtin:anagram'")
        text_fields, label_field = anagram.TEXT_FIELDS, anagram.LABEL_FIELD
        if params.text_fields != text_fields or params.label_field != label_field:
            raise UserError(
                f"params.yaml: builtin:anagram has text_fields {text_fields} and label_field "
                f"'{label_field}'; set data.text_fields and data.label_field to those"
            )
        rows = anagram.generate_anagram(params.anagram, seed)
        splits = _split_by_fraction(rows, params, label_field, seed)
    else:
        path = Path(source)
        text_fields, label_field = params.text_fields, params.label_field
        if path.is_dir():
            files = split_files(path)
            splits = {
                split: read_rows(p, params.format, text_fields, label_field)
                for split, p in files.items()
            }
            if "test" not in splits:
                raise UserError(f"{path}: no test file found (test.csv/.tsv/.jsonl); add one")
            if "validation" not in splits:
                splits["train"], splits["validation"] = _carve_validation(
                    splits["train"], params, label_field, seed
                )
        elif path.exists():
            rows = read_rows(path, params.format, text_fields, label_field)
            splits = _split_by_fraction(rows, params, label_field, seed)
        else:
            raise UserError(
                f"params.yaml: data.source '{source}' does not exist; give a file, a directory "
                "with train/validation/test files, or builtin:anagram"
            )
    for split, rows in splits.items():
        if not rows:
            raise UserError(f"the {split} split is empty; add data or change data.splits")
    names = label_names_from(
        [r[label_field] for r in splits["train"]],
        {s: [r[label_field] for r in splits[s]] for s in ("validation", "test")},
    )
    reserved = {"id", "_line", label_field, *text_fields}
    metadata = sorted({k for r in splits["train"] for k in r} - reserved)
    return PreparedData(splits, text_fields, label_field, names, metadata)


def to_dataset_dict(data: PreparedData) -> DatasetDict:
    """Arrow datasets: ``id``, the text fields, ``label`` (ClassLabel) and metadata columns."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features(
        {
            "id": Value("string"),
            **{f: Value("string") for f in data.text_fields},
            "label": ClassLabel(names=data.label_names),
            **{m: Value("string") for m in data.metadata_fields},
        }
    )
    label_id = {name: i for i, name in enumerate(data.label_names)}
    out = {}
    for split in SPLITS:
        rows = data.splits[split]
        columns: dict[str, list[Any]] = {
            "id": [str(r.get("id", f"{split}-{r.get('_line', i)}")) for i, r in enumerate(rows)],
            **{f: [r[f] for r in rows] for f in data.text_fields},
            "label": [label_id[r[data.label_field]] for r in rows],
            **{m: [None if r.get(m) is None else str(r[m]) for r in rows] for m in data.metadata_fields},
        }
        out[split] = Dataset.from_dict(columns, features=features)
    return DatasetDict(out)


def describe(data: PreparedData) -> dict[str, Any]:
    """Small figures for ``metrics/preprocess.json``: rows and label counts per split."""
    report: dict[str, Any] = {"label_names": data.label_names, "splits": {}}
    for split in SPLITS:
        rows = data.splits[split]
        counts = {name: 0 for name in data.label_names}
        for r in rows:
            counts[r[data.label_field]] += 1
        lengths = [sum(len(r[f]) for f in data.text_fields) for r in rows]
        report["splits"][split] = {
            "rows": len(rows),
            "labels": counts,
            "mean_chars": round(sum(lengths) / len(lengths), 2),
            "max_chars": max(lengths),
        }
    train_counts = report["splits"]["train"]["labels"].values()
    report["imbalance_ratio"] = round(max(train_counts) / max(1, min(train_counts)), 3)
    return report
