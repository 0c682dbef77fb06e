"""Turn a data source into cleaned, leakage-checked train/validation/test splits.

What differs between tasks (``sequence``: one or two text fields and a label per example;
``token``: a list of words and a tag per word; the other families) is asked of the task's
:class:`~nlpflow.families.data.DataFamily`: built-in sources, label reading and checks,
stratification, cleaning, the processed columns' features. Class names are mapped to ids in
a stable (sorted) order that the model config's ``id2label`` keeps.

Sequence classification (the family whose hooks are the defaults) streams: each part of the
source is read once in Arrow batches (a CSV/TSV file through ``pyarrow.csv`` when the strict
Python reader would read it alike, :mod:`nlpflow.data.fastcsv`), cleaned and hashed column by
column (:mod:`nlpflow.data.columns`, exactly as the per-text functions), and kept on disk
between the passes (:mod:`nlpflow.data.stream`), so memory stays flat as rows grow. The other
families hold their rows in memory and go through their hooks row by row.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nlpflow.data import columns, fastcsv
from nlpflow.data.checks import Leakage, find_leakage, find_leakage_digests, key_text
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
from nlpflow.data.split import label_names_from, stratified_split, stratified_split_codes
from nlpflow.data.stream import (
    Codes,
    EmptyLabel,
    Part,
    PartBuilder,
    first_occurrences,
    gather,
    label_counts,
    rows_table,
    step_counts,
)
from nlpflow.errors import UserError
from nlpflow.families.data import DataFamily, builtin_names, builtin_source, data_family
from nlpflow.io import return_freed_memory
from nlpflow.params import SPLITS, DataParams

if TYPE_CHECKING:
    import pyarrow as pa
    from datasets import DatasetDict, Features

BUILTIN = "builtin:"
HUB = "hub:"
EXAMPLES_PER_LABEL = 3


@dataclass
class SplitRows:
    """The rows of one streamed split: sorted row indices into a part kept on disk."""

    part: Part
    rows: np.ndarray  # (n,) int32 (int64 from 2**31 rows)

    def __len__(self) -> int:
        return len(self.rows)

    def batches(self) -> Iterator[pa.Table]:
        return self.part.batches(self.rows)


@dataclass
class SplitFigures:
    """What the data report says about one split: label counts (label names order), and
    per row the characters and words of its texts joined by `` / ``."""

    labels: dict[str, int]
    chars: np.ndarray
    words: np.ndarray


@dataclass
class PreparedData:
    """The three splits with label names as strings; everything a data report needs.

    ``splits``: per split the rows in memory (a list of dicts), or, streamed (sequence
    classification), :class:`SplitRows` on disk with their ``figures``, ``vocabulary_size``
    and card ``examples`` computed on the way."""

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
    vocabulary: int | None = None  # distinct lowercased words of train
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

    def vocabulary_size(self) -> int:
        """Distinct lowercased words of train."""
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


Raw = list[Row] | FastFile


def _read_file(path: Path, params: DataParams, bad: BadRows) -> Raw:
    if params.task != "auto":  # a family with its own file format (QA: SQuAD JSON)
        rows = data_family(params.task).read_file(path, params, bad)
        if rows is not None:
            return rows
    if detect_format(path, params.format) == "conll":
        return read_conll(path, params, bad)
    if params.task in ("auto", "sequence") and fastcsv.eligible(path, params):
        return FastFile(path)
    return read_rows(path, params, bad)


def _rows(raw: Raw, params: DataParams, bad: BadRows) -> list[Row]:
    return read_rows(raw.path, params, bad) if isinstance(raw, FastFile) else raw


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
    if set(first) == {"tokens", "tags", "_line"}:  # CoNLL: the columns have no names
        return "token", ["tokens"], "tags"
    if params.task != "auto":
        return params.task, *data_family(params.task).fields(params)
    task = "token" if isinstance(first.get(params.label_field), list) else "sequence"
    return task, params.text_fields, params.label_field


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
    from nlpflow.families.sequence.data import SequenceData

    bad = BadRows(params.on_bad_rows)
    found: dict[str, Path] = {}
    label_task = params.task == "text2text" and params.text2text.label_task
    read_as = replace(params, task="auto") if label_task else params
    raw_parts, source = _read_source(read_as, seed, bad, found)
    origin = _split_origin(params, found)
    task, text_fields, label_field = _fields(read_as, next(iter(raw_parts.values())))
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
    if type(fam) is SequenceData:  # the column-wise equivalents of its hooks, streamed
        workdir = Path(tempfile.mkdtemp(prefix="nlpflow-preprocess-"))
        try:
            data = _streamed(params, seed, raw_parts, source, origin, task, bad, workdir)
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


# --------------------------------------------------------------------------- streamed


def _class_warnings(
    names: list[str], rows: dict[str, int], counts: dict[str, dict[str, int]]
) -> list[str]:
    """SequenceData.warnings from label counts: classes validation or test lack."""
    out = []
    for split in ("validation", "test"):
        present = {n for n, c in counts[split].items() if c}
        absent = [n for n in names if n not in present]
        if len(present) == 1:
            out.append(
                f"the {split} split has only one class ({sorted(present)[0]!r}, "
                f"{rows[split]} rows): ROC-AUC, PR-AUC and MCC are undefined and "
                "accuracy says nothing there; add data or change data.splits"
            )
        elif absent:
            out.append(
                f"the {split} split has no example of {absent}: their recall and F1 are "
                "undefined there; add data or change data.splits"
            )
    return out


def _first_pass(raw: Raw, builder: PartBuilder, params: DataParams, bad: BadRows) -> Part:
    """Read one part into ``builder``: a streamed file, or Python rows as one table. A file
    the stream cannot take is read again by the Python reader (which names its problems)."""
    if isinstance(raw, FastFile):
        try:
            for table in fastcsv.read_batches(raw.path, params):
                builder.add(table)
            return builder.finish()
        except (fastcsv.NotFast, EmptyLabel):
            builder.reset()
            raw = read_rows(raw.path, params, bad)
    table, present = rows_table(raw, builder.task, builder.text_fields, builder.label_field)
    builder.add(table, present)
    return builder.finish()


def _assign_splits(
    parts: dict[str, Part], labels: Codes, params: DataParams, seed: int, source: str
) -> dict[str, SplitRows]:
    """Rows per split: stratified by label from one collection, or as the files give them
    (validation carved from train when there is no validation file)."""
    if "all" in parts:
        part = parts["all"]
        fractions = {s: params.splits[s] for s in SPLITS}
        idx = stratified_split_codes(part.label_codes, labels.names, fractions, seed)
        return {s: SplitRows(part, idx[s]) for s in SPLITS}
    if "test" not in parts:
        raise UserError(f"{source}: no test split found; add a test file or set data.files.test")
    out = {s: SplitRows(p, np.arange(p.n, dtype=np.int64)) for s, p in parts.items()}
    if "validation" not in parts:
        part = parts["train"]
        share = params.splits["validation"] / (params.splits["train"] + params.splits["validation"])
        fractions = {"train": 1 - share, "validation": share}
        idx = stratified_split_codes(part.label_codes, labels.names, fractions, seed)
        out["train"] = SplitRows(part, idx["train"])
        out["validation"] = SplitRows(part, idx["validation"])
    return out


def _clean_splits(splits: dict[str, SplitRows], params: DataParams) -> dict[str, dict[str, int]]:
    """Drop empty texts and duplicates (texts and label) within each split, as
    ``data.cleaning`` says (``clean_rows``); the counts of what each step changed or dropped."""
    cleaning: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        part, rows = splits[split].part, splits[split].rows
        counts = step_counts(part, rows)
        keep = np.ones(len(rows), dtype=bool)
        if params.cleaning.drop_empty:
            blank = gather(part.blank, rows)
            if blank.any():
                counts["empty_dropped"] = int(blank.sum())
            keep &= ~blank
        if params.cleaning.drop_duplicates:
            # boolean masks, not index arrays (8 bytes a row)
            first = first_occurrences(part, rows if keep.all() else rows[keep])
            if not first.all():
                counts["duplicates_dropped"] = int((~first).sum())
            keep[keep] = first
        splits[split] = SplitRows(part, rows[keep])
        cleaning[split] = dict(sorted(counts.items()))
    return cleaning


def _pick_examples(train: SplitRows, names: list[str], seed: int) -> dict[str, list[Row]]:
    """:meth:`PreparedData.examples_by_label` of streamed train rows (the same picks)."""
    rng = random.Random(f"card-{seed}")
    of_row = gather(train.part.label_codes, train.rows)
    out = {}
    for code in sorted(np.unique(of_row).tolist(), key=lambda c: names[c]):
        members = np.flatnonzero(of_row == code)
        picks = rng.sample(range(len(members)), min(EXAMPLES_PER_LABEL, len(members)))
        out[names[code]] = train.part.rows([int(train.rows[members[p]]) for p in picks])
    return out


def _streamed(
    params: DataParams,
    seed: int,
    raw: dict[str, Raw],
    source: str,
    origin: dict[str, str],
    task: str,
    bad: BadRows,
    workdir: Path,
) -> PreparedData:
    """:func:`load_splits` for sequence classification, streamed (see the module doc)."""
    text_fields, label_field = _fields(params, next(iter(raw.values())))[1:]
    labels = Codes()
    parts = {}
    for name, part_raw in raw.items():
        builder = PartBuilder(
            workdir, name, task, text_fields, label_field, params.cleaning, labels
        )
        parts[name] = _first_pass(part_raw, builder, params, bad)
    del raw
    # between the phases, freed arrays go back to the system, so peaks do not stack
    return_freed_memory()
    splits = _assign_splits(parts, labels, params, seed, source)
    return_freed_memory()
    cleaning = _clean_splits(splits, params)
    return_freed_memory()

    def examples(split: str, idx: list[int]) -> list[tuple[str, str]]:
        chosen = splits[split]
        rows = chosen.part.rows([int(chosen.rows[i]) for i in idx])
        return [
            (str(r.get("id", r.get("_line"))), key_text(r, text_fields).replace("\x1f", " / "))
            for r in rows
        ]

    def digests(kind: str, split: str) -> np.ndarray:
        chosen = splits[split]
        return gather(chosen.part.exact if kind == "exact" else chosen.part.loose, chosen.rows)

    sizes = {s: len(splits[s]) for s in SPLITS}
    drop, leakage = find_leakage_digests(sizes, digests, examples, params.leakage)
    for part in parts.values():  # checked: 18 bytes a row no longer needed
        part.forget("exact", "loose", "blank")
        part.bits = []
    for split in SPLITS:
        splits[split] = SplitRows(splits[split].part, splits[split].rows[~drop[split]])
        if not len(splits[split]):
            raise UserError(
                f"{origin[split]}: the {split} split is empty; add data or change data.splits"
            )
    n_codes = len(labels.names)
    counts = {
        s: dict(zip(labels.names, label_counts(sr.part, sr.rows, n_codes).tolist(), strict=True))
        for s, sr in splits.items()
    }
    present = {s: [n for n, c in counts[s].items() if c] for s in SPLITS}
    names = label_names_from(
        present["train"], {s: present[s] for s in ("validation", "test")}, origin
    )
    warnings = _class_warnings(names, {s: len(splits[s]) for s in SPLITS}, counts)
    train = splits["train"]
    reserved = {"id", "_line", label_field, *text_fields}
    keys = [
        k
        for k in train.part.columns
        if k not in reserved
        and (k not in train.part.present or train.part.present[k][train.rows].any())
    ]
    figures = {
        s: SplitFigures(
            {n: counts[s].get(n, 0) for n in names},
            gather(sr.part.chars, sr.rows),
            gather(sr.part.words, sr.rows),
        )
        for s, sr in splits.items()
    }
    for part in parts.values():  # the figures hold them per split now
        part.forget("chars", "words")
    return_freed_memory()
    import pyarrow as pa
    import pyarrow.compute as pc

    vocabulary = pa.array([], pa.string())  # distinct lowercased words, kept in Arrow
    for table in train.batches():
        texts = [table.column(f).combine_chunks() for f in text_fields]
        found = columns.lower_words(columns.joined(texts, " / "))
        vocabulary = pc.unique(pa.concat_arrays([vocabulary, found]))
    return PreparedData(
        task,
        splits,
        text_fields,
        label_field,
        names,
        sorted(keys),
        source,
        cleaning,
        leakage,
        bad,
        warnings,
        {},
        figures,
        len(vocabulary),
        _pick_examples(train, labels.names, seed),
    )


def _features(data: PreparedData) -> Features:
    """The processed splits' features: ``id``, the text field(s), ``label`` (the family's
    feature) and metadata columns (strings)."""
    from datasets import Features, Value

    fam = data.family
    return Features(
        {
            "id": Value("string"),
            **{f: fam.text_feature() for f in data.text_fields},
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
        cols["label"] = pc.cast(pc.index_in(label, value_set=names), pa.int64())
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
