"""Multiple-choice files: SWAG/WinoGrande-style JSONL (or JSON, Parquet) and CSV/TSV.

The file is parsed by :func:`nlpflow.data.files.read_records` (encodings, compression, quoting
and line numbers are the sequence task's); the checks here are the family's own. Every row
becomes ``{"context": str, "options": [N str], "label": int from 0, "_line": int}`` plus the
file's other columns as metadata. Where the options are:

- one name in ``data.choice.options``: a column holding the list of options (JSONL, JSON,
  Parquet; a CSV cell holds one text, so a CSV file names its option columns instead);
- several names: the option columns, in order (SWAG's ``ending0`` .. ``ending3``, WinoGrande's
  ``option1``, ``option2``).

The context is ``data.text_fields``, joined with a space when there are several (SWAG's
``sent1`` and ``sent2``, the start of every ending). The label is the index of the right option,
counted from ``data.choice.label_base`` (0, or 1 for WinoGrande's ``answer``); an integer, or a
string or float holding one (CSV cells are strings; pandas writes integer columns with a gap as
floats).

Refused with one line naming the file, the line (or row) and the column, or skipped and counted
under ``data.on_bad_rows: skip``: a context or option missing, empty or not text; a label
missing, not an integer, or out of range. **Rows with different numbers of options**: a data set
has one N (``AutoModelForMultipleChoice`` scores N options per example and a batch is
``(B, N, T)``). N is the most common number of options in the first file read (the train file),
and every row of every file must have N; a row with another count is bad, named with the count
it has and the N it needs.

A row whose right option has the same text as one of its wrong options cannot be answered; such
rows are kept (real data sets have a few) and counted in the data card's notes.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from pathlib import Path
from typing import Any

from nlpflow.data.files import BadRows, Row, printable, read_records
from nlpflow.errors import UserError
from nlpflow.families.choice import CONTEXT, LABEL, OPTIONS
from nlpflow.families.choice.config import ChoiceParams
from nlpflow.params import DataParams

# Columns the processed rows write themselves; a file column of that name that is not consumed
# as context, options or label is kept as "<name>_in_file".
OWN_COLUMNS = (CONTEXT, OPTIONS, LABEL, "_line")


@dataclasses.dataclass(frozen=True)
class Expected:
    """The number of options every row must have, and where that number comes from."""

    count: int
    origin: str  # e.g. "train.jsonl (its most common count)"


@dataclasses.dataclass
class _Reader:
    path: Path
    where: str  # "line" or "row"
    context_fields: list[str]
    label_field: str
    choice: ChoiceParams
    bad: BadRows

    def report(self, line: int, column: str, reason: str, row: Row) -> None:
        self.bad.report(self.path, self.where, line, column, reason, str(row)[:80])

    def context(self, line: int, row: Row) -> str | None:
        parts = []
        for name in self.context_fields:
            value = row.get(name)
            if not isinstance(value, str):
                what = "missing" if value is None else f"not text ({value!r})"
                self.report(line, name, f"the context is {what}; fill it in or remove the row", row)
                return None
            if value.strip():
                parts.append(value.strip())
        if not parts:
            self.report(
                line,
                self.context_fields[0] if len(self.context_fields) == 1 else "",
                f"the context ({', '.join(self.context_fields)}) is empty; fill it in or remove "
                "the row",
                row,
            )
            return None
        return " ".join(parts)

    def options(self, line: int, row: Row) -> list[str] | None:
        names = self.choice.options
        if len(names) == 1:
            value = row.get(names[0])
            if not isinstance(value, (list, tuple)):
                what = "missing" if value is None else f"a {type(value).__name__}, not a list"
                self.report(
                    line,
                    names[0],
                    f"the options are {what}; give a list of option texts, or name the option "
                    "columns in data.choice.options",
                    row,
                )
                return None
            labelled = [(f"option {i + 1}", names[0], v) for i, v in enumerate(value)]
        else:
            labelled = [(f"option {i + 1}", n, row.get(n)) for i, n in enumerate(names)]
        out = []
        for which, column, value in labelled:
            if value is None or not isinstance(value, str) or not value.strip():
                if value is None:
                    what = "missing"
                elif isinstance(value, str):
                    what = "empty"
                else:
                    what = f"not text ({value!r})"
                self.report(line, column, f"{which} is {what}; fill it in or remove the row", row)
                return None
            out.append(value)
        return out

    def label(self, line: int, row: Row, n: int) -> int | None:
        value = row.get(self.label_field)
        base = self.choice.label_base
        valid = f"{base} to {n - 1 + base} for {n} options"
        other = 1 - base
        hint = f"; if the labels count from {other}, set data.choice.label_base: {other}"
        if value is None or (isinstance(value, str) and not value.strip()):
            what = "missing" if value is None else "empty"
            self.report(line, self.label_field, f"the label is {what}; fill it in ({valid})", row)
            return None
        index = _as_int(value)
        if index is None:
            self.report(
                line,
                self.label_field,
                f"label {value!r} is not an option index; the label is the index of the right "
                f"option, {valid}",
                row,
            )
            return None
        if not base <= index < n + base:
            self.report(
                line, self.label_field, f"label {index} is out of range ({valid}){hint}", row
            )
            return None
        return index - base


def _as_int(value: Any) -> int | None:
    """An integer label from an int, an integral float or a string holding one; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
            return int(number) if math.isfinite(number) and number.is_integer() else None
    return None


