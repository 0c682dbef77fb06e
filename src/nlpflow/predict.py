"""``nlpflow predict --model models/best INPUT OUTPUT``: a trained model on a new file.

The file goes through what training's data went through: the data loader's reading
(:func:`nlpflow.data.files.stream_records`: CSV/TSV, JSONL/JSON, Parquet, compressed or not;
CoNLL for token tasks),
the cleaning the training texts had (``data.cleaning`` as saved in ``nlpflow.json``,
:func:`nlpflow.data.clean.clean_text`), and the one encoder (:class:`nlpflow.modeling.
encoder.Encoder`, at the ``max_length`` and truncation the model was trained with). No label
column is needed; one that is there is kept as an input field.

Output (JSONL, or CSV/TSV with nested values as JSON text), one record per usable input row,
in file order: the row's own fields (a field named like an output key is kept as
``<name>_in_file``), ``row`` (its line in a CSV/TSV/JSONL file, its 1-based row in Parquet
or a JSON array), what the model's task family predicts (its ``output_keys``:
:mod:`nlpflow.families.predict`) and ``truncated``.

Rows that cannot be used (a text field missing, empty after cleaning, of the wrong type; a
line that does not parse; a pair the truncation cannot fit) are never dropped silently: each
is written to the rejects file (``OUTPUT``'s name with ``.rejects.jsonl``) with its row
number, field and reason, and counted on the console. Inputs longer than the model's
``max_length`` are predicted on their first ``max_length`` tokens and counted, with their
row numbers, as truncated.

Rows go through cleaning, encoding, the model and the writer ``chunk_rows`` at a time;
JSONL and Parquet files are also read a chunk at a time, so memory stays flat however long
they are (CSV/TSV, JSON arrays, CoNLL and compressed files are parsed whole first, as
training parses them).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from nlpflow.data.files import BadRows, RecordStream, Row, stream_records
from nlpflow.errors import UserError
from nlpflow.families.predict import Item, LoadedModel, PredictFamily, Reject, predict_family
from nlpflow.modelinfo import read_model_info

OUTPUT_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}
REJECTS_SUFFIX = ".rejects.jsonl"
SHOWN_ROWS = 10  # row numbers listed on the console per kind of problem
# The data params of a file's form, and the options of `nlpflow predict` that set them.
READING_OPTIONS = {
    "column_names": "--column-names", "delimiter": "--delimiter", "quoting": "--quoting",
    "encoding": "--encoding", "format": "--format",
}  # fmt: skip


def load_model(model_dir: str | Path, batch_size: int) -> LoadedModel:
    """Load ``model_dir`` (the train stage's ``models/best``) for prediction.

    Raises UserError when the directory is not a saved nlpflow model or its labels differ
    from ``nlpflow.json``'s.
    """
    from nlpflow.evaluation.predict import load_classifier
    from nlpflow.families.data import data_family
    from nlpflow.modeling.build import position_limit
    from nlpflow.modeling.encoder import Encoder, takes_segments
    from nlpflow.modeling.tokenizers import load_tokenizer

    meta = read_model_info(model_dir)
    model, pad_id = load_classifier(model_dir, meta.label_names, meta.task)
    tokenizer = load_tokenizer(model_dir)
    assert meta.max_length is not None and meta.truncation is not None  # read_model_info
    # A model built from a config has as many positions as the longest training input,
    # which may be fewer than max_length: inputs are cut to what the model can read.
    positions = position_limit(model.config)
    limit = min(meta.max_length, positions) if positions else meta.max_length
    encoder = Encoder(
        tokenizer,
        meta.text_fields,
        limit,
        meta.truncation,
        data_family(meta.task).encoder_mode,
        takes_segments(tokenizer, model.config),
    )
    return LoadedModel(meta, model, pad_id, encoder, batch_size, tokenizer)


def usable(
    loaded: LoadedModel, items: Sequence[Item], family: PredictFamily | None = None
) -> tuple[list[Item], list[Reject]]:
    """``items`` the encoder can encode, and a Reject for each it refuses (a pair that
    ``only_first``/``only_second`` truncation cannot fit in ``max_length``). ``family``
    encodes (its :meth:`~PredictFamily.encode`: N pairs a row for multiple choice)."""
    n_fields = len(loaded.meta.text_fields)
    encode = family.encode if family is not None else PredictFamily.encode_columns
    try:
        encode(loaded, [[it.inputs[f] for it in items] for f in range(n_fields)])
        return list(items), []
    except UserError:
        pass
    keep: list[Item] = []
    rejects: list[Reject] = []
    for it in items:
        try:
            encode(loaded, [[value] for value in it.inputs])
        except UserError as err:
            rejects.append(Reject(it.row, "", str(err).split(": ", 1)[-1]))
        else:
            keep.append(it)
    return keep, rejects


def output_format(path: Path) -> str:
    try:
        return OUTPUT_FORMATS[path.suffix.lower()]
    except KeyError:
        raise UserError(
            f"{path}: cannot tell the output format from the extension '{path.suffix}'; "
            f"use one of {sorted(OUTPUT_FORMATS)}"
        ) from None


def rejects_path(output: Path) -> Path:
    """``out/preds.jsonl`` -> ``out/preds.rejects.jsonl``."""
    return output.with_name(output.stem + REJECTS_SUFFIX)


def open_input(
    path: Path, text_fields: list[str], reading: dict[str, Any], chunk_rows: int
) -> tuple[RecordStream, BadRows]:
    """The records of ``path`` (any format the data loader reads) in chunks, and the lines
    that did not parse (collected under ``skip``: they become rejects). ``reading``: data
    params of the file's form (``format``, ``encoding``, ``delimiter``, ``quoting``,
    ``header``, ``column_names``)."""
    from nlpflow.params import DataParams

    if path.is_dir():
        raise UserError(f"{path}: is a directory; give a data file to predict on")
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    # The label field is not needed: a name no column has.
    params = DataParams(
        text_fields=list(text_fields), label_field="\0no label", on_bad_rows="skip", **reading
    )
    bad = BadRows("skip")
    try:
        return stream_records(path, params, bad, list(text_fields), chunk_rows), bad
    except UserError as err:  # the reader names data params; here they are options
        message = str(err).replace(
            "fix data.text_fields / data.label_field",
            f"rename the columns to the model's text fields {text_fields}",
        )
        for param, option in READING_OPTIONS.items():
            message = message.replace(f"set data.{param}", f"use {option}")
            message = message.replace(f"data.{param}", option)
        raise UserError(message) from None


def _jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it: NaN and infinities (Parquet, pandas) become null, and
    what JSON has no type for (dates, decimals, bytes) its ``str``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _cell(value: Any) -> Any:
    value = _jsonable(value)
    if value is None or isinstance(value, str | int | float | bool):
        return "" if value is None else value
    return json.dumps(value, ensure_ascii=False)


class _Writer:
    """Records to JSONL or CSV/TSV (a header from ``columns``), one chunk at a time."""

    def __init__(self, fh: IO[str], kind: str, columns: list[str]) -> None:
        self.fh = fh
        self.kind = kind
        self.csv: Any = None
        if kind != "jsonl":
            self.csv = csv.DictWriter(
                fh, columns, delimiter="\t" if kind == "tsv" else ",", lineterminator="\n"
            )
            self.csv.writeheader()

    def write(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            if self.csv is None:
                text = json.dumps(_jsonable(record), ensure_ascii=False, allow_nan=False)
                self.fh.write(text + "\n")
            else:
                self.csv.writerow({k: _cell(v) for k, v in record.items()})


def _record(raw: Row, row: int, reserved: set[str]) -> dict[str, Any]:
    """The input row's fields, a field named like an output key renamed ``<name>_in_file``."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key)
        while name in reserved or name in out or (name != key and name in raw):
            name += "_in_file" if not name.endswith("_in_file") else "_"
        out[name] = value
    out["row"] = row
    return out


