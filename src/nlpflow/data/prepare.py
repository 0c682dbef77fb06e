"""Turn a data source into cleaned, leakage-checked train/validation/test splits.

What differs between tasks (``sequence``: one or two text fields and a label per example;
``token``: a list of words and a tag per word; the other families) is asked of the task's
:class:`~nlpflow.families.data.DataFamily`: built-in sources, label reading and checks,
stratification, cleaning, the processed columns' features. Class names are mapped to ids in
a stable (sorted) order that the model config's ``id2label`` keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from nlpflow.data.split import stratified_split
from nlpflow.errors import UserError
from nlpflow.families.data import DataFamily, builtin_names, builtin_source, data_family
from nlpflow.params import SPLITS, DataParams

if TYPE_CHECKING:
    from datasets import DatasetDict

BUILTIN = "builtin:"
HUB = "hub:"


@dataclass
class PreparedData:
    """Rows per split with label names as strings; everything a data report needs."""

    task: str  # the family's name: "sequence", "token", ... (DataMeta.task)
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
    # Extra meta.json fields from the family (token tasks: the tag scheme the source was
    # written in, "IOB1" files being converted to IOB2 on reading).
    meta_extra: dict[str, Any] = field(default_factory=dict)

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


def _read_file(path: Path, params: DataParams, bad: BadRows) -> list[Row]:
    if params.task != "auto":  # a family with its own file format (QA: SQuAD JSON)
        rows = data_family(params.task).read_file(path, params, bad)
        if rows is not None:
            return rows
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
            if not isinstance(r[params.label_field], list | dict):  # dict: QA answers
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
        found = builtin_source(source)
        if found is None:
            raise UserError(
                f"params.yaml: data.source '{source}' is unknown; use "
                f"{' or '.join(builtin_names())}"
            )
        return {"all": found[1].generate(params, seed)}
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
        f"{', '.join(builtin_names())} or hub:<name>"
    )


def _fields(params: DataParams, rows: list[Row]) -> tuple[str, list[str], str]:
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
    first = rows[0] if rows else {}
    if set(first) == {"tokens", "tags", "_line"}:  # CoNLL: the columns have no names
        return "token", ["tokens"], "tags"
    if params.task != "auto":
        return params.task, *data_family(params.task).fields(params)
    task = "token" if isinstance(first.get(params.label_field), list) else "sequence"
    return task, params.text_fields, params.label_field


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
    fam = data_family(task)
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


def to_dataset_dict(data: PreparedData) -> DatasetDict:
    """Arrow datasets: ``id``, the text field(s), ``label`` (ClassLabel) and metadata columns."""
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
