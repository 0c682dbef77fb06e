"""Multi-label classification, data side: a list of labels per text, read from JSONL/Parquet
lists or delimiter-separated CSV/TSV cells, and the built-in ``builtin:multilabel`` task.

The processed ``label`` column is a list of class ids (``Sequence(ClassLabel)``); the
tokenized ``labels`` column keeps it, and training turns it into a 0/1 vector per example.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.data import Builtin, DataFamily, Row

if TYPE_CHECKING:
    import pyarrow as pa

    from nlpflow.data.files import BadRows
    from nlpflow.modeling.encoder import Encoded, Encoder
    from nlpflow.params import CleaningParams, DataParams


def label_format(params: DataParams) -> Any:
    from nlpflow.families.multilabel.labels import LabelFormat

    ml = params.multilabel
    return LabelFormat(ml.delimiter, ml.empty, tuple(ml.labels))


def label_warnings(names: list[str], present: dict[str, set[str]]) -> list[str]:
    """Labels no train example has (the model cannot learn them), and labels validation or
    test lack (their recall and F1 are 0 there); ``present``: the labels of each split."""
    out = []
    unseen = [n for n in names if n not in present["train"]]
    if unseen:
        out.append(
            f"label(s) {unseen} occur in no train example: the model cannot learn them, "
            "and every example with them counts as a miss"
        )
    for split in ("validation", "test"):
        absent = [n for n in names if n not in present[split]]
        if absent:
            out.append(
                f"the {split} split has no example of {absent}: their recall and F1 are "
                "0 there and pull macro-F1 down; add data or change data.splits"
            )
    return out


class MultilabelData(DataFamily):
    name: ClassVar[str] = "multilabel"

    def builtins(self) -> dict[str, Builtin]:
        from nlpflow.families.multilabel import generator

        return {
            "builtin:multilabel": Builtin(
                lambda params, seed: generator.generate_multilabel(
                    params.multilabel.size,
                    seed,
                    params.multilabel.min_length,
                    params.multilabel.max_length,
                ),
                (generator.TEXT_FIELD,),
                generator.LABEL_FIELD,
            )
        }

    def read_file(self, path: Path, params: DataParams, bad: BadRows) -> list[Row]:
        from nlpflow.families.multilabel.labels import read_multilabel_rows

        return read_multilabel_rows(path, params, label_format(params), bad)

    def strata(self, rows: Sequence[Row], label_field: str) -> list[str]:
        """Each row's rarest label (``""`` for none): a cheap stand-in for iterative
        stratification that spreads every rare label over the splits."""
        counts = Counter(x for r in rows for x in r[label_field])
        return [min(r[label_field], key=lambda x: (counts[x], x), default="") for r in rows]

    def clean(
        self, rows: list[Row], text_fields: list[str], label_field: str, params: CleaningParams
    ) -> tuple[list[Row], dict[str, int]] | None:
        """The shared text cleaning; label lists compared as tuples for the duplicate check."""
        from nlpflow.data.clean import clean_rows

        as_tuples = [{**r, label_field: tuple(r[label_field])} for r in rows]
        cleaned, counts = clean_rows(as_tuples, text_fields, label_field, params)
        return [{**r, label_field: list(r[label_field])} for r in cleaned], counts

    def labels_of(self, rows: Sequence[Row], label_field: str) -> list[str]:
        return [x for r in rows for x in r[label_field]]

    def label_names(
        self, splits: dict[str, list[Row]], label_field: str, origin: dict[str, str]
    ) -> list[str]:
        """The train labels, sorted. A label of a validation or test *file* that train never
        has is refused (file, line, label); from one source split at random, the label of
        an example that landed outside train is kept (and a warning says so)."""
        from nlpflow.data.files import BadRows
        from nlpflow.families.multilabel.labels import LabelFormat, check_known_labels

        train = set(self.labels_of(splits["train"], label_field))
        one_source = len({origin.get(s, "") for s in splits}) == 1
        if one_source:
            names = sorted(
                {x for rows in splits.values() for x in self.labels_of(rows, label_field)}
            )
        else:
            files = {s: Path(origin.get(s, s)) for s in splits}
            _, names, _ = check_known_labels(splits, files, label_field, LabelFormat(), BadRows())
        if len(train) < 1:
            raise UserError(
                f"{origin.get('train', '')}: no train example has a label; a multi-label task "
                "needs labels to learn"
            )
        return names

    def warnings(
        self, names: list[str], splits: dict[str, list[Row]], label_field: str
    ) -> list[str]:
        present = {s: set(self.labels_of(rows, label_field)) for s, rows in splits.items()}
        return label_warnings(names, present)

    def label_feature(self, label_names: list[str]) -> Any:
        from datasets import ClassLabel
        from datasets import Sequence as Seq

        return Seq(ClassLabel(names=label_names))

    def label_values(self, rows: Sequence[Row], label_field: str, label_names: list[str]) -> list:
        index = {name: i for i, name in enumerate(label_names)}
        return [sorted(index[x] for x in r[label_field]) for r in rows]

    def tokenized_label_feature(self, processed: Any) -> Any:
        from datasets import ClassLabel
        from datasets import Sequence as Seq

        if not (isinstance(processed, Seq) and isinstance(processed.feature, ClassLabel)):
            raise UserError(
                "the processed 'label' column of a multilabel task must be a list of class "
                "ids; rerun the preprocess stage"
            )
        return processed

    def encode(
        self, encoder: Encoder, columns: list[list[Any]], labels: pa.Array, where: str, first: int
    ) -> tuple[Encoded, Any]:
        return encoder.encode(columns, where=where, first_row=first), labels
