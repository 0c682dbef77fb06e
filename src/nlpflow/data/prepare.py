"""Turn a data source into cleaned, leakage-checked train/validation/test splits.

Two task shapes come out: ``sequence`` (one or two text fields and a label per example) and
``token`` (a list of words and a tag per word). Either way the label names are mapped to ids
in a stable (sorted) order that the model config's ``id2label`` keeps.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.data import anagram, entities
from nlpflow.data.checks import Leakage, find_leakage
from nlpflow.data.clean import clean_rows
from nlpflow.data.entities import detect_scheme, iob1_to_iob2
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
from nlpflow.errors import UserError
from nlpflow.params import SPLITS, DataParams

if TYPE_CHECKING:
    from datasets import DatasetDict

BUILTIN = "builtin:"
HUB = "hub:"


@dataclass
class PreparedData:
    """Rows per split with label names as strings; everything a data report needs."""

    task: str  # "sequence" or "token"
    splits: dict[str, list[Row]]
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
    # Token tasks: the tag scheme the source was written in ("IOB1" files are converted to
    # IOB2 on reading; the processed tags are always IOB2).
    source_tag_scheme: str = ""

    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "task": self.task,
            "text_fields": self.text_fields,
            "label_field": self.label_field,
            "label_names": self.label_names,
            "metadata_fields": self.metadata_fields,
        }
        if self.task == "token":
            meta["tag_scheme"] = "IOB2"
            meta["source_tag_scheme"] = self.source_tag_scheme or "IOB2"
        return meta

    def labels_of(self, row: Row) -> list[str]:
        """The label(s) of a row: one for sequence tasks, one per word for token tasks."""
        value = row[self.label_field]
        return list(value) if self.task == "token" else [value]


# --------------------------------------------------------------------------- reading


def _strata(rows: list[Row], label: str) -> list[str]:
    """Stratify sequence tasks by label; token tasks (a tag per word) are split at random."""
    return [r[label] if isinstance(r[label], str) else "" for r in rows]


def _split_by_fraction(
    rows: list[Row], params: DataParams, label: str, seed: int
) -> dict[str, list[Row]]:
    idx = stratified_split(_strata(rows, label), {s: params.splits[s] for s in SPLITS}, seed)
    return {split: [rows[i] for i in idx[split]] for split in SPLITS}


def _carve_validation(
    rows: list[Row], params: DataParams, label: str, seed: int
) -> tuple[list[Row], list[Row]]:
    """Validation taken from train, in the proportion the splits params give them."""
    share = params.splits["validation"] / (params.splits["train"] + params.splits["validation"])
    idx = stratified_split(_strata(rows, label), {"train": 1 - share, "validation": share}, seed)
    return [rows[i] for i in idx["train"]], [rows[i] for i in idx["validation"]]


def _read_file(path: Path, params: DataParams, bad: BadRows) -> list[Row]:
    if detect_format(path, params.format) == "conll":
        return read_conll(path, params, bad)
    return read_rows(path, params, bad)


def _from_datasets(obj: Any, params: DataParams, where: str, bad: BadRows) -> dict[str, list[Row]]:
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
            if not isinstance(r[params.label_field], list):
                r[params.label_field] = str(r[params.label_field])
        return rows

    if isinstance(obj, Dataset):
        return {"all": rows_of(obj)}
    out: dict[str, list[Row]] = {}
    for split in SPLITS:
        # the split names a directory of files may use (val, dev, ...), unless hub_splits says
        for candidate in (params.hub_splits.get(split), *SPLIT_NAMES[split]):
            if candidate and candidate in obj:
                out[split] = rows_of(obj[candidate])
                break
    if "train" not in out:
        raise UserError(f"{where}: no train split; it has {list(obj)}; set data.hub_splits")
    return out


def _read_source(params: DataParams, seed: int, bad: BadRows) -> tuple[dict[str, list[Row]], str]:
    """Raw rows per split (or under "all" when the source is one unsplit collection)."""
    if params.files:
        return {s: _read_file(Path(p), params, bad) for s, p in params.files.items()}, "files"
    return _read_one_source(params, seed, bad), params.source


def _split_origin(params: DataParams) -> dict[str, str]:
    """What an error about a split names: its file, or the one source all splits come from."""
    if params.files:
        train = params.files["train"]
        return {s: params.files.get(s, train) for s in SPLITS}
    if not params.source.startswith((BUILTIN, HUB)) and Path(params.source).is_dir():
        try:
            found = split_files(Path(params.source))
        except UserError:
            found = {}
        if found:
            return {s: str(found.get(s, found["train"])) for s in SPLITS}
    return dict.fromkeys(SPLITS, params.source)


def _read_one_source(params: DataParams, seed: int, bad: BadRows) -> dict[str, list[Row]]:
    source = params.source
    if source.startswith(BUILTIN):
        name = source[len(BUILTIN) :]
        if name == "anagram":
            return {"all": anagram.generate_anagram(params.anagram, seed)}
        if name == "entities":
            return {"all": entities.generate_entities(params.entities, seed)}
        raise UserError(
            f"params.yaml: data.source '{source}' is unknown; use builtin:anagram or builtin:entities"
        )
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
        files = split_files(path)
        return {s: _read_file(p, params, bad) for s, p in files.items()}
    if path.exists():
        return {"all": _read_file(path, params, bad)}
    raise UserError(
        f"params.yaml: data.source '{source}' does not exist; give a file, a directory, "
        "builtin:anagram, builtin:entities or hub:<name>"
    )


BUILTIN_FIELDS = {
    "builtin:anagram": ("sequence", anagram.TEXT_FIELDS, anagram.LABEL_FIELD),
    "builtin:entities": ("token", [entities.TOKENS_FIELD], entities.TAGS_FIELD),
}


def _fields(params: DataParams, rows: list[Row]) -> tuple[str, list[str], str]:
    """The task ("sequence" or "token") and the text and label fields of the rows read."""
    if not params.files and params.source in BUILTIN_FIELDS:
        task, text_fields, label_field = BUILTIN_FIELDS[params.source]
        if params.text_fields != text_fields or params.label_field != label_field:
            raise UserError(
                f"params.yaml: {params.source} has text_fields {text_fields} and label_field "
                f"'{label_field}'; set data.text_fields and data.label_field to those"
            )
        return task, text_fields, label_field
    first = rows[0] if rows else {}
    if set(first) == {"tokens", "tags", "_line"}:  # CoNLL: the columns have no names
        return "token", ["tokens"], "tags"
    task = "token" if isinstance(first.get(params.label_field), list) else "sequence"
    return task, params.text_fields, params.label_field


def _class_warnings(
    task: str, names: list[str], splits: dict[str, list[Row]], labels: Any
) -> list[str]:
    """Classes that validation or test lack: their metrics (and the report's) are undefined."""
    if task != "sequence":
        return []
    out = []
    for split in ("validation", "test"):
        present = set(labels(splits[split]))
        absent = [n for n in names if n not in present]
        if len(present) == 1:
            out.append(
                f"the {split} split has only one class ({sorted(present)[0]!r}, "
                f"{len(splits[split])} rows): ROC-AUC, PR-AUC and MCC are undefined and "
                "accuracy says nothing there; add data or change data.splits"
            )
        elif absent:
            out.append(
                f"the {split} split has no example of {absent}: their recall and F1 are "
                "undefined there; add data or change data.splits"
            )
    return out


def _unseen_tags(splits: dict[str, list[Row]], labels: Any) -> list[str]:
    """Token tasks: tags of validation/test never seen in train (the model cannot predict them)."""
    known = set(labels(splits["train"]))
    out = []
    for split in ("validation", "test"):
        counts = Counter(t for t in labels(splits[split]) if t not in known)
        if counts:
            shown = ", ".join(f"{t} ({n}x)" for t, n in sorted(counts.items()))
            out.append(
                f"tag(s) never seen in train occur in the {split} split: {shown}; the model "
                "cannot predict them, so every such word counts as an error"
            )
    return out


def load_splits(params: DataParams, seed: int) -> PreparedData:
    """Read, split, clean and check ``params.source``; return the three splits.

    Raises UserError (naming the file or source) when the data cannot be used.
    """
    bad = BadRows(params.on_bad_rows)
    raw, source = _read_source(params, seed, bad)
    origin = _split_origin(params)
    first_rows = next(iter(raw.values()))
    task, text_fields, label_field = _fields(params, first_rows)
    clash = [f for f in text_fields if f in ("id", "label")]
    if clash:
        raise UserError(
            f"{origin['train']}: text field '{clash[0]}' has a name the processed data writes "
            "itself (id, label); rename that column in the file and in data.text_fields"
        )
    source_scheme = ""
    if task == "token":
        # each file in its own scheme: one written in IOB1 is converted to IOB2
        schemes = {
            part: detect_scheme([r[label_field] for r in rows]) for part, rows in raw.items()
        }
        converted = [part for part, scheme in schemes.items() if scheme == "IOB1"]
        for part in converted:
            for r in raw[part]:
                r[label_field] = iob1_to_iob2(r[label_field])
            where = source if part == "all" else f"{Path(origin[part]).name} ({part})"
            bad.note(
                f"{where}: the tags are IOB1 (an entity starts with I-; CoNLL-2003 as "
                "published): converted to IOB2 on reading, entities unchanged"
            )
        source_scheme = "IOB1" if converted else "IOB2"
    if "all" in raw:
        splits = _split_by_fraction(raw["all"], params, label_field, seed)
    else:
        splits = dict(raw)
        if "test" not in splits:
            raise UserError(
                f"{source}: no test split found; add a test file or set data.files.test"
            )
        if "validation" not in splits:
            splits["train"], splits["validation"] = _carve_validation(
                splits["train"], params, label_field, seed
            )
    cleaning: dict[str, dict[str, int]] = {}
    if task == "sequence":
        for split in SPLITS:
            splits[split], cleaning[split] = clean_rows(
                splits[split], text_fields, label_field, params.cleaning
            )
    splits, leakage = find_leakage(splits, text_fields, params.leakage)
    for split, rows in splits.items():
        if not rows:
            raise UserError(
                f"{origin[split]}: the {split} split is empty; add data or change data.splits"
            )

    def labels(rows: list[Row]) -> list[str]:
        if task == "token":
            return [t for r in rows for t in r[label_field]]
        return [r[label_field] for r in rows]

    names = label_names_from(
        labels(splits["train"]),
        {s: labels(splits[s]) for s in ("validation", "test")},
        origin,
        unseen_allowed=task == "token",
    )
    warnings = _class_warnings(task, names, splits, labels)
    if task == "token":
        warnings += _unseen_tags(splits, labels)
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
        source_scheme,
    )


def to_dataset_dict(data: PreparedData) -> DatasetDict:
    """Arrow datasets: ``id``, the text field(s), ``label`` (ClassLabel) and metadata columns."""
    import pyarrow as pa
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    label_feature = ClassLabel(names=data.label_names)
    if data.task == "token":
        text_features = {f: Sequence(Value("string")) for f in data.text_fields}
        label_type: Any = Sequence(label_feature)
    else:
        text_features = {f: Value("string") for f in data.text_fields}
        label_type = label_feature
    features = Features(
        {
            "id": Value("string"),
            **text_features,
            "label": label_type,
            **{m: Value("string") for m in data.metadata_fields},
        }
    )
    label_id = {name: i for i, name in enumerate(data.label_names)}
    out = {}
    for split in SPLITS:
        rows = data.splits[split]
        if data.task == "token":
            label_values: list[Any] = [[label_id[t] for t in r[data.label_field]] for r in rows]
        else:
            label_values = [label_id[r[data.label_field]] for r in rows]
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
