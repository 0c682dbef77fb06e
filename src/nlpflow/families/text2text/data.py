"""Text-to-text data: ``input``/``target`` rows from files, and the built-in generated task.

Files are read by :func:`nlpflow.data.files.read_records` (CSV/TSV/JSONL/Parquet, with its
line-level errors); what is checked here is the family's own rule: every row has an input and
a non-empty target, both text. Each problem is one line naming the file, the line (or row)
and the column, or, under ``data.on_bad_rows: skip``, a counted bad row.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.data.files import BadRows, Row, keep_clashing_columns, read_records
from nlpflow.errors import UserError
from nlpflow.families.data import Builtin, DataFamily, TokenizedData
from nlpflow.families.text2text import INPUT_FIELD, TARGET_FIELD
from nlpflow.families.text2text.params import BUILTIN_KINDS, Text2TextDataParams
from nlpflow.params import DataParams

if TYPE_CHECKING:
    from nlpflow.contracts import TokenizeInputs
    from nlpflow.data.saved import DataMeta

METADATA_FIELDS = ["kind"]

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _as_text(value: Any) -> str | None:
    """A cell as text: strings as they are, integers (not booleans) in their decimal form."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _check_row(
    path: Path, where: str, line: int, row: Row, fields: tuple[str, str], bad: BadRows
) -> Row | None:
    """The row with its input and target as text, or None when it is bad and skipped."""
    for name, role in zip(fields, ("input", "target"), strict=True):
        value = row.get(name)
        text = _as_text(value)
        if value is None or (text is not None and not text.strip()):
            what = "missing" if value is None else "empty"
            bad.report(
                path, where, line, name, f"the {role} is {what}; fill it in or remove the row"
            )
            return None
        if text is None:
            bad.report(
                path,
                where,
                line,
                name,
                f"the {role} {value!r} is a {type(value).__name__}; it must be text",
                str(row)[:80],
            )
            return None
    out = keep_clashing_columns(row, set(fields), path.name, bad)
    for name in fields:
        out[name] = _as_text(row[name])
    out["_line"] = line
    return out


def read_text2text_rows(
    path: Path,
    params: DataParams,
    bad: BadRows,
    input_field: str = INPUT_FIELD,
    target_field: str = TARGET_FIELD,
) -> list[Row]:
    """Rows of one text-to-text file: ``input_field`` and ``target_field`` as text, the other
    columns kept as metadata, ``_line`` the file's line (or Parquet row) number.

    Raises UserError naming the file, line and column for anything the user must fix: a
    missing column, a missing or empty input or target, a value that is not text (a JSON
    list, object, float or boolean; integers are read as their digits).
    """
    if input_field == target_field:
        raise UserError(
            f"params.yaml: the input and target fields are both '{input_field}'; name two columns"
        )
    raw, where = read_records(path, params, bad, wanted=[input_field, target_field])
    if not raw:
        raise UserError(f"{path}: no usable data rows; check the file and data.on_bad_rows")
    columns = list(raw[0][1])
    missing = [c for c in (input_field, target_field) if c not in columns]
    if missing:
        raise UserError(
            f"{path}: column(s) {missing} not found; the file has {columns[:10]}; a "
            f"text-to-text file needs an '{input_field}' and a '{target_field}' column"
        )
    rows = []
    for line, row in raw:
        checked = _check_row(path, where, line, row, (input_field, target_field), bad)
        if checked is not None:
            rows.append(checked)
    if not rows:
        raise UserError(f"{path}: no usable data rows; every row was bad (see data.on_bad_rows)")
    return rows


# --------------------------------------------------------------------------- built-in task