# --------------------------------------------------------------------------- progress


@dataclass
class _Progress:
    """A tqdm bar on a terminal; elsewhere a line every 10% of the rows (and at the end)."""

    total: int
    bar: bool
    log: Callable[[str], None]
    done: int = 0
    _bar: Any = None
    _next: int = 0
    _start: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        if self.bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, unit="row", desc="predict", leave=False)
        self._next = max(1, math.ceil(self.total / 10))

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        if self.done >= self._next or self.done == self.total:
            rate = self.done / max(time.perf_counter() - self._start, 1e-9)
            self.log(
                f"progress: {self.done}/{self.total} rows "
                f"({100 * self.done / max(self.total, 1):.0f}%)  {rate:.0f} rows/s"
            )
            while self._next <= self.done:
                self._next += max(1, math.ceil(self.total / 10))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# --------------------------------------------------------------------------- the command


@dataclass
class PredictSummary:
    """What one ``nlpflow predict`` run did; ``lines()`` is what the console shows."""

    input: str
    output: str
    task: str
    rows: int = 0  # rows read (usable or not), parse failures included
    predicted: int = 0
    rejects: list[Reject] = field(default_factory=list)
    rejects_file: str = ""
    truncated: list[int] = field(default_factory=list)  # row numbers
    max_length: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        def shown(numbers: list[int]) -> str:
            head = ", ".join(str(n) for n in numbers[:SHOWN_ROWS])
            more = f" and {len(numbers) - SHOWN_ROWS} more" if len(numbers) > SHOWN_ROWS else ""
            return head + more

        out = [
            f"predict: {self.predicted} of {self.rows} rows predicted ({self.task} task) in "
            f"{self.seconds:.1f}s -> {self.output}"
        ]
        if self.rejects:
            out.append(
                f"predict: {len(self.rejects)} row(s) rejected (not predicted), rows "
                f"{shown([r.row for r in self.rejects])}; each with its reason in "
                f"{self.rejects_file}"
            )
            reasons: dict[str, int] = {}
            for r in self.rejects:
                key = f"{r.field + ': ' if r.field else ''}{r.reason}"
                reasons[key] = reasons.get(key, 0) + 1
            out += [f"  {n}x {reason}" for reason, n in sorted(reasons.items())]
        if self.truncated:
            out.append(
                f"predict: {len(self.truncated)} row(s) longer than the {self.max_length} "
                f"tokens the model reads, predicted on their first {self.max_length} tokens "
                f"(see 'truncated'): rows {shown(self.truncated)}"
            )
        out += [f"predict: {note}" for note in self.notes]
        return out


