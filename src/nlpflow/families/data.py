"""The data side of a task family: preprocess (reading, labels, built-in data) and tokenize
(the per-batch encode). See :mod:`nlpflow.families` for the whole interface.

Only the preprocess and tokenize stages import this module (and, through :func:`data_family`,
every family's ``data.py``); a family's ``data.py`` must not import training or evaluation
code, or editing that code would rerun preprocess (dvc.yaml's deps are the imports).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.errors import UserError

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa

    from nlpflow.contracts import TokenizeInputs
    from nlpflow.data.files import BadRows
    from nlpflow.data.saved import DataMeta
    from nlpflow.modeling.encoder import Encoded, Encoder
    from nlpflow.params import CleaningParams, DataParams

Row = dict[str, Any]


@dataclass(frozen=True)
class Builtin:
    """A generated data set, ``data.source: builtin:<name>``: seeded, no download.

    ``generate(params, seed)`` returns every row (the stage splits them by
    ``data.splits``), each a dict with the text field(s), the label field and any metadata
    columns (strings), e.g. the anagram task's ``kind``. ``text_fields``/``label_field``: the
    names ``data.text_fields``/``data.label_field`` must hold for this source.
    """

    generate: Callable[[DataParams, int], list[Row]]
    text_fields: tuple[str, ...]
    label_field: str


@dataclass
class TokenizedData:
    """The tokenize stage's outputs when a family tokenizes on its own
    (:meth:`DataFamily.tokenize`): the tokenizer to save, the tokenized splits and their
    meta, ``metrics/tokenize.json`` (with ``warnings``), the readable sample, console notes
    and the one-line summary."""

    tokenizer: Any
    data: Any
    meta: DataMeta
    report: dict[str, Any]
    sample: str
    notes: list[str]
    summary: str


class DataFamily:
    """Preprocess and tokenize hooks. The defaults are sequence classification's (one label
    string per row); a family overrides what differs. ``name`` is ``DataMeta.task``."""

    name: ClassVar[str] = ""
    # How the Encoder reads a row (nlpflow.modeling.encoder.Encoder's ``task``): "sequence"
    # (one or two text fields, each a string) or "token" (one field, a list of words).
    encoder_mode: ClassVar[str] = "sequence"
    # Whether the data card's label distribution, imbalance ratio and per-class examples
    # apply (classes); a regression target has none of them.
    has_classes: ClassVar[bool] = True
    # Without classes, how the data card describes the target: its numbers are
    # target_numbers() (the value itself for a numeric target).
    target_description: ClassVar[str] = "a numeric target"

    # ------------------------------------------------------------------ preprocess

    def fields(self, params: DataParams) -> tuple[list[str], str]:
        """The processed rows' text fields and label field (default: ``data.text_fields``
        and ``data.label_field``; a family whose reader writes its own columns names them)."""
        return list(params.text_fields), params.label_field

    def builtins(self) -> dict[str, Builtin]:
        """``{"builtin:<name>": Builtin}``: this family's generated data sets."""
        return {}

    def read_file(self, path: Path, params: DataParams, bad: BadRows) -> list[Row] | None:
        """Rows of one data file read by this family's own rules, or None for the shared
        reader (CSV/TSV/JSONL/Parquet rows with a label string, CoNLL). Asked only when
        ``data.task`` names the family."""
        return None

    def normalise(
        self,
        raw: dict[str, list[Row]],
        label_field: str,
        origin: dict[str, str],
        bad: BadRows,
    ) -> dict[str, Any]:
        """Check and fix up raw rows in place before splitting (token: IOB1 tags become
        IOB2; regression: labels parsed as numbers). ``raw``: rows per part (``"all"`` or a
        split name), a file row with its line in ``row["_line"]``; ``origin[part]``: the file
        or source of a part; ``bad``: ``bad.note(line)`` adds a line to the data report,
        ``bad.report(...)`` a bad row (skipped or fatal, as ``data.on_bad_rows`` says).
        Returns extra ``meta.json`` fields (e.g. tag schemes)."""
        return {}

    def strata(self, rows: Sequence[Row], label_field: str) -> list[str]:
        """One stratum per row for the split into train/validation/test (``""``: random)."""
        return [r[label_field] if isinstance(r[label_field], str) else "" for r in rows]

    def clean(
        self, rows: list[Row], text_fields: list[str], label_field: str, params: CleaningParams
    ) -> tuple[list[Row], dict[str, int]] | None:
        """Text cleaning (``data.cleaning``) of one split: rows and counts, or None when the
        family's texts are not cleaned (token tasks: a word list must keep its length)."""
        from nlpflow.data.clean import clean_rows

        return clean_rows(rows, text_fields, label_field, params)

    def target_numbers(self, rows: Sequence[Row], label_field: str) -> list[float]:
        """The number the data card describes per row when there are no classes: the label
        as a number (regression); a family with text targets gives e.g. their length."""
        return [float(r[label_field]) for r in rows]

    def example_line(self, row: Row, text: str, label_field: str) -> str:
        """One example of the data card when there are no classes (``text``: its input)."""
        return f"{float(row[label_field]):.4g}: {text[:200]}"

    def labels_of(self, rows: Sequence[Row], label_field: str) -> list[str]:
        """Every label string of ``rows`` (a label per row; a tag per word in token tasks):
        what the label names, counts and the data card are made of."""
        return [r[label_field] for r in rows]

    def label_names(
        self, splits: dict[str, list[Row]], label_field: str, origin: dict[str, str]
    ) -> list[str]:
        """``meta.json``'s ``label_names`` (id i is ``label_names[i]``), checked against the
        splits; a UserError naming ``origin[split]`` (its file) for labels it cannot use."""
        from nlpflow.data.split import label_names_from

        return label_names_from(
            self.labels_of(splits["train"], label_field),
            {s: self.labels_of(splits[s], label_field) for s in ("validation", "test")},
            origin,
            unseen_allowed=False,
        )

    def warnings(
        self, names: list[str], splits: dict[str, list[Row]], label_field: str
    ) -> list[str]:
        """Problems that do not stop the stage, one sentence each (console and data card)."""
        return []

    def split_figures(self, rows: Sequence[Row], label_field: str) -> dict[str, Any] | None:
        """The family's own figures of one split for ``metrics/preprocess.json`` in place of
        label counts or a target's distribution (None: those apply)."""
        return None

    def card_lines(self, report: dict[str, Any]) -> list[str]:
        """Markdown of the data card from :meth:`split_figures` (``report["splits"]``)."""
        return []

    def encode_splits(
        self,
        dataset: Any,
        tokenizer: Any,
        max_length: int,
        params: Any,
        where: str,
        segments: bool,
    ) -> tuple[Any, dict[str, Any], str] | None:
        """The tokenize stage's encoding, after the shared tokenizer and max_length, for a family whose tokenized rows are not
        one per processed row (QA: several windows per question): ``(DatasetDict,
        {"splits": figures per split, "warnings": [...]} for metrics/tokenize.json,
        markdown sample)``; None: the per-row encoder applies. ``params``: the tokenizer
        params; ``where``: the processed data's path; ``segments``: whether the model takes
        ``token_type_ids``."""
        return None

    def example_group(self, row: Row, label_field: str) -> str:
        """The heading a train example is shown under in the data card (its label)."""
        return str(row[label_field])

    def text_features(self, text_fields: Sequence[str]) -> dict[str, Any]:
        """The ``datasets`` feature of each processed text field (default: every one
        :meth:`text_feature`)."""
        return {f: self.text_feature() for f in text_fields}

    def text_feature(self) -> Any:
        """The ``datasets`` feature of a processed text field."""
        from datasets import Value

        return Value("string")

    def label_feature(self, label_names: list[str]) -> Any:
        """The ``datasets`` feature of the processed ``label`` column."""
        from datasets import ClassLabel

        return ClassLabel(names=label_names)

    def label_values(self, rows: Sequence[Row], label_field: str, label_names: list[str]) -> list:
        """The processed ``label`` column of ``rows`` (of :meth:`label_feature`'s type)."""
        index = {name: i for i, name in enumerate(label_names)}
        return [index[r[label_field]] for r in rows]

    # ------------------------------------------------------------------ tokenize

    def tokenize(
        self, dataset: Any, meta: DataMeta, params: TokenizeInputs
    ) -> TokenizedData | None:
        """The whole tokenize stage for a family whose examples the shared
        :class:`~nlpflow.modeling.encoder.Encoder` does not encode (text-to-text: a prompt
        and a target), or None for the shared path. ``dataset``: the processed splits."""
        return None

    def tokenized_label_feature(self, processed: Any) -> Any:
        """The ``datasets`` feature of the tokenized ``labels`` column, from the processed
        ``label`` feature. A UserError when the processed column is not what this family
        writes (data/processed from another version: rerun preprocess)."""
        from datasets import ClassLabel

        if not isinstance(processed, ClassLabel):
            raise UserError(
                f"the processed 'label' column of a {self.name} task must be a ClassLabel; "
                "rerun the preprocess stage"
            )
        return processed

    def input_features(self, segments: bool) -> dict[str, Any] | None:
        """The tokenized input columns' features when they are not one id list per row
        (multiple choice: N lists per row), else None; see :meth:`input_columns`."""
        return None

    def input_columns(self, enc: Any, specials: Any, unk_id: int | None) -> dict[str, Any] | None:
        """For a family with :meth:`input_features`: the Arrow columns of one encoded batch
        (``enc`` from :meth:`encode`): ``input_ids`` (and ``token_type_ids``) and the
        per-row figures of ``nlpflow.data.tokenize.STAT_COLUMNS``; None for the default."""
        return None

    def lengths(self, encoder: Encoder, columns: list[list[Any]], where: str) -> Any:
        """Untruncated token lengths of a batch of rows (``tokenizer.max_length: auto`` takes
        a percentile of them): ``(n,)``, or one per encoded sequence."""
        return encoder.lengths(columns, where)

    def encode(
        self, encoder: Encoder, columns: list[list[Any]], labels: pa.Array, where: str, first: int
    ) -> tuple[Encoded, Any]:
        """Encode one Arrow batch: ``columns`` (one Python list per text field), ``labels``
        (the processed ``label`` column of the batch). Returns the :class:`Encoded` inputs
        and the tokenized ``labels`` column (an Arrow array, or a list of per-token label
        lists). ``where``/``first``: the split and first row number, for error messages.

        Today tokenize's per-row figures (untruncated length, unknown tokens) assume one
        encoded row per input row; a family that encodes an example as several rows (QA
        windows) must extend them (``data/tokenize.py::_arrow_encoder``)."""
        return encoder.encode(columns, where=where, first_row=first), labels


