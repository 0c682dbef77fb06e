"""Turn a data source into cleaned, leakage-checked train/validation/test splits.

What differs between tasks (``sequence``: one or two text fields and a label per example;
``token``: a list of words and a tag per word; the other families) is asked of the task's
:class:`~nlpflow.families.data.DataFamily`: built-in sources, label reading and checks,
stratification, cleaning, the processed columns' features. Class names are mapped to ids in
a stable (sorted) order that the model config's ``id2label`` keeps.

Sequence classification, multi-label, token classification, regression, text-to-text and
multiple choice (CSV/TSV files with option columns: families/choice/stream.py) stream
(:mod:`nlpflow.data.streamed`): each part of the source is read once in Arrow batches,
cleaned and hashed column by column, and kept on disk between the passes, so memory stays
flat as rows grow; the outputs are the in-memory path's. The other families
and sources (QA, multiple choice from JSONL or the built-in task, and a classification
source run as text-to-text) hold their rows in memory and go through their hooks row by row.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nlpflow.data import fastcsv
from nlpflow.data.checks import Leakage, find_leakage
from nlpflow.data.files import (
    SPLIT_NAMES,
    BadRows,
    Row,
    detect_format,
    keep_clashing_columns,
    read_conll,
    read_rows,
    split_files,
)
from nlpflow.data.split import label_names_from, stratified_split
from nlpflow.data.stream import Part, Target
from nlpflow.errors import UserError
from nlpflow.families.data import DataFamily, builtin_names, builtin_source, data_family
from nlpflow.params import SPLITS, DataParams

if TYPE_CHECKING:
    import pyarrow as pa
    from datasets import DatasetDict, Features

BUILTIN = "builtin:"
HUB = "hub:"
EXAMPLES_PER_LABEL = 3
# families with class labels that stream (nlpflow.data.streamed; token classification:
# families/token/stream.py); the others: stream_target
CLASS_STREAMS = ("sequence", "multilabel", "token")


@dataclass
class SplitRows(Sequence[Row]):
    """The rows of one streamed split: sorted row indices into a part kept on disk. As a
    sequence, a row is read from disk when asked for (a few examples, tests)."""

    part: Part
    rows: np.ndarray  # (n,) int32 (int64 from 2**31 rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        return self.part.rows([int(self.rows[i])])[0]

    def __iter__(self) -> Iterator[Row]:
        for table in self.batches():
            for row in table.to_pylist():
                yield {k: v for k, v in row.items() if k != "id" or v is not None}

    def batches(self) -> Iterator[pa.Table]:
        return self.part.batches(self.rows)


@dataclass
class SplitFigures:
    """What the data report says about one split: label counts (label names order), and
    per row the characters and words of its texts joined by `` / ``."""

    labels: dict[str, int]
    chars: np.ndarray
    words: np.ndarray
    targets: np.ndarray | None = None  # (n,) float64: a Target family's numbers


@dataclass
class PreparedData:
    """The three splits with label names as strings; everything a data report needs.

    ``splits``: per split the rows in memory (a list of dicts), or, streamed (sequence
    classification, multi-label, token classification, regression, text-to-text:
    :mod:`nlpflow.data.streamed`),
    :class:`SplitRows` on disk with their ``figures``, ``vocabulary_size`` and card
    ``examples`` (classes) computed on the way."""

    task: str  # the family's name: "sequence", "token", ... (DataMeta.task)
    splits: dict[str, Any]  # list[Row] or SplitRows
    text_fields: list[str]
    label_field: str
    label_names: list[str]
    metadata_fields: list[str]
    source: str = ""
    cleaning: dict[str, dict[str, int]] = field(default_factory=dict)
    leakage: Leakage = field(default_factory=Leakage)
    bad_rows: BadRows = field(default_factory=lambda: BadRows("fail"))
    # Problems that do not stop the stage (a class missing from a split, a tag unseen in
    # train): shown on the console and in the data card.
    warnings: list[str] = field(default_factory=list)
    # Extra meta.json fields from the family (token tasks: the tag scheme the source was
    # written in, "IOB1" files being converted to IOB2 on reading).
    meta_extra: dict[str, Any] = field(default_factory=dict)
    # streamed data only (None: computed from the rows in memory)
    figures: dict[str, SplitFigures] | None = None
    # distinct lowercased words of train (a Future: still being counted in the background)
    vocabulary: int | Future[int] | None = None
    examples: dict[str, list[Row]] | None = None  # data card rows per label, picked (seeded)
    workdir: Any = None  # removes the parts' directory (a weakref.finalize)

    @property
    def streamed(self) -> bool:
        return self.figures is not None

    @property
    def family(self) -> DataFamily:
        return data_family(self.task)

    @property
    def source_tag_scheme(self) -> str:
        return str(self.meta_extra.get("source_tag_scheme", ""))

    def meta(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "text_fields": self.text_fields,
            "label_field": self.label_field,
            "label_names": self.label_names,
            "metadata_fields": self.metadata_fields,
            **self.meta_extra,
        }

    def labels_of(self, row: Row) -> list[str]:
        """The label(s) of a row: one for sequence tasks, one per word for token tasks."""
        return self.family.labels_of([row], self.label_field)

    def text(self, row: Row) -> str:
        """The row's text fields joined by `` / `` (a list of words joined by spaces)."""
        parts = [
            " ".join(map(str, v)) if isinstance(v := row[f], list) else str(v)
            for f in self.text_fields
        ]
        return " / ".join(parts)

    def label_counts(self, split: str) -> dict[str, int]:
        """How often each label name occurs in ``split`` (every word's tag for token tasks)."""
        if self.figures is not None:
            return dict(self.figures[split].labels)
        counts = dict.fromkeys(self.label_names, 0)
        for r in self.splits[split]:
            for label in self.labels_of(r):
                counts[label] += 1
        return counts

    def text_lengths(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Per row of ``split``, the characters and words of :meth:`text`."""
        if self.figures is not None:
            return self.figures[split].chars, self.figures[split].words
        texts = [self.text(r) for r in self.splits[split]]
        chars = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        words = np.fromiter((len(t.split()) for t in texts), dtype=np.int64, count=len(texts))
        return chars, words

    def target_numbers(self, split: str) -> np.ndarray:
        """Per row of ``split`` the number the data card describes when there are no classes
        (``DataFamily.target_numbers``: a regression label, a target's words), float64."""
        if self.figures is not None and (kept := self.figures[split].targets) is not None:
            return kept
        numbers = self.family.target_numbers(self.splits[split], self.label_field)
        return np.asarray(numbers, dtype=np.float64)

    def vocabulary_size(self) -> int:
        """Distinct lowercased words of train."""
        if isinstance(self.vocabulary, Future):
            self.vocabulary = self.vocabulary.result()
        if self.vocabulary is not None:
            return self.vocabulary
        return len({w.lower() for r in self.splits["train"] for w in self.text(r).split()})

    def examples_by_label(self, seed: int) -> dict[str, list[Row]]:
        """The data card's examples: per group (the label; a token example's most frequent
        entity type), in sorted order, up to EXAMPLES_PER_LABEL train rows picked at random
        (``card-<seed>``)."""
        if self.examples is not None:
            return self.examples
        rng = random.Random(f"card-{seed}")
        by_label: dict[str, list[Row]] = {}
        for r in self.splits["train"]:
            if self.task == "multilabel":  # an example stands under each of its labels
                for group in r[self.label_field] or ["(no label)"]:
                    by_label.setdefault(group, []).append(r)
                continue
            by_label.setdefault(self.family.example_group(r, self.label_field), []).append(r)
        return {
            label: rng.sample(by_label[label], min(EXAMPLES_PER_LABEL, len(by_label[label])))
            for label in sorted(by_label)
        }


# --------------------------------------------------------------------------- reading


def _split_by_fraction(
    rows: list[Row], params: DataParams, label: str, seed: int, fam: DataFamily
) -> dict[str, list[Row]]:
    strata = fam.strata(rows, label)
    idx = stratified_split(strata, {s: params.splits[s] for s in SPLITS}, seed)
    return {split: [rows[i] for i in idx[split]] for split in SPLITS}


def _carve_validation(
    rows: list[Row], params: DataParams, label: str, seed: int, fam: DataFamily
) -> tuple[list[Row], list[Row]]:
    """Validation taken from train, in the proportion the splits params give them."""
    share = params.splits["validation"] / (params.splits["train"] + params.splits["validation"])
    strata = fam.strata(rows, label)
    idx = stratified_split(strata, {"train": 1 - share, "validation": share}, seed)
    return [rows[i] for i in idx["train"]], [rows[i] for i in idx["validation"]]


@dataclass
class FastFile:
    """A CSV/TSV file to stream (:mod:`nlpflow.data.fastcsv`), read by the Python reader
    instead when it needs it (or when the task is not sequence classification)."""

    path: Path


@dataclass
class ConllFile:
    """A CoNLL file token classification reads a chunk of sentences at a time
    (:func:`nlpflow.data.files.conll_streams`), read whole by :func:`read_conll` where the
    task does not stream."""

    path: Path


@dataclass
class RowFile:
    """A JSON Lines or Parquet file sequence classification reads a chunk of rows at a time
    (:func:`nlpflow.data.files.checked_row_chunks`) while its rows are good, else whole
    (:func:`~nlpflow.data.files.read_rows`, which names the problems)."""

    path: Path


Raw = list[Row] | FastFile | ConllFile | RowFile


def stream_target(task: str, params: DataParams) -> Target | None:
    """How the family ``task`` streams when its label is a target, not a class
    (:class:`~nlpflow.data.stream.Target`, kept in the family's ``stream.py``, which only
    preprocess imports), or None: its rows stay in memory. A classification source run as
    text-to-text (``data.text2text.label_task``) stays in memory."""
    if task == "regression":
        from nlpflow.families.regression.stream import NumberTarget

        return NumberTarget()
    if task == "text2text" and not params.text2text.label_task:
        from nlpflow.families.text2text.stream import TextTarget

        return TextTarget(params)
    return None


def _streams(params: DataParams) -> bool:
    """Whether ``data.task``'s family streams (one of :data:`CLASS_STREAMS`, or a family with
    a :class:`~nlpflow.data.stream.Target`), so that its CSV/TSV files may be read in
    batches."""
    if params.task == "auto" or params.task in CLASS_STREAMS:
        return True
    if params.task == "choice":  # option columns: families/choice/stream.py
        return len(params.choice.options) > 1
    return stream_target(params.task, params) is not None


def _read_file(path: Path, params: DataParams, bad: BadRows) -> Raw:
    from nlpflow.data.files import conll_streams, rows_stream

    if _streams(params) and fastcsv.eligible(path, params):
        return FastFile(path)
    if rows_stream(path, params):
        return RowFile(path)
    if (
        "token" in CLASS_STREAMS
        and params.task in ("auto", "token")
        and conll_streams(path, params)
    ):
        return ConllFile(path)
    return _python_rows(path, params, bad)


def _python_rows(path: Path, params: DataParams, bad: BadRows) -> list[Row]:
    """Rows of a file held in memory: the family's own reader, else the shared one."""
    if params.task != "auto":  # a family with its own file format (QA: SQuAD JSON)
        rows = data_family(params.task).read_file(path, params, bad)
        if rows is not None:
            return rows
    if detect_format(path, params.format) == "conll":
        return read_conll(path, params, bad)
    return read_rows(path, params, bad)


def _rows(raw: Raw, params: DataParams, bad: BadRows) -> list[Row]:
    if isinstance(raw, FastFile | ConllFile | RowFile):
        return _python_rows(raw.path, params, bad)
    return raw


def _from_datasets(obj: Any, params: DataParams, where: str, bad: BadRows) -> dict[str, Raw]:
    """Rows from a ``datasets`` Dataset or DatasetDict (save_to_disk directory or hub)."""
    from datasets import ClassLabel, Dataset, Sequence

    def rows_of(ds: Dataset) -> list[Row]:
        feature = ds.features.get(params.label_field)
        missing = [c for c in [*params.text_fields, params.label_field] if c not in ds.column_names]
        if missing:
            raise UserError(
                f"{where}: column(s) {missing} not found; the data set has {ds.column_names}; "
                "set data.text_fields and data.label_field"
            )
        rows = [
            keep_clashing_columns(r, {params.label_field, *params.text_fields}, where, bad)
            for r in ds.to_list()
        ]
        # Class ids become their names so that every source maps labels the same way.
        if isinstance(feature, ClassLabel):
            for r in rows:
                r[params.label_field] = feature.int2str(r[params.label_field])
        elif isinstance(feature, Sequence) and isinstance(feature.feature, ClassLabel):
            for r in rows:
                r[params.label_field] = [feature.feature.int2str(t) for t in r[params.label_field]]
        elif isinstance(feature, list) and feature and isinstance(feature[0], ClassLabel):
            for r in rows:
                r[params.label_field] = [feature[0].int2str(t) for t in r[params.label_field]]
        for i, r in enumerate(rows, start=1):
            r["_line"] = i
            if not isinstance(r[params.label_field], list | dict):  # dict: QA answers
                r[params.label_field] = str(r[params.label_field])
        return rows

    if isinstance(obj, Dataset):
        return {"all": rows_of(obj)}
    out: dict[str, Raw] = {}
    for split in SPLITS:
        # the split names a directory of files may use (val, dev, ...), unless hub_splits says
        for candidate in (params.hub_splits.get(split), *SPLIT_NAMES[split]):
            if candidate and candidate in obj:
                out[split] = rows_of(obj[candidate])
                break
    if "train" not in out:
        raise UserError(f"{where}: no train split; it has {list(obj)}; set data.hub_splits")
    return out


def _read_source(
    params: DataParams, seed: int, bad: BadRows, found: dict[str, Path]
) -> tuple[dict[str, Raw], str]:
    """Raw rows per split (or under "all" when the source is one unsplit collection);
    ``found`` gets the files of a directory source (listed once)."""
    if params.files:
        return {s: _read_file(Path(p), params, bad) for s, p in params.files.items()}, "files"
    return _read_one_source(params, seed, bad, found), params.source


def _split_origin(params: DataParams, found: dict[str, Path]) -> dict[str, str]:
    """What an error about a split names: its file, or the one source all splits come from."""
    if params.files:
        train = params.files["train"]
        return {s: params.files.get(s, train) for s in SPLITS}
    if found:
        return {s: str(found.get(s, found["train"])) for s in SPLITS}
    return dict.fromkeys(SPLITS, params.source)


def _read_one_source(
    params: DataParams, seed: int, bad: BadRows, found: dict[str, Path]
) -> dict[str, Raw]:
    source = params.source
    if source.startswith(BUILTIN):
        builtin = builtin_source(source)
        if builtin is None:
            raise UserError(
                f"params.yaml: data.source '{source}' is unknown; use "
                f"{' or '.join(builtin_names())}"
            )
        return {"all": builtin[1].generate(params, seed)}
    if source.startswith(HUB):
        from datasets import load_dataset

        name = source[len(HUB) :]
        try:
            obj = load_dataset(name, params.hub_config or None)
        except Exception as err:  # the hub raises many types; all mean "could not get it"
            raise UserError(
                f"cannot load hub data set '{name}' ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:120]}); without network access, save it elsewhere "
                "with save_to_disk and point data.source at that directory"
            ) from None
        return _from_datasets(obj, params, source, bad)
    path = Path(source)
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            from datasets import load_from_disk

            return _from_datasets(load_from_disk(str(path)), params, source, bad)
        found.update(split_files(path))
        return {s: _read_file(p, params, bad) for s, p in found.items()}
    if path.exists():
        return {"all": _read_file(path, params, bad)}
    raise UserError(
        f"params.yaml: data.source '{source}' does not exist; give a file, a directory, "
        f"{', '.join(builtin_names())} or hub:<name>"
    )


def _fields(params: DataParams, raw: Raw) -> tuple[str, list[str], str]:
    """The task (a family's name) and the text and label fields of the rows read.

    A built-in source fixes all three; otherwise ``data.task`` names the family, or with
    ``auto`` the rows decide: a list label (or CoNLL columns) is a token task, else sequence.
    """
    found = None if params.files else builtin_source(params.source)
    if found is not None:
        fam, builtin = found
        text_fields, label_field = list(builtin.text_fields), builtin.label_field
        if params.text_fields != text_fields or params.label_field != label_field:
            raise UserError(
                f"params.yaml: {params.source} has text_fields {text_fields} and label_field "
                f"'{label_field}'; set data.text_fields and data.label_field to those"
            )
        if params.task not in ("auto", fam.name):
            raise UserError(
                f"params.yaml: {params.source} is a {fam.name} task; set data.task to auto "
                f"or {fam.name}, not {params.task}"
            )
        return fam.name, *fam.fields(params)
    first = raw[0] if isinstance(raw, list) and raw else {}
    conll_rows = set(first) == {"tokens", "tags", "_line"} and isinstance(first["tags"], list)
    if isinstance(raw, ConllFile) or conll_rows:
        # CoNLL: the columns have no names
        return "token", ["tokens"], "tags"
    if params.task != "auto":
        return params.task, *data_family(params.task).fields(params)
    task = "token" if isinstance(first.get(params.label_field), list) else "sequence"
    return task, params.text_fields, params.label_field


def _same_kind_of_rows(
    raw_parts: dict[str, Raw], task: str, label_field: str, origin: dict[str, str]
) -> None:
    """Raises UserError when a split's file holds token rows (tags in lists) and another's
    one label a row, with ``data.task: auto`` (each file was read as its rows looked)."""

    def is_token(raw: Raw) -> bool | None:
        if isinstance(raw, ConllFile):
            return True
        if isinstance(raw, FastFile | RowFile):
            return False
        return isinstance(raw[0].get(label_field), list) if raw else None

    def kind(token: bool) -> str:
        return "a token task's (tags in lists)" if token else "one label a row"

    if task not in ("sequence", "token"):
        return
    first = origin.get(next(iter(raw_parts)), "the first file")
    for part, raw in raw_parts.items():
        token = is_token(raw)
        if token is not None and token != (task == "token"):
            raise UserError(
                f"{origin.get(part, part)}: its rows are {kind(token)}, but those of {first} "
                f"are {kind(task == 'token')}; give every split's file the same kind of rows"
            )


def _as_label_task(
    raw_parts: dict[str, Raw],
    task: str,
    text_fields: list[str],
    label_field: str,
    params: DataParams,
    bad: BadRows,
    source: str,
) -> tuple[dict[str, Raw], str, list[str], str]:
    """``data.text2text.label_task``: the rows of a classification source (read as the
    sequence task reads them) as text-to-text rows (``input``, ``target``)."""
    from nlpflow.families.text2text import INPUT_FIELD, TARGET_FIELD
    from nlpflow.families.text2text.data import label_task_rows

    if task != "sequence":
        raise UserError(
            f"params.yaml: data.text2text.label_task needs a classification source (text "
            f"fields and one label per row); {source} is a {task} task"
        )
    converted: dict[str, Raw] = {
        part: label_task_rows(_rows(raw, params, bad), text_fields, label_field)
        for part, raw in raw_parts.items()
    }
    return converted, "text2text", [INPUT_FIELD], TARGET_FIELD


def load_splits(params: DataParams, seed: int) -> PreparedData:
    """Read, split, clean and check ``params.source``; return the three splits.

    Raises UserError (naming the file or source) when the data cannot be used.
    """
    bad = BadRows(params.on_bad_rows)
    found: dict[str, Path] = {}
    label_task = params.task == "text2text" and params.text2text.label_task
    read_as = replace(params, task="auto") if label_task else params
    raw_parts, source = _read_source(read_as, seed, bad, found)
    origin = _split_origin(params, found)
    task, text_fields, label_field = _fields(read_as, next(iter(raw_parts.values())))
    if read_as.task == "auto":  # each file's reader took the task from its own first row
        _same_kind_of_rows(raw_parts, task, label_field, origin)
    source_fields = list(text_fields)  # the label task joins these into its input
    if label_task:  # a classification source, its label written out as the target
        raw_parts, task, text_fields, label_field = _as_label_task(
            raw_parts, task, text_fields, label_field, read_as, bad, source
        )
    clash = [f for f in text_fields if f in ("id", "label")]
    if clash:
        raise UserError(
            f"{origin['train']}: text field '{clash[0]}' has a name the processed data writes "
            "itself (id, label); rename that column in the file and in data.text_fields"
        )
    fam = data_family(task)
    target = stream_target(task, params)
    streams = task in CLASS_STREAMS or target is not None
    if streams and task == "token":  # a CoNLL file, or word lists held in memory
        from nlpflow.families.token.stream import streams as token_streams

        streams = token_streams(raw_parts, text_fields, label_field)
    if task == "choice" and _streams(params):  # CSV/TSV files with option columns
        from nlpflow.families.choice.stream import streams as choice_streams

        streams = choice_streams(raw_parts, params)
    if streams:  # the family's hooks column by column, streamed
        from nlpflow.data import streamed

        build: Callable[[streamed.StreamInputs], PreparedData]
        if task == "choice":
            from nlpflow.families.choice.stream import streamed_choice

            build = streamed_choice
        elif task == "token":
            from nlpflow.families.token.stream import streamed_tokens

            build = streamed_tokens
        elif task == "multilabel":
            build = streamed.streamed_multilabel
        elif target is None:
            build = streamed.streamed_classes
        else:
            build = partial(streamed.streamed_target, target=target)
        workdir = Path(tempfile.mkdtemp(prefix="nlpflow-preprocess-"))
        fields = (task, text_fields, label_field)
        inputs = streamed.StreamInputs(
            params, seed, raw_parts, source, origin, fields, bad, workdir
        )
        del raw_parts  # handed over: each part's rows are freed once read
        try:
            data = build(inputs)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        data.workdir = weakref.finalize(data, shutil.rmtree, workdir, True)
        return data
    raw = {part: _rows(r, params, bad) for part, r in raw_parts.items()}
    parts = {part: source if part == "all" else origin[part] for part in raw}
    meta_extra = fam.normalise(raw, label_field, parts, bad)
    if "all" in raw:
        splits = _split_by_fraction(raw["all"], params, label_field, seed, fam)
    else:
        splits = dict(raw)
        if "test" not in splits:
            raise UserError(
                f"{source}: no test split found; add a test file or set data.files.test"
            )
        if "validation" not in splits:
            splits["train"], splits["validation"] = _carve_validation(
                splits["train"], params, label_field, seed, fam
            )
    cleaning: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        cleaned = fam.clean(splits[split], text_fields, label_field, params.cleaning)
        if cleaned is not None:
            splits[split], cleaning[split] = cleaned
    splits, leakage = find_leakage(splits, text_fields, params.leakage)
    for split, rows in splits.items():
        if not rows:
            raise UserError(
                f"{origin[split]}: the {split} split is empty; add data or change data.splits"
            )
    names = fam.label_names(splits, label_field, origin)
    if label_task:  # the classes the outputs are parsed back to; none unseen in train
        meta_extra["target_labels"] = label_names_from(
            [r[label_field] for r in splits["train"]],
            {s: [r[label_field] for r in splits[s]] for s in ("validation", "test")},
            origin,
            unseen_allowed=False,
        )
        meta_extra["label_task_fields"] = source_fields
    warnings = fam.warnings(names, splits, label_field)
    reserved = {"id", "_line", label_field, *text_fields}
    metadata = sorted({k for r in splits["train"] for k in r} - reserved)
    return PreparedData(
        task,
        splits,
        text_fields,
        label_field,
        names,
        metadata,
        source,
        cleaning,
        leakage,
        bad,
        warnings,
        meta_extra,
    )


def _features(data: PreparedData) -> Features:
    """The processed splits' features: ``id``, the text field(s), ``label`` (the family's
    feature) and metadata columns (strings)."""
    from datasets import Features, Value

    fam = data.family
    return Features(
        {
            "id": Value("string"),
            **fam.text_features(data.text_fields),
            "label": fam.label_feature(data.label_names),
            **{m: Value("string") for m in data.metadata_fields},
        }
    )


def processed_tables(data: PreparedData, split: str) -> Iterator[pa.Table]:
    """The processed rows of a streamed ``split`` in Arrow batches: ``id`` (the source's,
    else ``<split>-<line>``), the text field(s), ``label`` as ids, metadata as strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = pa.array(data.label_names, pa.string())
    done = 0
    for table in data.splits[split].batches():
        n = table.num_rows
        line = table.column("_line").combine_chunks()
        place = pa.array(np.arange(done, done + n, dtype=np.int64))
        generated = pc.binary_join_element_wise(
            pa.scalar(f"{split}-"), pc.cast(pc.coalesce(line, place), pa.string()), ""
        )
        ids = (
            pc.coalesce(table.column("id"), generated) if "id" in table.column_names else generated
        )
        label = table.column(data.label_field).combine_chunks()
        cols: dict[str, Any] = {"id": ids}
        for f in data.text_fields:
            cols[f] = table.column(f)
        if data.task == "multilabel":
            from nlpflow.families.multilabel.stream import label_ids

            cols["label"] = label_ids(label, data.label_names)
        elif data.task == "token":
            from nlpflow.families.token.stream import tag_ids

            cols["label"] = tag_ids(label, names)
        elif data.family.has_classes:
            cols["label"] = pc.cast(pc.index_in(label, value_set=names), pa.int64())
        else:  # a target (a number, a text), written as kept
            cols["label"] = label
        for m in data.metadata_fields:
            cols[m] = (
                pc.cast(table.column(m), pa.string())
                if m in table.column_names
                else pa.nulls(n, pa.string())
            )
        done += n
        yield pa.table(cols)


def write_processed(
    out: str | Path, data: PreparedData, cleaning: dict[str, Any] | None = None
) -> None:
    """``data/processed``: streamed data written split by split from the rows on disk (memory
    stays flat); rows in memory through :func:`to_dataset_dict`. ``cleaning``: the
    ``data.cleaning`` params the texts were cleaned with (meta.json keeps them for predict)."""
    from nlpflow.data.saved import DataMeta, write_saved, write_saved_tables

    meta = DataMeta(**data.meta(), cleaning=cleaning)
    if not data.streamed:
        write_saved(out, to_dataset_dict(data), meta)
        return
    features = _features(data)
    write_saved_tables(out, {s: (features, processed_tables(data, s)) for s in SPLITS}, meta)


def to_dataset_dict(data: PreparedData) -> DatasetDict:
    """Arrow datasets: ``id``, the text field(s), ``label`` (ClassLabel) and metadata columns."""
    if data.streamed:
        return _streamed_dataset_dict(data)
    import pyarrow as pa
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    fam = data.family
    text_features = fam.text_features(data.text_fields)
    label_type = fam.label_feature(data.label_names)
    features = Features(
        {
            "id": Value("string"),
            **text_features,
            "label": label_type,
            **{m: Value("string") for m in data.metadata_fields},
        }
    )
    out = {}
    for split in SPLITS:
        rows = data.splits[split]
        label_values = fam.label_values(rows, data.label_field, data.label_names)
        columns: dict[str, list[Any]] = {
            "id": [str(r.get("id", f"{split}-{r.get('_line', i)}")) for i, r in enumerate(rows)],
            **{f: [r[f] for r in rows] for f in data.text_fields},
            "label": label_values,
            **{
                m: [None if r.get(m) is None else str(r[m]) for r in rows]
                for m in data.metadata_fields
            },
        }
        # Flat columns as Arrow arrays of the feature's type: datasets then casts them whole
        # instead of encoding value by value (a tenth of the stage's time at 100,000 rows).
        arrays = {
            c: pa.array(v, type=features[c].pa_type)
            if isinstance(features[c], Value | ClassLabel)
            else v
            for c, v in columns.items()
        }
        out[split] = Dataset.from_dict(arrays, features=features)
    return DatasetDict(out)


def _streamed_dataset_dict(data: PreparedData) -> DatasetDict:
    """Streamed processed splits in memory (tests, small data)."""
    import pyarrow as pa
    from datasets import Dataset, DatasetDict, DatasetInfo
    from datasets.table import InMemoryTable

    features = _features(data)
    out = {}
    for split in SPLITS:
        tables = list(processed_tables(data, split))
        table = pa.concat_tables(tables) if tables else features.arrow_schema.empty_table()
        table = InMemoryTable(table.cast(features.arrow_schema))
        out[split] = Dataset(table, info=DatasetInfo(features=features))
    return DatasetDict(out)
