"""Sequence classification, data side: one label string per text or text pair (the
defaults of :class:`~nlpflow.families.data.DataFamily`), and the built-in anagram task."""

from __future__ import annotations

from typing import ClassVar

from nlpflow.data import anagram
from nlpflow.families.data import Builtin, DataFamily, Row


class SequenceData(DataFamily):
    name: ClassVar[str] = "sequence"

    def builtins(self) -> dict[str, Builtin]:
        return {
            "builtin:anagram": Builtin(
                lambda params, seed: anagram.generate_anagram(params.anagram, seed),
                tuple(anagram.TEXT_FIELDS),
                anagram.LABEL_FIELD,
            )
        }

    def warnings(
        self, names: list[str], splits: dict[str, list[Row]], label_field: str
    ) -> list[str]:
        """Classes that validation or test lack: their metrics (and the report's) are
        undefined (:func:`class_warnings`)."""
        held = ("validation", "test")
        return class_warnings(
            names,
            {s: set(self.labels_of(splits[s], label_field)) for s in held},
            {s: len(splits[s]) for s in held},
        )


def class_warnings(
    names: list[str], present: dict[str, set[str]], rows: dict[str, int]
) -> list[str]:
    """Warnings for the validation and test splits (``present``: the classes each holds,
    ``rows``: its size) with a single class, or without some of ``names``: their metrics
    are undefined there. Shared by the in-memory and the streamed preprocess."""
    out = []
    for split in ("validation", "test"):
        absent = [n for n in names if n not in present[split]]
        if len(present[split]) == 1:
            out.append(
                f"the {split} split has only one class ({sorted(present[split])[0]!r}, "
                f"{rows[split]} rows): ROC-AUC, PR-AUC and MCC are undefined and "
                "accuracy says nothing there; add data or change data.splits"
            )
        elif absent:
            out.append(
                f"the {split} split has no example of {absent}: their recall and F1 are "
                "undefined there; add data or change data.splits"
            )
    return out