def _metadata(row: Row, consumed: set[str], name: str, bad: BadRows) -> Row:
    out: Row = {}
    for key, value in row.items():
        if key is None or key in consumed:
            continue
        if key in OWN_COLUMNS:
            new = f"{key}_in_file"
            while new in row:
                new += "_"
            bad.note(
                f"{name}: the column '{key}' is kept as '{new}' (the processed data writes its "
                f"own '{key}' column)"
            )
            key = new
        out[key] = value
    return out


def read_choice_file(
    path: Path,
    params: DataParams,
    choice: ChoiceParams,
    bad: BadRows,
    expected: Expected | None = None,
) -> tuple[list[Row], Expected]:
    """The rows of one multiple-choice file, and the number of options N they all have.

    ``params``: ``text_fields`` (the context), ``label_field``, the format settings and
    ``on_bad_rows``; ``choice``: where the options are and the label base. ``expected``: the N
    an earlier file (train) fixed; None for the first file, whose most common count is N.

    Raises:
        UserError: one line naming the file, line (or row) and column of the first bad row
            (under ``on_bad_rows: fail``), a column missing from the file, N below 2, or no
            usable row.
    """
    names = choice.options
    wanted = [*params.text_fields, *(names if len(names) > 1 else []), params.label_field]
    raw, where = read_records(path, params, bad, wanted)
    if not raw:
        raise UserError(f"{path}: no usable data rows; check the file and data.on_bad_rows")
    columns = list(raw[0][1])
    missing = [c for c in [*params.text_fields, *names, params.label_field] if c not in columns]
    if missing:
        raise UserError(
            f"{path}: column(s) {[printable(c) for c in missing]} not found; the file has "
            f"{[printable(str(c)) for c in columns][:12]}; set data.text_fields (the context), "
            "data.choice.options (a list column, or the option columns) and data.label_field"
        )
    if len(names) == 1 and isinstance(raw[0][1].get(names[0]), str):
        raise UserError(
            f"{path}: column '{printable(names[0])}' holds text, not a list of options; in a "
            "CSV or TSV file each option is a column: set data.choice.options to the option "
            "columns in order (e.g. [ending0, ending1, ending2, ending3])"
        )
    if expected is None:
        expected = _most_common_count(raw, names, path)
    checker = RowChecker(path, where, params, choice, bad, expected)
    rows = [out for line, row in raw if (out := checker.check(line, row)) is not None]
    checker.finish()
    if not rows:
        raise UserError(f"{path}: no usable data rows; every row was bad (see data.on_bad_rows)")
    return rows, expected


class RowChecker:
    """The checks of :func:`read_choice_file` one record at a time (the streamed reader
    calls them batch by batch): :meth:`check` each record in file order, then
    :meth:`finish`."""

    def __init__(
        self,
        path: Path,
        where: str,
        params: DataParams,
        choice: ChoiceParams,
        bad: BadRows,
        expected: Expected,
    ) -> None:
        self.reader = _Reader(
            path, where, list(params.text_fields), params.label_field, choice, bad
        )
        self.path, self.where, self.bad, self.expected = path, where, bad, expected
        self.names = choice.options
        self.consumed = {*params.text_fields, *choice.options, params.label_field}
        self.repeated = 0
        self.first_repeated = 0

    def check(self, line: int, row: Row) -> Row | None:
        """The processed row of one record (``context``, ``options``, ``label`` from 0,
        ``_line`` and the other columns as metadata), or None for a bad one (reported)."""
        reader, expected = self.reader, self.expected
        context = reader.context(line, row)
        if context is None:
            return None
        options = reader.options(line, row)
        if options is None:
            return None
        if len(options) != expected.count:
            reader.report(
                line,
                self.names[0] if len(self.names) == 1 else "",
                f"{len(options)} options, but every row needs {expected.count} as in "
                f"{expected.origin}; a data set has one number of options (the model scores "
                "N options per example): give the row that many or remove it",
                row,
            )
            return None
        label = reader.label(line, row, expected.count)
        if label is None:
            return None
        if options.count(options[label]) > 1:
            self.repeated += 1
            self.first_repeated = self.first_repeated or line
        out = _metadata(row, self.consumed, self.path.name, self.bad)
        out.update({CONTEXT: context, OPTIONS: options, LABEL: label, "_line": line})
        return out

    def finish(self) -> None:
        """The file's note on rows that repeat the right option's text."""
        if self.repeated:
            self.bad.note(
                f"{self.path.name}: {self.repeated} row(s) repeat the right option's text as a "
                f"wrong option (e.g. {self.where} {self.first_repeated}); no model can answer "
                "them"
            )


def _most_common_count(raw: list[tuple[int, Row]], names: list[str], path: Path) -> Expected:
    """N for a data set whose first file is ``raw``: the option columns' count, or the most
    common length of the list column (ties: the first seen)."""
    if len(names) > 1:
        return Expected(len(names), f"data.choice.options ({len(names)} columns)")
    counts = Counter(
        len(row[names[0]]) for _, row in raw if isinstance(row.get(names[0]), (list, tuple))
    )
    if not counts:
        raise UserError(f"{path}: no row has a list of options in column '{names[0]}'")
    count = counts.most_common(1)[0][0]
    if count < 2:
        raise UserError(
            f"{path}: most rows have {count} option(s) in '{printable(names[0])}'; a "
            "multiple-choice row needs at least 2"
        )
    return Expected(count, f"{path.name} (its most common count)")
