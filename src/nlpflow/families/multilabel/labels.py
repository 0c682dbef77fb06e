"""Reading multi-label data: a list of labels per example, checked row by row.

Where the labels come from:

- JSONL, JSON and Parquet: the label field holds a list (a JSON list, an Arrow list column) of
  strings or integers, ``["sports", "politics"]``; ``[]`` is an example with no label.
- CSV and TSV: the label field is a string of labels separated by ``delimiter`` (a param,
  ``,`` by default, as GoEmotions' TSV writes ``27,2``); spaces around a label are dropped; an
  empty field is an example with no label.

Refused, each with one line naming the file, the line (or row), the column and the value:
a label field that is missing, a structured label field that is not a list (a string in a
JSONL file), an item that is not a string or an integer, an empty label between two
delimiters, a label given twice in one example, a list literal in a CSV cell (``['a', 'b']``,
as pandas writes a list to CSV), and an unknown label: one outside the declared ``labels``
list, or, without one, a label of a validation or test file that the train data never has
(no model can learn to predict it). An example with no label is allowed unless ``empty`` is
``fail``: "none of these labels" is a real answer in most multi-label data sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from nlpflow.data.files import BadRows, Row, detect_format, keep_clashing_columns, read_records
from nlpflow.errors import UserError
from nlpflow.params import DataParams

LabelMatrix = npt.NDArray[np.int8]


@dataclass(frozen=True)
class LabelFormat:
    """How label lists are written and which labels are allowed (``data.multilabel``, checked
    by :class:`nlpflow.params.MultilabelParams`)."""

    delimiter: str = ","  # between labels in a CSV/TSV cell
    empty: Literal["allow", "fail"] = "allow"  # an example with no label
    labels: tuple[str, ...] = ()  # the labels allowed; () = any


class LabelValueError(ValueError):
    """A label field that cannot be read; the message says why, the caller says where."""


def _item(value: Any, shown: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise LabelValueError(
            f"label {value!r} in {shown} is a {type(value).__name__}; labels must be strings or "
            "integers"
        )
    text = str(value).strip()
    if not text:
        raise LabelValueError(f"an empty label in {shown}; remove it")
    return text


def parse_labels(value: Any, structured: bool, fmt: LabelFormat) -> list[str]:
    """The labels of one label field, in the order written.

    ``structured``: the file holds typed values (JSONL, Parquet), so the field must be a list;
    otherwise it is a ``fmt.delimiter``-separated string. Raises LabelValueError saying what
    is wrong with the value (the caller adds file, line and column).
    """
    if value is None:
        raise LabelValueError(
            "the label field is missing; write [] (or an empty cell) for an example with no label"
        )
    if structured:
        if not isinstance(value, list):
            hint = (
                f'; write a list such as ["{value.split(fmt.delimiter)[0].strip()}"]'
                if isinstance(value, str)
                else ""
            )
            raise LabelValueError(
                f"the label field {value!r} is a {type(value).__name__}, not a list{hint}"
            )
        shown = repr(value)[:60]
        labels = [_item(v, shown) for v in value]
    else:
        if not isinstance(value, str):  # CSV cells are always strings; be safe anyway
            raise LabelValueError(f"the label field {value!r} is not text")
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            raise LabelValueError(
                f"the label field {value!r} looks like a list literal; in a CSV/TSV file write "
                f"the labels separated by '{fmt.delimiter}' (a{fmt.delimiter}b), or use JSONL"
            )
        labels = [] if not text else [_item(v, repr(value)) for v in text.split(fmt.delimiter)]
    seen: set[str] = set()
    for label in labels:
        if label in seen:
            raise LabelValueError(f"label '{label}' is given twice in {value!r}; give it once")
        seen.add(label)
    if not labels and fmt.empty == "fail":
        raise LabelValueError(
            "the example has no label; add one, or set empty: allow if an example may have none"
        )
    return labels


def read_multilabel_rows(
    path: Path, params: DataParams, fmt: LabelFormat, bad: BadRows
) -> list[Row]:
    """Rows of one multi-label file: text fields, the label field as a list, ``_line``.

    Labels are checked against ``fmt.labels`` when it is given (unknown labels against the
    train data are checked later, by :func:`check_known_labels`). Raises UserError naming the
    file, line and column (or collects the row in ``bad`` under ``on_bad_rows: skip``).
    """
    raw, where = read_records(path, params, bad)
    if not raw:
        raise UserError(f"{path}: no usable data rows; check the file and data.on_bad_rows")
    columns = list(raw[0][1])
    missing = [c for c in [*params.text_fields, params.label_field] if c not in columns]
    if missing:
        raise UserError(
            f"{path}: column(s) {missing} not found; the file has {columns}; "
            "set data.text_fields and data.label_field to existing columns"
        )
    structured = detect_format(path, params.format) in ("jsonl", "parquet")
    declared = set(fmt.labels)
    field = params.label_field
    rows: list[Row] = []
    for line, record in raw:
        try:
            labels = parse_labels(record.get(field), structured, fmt)
        except LabelValueError as err:
            bad.report(path, where, line, field, str(err), str(record)[:80])
            continue
        unknown = [x for x in labels if declared and x not in declared]
        if unknown:
            bad.report(
                path,
                where,
                line,
                field,
                f"label '{unknown[0]}' is not one of the declared labels {sorted(declared)}; "
                "fix the label or add it to the declared list",
                str(record)[:80],
            )
            continue
        texts_ok = True
        for name in params.text_fields:
            text = record.get(name)
            if not isinstance(text, str):
                bad.report(
                    path,
                    where,
                    line,
                    name,
                    f"expected text, got {text!r}; fill in the text or remove the row",
                    str(record)[:80],
                )
                texts_ok = False
                break
        if not texts_ok:
            continue
        out = keep_clashing_columns(record, {field, *params.text_fields}, path.name, bad)
        out[field] = labels
        out["_line"] = line
        rows.append(out)
    if not rows:
        raise UserError(f"{path}: no usable data rows; every row was bad (see data.on_bad_rows)")
    return rows


def check_known_labels(
    splits: Mapping[str, Sequence[Row]],
    files: Mapping[str, Path],
    label_field: str,
    fmt: LabelFormat,
    bad: BadRows,
) -> tuple[dict[str, list[Row]], list[str], list[str]]:
    """The rows kept, the label names (sorted) and warnings, for rows split into files.

    With declared labels, those are the names (rows were checked on reading); a declared
    label no train example has is a warning. Without, the names are those of the ``train``
    rows, and a row of another split holding a label train never has is refused (or skipped
    under ``on_bad_rows: skip``) naming its file, line and label: the model could never
    predict it. ``files`` maps a split to the file its rows came from (for the messages).
    """
    train_labels = sorted({x for row in splits["train"] for x in row[label_field]})
    names = sorted(fmt.labels) if fmt.labels else train_labels
    warnings = []
    if fmt.labels:
        missing = sorted(set(fmt.labels) - set(train_labels))
        if missing:
            warnings.append(
                f"declared label(s) {missing} occur in no train example: the model cannot learn "
                "them and scores 0 on them"
            )
    known = set(names)
    kept: dict[str, list[Row]] = {}
    for split, rows in splits.items():
        kept[split] = []
        for row in rows:
            unknown = [x for x in row[label_field] if x not in known]
            if unknown:
                bad.report(
                    files[split],
                    "row" if ".parquet" in files[split].name.lower() else "line",
                    int(row.get("_line", 0)),
                    label_field,
                    f"label '{unknown[0]}' occurs in no train example (the train labels are "
                    f"{names[:10]}{'...' if len(names) > 10 else ''}); fix the label or add "
                    "train examples with it",
                    str(row)[:80],
                )
                continue
            kept[split].append(row)
    return kept, names, warnings


def multi_hot(label_lists: Sequence[Sequence[str]], label_names: Sequence[str]) -> LabelMatrix:
    """Label lists as a 0/1 matrix ``(n, k)``, column ``j`` for ``label_names[j]``.

    Raises ValueError for a label not in ``label_names`` (readers refuse those first).
    """
    index = {name: j for j, name in enumerate(label_names)}
    out = np.zeros((len(label_lists), len(label_names)), dtype=np.int8)
    for i, labels in enumerate(label_lists):
        for label in labels:
            try:
                out[i, index[label]] = 1
            except KeyError:
                raise ValueError(
                    f"label '{label}' of example {i} is not in {list(label_names)}"
                ) from None
    return out


def label_lists(matrix: npt.ArrayLike, label_names: Sequence[str]) -> list[list[str]]:
    """The inverse of :func:`multi_hot`: each row's labels, in ``label_names`` order."""
    m = np.asarray(matrix)
    return [[label_names[j] for j in np.flatnonzero(row).tolist()] for row in m]