def _check_fields(path: Path, chunk: list[tuple[int, Row]], text_fields: list[str]) -> None:
    """A text field that no row of the first chunk has is a missing column, not bad rows."""
    present = {str(k) for _, r in chunk for k in r}
    missing = [f for f in text_fields if f not in present]
    if missing:
        shown = sorted(str(k) for k in chunk[0][1]) if chunk else []
        raise UserError(
            f"{path}: column(s) {missing} not found (the file has {shown}); the model reads "
            f"the text field(s) {text_fields}"
        )


def predict_file(
    model_dir: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    batch_size: int = 32,
    top_k: int = 5,
    chunk_rows: int = 1024,
    rejects: str | Path | None = None,
    reading: dict[str, Any] | None = None,
    threshold: float | None = None,
    positive: str = "",
    generation: dict[str, Any] | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
) -> PredictSummary:
    """Predict every usable row of ``input_path`` with the model in ``model_dir``; write
    ``output_path`` (``.jsonl``/``.json``, ``.csv``, ``.tsv``) and, when rows were rejected,
    the rejects file (default :func:`rejects_path`), both atomically. ``threshold``/``positive``:
    binary tasks decide as evaluate does with a threshold (see the model card). ``generation``:
    text2text models, ``evaluate.generation``'s ``max_new_tokens`` and ``num_beams``.

    Raises UserError for a model directory, input file or output name that cannot be used
    (nothing is written then), and when no row at all is usable.
    """
    from nlpflow.io import atomic_file, write_jsonl
    from nlpflow.logs import on_terminal

    start = time.perf_counter()
    if batch_size < 1 or chunk_rows < 1 or top_k < 1:
        raise UserError("--batch-size, --chunk-rows and --top-k must be >= 1")
    input_path, output_path = Path(input_path), Path(output_path)
    kind = output_format(output_path)
    if output_path.resolve() == input_path.resolve():
        raise UserError(f"{output_path}: the output would overwrite the input; name another file")
    loaded = load_model(model_dir, batch_size)
    meta = loaded.meta
    predictor = predict_family(meta.task, top_k, threshold, positive, generation)
    predictor.check(loaded)
    reading = reading or {}
    fields = predictor.read_fields(meta)
    stream, bad = open_input(input_path, fields, reading, chunk_rows)
    summary = PredictSummary(str(input_path), str(output_path), meta.task)
    summary.max_length = loaded.encoder.max_length
    if meta.max_length is not None and summary.max_length < meta.max_length:
        summary.notes.append(
            f"the model has {summary.max_length} positions (its longest training input), "
            f"fewer than tokenizer.max_length {meta.max_length}: inputs are cut there"
        )
    outputs_keys = list(predictor.output_names(meta))
    reserved = {"row", "truncated", *outputs_keys}
    columns: dict[str, None] = {}
    if kind != "jsonl":  # a CSV header names every input column: a first pass collects them
        first, _ = open_input(input_path, fields, reading, chunk_rows)
        for chunk in first.chunks:
            for number, raw in chunk:
                columns.update(dict.fromkeys(_record(raw, number, reserved)))
    columns.update(dict.fromkeys([*outputs_keys, "truncated"]))
    bar = on_terminal() if progress is None else progress
    tracker = _Progress(stream.total, bar, log)
    checked = False
    seen_bad = 0
    with atomic_file(output_path) as fh:
        writer: _Writer | None = None
        for chunk in stream.chunks:
            if not checked and chunk:  # a chunk of lines that all failed to parse is empty
                _check_fields(input_path, chunk, fields)
                checked = True
            if writer is None:
                writer = _Writer(fh, kind, list(columns))
            summary.rows += len(chunk)
            items: list[Item] = []
            for number, raw in chunk:
                got = predictor.inputs(raw, loaded)
                if isinstance(got, Reject):
                    summary.rejects.append(Reject(number, got.field, got.reason))
                else:
                    items.append(Item(number, raw, got))
            items, refused = usable(loaded, items, predictor) if items else ([], [])
            summary.rejects += refused
            if items:
                outputs, truncated = predictor.predict(items, loaded)
                records = []
                for it, extra, cut in zip(items, outputs, truncated, strict=True):
                    records.append({**_record(it.raw, it.row, reserved), **extra, "truncated": cut})
                    if cut:
                        summary.truncated.append(it.row)
                writer.write(records)
                summary.predicted += len(items)
            # lines that did not parse count as read (their chunk reported them)
            tracker.update(len(chunk) + len(bad.rows) - seen_bad)
            seen_bad = len(bad.rows)
        tracker.close()
        summary.rows += len(bad.rows)
        summary.rejects += [Reject(b.line, b.column, b.reason) for b in bad.rows]
        if summary.predicted == 0:
            raise UserError(
                f"{input_path}: no row could be predicted ({len(summary.rejects)} rejected; "
                f"first: row {min(r.row for r in summary.rejects)}: "
                f"{min(summary.rejects, key=lambda r: r.row).reason})"
                if summary.rejects
                else f"{input_path}: the file has no rows"
            )
    summary.rejects.sort(key=lambda r: r.row)
    where = Path(rejects) if rejects else rejects_path(output_path)
    if summary.rejects:
        write_jsonl(where, [r.as_dict() for r in summary.rejects])
        summary.rejects_file = str(where)
    elif where.exists() and rejects is None:
        where.unlink()  # a stale list from an earlier run would describe another output
    summary.notes += predictor.notes()
    summary.seconds = time.perf_counter() - start
    for line in summary.lines():
        log(line)
    return summary


