"""Local data files (CSV, TSV, JSONL): read rows with clear errors naming file, line and column."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from nlpflow.errors import UserError

EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
# Split files in a directory source; the first name found wins.
SPLIT_NAMES = {
    "train": ("train",),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test",),
}

Row = dict[str, Any]


def detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    try:
        return EXTENSIONS[path.suffix.lower()]
    except KeyError:
        raise UserError(
            f"{path}: cannot tell the format from the extension '{path.suffix}'; "
            f"use one of {sorted(EXTENSIONS)} or set data.format"
        ) from None


def _read_delimited(path: Path, delimiter: str) -> list[tuple[int, Row]]:
    rows: list[tuple[int, Row]] = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        if reader.fieldnames is None:
            raise UserError(f"{path}: the file is empty; expected a header line and data rows")
        width = len(reader.fieldnames)
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                found = width + len(row.get(None) or []) if None in row else sum(
                    v is not None for v in row.values()
                )
                raise UserError(
                    f"{path}, line {line}: expected {width} columns as in the header, found {found}; "
                    "fix the row (quote fields that contain the delimiter)"
                )
            rows.append((line, row))
    return rows


def _read_jsonl(path: Path) -> list[tuple[int, Row]]:
    rows: list[tuple[int, Row]] = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}, line {line_no}: not valid JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise UserError(f"{path}, line {line_no}: expected a JSON object per line")
            rows.append((line_no, obj))
    return rows


def read_rows(
    path: Path, fmt: str, text_fields: list[str], label_field: str
) -> list[Row]:
    """Rows of one file, each with its text fields, label (as str) and the other columns.

    Every row gets ``_line`` (its line number) so later errors can point at it.
    """
    if not path.is_file():
        raise UserError(f"{path}: file not found; check data.source in params.yaml")
    kind = detect_format(path, fmt)
    try:
        raw = _read_jsonl(path) if kind == "jsonl" else _read_delimited(
            path, "\t" if kind == "tsv" else ","
        )
    except UnicodeDecodeError as err:
        raise UserError(
            f"{path}: not valid UTF-8 at byte {err.start}; re-save the file as UTF-8"
        ) from None
    if not raw:
        raise UserError(f"{path}: no data rows (only a header or nothing); add rows")
    first_line, first = raw[0]
    missing = [c for c in [*text_fields, label_field] if c not in first]
    if missing:
        raise UserError(
            f"{path}: column(s) {missing} not found; the file has {list(first)}; "
            "set data.text_fields and data.label_field to existing columns"
        )
    rows: list[Row] = []
    for line, row in raw:
        label = row.get(label_field)
        if label is None or str(label).strip() == "":
            raise UserError(
                f"{path}, line {line}, column '{label_field}': the label is empty; "
                "fill it in or remove the row"
            )
        if isinstance(label, (dict, list, float)):
            raise UserError(
                f"{path}, line {line}, column '{label_field}': label {label!r} is a "
                f"{type(label).__name__}; labels must be strings or integers"
            )
        for name in text_fields:
            text = row.get(name)
            if not isinstance(text, str):
                raise UserError(
                    f"{path}, line {line}, column '{name}': expected text, got {text!r}"
                )
        out = {k: v for k, v in row.items() if k is not None}
        out[label_field] = str(label).strip()
        out["_line"] = line
        rows.append(out)
    return rows


def split_files(directory: Path) -> dict[str, Path]:
    """The data files of a directory source, by split name."""
    if not directory.is_dir():
        raise UserError(f"{directory}: not a directory")
    found: dict[str, Path] = {}
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in EXTENSIONS)
    for split, names in SPLIT_NAMES.items():
        for name in names:
            match = [p for p in files if p.stem.lower() == name]
            if match:
                found[split] = match[0]
                break
    if "train" not in found:
        raise UserError(
            f"{directory}: no train file found (looked for train.csv/.tsv/.jsonl); "
            f"the directory has {[p.name for p in directory.iterdir()] or 'no files'}"
        )
    return found
