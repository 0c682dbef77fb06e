"""Local data files: CSV/TSV, JSONL, Parquet and CoNLL, read with errors that name the place.

Every problem a user can fix is reported as one line naming the file, the line (or row) and
the column, and what to do. With ``on_bad_rows: skip`` the bad rows are collected instead
and shown in the data report.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from nlpflow.errors import UserError
from nlpflow.params import DataParams

EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".conll": "conll",
    ".iob": "conll",
    ".bio": "conll",
}
# Split files in a directory source; the first name found wins.
SPLIT_NAMES = {
    "train": ("train",),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test",),
}

Row = dict[str, Any]


@dataclass
class BadRow:
    """A row skipped under ``on_bad_rows: skip``, with the reason it was bad."""

    file: str
    line: int
    column: str
    reason: str
    excerpt: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class BadRows:
    """Collects bad rows (skip) or raises at the first one (fail)."""

    def __init__(self, policy: str) -> None:
        self.policy = policy
        self.rows: list[BadRow] = []

    def report(
        self, path: Path, where: str, line: int, column: str, reason: str, excerpt: str = ""
    ) -> None:
        col = f", column '{column}'" if column else ""
        if self.policy != "skip":
            raise UserError(f"{path}, {where} {line}{col}: {reason}")
        self.rows.append(BadRow(str(path), line, column, reason.split(";")[0], excerpt[:80]))


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


def _decoded_lines(path: Path, bad: BadRows) -> list[tuple[int, str]]:
    """(line number, text) of every line; undecodable lines are errors (or skipped)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        if bad.policy != "skip":
            raise UserError(
                f"{path}, line {line}: not valid UTF-8 (byte {err.start}); "
                "re-save the file as UTF-8 or set data.on_bad_rows: skip"
            ) from None
        lines = []
        for no, raw in enumerate(data.split(b"\n"), start=1):
            try:
                lines.append((no, raw.decode("utf-8-sig") + "\n"))
            except UnicodeDecodeError:
                bad.report(path, "line", no, "", "not valid UTF-8", raw.decode("utf-8", "replace"))
        return lines
    return list(enumerate(text.splitlines(keepends=True), start=1))


def _read_delimited(
    path: Path, kind: str, params: DataParams, bad: BadRows
) -> list[tuple[int, Row]]:
    lines = _decoded_lines(path, bad)
    if not any(text.strip() for _, text in lines):
        raise UserError(f"{path}: the file is empty; expected a header line and data rows")
    delimiter = params.delimiter or ("\t" if kind == "tsv" else ",")
    quoting: Literal[0, 1, 2, 3] = csv.QUOTE_NONE if params.quoting == "none" else csv.QUOTE_MINIMAL
    reader = csv.reader((text for _, text in lines), delimiter=delimiter, quoting=quoting)
    records = [(lines[reader.line_num - 1][0], rec) for rec in reader if rec]
    wanted = [*params.text_fields, params.label_field]
    first_no, first = records[0]
    if params.header is True or (params.header == "auto" and set(wanted) <= set(first)):
        names, records = first, records[1:]
    elif params.column_names:
        names = params.column_names
    elif params.header is False:
        raise UserError(f"{path}: data.header is false, so data.column_names must name the columns")
    else:
        raise UserError(
            f"{path}, line {first_no}: the first row {first[:6]} does not name the columns "
            f"{wanted}; if the file has no header set data.column_names, otherwise fix "
            "data.text_fields / data.label_field"
        )
    if not records:
        raise UserError(f"{path}: no data rows (only a header); add rows")
    rows: list[tuple[int, Row]] = []
    for line, rec in records:
        if len(rec) != len(names):
            hint = "quote fields that contain the delimiter"
            if params.quoting != "none":
                hint += ", or set data.quoting: none if quotes are ordinary characters"
            bad.report(
                path,
                "line",
                line,
                "",
                f"expected {len(names)} columns as in the header, found {len(rec)}; {hint}",
                delimiter.join(rec),
            )
            continue
        rows.append((line, dict(zip(names, rec, strict=True))))
    return rows


def _read_jsonl(path: Path, bad: BadRows) -> list[tuple[int, Row]]:
    rows: list[tuple[int, Row]] = []
    lines = _decoded_lines(path, bad)
    if not any(text.strip() for _, text in lines):
        raise UserError(f"{path}: the file is empty; expected one JSON object per line")
    for line_no, line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            bad.report(path, "line", line_no, "", f"not valid JSON ({err.msg}); fix the line", line)
            continue
        if not isinstance(obj, dict):
            bad.report(path, "line", line_no, "", "expected a JSON object per line", line)
            continue
        rows.append((line_no, obj))
    return rows


