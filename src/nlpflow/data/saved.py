"""The processed and tokenized splits: one reader and one writer each, with errors that name
the file and what to do.

``data/processed`` (preprocess) and ``data/tokenized`` (tokenize) are ``save_to_disk``
DatasetDicts with a ``meta.json`` (:class:`DataMeta`). Processed splits hold the text
fields, ``label`` (a ``ClassLabel``, or a sequence of them for token tasks) and metadata
columns; tokenized splits hold ``input_ids`` (not padded), ``labels`` (a ``ClassLabel``; for
token tasks a list per example aligned to sub-tokens, ``-100`` where ignored), and optionally
``token_type_ids`` and ``length``, in the processed rows' order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.errors import UserError

if TYPE_CHECKING:
    import pyarrow as pa
    from datasets import Dataset, DatasetDict, Features

LABEL_COLUMN = "label"
# The aligned label of special tokens and non-first sub-tokens in data/tokenized (token tasks):
# what the loss, the metrics and the word-level predictions skip.
IGNORE_INDEX = -100


Task = str  # a task family's name (nlpflow.families.names.TASKS)
TRUNCATIONS = ("longest_first", "only_first", "only_second")
META_FILE = "meta.json"


@dataclass(frozen=True)
class DataMeta:
    """``meta.json`` of ``data/processed`` and ``data/tokenized``: what the columns hold.

    The processed data's meta has no ``max_length``/``truncation``; the tokenize stage passes
    the same meta on with both set (the length the inputs were cut to, in tokens, and how).
    """

    text_fields: list[str]
    label_names: list[str]  # label id i is label_names[i] (sorted order)
    metadata_fields: list[str] = field(default_factory=list)
    task: Task = "sequence"  # the task family: "sequence", "token" (a tag per word), ...
    label_field: str = ""  # the label column of the source data (for people; not read)
    # Token tasks: the tag scheme of label_names (IOB2) and the one the source file used.
    tag_scheme: str | None = None
    source_tag_scheme: str | None = None
    max_length: int | None = None  # tokenized only
    truncation: str | None = None  # tokenized only: tokenizer.truncation as applied
    # Sequence tasks: data.cleaning as the texts were cleaned (nlpflow.params.CleaningParams
    # fields), so that prediction cleans new texts the same way; None for token tasks.
    cleaning: dict[str, Any] | None = None
    # Extractive QA, tokenized only: the tokens two windows of one context share
    # (tokenizer.stride), so that prediction windows new contexts as training did.
    stride: int | None = None
    # Text-to-text label task (data.text2text.label_task): the class names the targets are,
    # which evaluate parses generated outputs back to; None for any other data.
    target_labels: list[str] | None = None
    # The label task's source text fields, in the order joined (LABEL_TASK_JOIN) into the
    # ``input``: what ``nlpflow predict`` reads from a classification file; None otherwise.
    label_task_fields: list[str] | None = None

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: v for k, v in out.items() if v is not None}

    def tokenized(self, max_length: int, truncation: str) -> DataMeta:
        """This meta as the tokenize stage passes it on."""
        return replace(self, max_length=max_length, truncation=truncation)


def write_meta(directory: str | Path, meta: DataMeta, name: str = META_FILE) -> None:
    """The one writer of ``meta.json`` (and of a model's ``nlpflow.json``), atomic."""
    from nlpflow.io import write_json

    write_json(Path(directory) / name, meta.to_json())


def read_meta(
    directory: str | Path, tokenized: bool = False, name: str = META_FILE, stage: str = ""
) -> DataMeta:
    """The one reader of ``meta.json`` of processed (``tokenized=False``) or tokenized data
    (and of a trained model's copy, ``name`` ``nlpflow.json``, written by ``stage`` train);
    a missing or malformed file, or a tokenized meta without ``max_length``/``truncation``,
    is a UserError naming the file and the stage to rerun."""
    stage = stage or ("tokenize" if tokenized else "preprocess")
    rerun = f"rerun the {stage} stage (dvc repro {stage})"
    path = Path(directory) / name
    if not path.is_file():
        missing = path if Path(directory).is_dir() else Path(directory)
        raise UserError(f"{missing} not found; run the {stage} stage first (dvc repro {stage})")
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON at line {err.lineno}: {err.msg}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a JSON object")

    def str_list(key: str, required: bool = True) -> list[str]:
        value = raw.get(key, None if required else [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            if value is None and key == "label_names" and raw.get("task") == "token":
                raise UserError(f"{path} lacks the 'label_names' of this token task; {rerun}")
            raise UserError(f"{path}: '{key}' must be a list of strings (got {value!r}); {rerun}")
        return list(value)

    from nlpflow.families.names import CLASSIFICATION_TASKS, TASKS

    task = raw.get("task", "sequence")
    if task not in TASKS:
        raise UserError(f"{path}: 'task' must be one of {list(TASKS)} (got {task!r}); {rerun}")
    label_names = str_list("label_names")
    text_fields = str_list("text_fields")
    max_length = raw.get("max_length")
    truncation = raw.get("truncation")
    if tokenized:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise UserError(f"{path}: 'max_length' must be a positive integer; {rerun}")
        if truncation not in TRUNCATIONS:
            raise UserError(f"{path}: 'truncation' must be one of {list(TRUNCATIONS)}; {rerun}")
    label_field = raw.get("label_field", "")

    def optional_str(key: str) -> str | None:
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise UserError(f"{path}: '{key}' must be a string (got {value!r}); {rerun}")
        return value

    cleaning = raw.get("cleaning")
    if cleaning is not None and not isinstance(cleaning, dict):
        raise UserError(f"{path}: 'cleaning' must be an object (got {cleaning!r}); {rerun}")
    stride = raw.get("stride")
    if stride is not None and (isinstance(stride, bool) or not isinstance(stride, int)):
        raise UserError(f"{path}: 'stride' must be an integer (got {stride!r}); {rerun}")
    meta = DataMeta(
        text_fields=text_fields,
        label_names=label_names,
        metadata_fields=str_list("metadata_fields", required=False),
        task=task,
        label_field=label_field if isinstance(label_field, str) else "",
        tag_scheme=optional_str("tag_scheme"),
        source_tag_scheme=optional_str("source_tag_scheme"),
        max_length=max_length if tokenized else None,
        truncation=truncation if tokenized else None,
        cleaning=cleaning,
        stride=stride if tokenized else None,
        target_labels=str_list("target_labels") if raw.get("target_labels") is not None else None,
        label_task_fields=(
            str_list("label_task_fields") if raw.get("label_task_fields") is not None else None
        ),
    )
    if not 1 <= len(meta.text_fields) <= 2:
        raise UserError(f"{path}: 'text_fields' must name 1 or 2 columns")
    if task == "token" and len(meta.text_fields) != 1:
        raise UserError(f"{path}: a token task has one text field (the list of words)")
    if task in CLASSIFICATION_TASKS and len(meta.label_names) < 2:
        raise UserError(f"{path}: 'label_names' must name at least 2 labels")
    if not meta.label_names:
        raise UserError(f"{path}: 'label_names' must name the model's outputs; {rerun}")
    return meta


def write_saved(out: str | Path, data: DatasetDict, meta: DataMeta) -> None:
    """The one writer of ``data/processed`` and ``data/tokenized``: the splits
    (``save_to_disk``) and ``meta.json``, published together atomically."""
    from nlpflow.io import atomic_dir

    with atomic_dir(out) as tmp:
        data.save_to_disk(str(tmp))
        write_meta(tmp, meta)


def write_saved_tables(
    out: str | Path,
    splits: Mapping[str, tuple[Features, Iterable[pa.Table]]],
    meta: DataMeta,
    fingerprint: str = "",
) -> None:
    """:func:`write_saved` for splits given as streams of Arrow tables: each split is written
    batch by batch (datasets' ``ArrowWriter``) in the layout ``save_to_disk`` writes, so
    memory stays flat however many rows there are. Published atomically with ``meta.json``."""
    from nlpflow.io import atomic_dir

    with atomic_dir(out) as tmp:
        for name, (features, tables) in splits.items():
            write_split(Path(tmp) / name, features, tables, fingerprint)
        (Path(tmp) / "dataset_dict.json").write_text(
            json.dumps({"splits": list(splits)}), encoding="utf-8"
        )
        write_meta(tmp, meta)


DATA_FILE = "data-00000-of-00001.arrow"


def write_split(
    directory: Path, features: Features, tables: Iterable[pa.Table], fingerprint: str = ""
) -> int:
    """One split in ``save_to_disk``'s layout (one shard, ``state.json``,
    ``dataset_info.json``) from a stream of tables; the number of rows. The fingerprint is
    the shard's content hash (xxh64), as stable as the data."""
    import pyarrow as pa
    import xxhash
    from datasets import DatasetInfo
    from datasets.arrow_writer import ArrowWriter
    from datasets.utils.py_utils import asdict as datasets_asdict

    directory.mkdir(parents=True)
    path = directory / DATA_FILE
    with ArrowWriter(features=features, path=str(path)) as writer:
        for table in tables:
            writer.write_table(table)
        rows, _ = writer.finalize()
    pa.default_memory_pool().release_unused()  # the batches' buffers, back to the system
    digest = xxhash.xxh64(fingerprint.encode())
    chunk = bytearray(1 << 20)  # one buffer, read into (a new 16 MB bytes a read held 32)
    view = memoryview(chunk)
    with open(path, "rb", buffering=0) as fh:
        while size := fh.readinto(chunk):
            digest.update(view[:size])
    # the info save_to_disk writes, without opening the file (reading a stream of many
    # batches through a memory map makes a quarter of its size resident)
    info_of = DatasetInfo(features=features)
    state: dict[str, Any] = {
        "_data_files": [{"filename": DATA_FILE}],
        "_fingerprint": digest.hexdigest(),
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": None,
    }
    (directory / "state.json").write_text(
        json.dumps(state, indent=2, sort_keys=True), encoding="utf-8"
    )
    info = datasets_asdict(info_of)
    (directory / "dataset_info.json").write_text(
        json.dumps({k: info[k] for k in sorted(info)}, indent=2), encoding="utf-8"
    )
    return int(rows)


def in_memory(tables: Mapping[str, pa.Table], features: Features) -> DatasetDict:
    """A DatasetDict of Arrow tables in memory, typed by ``features`` (no cast pass)."""
    from datasets import Dataset, DatasetDict, DatasetInfo
    from datasets.table import InMemoryTable

    return DatasetDict(
        {
            name: Dataset(
                InMemoryTable(table.cast(features.arrow_schema)),
                info=DatasetInfo(features=features),
            )
            for name, table in tables.items()
        }
    )


def split_batches(
    dataset: Dataset, batch_size: int, columns: list[str] | None = None
) -> Iterator[pa.Table]:
    """A split's rows as Arrow tables of about ``batch_size`` rows, in order, read from its
    Arrow files with plain reads (not memory-mapped, so pages read do not stay in the
    process's resident memory); a dataset not backed by whole files is iterated as usual."""
    import pyarrow as pa
    from datasets.table import MemoryMappedTable

    table = dataset.data
    # datasets records replacing the schema's metadata (features) as a replay: the rows
    # and columns are the file's, so plain reads still give them (missing this made every
    # processed split memory-mapped: at 5,000,000 rows tokenize held 1.2 GB of it resident)
    plain = (
        isinstance(table, MemoryMappedTable)
        and all(replay[0] == "replace_schema_metadata" for replay in table.replays)
        and dataset._indices is None
        and Path(table.path).is_file()
    )
    if not plain:
        view = dataset.select_columns(columns) if columns else dataset
        yield from view.with_format("arrow").iter(batch_size=batch_size)
        return
    files = [table.path]
    pending: list[pa.RecordBatch] = []
    held = 0
    for name in files:
        with pa.OSFile(name) as fh:
            for batch in pa.ipc.open_stream(fh):
                if columns:
                    batch = batch.select(columns)
                pending.append(batch)
                held += batch.num_rows
                if held >= batch_size:
                    yield pa.Table.from_batches(pending)
                    pending, held = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def read_processed(
    path: str | Path, splits: list[str], with_metadata: bool = False
) -> tuple[DatasetDict, DataMeta]:
    """The one reader of ``data/processed``: its meta, then ``splits``, each checked to have
    the text fields and ``label`` (and, ``with_metadata``, ``id`` and the metadata columns)."""
    meta = read_meta(path)
    wanted = [*meta.text_fields, LABEL_COLUMN]
    if with_metadata:
        wanted = ["id", *wanted, *meta.metadata_fields]
    return load_dataset_dict(path, splits, wanted, stage="preprocess"), meta


# Columns every tokenized split has; token_type_ids and length are optional.
TOKENIZED_COLUMNS = ["input_ids", "labels"]


def read_tokenized(
    path: str | Path, splits: list[str] | None = None
) -> tuple[DatasetDict, DataMeta]:
    """The one reader of ``data/tokenized``: its meta (with max_length and truncation) and
    ``splits`` (default: those present, of which ``train`` is required), each with
    ``input_ids`` (token ids, not padded) and ``labels``."""
    meta = read_meta(path, tokenized=True)
    data = load_dataset_dict(path, splits or ["train"], TOKENIZED_COLUMNS, stage="tokenize")
    for name in data:
        missing = [c for c in TOKENIZED_COLUMNS if c not in data[name].column_names]
        if missing:
            raise UserError(f"{path}: split '{name}' lacks column(s) {missing}")
    return data, meta


def load_dataset_dict(
    path: str | Path, splits: list[str], columns: list[str], stage: str = ""
) -> DatasetDict:
    """Load a ``save_to_disk`` DatasetDict and check it has ``splits`` with ``columns``."""
    from datasets import DatasetDict, load_from_disk

    path = Path(path)
    if not path.exists():
        what = (
            f"the {stage} stage first (dvc repro {stage})"
            if stage
            else "the earlier pipeline stages first (dvc repro)"
        )
        raise UserError(f"{path} not found; run {what}")
    try:
        data = _load_released(path) or load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"{path}: not a saved dataset ({str(err).splitlines()[0]})") from None
    if not isinstance(data, DatasetDict):
        raise UserError(f"{path}: expected a dataset with splits, found a single split")
    for split in splits:
        if split not in data:
            raise UserError(f"{path}: split '{split}' is missing (found {sorted(data)})")
        missing = [c for c in columns if c not in data[split].column_names]
        if missing:
            raise UserError(
                f"{path}/{split}: column(s) {missing} missing (found {data[split].column_names})"
            )
    return data


# Record batches read between two releases of the mapped pages (1,000-row batches: about
# 6 MB of pages held at most).
RELEASE_EVERY = 64


def _mapped_table(path: Path) -> pa.Table:
    """The Arrow stream file ``path`` as a memory-mapped table, as ``datasets`` maps it, but
    with the pages that reading it made resident released as it goes (``madvise``
    ``MADV_DONTNEED``; they are mapped again when a column is read). Reading the stream reads
    each record batch's header, and the kernel maps the file's cached pages around each page
    touched (fault-around, 64 KB or more): over a file of 1,000-row batches that made about a
    quarter of the file resident for as long as it stayed mapped (70 MB a million rows of
    processed text, counted in the process's resident set)."""
    import mmap

    import pyarrow as pa

    with open(path, "rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    # zero-copy: the batches' buffers point into the mapping, which they keep open
    reader = pa.ipc.open_stream(pa.py_buffer(mapped))
    batches = []
    for batch in reader:
        batches.append(batch)
        if len(batches) % RELEASE_EVERY == 0:
            mapped.madvise(mmap.MADV_DONTNEED)
    mapped.madvise(mmap.MADV_DONTNEED)
    return pa.Table.from_batches(batches, schema=reader.schema)


def _load_released(path: Path) -> DatasetDict | None:
    """``datasets.load_from_disk`` of a local ``save_to_disk`` DatasetDict (one directory per
    split with ``state.json`` and ``dataset_info.json``), the same splits, features,
    fingerprints and memory-mapped tables, each file read by :func:`_mapped_table`; None
    for any other layout, or where ``madvise`` is missing (``load_from_disk`` then reads
    it, or says what is wrong)."""
    import mmap

    from datasets import Dataset, DatasetDict, DatasetInfo, Split
    from datasets.table import MemoryMappedTable, concat_tables

    index = path / "dataset_dict.json"
    if not hasattr(mmap, "MADV_DONTNEED") or not index.is_file():
        return None
    names = json.loads(index.read_text(encoding="utf-8")).get("splits")
    dirs = [path / str(name) for name in names or []]
    if not names or not all((d / "state.json").is_file() for d in dirs):
        return None
    out = {}
    for name, directory in zip(names, dirs, strict=True):
        state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
        info_file = directory / "dataset_info.json"
        files = [directory / f["filename"] for f in state["_data_files"]]
        if not info_file.is_file() or not files or not all(f.is_file() for f in files):
            return None
        info = DatasetInfo.from_dict(json.loads(info_file.read_text(encoding="utf-8")))
        table = concat_tables([MemoryMappedTable(_mapped_table(f), str(f)) for f in files])
        split = state["_split"]
        out[str(name)] = Dataset(
            arrow_table=table,
            info=info,
            split=Split(split) if split is not None else None,
            fingerprint=state["_fingerprint"],
        ).with_format(  # as load_from_disk passes them
            type=state["_format_type"],
            format_kwargs=state["_format_kwargs"],
            columns=state["_format_columns"],
            output_all_columns=state["_output_all_columns"],
        )
    return DatasetDict(out)


def class_label_names(data: DatasetDict, split: str, path: str | Path) -> list[str] | None:
    """The ``.names`` of the label column when it is a ClassLabel, else None."""
    feature = data[split].features.get(LABEL_COLUMN)
    # A token task's label is a Sequence (or list) of ClassLabel: the names are inside.
    inner = getattr(feature, "feature", None)
    if inner is None and isinstance(feature, list) and feature:
        inner = feature[0]
    names = getattr(inner if inner is not None else feature, "names", None)
    if names is None:
        return None
    if not isinstance(names, list):
        raise UserError(f"{path}/{split}: the '{LABEL_COLUMN}' feature has no label names")
    return [str(n) for n in names]