# --------------------------------------------------------------------------- command line


def add_arguments(parser: Any) -> None:
    parser.add_argument("input", help="the file to predict on (CSV/TSV, JSONL/JSON, Parquet)")
    parser.add_argument("output", help="where the predictions go: .jsonl, .csv or .tsv")
    parser.add_argument(
        "--model", default="models/best", help="the trained model (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="inputs per forward pass (default: 32)"
    )
    parser.add_argument(
        "--top-k", type=int, default=5, help="sequence tasks: labels with scores per row (5)"
    )
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=1024,
        help="rows cleaned, encoded, predicted and written at a time (default: 1024)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="binary tasks: predict the positive label where its probability is >= this (as "
        "evaluate.threshold; the model card names the threshold evaluate used). Default: arg-max. "
        "QA: answer nothing where the no-answer score beats the best span's by more than this "
        "(metrics/evaluate.json threshold.used; default 0)",
    )
    parser.add_argument(
        "--positive", default="", help="with --threshold: the positive label (default: the second)"
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="text2text: the most tokens generated per row (default: 32, as "
        "evaluate.generation.max_new_tokens; give what evaluate used)",
    )
    parser.add_argument(
        "--num-beams",
        type=int,
        default=None,
        help="text2text: beam search width (default: 1, greedy, as evaluate.generation.num_beams)",
    )
    parser.add_argument(
        "--rejects",
        default=None,
        help="where rejected rows are listed (default: OUTPUT's name + .rejects.jsonl)",
    )
    reading = parser.add_argument_group("reading the input, as the data params do")
    reading.add_argument("--format", default="auto", help="auto (from the extension), csv, ...")
    reading.add_argument("--encoding", default="utf-8", help="the file's text encoding")
    reading.add_argument("--delimiter", default="", help="CSV/TSV: the delimiter")
    reading.add_argument(
        "--quoting", choices=["minimal", "none"], default="minimal", help="CSV/TSV quoting"
    )
    reading.add_argument(
        "--column-names",
        default="",
        help="CSV/TSV without a header: the column names, comma-separated",
    )


def run(args: Any) -> int:
    reading: dict[str, Any] = {
        "format": args.format,
        "encoding": args.encoding,
        "delimiter": args.delimiter,
        "quoting": args.quoting,
    }
    if args.column_names:
        reading["column_names"] = [c.strip() for c in args.column_names.split(",")]
        reading["header"] = False
    predict_file(
        args.model,
        args.input,
        args.output,
        batch_size=args.batch_size,
        top_k=args.top_k,
        chunk_rows=args.chunk_rows,
        rejects=args.rejects,
        reading=reading,
        threshold=args.threshold,
        positive=args.positive,
        generation={
            k: v
            for k, v in (("max_new_tokens", args.max_new_tokens), ("num_beams", args.num_beams))
            if v is not None
        },
    )
    return 0