def data_family(task: str) -> DataFamily:
    """The data side of the family ``task`` (``DataMeta.task`` or ``data.task``)."""
    from nlpflow.families.choice.data import ChoiceData
    from nlpflow.families.multilabel.data import MultilabelData
    from nlpflow.families.qa.data import QaData
    from nlpflow.families.regression.data import RegressionData
    from nlpflow.families.sequence.data import SequenceData
    from nlpflow.families.text2text.data import Text2TextData
    from nlpflow.families.token.data import TokenData

    known: list[type[DataFamily]] = [
        SequenceData,
        TokenData,
        RegressionData,
        QaData,
        Text2TextData,
        MultilabelData,
        ChoiceData,
    ]
    return _pick(task, known)()


def builtin_source(source: str) -> tuple[DataFamily, Builtin] | None:
    """The family and generator of ``builtin:<name>``, or None when no family has it."""
    from nlpflow.families.names import TASKS

    for task in TASKS:
        fam = data_family(task)
        found = fam.builtins().get(source)
        if found is not None:
            return fam, found
    return None


def builtin_names() -> list[str]:
    """Every ``builtin:<name>`` source, sorted (for messages)."""
    from nlpflow.families.names import TASKS

    return sorted(name for task in TASKS for name in data_family(task).builtins())


def _pick(task: str, known: Sequence[type[DataFamily]]) -> type[DataFamily]:
    for cls in known:
        if cls.name == task:
            return cls
    raise UserError(
        f"unknown task '{task}' (in data.task or the data's meta.json); "
        f"known: {[c.name for c in known]}"
    )
