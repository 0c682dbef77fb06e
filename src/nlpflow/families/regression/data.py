"""Regression, data side: a numeric label per text or text pair, parsed and checked on
reading (a non-numeric or non-finite value is one line naming the file, row and value),
split stratified by label quintile; the built-in overlap task (``builtin:regression``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nlpflow.errors import UserError
from nlpflow.families.data import Builtin, DataFamily, Row
from nlpflow.families.regression import builtin

if TYPE_CHECKING:
    from nlpflow.data.files import BadRows

STRATA = 5  # label quantile bins the splits are stratified by


def parse_number(value: Any) -> float | None:
    """A finite float from a label as read (a number, or a string holding one), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def not_a_number(value: Any) -> str:
    """The reason a label is refused (a bad row's message after its file and line)."""
    return (
        f"label {value!r} is not a number; a regression task needs a finite numeric label "
        "(fix or remove the row, or set data.task)"
    )


def outside_train_range(train: np.ndarray, others: dict[str, np.ndarray]) -> list[str]:
    """Warnings for validation or test targets outside the train range (``(n,)`` float64
    targets per split, in row order)."""
    if not len(train):
        return []
    low, high = float(train.min()), float(train.max())
    out = []
    for split in ("validation", "test"):
        values = others[split]
        outside = values[~((values >= low) & (values <= high))]
        if len(outside):
            out.append(
                f"{len(outside)} {split} target(s) lie outside the train range "
                f"[{low:g}, {high:g}] (e.g. {float(outside[0]):g}): the model must extrapolate "
                "there"
            )
    return out


def check_varies(train: np.ndarray, origin: str) -> None:
    """A UserError naming ``origin`` when every train target is the same number."""
    if train.size and float(train.std()) == 0.0:
        raise UserError(
            f"{origin}: every train label is {train[0]:g}; a regression task needs targets "
            "that vary"
        )


def quantile_strata(values: np.ndarray) -> np.ndarray:
    """``(n,)`` int: each value's label quintile (its stratum, ``q<i>``)."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, STRATA + 1)[1:-1]))
    return np.searchsorted(edges, values, side="right")


class RegressionData(DataFamily):
    name: ClassVar[str] = "regression"
    has_classes: ClassVar[bool] = False

    def builtins(self) -> dict[str, Builtin]:
        return {
            "builtin:regression": Builtin(
                lambda params, seed: builtin.generate_regression(params.regression, seed),
                builtin.TEXT_FIELDS,
                builtin.LABEL_FIELD,
            )
        }

    def normalise(
        self,
        raw: dict[str, list[Row]],
        label_field: str,
        origin: dict[str, str],
        bad: BadRows,
    ) -> dict[str, Any]:
        """Every label becomes a float; a row whose label is not a finite number is a bad
        row (one line naming the file, its line and the value; skipped with
        ``data.on_bad_rows: skip``)."""
        for part, rows in raw.items():
            kept = []
            for i, row in enumerate(rows, start=1):
                value = parse_number(row[label_field])
                if value is None:
                    bad.report(
                        Path(origin[part]),
                        "line" if "_line" in row else "row",
                        int(row.get("_line", i)),
                        label_field,
                        not_a_number(row[label_field]),
                        str(row)[:80],
                    )
                    continue
                row[label_field] = value
                kept.append(row)
            rows[:] = kept
        return {}

    def strata(self, rows: Sequence[Row], label_field: str) -> list[str]:
        """Label quintiles (train/validation/test get the same spread of targets)."""
        if not rows:
            return []
        values = np.asarray([r[label_field] for r in rows], dtype=np.float64)
        return [f"q{int(b)}" for b in quantile_strata(values)]

    def labels_of(self, rows: Sequence[Row], label_field: str) -> list[str]:
        return []  # no classes: the data card shows the target's distribution instead

    def label_names(
        self, splits: dict[str, list[Row]], label_field: str, origin: dict[str, str]
    ) -> list[str]:
        """One output, named after the label column (the model config's ``id2label``)."""
        values = np.asarray([r[label_field] for r in splits["train"]], dtype=np.float64)
        check_varies(values, origin["train"])
        return [label_field]

    def warnings(
        self, names: list[str], splits: dict[str, list[Row]], label_field: str
    ) -> list[str]:
        """Validation or test targets outside the train range (the model extrapolates)."""
        values = {
            s: np.asarray([r[label_field] for r in splits[s]], dtype=np.float64) for s in splits
        }
        return outside_train_range(values["train"], values)

    def label_feature(self, label_names: list[str]) -> Any:
        from datasets import Value

        return Value("float64")

    def label_values(self, rows: Sequence[Row], label_field: str, label_names: list[str]) -> list:
        return [float(r[label_field]) for r in rows]

    def tokenized_label_feature(self, processed: Any) -> Any:
        from datasets import Value

        if getattr(processed, "dtype", None) not in ("float32", "float64"):
            raise UserError(
                "the processed 'label' column of a regression task must hold numbers; "
                "rerun the preprocess stage"
            )
        return Value("float64")