def _read_parquet(path: Path) -> list[tuple[int, Row]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise UserError(
            f"{path}: not a readable Parquet file ({str(err).splitlines()[0]}); re-export it"
        ) from None
    if table.num_rows == 0:
        raise UserError(f"{path}: the Parquet file has no rows")
    return [(i, row) for i, row in enumerate(table.to_pylist(), start=1)]


def _check_row(
    path: Path, where: str, line: int, row: Row, params: DataParams, bad: BadRows
) -> Row | None:
    """The row with its label as a string, or None when it is bad and skipped."""
    label_field = params.label_field
    label = row.get(label_field)
    if label is None or (isinstance(label, str) and not label.strip()):
        what = "missing" if label is None else "empty"
        bad.report(
            path,
            where,
            line,
            label_field,
            f"the label is {what}; fill it in or remove the row",
            str(row)[:80],
        )
        return None
    if isinstance(label, (bool, dict, list)) or (
        isinstance(label, float) and not label.is_integer()
    ):
        bad.report(
            path,
            where,
            line,
            label_field,
            f"label {label!r} is a {type(label).__name__}; labels must be strings or integers",
            str(row)[:80],
        )
        return None
    for name in params.text_fields:
        text = row.get(name)
        if not isinstance(text, str):
            bad.report(
                path,
                where,
                line,
                name,
                f"expected text, got {text!r}; fill in the text or remove the row",
                str(row)[:80],
            )
            return None
    out = {k: v for k, v in row.items() if k is not None}
    out[label_field] = str(int(label) if isinstance(label, float) else label).strip()
    out["_line"] = line
    return out


def read_rows(path: Path, params: DataParams, bad: BadRows) -> list[Row]:
    """Rows of one sequence-classification file, each with text fields, label (str), ``_line``."""
    if path.is_dir():
        raise UserError(f"{path}: is a directory; name a data file")
    if not path.is_file():
        raise UserError(f"{path}: file not found; check data.source / data.files in params.yaml")
    kind = detect_format(path, params.format)
    where = "row" if kind == "parquet" else "line"
    if kind == "jsonl":
        raw = _read_jsonl(path, bad)
    elif kind == "parquet":
        raw = _read_parquet(path)
    elif kind in ("csv", "tsv"):
        raw = _read_delimited(path, kind, params, bad)
    else:
        raise UserError(f"{path}: format '{kind}' holds token tags; it needs a token task source")
    if not raw:
        raise UserError(f"{path}: no usable data rows; check the file and data.on_bad_rows")
    columns = list(raw[0][1])
    missing = [c for c in [*params.text_fields, params.label_field] if c not in columns]
    if missing:
        raise UserError(
            f"{path}: column(s) {missing} not found; the file has {columns}; "
            "set data.text_fields and data.label_field to existing columns"
        )
    rows = []
    for line, row in raw:
        checked = _check_row(path, where, line, row, params, bad)
        if checked is not None:
            rows.append(checked)
    return rows


def read_conll(path: Path, params: DataParams, bad: BadRows) -> list[Row]:
    """Sentences of a CoNLL file: ``tokens`` and ``tags`` (IOB1 or IOB2 as written).

    Token per line with the tag in ``data.conll_tag_column``, a blank line between sentences;
    ``-DOCSTART-`` lines are ignored wherever they stand.
    """
    if not path.is_file():
        raise UserError(f"{path}: file not found; check data.source / data.files in params.yaml")
    sentences: list[Row] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    width = 0

    def flush() -> None:
        if tokens:
            sentences.append({"tokens": list(tokens), "tags": list(tags), "_line": start})
        tokens.clear()
        tags.clear()

    for no, text in _decoded_lines(path, bad):
        parts = text.split()
        if not parts:
            flush()
            continue
        if parts[0] == "-DOCSTART-":
            flush()
            continue
        width = width or len(parts)
        if len(parts) < 2 or len(parts) != width:
            bad.report(
                path,
                "line",
                no,
                "",
                f"expected {max(width, 2)} whitespace-separated columns (token ... tag), "
                f"found {len(parts)}",
                text,
            )
            continue
        tag = parts[params.conll_tag_column]
        if tag != "O" and not (len(tag) > 2 and tag[:2] in ("B-", "I-")):
            bad.report(
                path,
                "line",
                no,
                f"column {params.conll_tag_column}",
                f"tag {tag!r} is not O, B-TYPE or I-TYPE",
                text,
            )
            continue
        if not tokens:
            start = no
        tokens.append(parts[0])
        tags.append(tag)
    flush()
    if not sentences:
        raise UserError(f"{path}: no sentences found; expected token and tag columns")
    return sentences


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
    if not files:
        listing = sorted(p.name for p in directory.iterdir())
        raise UserError(
            f"{directory}: no data files (.csv, .tsv, .jsonl, .parquet, .conll) in the directory; "
            f"it has {listing or 'nothing'}"
        )
    if "train" not in found:
        raise UserError(
            f"{directory}: no train file found (train.csv, .tsv, .jsonl, .parquet, .conll); "
            f"the directory has {sorted(p.name for p in directory.iterdir())}; "
            "name the files or set data.files"
        )
    return found