def spell_number(n: int) -> str:
    """``n`` (0 <= n <= 999,999) in English words, as ``four thousand twenty one``.

    No "and", no hyphens: every word is one token of a whitespace tokenizer.
    """
    if not 0 <= n <= 999_999:
        raise ValueError(f"spell_number: {n} is outside [0, 999999]")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {spell_number(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    return f"{spell_number(thousands)} thousand" + (f" {spell_number(rest)}" if rest else "")


def _example(kind: str, params: Text2TextDataParams, rng: random.Random) -> tuple[str, str]:
    if kind == "sort":
        n = rng.randint(params.min_letters, params.max_letters)
        letters = [rng.choice(params.alphabet) for _ in range(n)]
        return "sort " + " ".join(letters), " ".join(sorted(letters))
    number = rng.randint(0, params.max_number)
    return "spell " + " ".join(str(number)), spell_number(number)


def generate_text2text(params: Text2TextDataParams, seed: int) -> list[dict[str, Any]]:
    """Rows with ``id``, ``input``, ``target`` and ``kind`` (``sort`` or ``spell``), all
    distinct inputs, the same for the same params and seed.

    Letters and digits are space-separated, so a whitespace tokenizer sees one token each.
    Raises UserError when ``params.size`` distinct inputs cannot be drawn (alphabet, letter
    counts or ``max_number`` too small for the size).
    """
    rng = random.Random(f"text2text-{seed}")
    kinds = [k for k in BUILTIN_KINDS if params.kinds.get(k, 0.0) > 0]
    weights = [float(params.kinds[k]) for k in kinds]
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    attempts = 0
    while len(rows) < params.size:
        attempts += 1
        if attempts > params.size * 50:
            raise UserError(
                f"params.yaml: data.text2text.size {params.size} is more distinct inputs than "
                f"the kinds {kinds} can give with these settings (found {len(rows)}); lower the "
                "size, or raise max_number, max_letters or the alphabet"
            )
        kind = rng.choices(kinds, weights)[0]
        text, target = _example(kind, params, rng)
        if text in seen:  # keeps the splits free of duplicates and of leakage
            continue
        seen.add(text)
        rows.append(
            {
                "id": f"t2t-{len(rows):06d}",
                INPUT_FIELD: text,
                TARGET_FIELD: target,
                "kind": kind,
            }
        )
    return rows


# --------------------------------------------------------------------------- label task

# Between the text fields of a classification row written as one input.
LABEL_TASK_JOIN = " | "


def label_task_rows(rows: Sequence[Row], text_fields: Sequence[str], label_field: str) -> list[Row]:
    """Classification rows (text fields and a label string, as the sequence reader or a
    built-in source gives them) as text-to-text rows: ``input`` the text fields joined by
    :data:`LABEL_TASK_JOIN` (``"a b c | c a b"``), ``target`` the label name; ``id``,
    ``_line`` and the metadata columns kept."""
    out = []
    for row in rows:
        new = {k: v for k, v in row.items() if k not in (*text_fields, label_field)}
        new[INPUT_FIELD] = LABEL_TASK_JOIN.join(str(row[f]) for f in text_fields)
        new[TARGET_FIELD] = str(row[label_field])
        out.append(new)
    return out


# --------------------------------------------------------------------------- data side


def one_input_field(params: DataParams) -> None:
    """A UserError unless ``data.text_fields`` names one field (the input)."""
    if len(params.text_fields) != 1:
        raise UserError(
            f"params.yaml: data.text_fields is {params.text_fields}; a text2text task reads "
            "one input field (and data.label_field, the target)"
        )


class Text2TextData(DataFamily):
    """Text-to-text, data side: one input text field (``data.text_fields``) and a target
    text (``data.label_field``), stored as strings; random splits (no classes to stratify);
    ``label_names`` names the one output, the target field. The built-in task is
    ``builtin:text2text`` (``data.text2text``)."""

    name: ClassVar[str] = "text2text"
    has_classes: ClassVar[bool] = False
    target_description: ClassVar[str] = "a text target (described by its length in words)"

    def builtins(self) -> dict[str, Builtin]:
        return {
            "builtin:text2text": Builtin(
                lambda params, seed: generate_text2text(params.text2text, seed),
                (INPUT_FIELD,),
                TARGET_FIELD,
            )
        }

    def read_file(self, path: Path, params: DataParams, bad: BadRows) -> list[Row] | None:
        one_input_field(params)
        return read_text2text_rows(path, params, bad, params.text_fields[0], params.label_field)

    def strata(self, rows: Sequence[Row], label_field: str) -> list[str]:
        return [""] * len(rows)

    def target_numbers(self, rows: Sequence[Row], label_field: str) -> list[float]:
        """A target's length in words."""
        return [float(len(str(r[label_field]).split())) for r in rows]

    def example_line(self, row: Row, text: str, label_field: str) -> str:
        return f"{text[:150]!r} -> {str(row[label_field])[:150]!r}"

    def labels_of(self, rows: Sequence[Row], label_field: str) -> list[str]:
        """None: a target is a text, not a class to count."""
        return []

    def label_names(
        self, splits: dict[str, list[Row]], label_field: str, origin: dict[str, str]
    ) -> list[str]:
        return [label_field]

    def label_feature(self, label_names: list[str]) -> Any:
        from datasets import Value

        return Value("string")

    def label_values(self, rows: Sequence[Row], label_field: str, label_names: list[str]) -> list:
        return [r[label_field] for r in rows]

    def tokenize(
        self, dataset: Any, meta: DataMeta, params: TokenizeInputs
    ) -> TokenizedData | None:
        from nlpflow.families.text2text.tokenize import tokenize_text2text

        model = params.model
        return tokenize_text2text(
            dataset,
            meta,
            params.tokenizer,
            model.name_or_path,
            model.trust_remote_code,
            model.text2text,
        )
