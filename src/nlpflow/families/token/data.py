"""Token classification, data side: a list of words and a tag per word (BIO entities),
the built-in entities task, and the alignment of word tags to sub-tokens in tokenize."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.data import entities
from nlpflow.families.data import Builtin, DataFamily, Row

if TYPE_CHECKING:
    import pyarrow as pa

    from nlpflow.data.files import BadRows
    from nlpflow.modeling.encoder import Encoded, Encoder
    from nlpflow.params import CleaningParams


def converted_note(part: str, origin: dict[str, str]) -> str:
    """The data card's note for a part (``origin``: its file or source) read as IOB1."""
    where = origin[part] if part == "all" else f"{Path(origin[part]).name} ({part})"
    return (
        f"{where}: the tags are IOB1 (an entity starts with I-; CoNLL-2003 as published): "
        "converted to IOB2 on reading, entities unchanged"
    )


def scheme_meta(converted: bool) -> dict[str, Any]:
    """``meta.json``'s tag scheme fields: the processed tags are IOB2, and how the source was."""
    return {"tag_scheme": "IOB2", "source_tag_scheme": "IOB1" if converted else "IOB2"}


def unseen_tag_warnings(known: set[str], counts: dict[str, Counter[str]]) -> list[str]:
    """Per held-out split (``counts``: how often each tag occurs there), the tags train lacks
    (``known``: train's tags)."""
    out = []
    for split, found in counts.items():
        unseen = {t: n for t, n in found.items() if t not in known and n}
        if unseen:
            shown = ", ".join(f"{t} ({n}x)" for t, n in sorted(unseen.items()))
            out.append(
                f"tag(s) never seen in train occur in the {split} split: {shown}; the model "
                "cannot predict them, so every such word counts as an error"
            )
    return out


class TokenData(DataFamily):
    name: ClassVar[str] = "token"
    encoder_mode: ClassVar[str] = "token"

    def builtins(self) -> dict[str, Builtin]:
        return {
            "builtin:entities": Builtin(
                lambda params, seed: entities.generate_entities(params.entities, seed),
                (entities.TOKENS_FIELD,),
                entities.TAGS_FIELD,
            )
        }

    def normalise(
        self,
        raw: dict[str, list[Row]],
        label_field: str,
        origin: dict[str, str],
        bad: BadRows,
    ) -> dict[str, Any]:
        """Each part in its own scheme: one written in IOB1 is converted to IOB2 (the
        processed tags are always IOB2)."""
        schemes = {
            part: entities.detect_scheme([r[label_field] for r in rows])
            for part, rows in raw.items()
        }
        converted = [part for part, scheme in schemes.items() if scheme == "IOB1"]
        for part in converted:
            for r in raw[part]:
                r[label_field] = entities.iob1_to_iob2(r[label_field])
            bad.note(converted_note(part, origin))
        return scheme_meta(bool(converted))

    def strata(self, rows: Sequence[Row], label_field: str) -> list[str]:
        return [""] * len(rows)  # a tag per word: split at random

    def clean(
        self, rows: list[Row], text_fields: list[str], label_field: str, params: CleaningParams
    ) -> tuple[list[Row], dict[str, int]] | None:
        return None  # cleaning could change the number of words; tags must stay aligned

    def labels_of(self, rows: Sequence[Row], label_field: str) -> list[str]:
        return [t for r in rows for t in r[label_field]]

    def label_names(
        self, splits: dict[str, list[Row]], label_field: str, origin: dict[str, str]
    ) -> list[str]:
        from nlpflow.data.split import label_names_from

        return label_names_from(
            self.labels_of(splits["train"], label_field),
            {s: self.labels_of(splits[s], label_field) for s in ("validation", "test")},
            origin,
            unseen_allowed=True,
        )

    def warnings(
        self, names: list[str], splits: dict[str, list[Row]], label_field: str
    ) -> list[str]:
        """Tags of validation/test never seen in train (the model cannot predict them)."""
        known = set(self.labels_of(splits["train"], label_field))
        return unseen_tag_warnings(
            known,
            {s: Counter(self.labels_of(splits[s], label_field)) for s in ("validation", "test")},
        )

    def example_group(self, row: Row, label_field: str) -> str:
        """The most frequent entity type of the sentence (``O``: none)."""
        types = Counter(t[2:] for t in row[label_field] if t != "O")
        return types.most_common(1)[0][0] if types else "O"

    def text_feature(self) -> Any:
        from datasets import Sequence as Seq
        from datasets import Value

        return Seq(Value("string"))

    def label_feature(self, label_names: list[str]) -> Any:
        from datasets import ClassLabel
        from datasets import Sequence as Seq

        return Seq(ClassLabel(names=label_names))

    def label_values(self, rows: Sequence[Row], label_field: str, label_names: list[str]) -> list:
        index = {name: i for i, name in enumerate(label_names)}
        return [[index[t] for t in r[label_field]] for r in rows]

    def tokenized_label_feature(self, processed: Any) -> Any:
        from datasets import Sequence as Seq
        from datasets import Value

        return Seq(Value("int32"))  # per sub-token, -100 where ignored

    def encode(
        self, encoder: Encoder, columns: list[list[Any]], labels: pa.Array, where: str, first: int
    ) -> tuple[Encoded, Any]:
        """Word tags to the first sub-token of each word (-100 elsewhere)."""
        enc = encoder.encode(columns, labels.to_pylist(), where=where, first_row=first)
        return enc, enc.labels
