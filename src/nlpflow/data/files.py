"""Local data files: CSV/TSV, JSONL, Parquet and CoNLL, read with errors that name the place.

Parsing is left to libraries: the ``csv`` module (strict quoting, no field-size limit) for
delimited text, ``json`` per line, pyarrow for Parquet, and the standard library's gzip, bz2,
lzma and zipfile (plus ``zstandard`` when installed) for compressed files, as pandas names
them. What is ours is the row-level checking on top: every problem a user can fix is reported
as one line naming the file, the line (or row) and the column, and what to do. With
``on_bad_rows: skip`` the bad rows are collected instead and shown in the data report.

Records are split only on ``\\n`` (and ``\\r\\n``), as the csv and json modules write them,
never on the other characters ``str.splitlines`` treats as line breaks (form feed, ``\\x85``,
``\\u2028``...): those are ordinary characters inside a text.

Why not ``pandas.read_csv``: it silently merges lines after a stray opening quote (it has no
strict mode) and cannot say on which line a row starts, which every message here needs.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
from collections import Counter
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from nlpflow.errors import UserError
from nlpflow.params import DataParams

EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".conll": "conll",
    ".iob": "conll",
    ".bio": "conll",
}
# Compressed files are read as pandas reads them: by the last suffix.
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip", ".zst": "zstd"}
# Split files in a directory source; the first name found wins.
SPLIT_NAMES = {
    "train": ("train",),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test",),
}
# Column names the processed data writes itself; a file column of that name that is not the
# configured text or label field is kept as metadata under "<name>_in_file".
PIPELINE_COLUMNS = ("label", "_line")
# Delimiters named when a file does not split into the configured columns.
DELIMITERS = ",;\t|"

Row = dict[str, Any]


@dataclass
class BadRow:
    """A row skipped under ``on_bad_rows: skip``, with the reason it was bad."""

    file: str
    line: int
    column: str
    reason: str
    excerpt: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BadRows:
    """Collects bad rows (skip) or raises at the first one (fail).

    ``notes`` holds what the data card should say about how the files were read (a column
    renamed, a compression, multi-line rows, a tag scheme converted).
    """

    policy: str = "fail"
    rows: list[BadRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def report(
        self, path: Path, where: str, line: int, column: str, reason: str, excerpt: str = ""
    ) -> None:
        col = f", column '{printable(column)}'" if column else ""
        if self.policy != "skip":
            raise UserError(f"{path}, {where} {line}{col}: {reason}")
        self.rows.append(BadRow(str(path), line, column, reason.split(";")[0], excerpt[:80]))

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


# --------------------------------------------------------------------------- bytes and text


def printable(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped, for one-line errors."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _first_line(err: BaseException) -> str:
    """The first line of an exception's message, short, for a one-line error."""
    lines = str(err).splitlines()
    return lines[0][:100] if lines else type(err).__name__


def _suffixes(path: Path) -> tuple[str, str]:
    """(format suffix, compression) of a file name: ``a.csv.gz`` -> (".csv", "gzip")."""
    name = path.name.lower()
    compression = ""
    for suffix, kind in COMPRESSIONS.items():
        if name.endswith(suffix):
            compression, name = kind, name[: -len(suffix)]
            break
    return Path(name).suffix, compression


def detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix, compression = _suffixes(path)
    try:
        return EXTENSIONS[suffix]
    except KeyError:
        shown = f"{suffix}{path.suffix}" if compression else path.suffix
        raise UserError(
            f"{path}: cannot tell the format from the extension '{shown}'; "
            f"use one of {sorted(EXTENSIONS)} (optionally compressed: "
            f"{', '.join(COMPRESSIONS)}) or set data.format"
        ) from None


def is_data_file(path: Path) -> bool:
    return _suffixes(path)[0] in EXTENSIONS


def data_stem(path: Path) -> str:
    """The file name without its format and compression suffixes: ``train.csv.gz`` -> train."""
    suffix, compression = _suffixes(path)
    name = path.name
    if compression:
        name = name[: name.lower().rfind(".")]
    return name[: len(name) - len(suffix)] if suffix else Path(name).stem


def read_bytes(path: Path, bad: BadRows | None = None) -> bytes:
    """The file's bytes, decompressed when its name ends in a compression suffix."""
    _, compression = _suffixes(path)
    data = path.read_bytes()
    if not compression:
        return data
    try:
        if compression == "gzip":
            import gzip

            out = gzip.decompress(data)
        elif compression == "bz2":
            import bz2

            out = bz2.decompress(data)
        elif compression == "xz":
            import lzma

            out = lzma.decompress(data)
        elif compression == "zip":
            import zipfile

            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = [i for i in archive.infolist() if not i.is_dir()]
                if len(members) != 1:
                    raise UserError(
                        f"{path}: a .zip source must hold exactly one file (it holds "
                        f"{len(members)}: {[m.filename for m in members][:5]}); unzip it and "
                        "point data.source or data.files at the file"
                    )
                out = archive.read(members[0])
        else:
            try:
                import zstandard
            except ImportError:
                raise UserError(
                    f"{path}: reading .zst files needs the zstandard package "
                    "(pip install zstandard), as pandas does; or decompress the file"
                ) from None
            out = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    except UserError:
        raise
    except Exception as err:  # each library has its own error type for a corrupt archive
        raise UserError(
            f"{path}: cannot decompress it as {compression} ({type(err).__name__}: "
            f"{_first_line(err)}); "
            "check the file or decompress it yourself"
        ) from None
    if bad is not None:
        bad.note(f"{path.name}: decompressed ({compression})")
    return out


def _looks_utf16(data: bytes) -> bool:
    """Latin text in UTF-16 without a byte-order mark: the first bytes alternate with zeros."""
    head = data[:32]
    if len(head) < 8:
        return False
    odd, even = head[1::2], head[0::2]
    return (odd.count(0) == len(odd) and 0 not in even) or (
        even.count(0) == len(even) and 0 not in odd
    )


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def _split_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line with its "\\n") split on "\\n" only."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return list(enumerate(lines, start=1))


def decoded_lines(path: Path, params: DataParams, bad: BadRows) -> list[tuple[int, str]]:
    """(line number, text) of every line, split on "\\n" only; undecodable lines are errors
    (or skipped, one by one, under ``on_bad_rows: skip`` for a UTF-8 file)."""
    data = read_bytes(path, bad)
    encoding = params.encoding
    if not _is_utf8(encoding):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as err:
            line = data.count(b"\n", 0, err.start) + 1
            raise UserError(
                f"{path}, line {line}: not valid {encoding} (byte {err.start}); check "
                "data.encoding (the encoding the file was saved in) or re-save it as UTF-8"
            ) from None
        bad.note(f"{path.name}: read as {encoding} (data.encoding)")
        return _split_lines(text.removeprefix("\ufeff"))
    for bom, name in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
        (codecs.BOM_UTF32_BE, "utf-32"),
    ):
        if data.startswith(bom):
            raise UserError(
                f"{path}: the file is {name.upper()} (it starts with a {name.upper()} byte-order "
                f"mark), not UTF-8; set data.encoding: {name} or re-save it as UTF-8"
            )
    utf16 = "it looks like UTF-16; set data.encoding: utf-16 or re-save it as UTF-8"
    if _looks_utf16(data):  # ASCII text in UTF-16 without a byte-order mark is valid UTF-8
        raise UserError(f"{path}: every other byte at the start is zero: {utf16}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        if data[:64].count(0) > 16:
            hint = utf16
        else:
            hint = (
                "re-save the file as UTF-8, or set data.encoding to the file's encoding "
                "(e.g. cp1252 for Excel on Windows)"
            )
        if bad.policy != "skip":
            raise UserError(
                f"{path}, line {line}: not valid UTF-8 (byte {err.start}); {hint}"
            ) from None
        lines = []
        parts = data.split(b"\n")
        for no, raw in enumerate(parts, start=1):
            end = "\n" if no < len(parts) else ""
            try:
                lines.append((no, raw.decode("utf-8-sig" if no == 1 else "utf-8") + end))
            except UnicodeDecodeError:
                bad.report(path, "line", no, "", "not valid UTF-8", raw.decode("utf-8", "replace"))
        return [(no, t) for no, t in lines if t]
    return _split_lines(text)


# --------------------------------------------------------------------------- delimited text


@contextmanager
def _no_field_limit() -> Iterator[None]:
    """The csv module refuses fields over 131,072 characters by default; pandas has no limit."""
    old = csv.field_size_limit()
    try:
        csv.field_size_limit(sys.maxsize)
    except OverflowError:  # a C long is 32 bits on Windows
        csv.field_size_limit(2**31 - 1)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _sentinel(text: str) -> str:
    """A private-use character absent from ``text`` (stands in for a lone carriage return)."""
    for code in range(0xE000, 0xF900):
        if chr(code) not in text:
            return chr(code)
    raise UserError("the file uses every private-use character; cannot read it")  # pragma: no cover


def _guess_delimiter(lines: list[tuple[int, str]]) -> str:
    """The delimiter csv.Sniffer sees in the first lines, or ""."""
    sample = "".join(text for _, text in lines[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ""


def _show(delimiter: str) -> str:
    return "\\t" if delimiter == "\t" else delimiter


def _records(
    path: Path, lines: list[tuple[int, str]], delimiter: str, params: DataParams, bad: BadRows
) -> list[tuple[int, int, list[str]]]:
    """(first line, last line, fields) of every non-blank record.

    A lone carriage return inside a line is an ordinary character (pandas writes one
    unquoted); "\\r\\n" ends a record when the file's first line ends so.
    """
    numbers = [no for no, _ in lines]
    texts = [text for _, text in lines]
    whole = "".join(texts)
    crlf = texts[0].endswith("\r\n")
    cr = _sentinel(whole) if "\r" in whole else ""
    if cr:
        fixed = []
        for text in texts:
            end = (
                "\r\n" if crlf and text.endswith("\r\n") else ("\n" if text.endswith("\n") else "")
            )
            body = text[: len(text) - len(end)]
            fixed.append(body.replace("\r", cr) + end)
        texts = fixed
    quoting: Literal[0, 3] = csv.QUOTE_NONE if params.quoting == "none" else csv.QUOTE_MINIMAL
    reader = csv.reader(iter(texts), delimiter=delimiter, quoting=quoting, strict=True)
    out: list[tuple[int, int, list[str]]] = []
    spanning: list[tuple[int, int]] = []
    with _no_field_limit():
        while True:
            start = reader.line_num
            try:
                rec = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                first, last = numbers[start], numbers[max(start, reader.line_num - 1)]
                if "expected after" not in str(err) and "end of data" not in str(err):
                    what = f"the line cannot be read as {_show(delimiter)}-separated text ({err})"
                elif "end of data" in str(err):
                    what = (
                        f"a quoted field opened on line {first} is never closed, so lines "
                        f"{first}-{last} cannot be read as rows"
                    )
                elif last > first:
                    what = (
                        f"a quoted field opened on line {first} closes on line {last} with more "
                        f"text after the closing quote, so lines {first}-{last} cannot be read "
                        "as rows"
                    )
                else:
                    what = "a quoted field has more text after its closing quote"
                bad.report(
                    path,
                    "line",
                    first,
                    "",
                    f'{what}; double the quotes inside a quoted field (""), or set '
                    "data.quoting: none if quotes are ordinary characters",
                    texts[start],
                )
                continue
            if not rec:
                continue
            if cr:
                rec = [f.replace(cr, "\r") for f in rec]
            first, last = numbers[start], numbers[reader.line_num - 1]
            if last > first:
                spanning.append((first, last))
            out.append((first, last, rec))
    if spanning:
        a, b = spanning[0]
        bad.note(
            f"{path.name}: {len(spanning)} row(s) span several lines (a quoted field holds a "
            f"line break), e.g. lines {a}-{b}; if that is a stray quote, set data.quoting: none"
        )
    return out


def _check_header(path: Path, line: int, names: list[str]) -> None:
    counts = Counter(names)
    dupes = [n for n in counts if counts[n] > 1]
    if dupes:
        name = dupes[0]
        positions = [i + 1 for i, n in enumerate(names) if n == name]
        raise UserError(
            f"{path}, line {line}: column name '{printable(name)}' appears {counts[name]} times in the "
            f"header (columns {', '.join(map(str, positions))}); rename the columns so that "
            "each name is used once"
        )


def _read_delimited(
    path: Path, kind: str, params: DataParams, bad: BadRows, wanted: list[str]
) -> list[tuple[int, Row]]:
    lines = decoded_lines(path, params, bad)
    if not any(text.strip() for _, text in lines):
        raise UserError(f"{path}: the file is empty; expected a header line and data rows")
    if len(lines) == 1 and "\n" not in lines[0][1] and lines[0][1].count("\r") > 1:
        raise UserError(
            f"{path}: the lines end in a lone carriage return (\\r, as old Mac programs wrote); "
            "re-save the file with \\n or \\r\\n line ends"
        )
    delimiter = params.delimiter or ("\t" if kind == "tsv" else ",")
    records = _records(path, lines, delimiter, params, bad)
    if not records:
        raise UserError(f"{path}: no rows could be read; check the quotes in the file")
    first_no, _, first = records[0]
    if params.header is True or (params.header == "auto" and set(wanted) <= set(first)):
        names, records = first, records[1:]
        _check_header(path, first_no, names)
    elif params.column_names:
        names = params.column_names
    elif params.header is False:
        raise UserError(f"{path}: data.header is false, so data.column_names must name the columns")
    else:
        header = lines[0][1].rstrip("\r\n").replace("\r", " ")
        for other in DELIMITERS:
            try:
                fields = next(csv.reader([header], delimiter=other), [])
            except csv.Error:
                continue
            if other != delimiter and set(wanted) <= set(fields):
                raise UserError(
                    f"{path}, line {first_no}: the header is '{_show(other)}'-separated "
                    f"({fields[:6]}), not '{_show(delimiter)}'-separated; set "
                    f"data.delimiter: '{_show(other)}'"
                )
        raise UserError(
            f"{path}, line {first_no}: the first row {first[:6]} does not name the columns "
            f"{wanted}; if the file has no header set data.column_names, otherwise fix "
            "data.text_fields / data.label_field"
        )
    if not records:
        raise UserError(f"{path}: no data rows (only a header); add rows")
    seen = ""
    rows: list[tuple[int, Row]] = []
    for line, _, rec in records:
        if len(rec) != len(names):
            if len(rec) == 1 and not seen:
                seen = _guess_delimiter(lines) or "?"
            if len(rec) == 1 and seen not in ("?", delimiter):
                hint = (
                    f"the file looks '{_show(seen)}'-separated, not '{_show(delimiter)}'; "
                    f"set data.delimiter: '{_show(seen)}'"
                )
            else:
                hint = "quote fields that contain the delimiter"
                if params.quoting != "none":
                    hint += ", or set data.quoting: none if quotes are ordinary characters"
            bad.report(
                path,
                "line",
                line,
                "",
                f"expected {len(names)} columns as in the header, found {len(rec)}; {hint}",
                delimiter.join(rec),
            )
            continue
        rows.append((line, dict(zip(names, rec, strict=True))))
    return rows


# --------------------------------------------------------------------------- JSONL, Parquet


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``' ``object_pairs_hook``: the object, or :class:`_DuplicateKey` naming
    the first key (in order) that appears twice."""
    obj = dict(pairs)
    if len(obj) != len(pairs):  # counted only then: this runs for every object of a file
        counts = Counter(k for k, _ in pairs)
        raise _DuplicateKey(next(k for k in counts if counts[k] > 1))
    return obj


# json.loads(text, object_pairs_hook=...) builds a decoder a call: one, for a line each
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # half of a pair, or both halves


def _lone_surrogate(obj: Any) -> bool:
    """Whether a parsed JSON value holds half a surrogate pair (``"\\ud800"`` alone), which
    no UTF-8 text can: Arrow refuses it."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _is_json_array(lines: list[tuple[int, str]]) -> bool:
    first = next(text for _, text in lines if text.strip())
    return first.lstrip().startswith("[")


def _read_json_array(path: Path, lines: list[tuple[int, str]]) -> list[tuple[int, Row]]:
    """A JSON file holding one list of objects (pandas ``to_json(orient="records")``)."""
    whole = "".join(text for _, text in lines)
    try:
        obj = _DECODER.decode(whole)
    except json.JSONDecodeError as err:
        raise UserError(
            f"{path}, line {err.lineno}: not valid JSON ({err.msg}); fix the file"
        ) from None
    except _DuplicateKey as err:
        raise UserError(
            f"{path}: key '{printable(str(err))}' appears more than once in an object; keep one"
        ) from None
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deeply; fix the file") from None
    except ValueError as err:  # e.g. an integer of more than 4,300 digits
        raise UserError(f"{path}: not valid JSON ({_first_line(err)}); fix the file") from None
    if _SURROGATE_ESCAPE.search(whole) and _lone_surrogate(obj):
        raise UserError(
            f"{path}: a \\ud800-\\udfff escape that is half of a pair is not text; fix the file"
        )
    if not isinstance(obj, list) or not all(isinstance(o, dict) for o in obj):
        raise UserError(
            f"{path}: expected a list of objects, one per row (pandas: "
            "to_json(orient='records')) or one object per line"
        )
    if not obj:
        raise UserError(f"{path}: the JSON list is empty; add rows")
    return list(enumerate(obj, start=1))


def _read_jsonl(path: Path, lines: list[tuple[int, str]], bad: BadRows) -> list[tuple[int, Row]]:
    rows: list[tuple[int, Row]] = []
    if not any(text.strip() for _, text in lines):
        raise UserError(f"{path}: the file is empty; expected one JSON object per line")
    for line_no, line in lines:
        if not line.strip():
            continue
        try:
            obj = _DECODER.decode(line)
        except json.JSONDecodeError as err:
            bad.report(path, "line", line_no, "", f"not valid JSON ({err.msg}); fix the line", line)
            continue
        except _DuplicateKey as err:
            bad.report(
                path,
                "line",
                line_no,
                str(err),
                "the key appears more than once in the object; keep one",
                line,
            )
            continue
        except RecursionError:
            bad.report(path, "line", line_no, "", "JSON nested too deeply; fix the line", line)
            continue
        except ValueError as err:  # e.g. an integer of more than 4,300 digits
            reason = f"not valid JSON ({_first_line(err)}); fix the line"
            bad.report(path, "line", line_no, "", reason, line)
            continue
        if _SURROGATE_ESCAPE.search(line) and _lone_surrogate(obj):
            reason = "a \\ud800-\\udfff escape that is half of a pair is not text; fix the line"
            bad.report(path, "line", line_no, "", reason, line)
            continue
        if not isinstance(obj, dict):
            bad.report(path, "line", line_no, "", "expected a JSON object per line", line)
            continue
        rows.append((line_no, obj))
    return rows


def _read_parquet(path: Path, bad: BadRows) -> list[tuple[int, Row]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def unreadable(err: BaseException) -> UserError:
        return UserError(f"{path}: not a readable Parquet file ({_first_line(err)}); re-export it")

    # a damaged file fails in Arrow, in Thrift, or when its bytes are decoded as UTF-8
    errors = (pa.ArrowException, OSError, ValueError, OverflowError)
    data = read_bytes(path, bad)
    try:
        names = [str(n) for n in pq.ParquetFile(pa.BufferReader(data)).schema_arrow.names]
    except errors as err:
        raise unreadable(err) from None
    _check_header(path, 1, names)
    try:
        pylist = pq.read_table(pa.BufferReader(data)).to_pylist()
    except errors as err:
        raise unreadable(err) from None
    if not pylist:
        raise UserError(f"{path}: the Parquet file has no rows")
    return [(i, row) for i, row in enumerate(pylist, start=1)]


# --------------------------------------------------------------------------- rows


def keep_clashing_columns(row: Row, consumed: set[str], where: str, bad: BadRows) -> Row:
    """The row with a column the processed data writes itself (``label`` when the label field
    is another column, ``_line``) kept as ``<name>_in_file``, and a note saying so."""
    out: Row = {}
    for key, value in row.items():
        if key is None:
            continue
        if key in PIPELINE_COLUMNS and key not in consumed:
            new = f"{key}_in_file"
            while new in row:
                new += "_"
            bad.note(
                f"{where}: the column '{key}' is kept as '{new}' (the processed data writes its "
                f"own '{key}' column)"
            )
            key = new
        out[key] = value
    return out


def _check_row(
    path: Path,
    where: str,
    line: int,
    row: Row,
    params: DataParams,
    bad: BadRows,
    token: bool = False,
) -> Row | None:
    """The row with its label as a string (``token``: a token task's row, its tags a list
    of strings), or None when it is bad and skipped."""
    label_field = params.label_field
    label = row.get(label_field)
    if label is None or (isinstance(label, str) and not label.strip()):
        what = "missing" if label is None else "empty"
        bad.report(
            path,
            where,
            line,
            label_field,
            f"the label is {what}; fill it in or remove the row",
            str(row)[:80],
        )
        return None
    if token:
        return _check_token_row(path, where, line, row, params, bad)
    numeric = params.task == "regression"  # a number: kept as written, parsed by the family
    if isinstance(label, (bool, dict, list)) or (
        isinstance(label, float) and not label.is_integer() and not numeric
    ):
        bad.report(
            path,
            where,
            line,
            label_field,
            f"label {label!r} is a {type(label).__name__}; labels must be strings or integers",
            str(row)[:80],
        )
        return None
    if not isinstance(label, (str, int, float)):
        bad.report(
            path,
            where,
            line,
            label_field,
            f"label of type {type(label).__name__}; labels must be strings or integers",
            str(row)[:80],
        )
        return None
    for name in params.text_fields:
        text = row.get(name)
        if not isinstance(text, str):
            bad.report(
                path,
                where,
                line,
                name,
                f"expected text, got {text!r}; fill in the text or remove the row",
                str(row)[:80],
            )
            return None
    out = keep_clashing_columns(row, {label_field, *params.text_fields}, path.name, bad)
    if isinstance(label, float):
        label = repr(label) if numeric else int(label)
    out[label_field] = str(label).strip()
    out["_line"] = line
    return out


def _check_token_row(
    path: Path, where: str, line: int, row: Row, params: DataParams, bad: BadRows
) -> Row | None:
    """A token-classification row of a JSONL/JSON/Parquet file (as Hugging Face's CoNLL-2003
    is written: a list of words and a list of tags): the tags as stripped strings (an
    integer tag is kept as its digits), or None when the row is bad and skipped."""
    label_field = params.label_field
    tags = row[label_field]
    if len(params.text_fields) != 1:
        raise UserError(
            f"{path}: a token task has one text field (the list of words); data.text_fields "
            f"is {params.text_fields}"
        )
    field = params.text_fields[0]
    words = row.get(field)

    def skip(column: str, problem: str) -> None:
        bad.report(path, where, line, column, problem, str(row)[:80])

    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        skip(field, f"expected a list of words (strings), got {words!r}")
        return None
    empty = [i for i, w in enumerate(words) if not w.strip()]
    if empty:
        skip(field, f"word {empty[0]} is empty or blank; remove it and its tag")
        return None
    if not isinstance(tags, list) or not all(
        isinstance(t, (str, int)) and not isinstance(t, bool) for t in tags
    ):
        skip(label_field, f"tags must be strings or integers, got {tags!r}")
        return None
    tags = [str(t).strip() for t in tags]
    if not words:
        skip(label_field, "the sentence has no words")
        return None
    if len(words) != len(tags):
        skip(label_field, f"{len(words)} words but {len(tags)} tags; give one tag per word")
        return None
    if not all(tags):
        skip(label_field, f"tag {tags.index('')} is empty")
        return None
    out = keep_clashing_columns(row, {label_field, field}, path.name, bad)
    out[label_field] = tags
    out["_line"] = line
    return out


def read_records(
    path: Path, params: DataParams, bad: BadRows, wanted: list[str] | None = None
) -> tuple[list[tuple[int, Row]], str]:
    """``([(line or row number, raw row)], "line" or "row")`` of a CSV/TSV, JSONL/JSON or
    Parquet file, unchecked beyond the format: the reading :func:`read_rows` does for
    training, and ``nlpflow predict`` for new files. ``wanted``: the columns a header must
    name (default: the text fields and the label field); the rows are not checked for them.
    """
    if path.is_dir():
        raise UserError(f"{path}: is a directory; name a data file")
    if not path.is_file():
        raise UserError(f"{path}: file not found; check data.source / data.files in params.yaml")
    kind = detect_format(path, params.format)
    where = "row" if kind == "parquet" else "line"
    if kind == "jsonl":
        lines = decoded_lines(path, params, bad)
        # a .json file may hold one list of objects; a .jsonl file holds one object per line
        array = _suffixes(path)[0] == ".json"
        if array and any(text.strip() for _, text in lines) and _is_json_array(lines):
            where = "row"
            raw = _read_json_array(path, lines)
        else:
            raw = _read_jsonl(path, lines, bad)
            if array and len(raw) == 1 and all(isinstance(v, dict) for v in raw[0][1].values()):
                raise UserError(
                    f"{path}: one object of columns (pandas' default to_json); write it with "
                    "to_json(orient='records') or to_json(orient='records', lines=True)"
                )
    elif kind == "parquet":
        raw = _read_parquet(path, bad)
    elif kind in ("csv", "tsv"):
        columns = [*params.text_fields, params.label_field] if wanted is None else wanted
        raw = _read_delimited(path, kind, params, bad, columns)
    else:
        raise UserError(f"{path}: format '{kind}' holds token tags; it needs a token task source")
    return raw, where


@dataclass
class RecordStream:
    """Records of a file in chunks (:func:`stream_records`): ``chunks`` yields lists of
    ``(line or row number, raw row)``; ``total`` is the number of records, bad ones included
    (JSONL: the lines that are not blank), known before the chunks are read; ``streamed``: whether the file is read a chunk at a
    time (else it was parsed whole)."""

    chunks: Iterator[list[tuple[int, Row]]]
    total: int
    streamed: bool


def _jsonl_chunks(path: Path, bad: BadRows, size: int) -> Iterator[list[tuple[int, Row]]]:
    """A UTF-8 JSONL file a chunk of lines at a time, each line parsed as :func:`_read_jsonl`
    parses it; a line that is not UTF-8 is a bad row, as in :func:`decoded_lines`."""
    with path.open("rb") as fh:
        lines: list[tuple[int, str]] = []
        for no, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8-sig" if no == 1 else "utf-8")
            except UnicodeDecodeError:
                bad.report(path, "line", no, "", "not valid UTF-8", raw.decode("utf-8", "replace"))
                continue
            if text.strip():
                lines.append((no, text))
            if len(lines) >= size:
                yield _read_jsonl(path, lines, bad)
                lines = []
        if lines:
            yield _read_jsonl(path, lines, bad)


ROW_CHUNK = 20_000  # lines (rows) a chunk of checked_row_chunks: about 10 MB of Python rows


class NotStreamed(Exception):
    """The file needs :func:`read_rows` whole: it names the problem in its own order."""


def rows_stream(path: Path, params: DataParams) -> bool:
    """Whether :func:`checked_row_chunks` may read this file: a sequence-classification task
    (``auto`` or ``sequence``) and an uncompressed JSON Lines file (``.jsonl``; a ``.json``
    file may be one array) in UTF-8 without a UTF-16/32 byte-order mark or look, whose first
    non-blank line is one object with the label, not a list (a token task's tags); or an
    uncompressed Parquet file whose label column is not a list."""
    if params.task not in ("auto", "sequence"):
        return False
    try:
        if not path.is_file():
            return False
        kind = detect_format(path, params.format)
    except UserError:  # the reader names the problem
        return False
    suffix, compression = _suffixes(path)
    if compression:
        return False
    if kind == "parquet":
        return _parquet_label_is_scalar(path, params.label_field)
    if kind != "jsonl" or suffix == ".json" or not _is_utf8(params.encoding):
        return False
    with path.open("rb") as fh:
        head = fh.read(64)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or _looks_utf16(head):
        return False  # the UTF-32 marks start like UTF-16's
    first = _first_object(path)
    # read_rows takes the task from that row: tags in a list make it a token task's file
    return first is not None and not isinstance(first.get(params.label_field, []), list)


def _first_object(path: Path, within: int = 1000) -> Row | None:
    """The first line of a JSON Lines file that :func:`_jsonl_chunks` parses into an object
    (the row :func:`read_rows` takes the task from), among the first ``within`` lines."""
    with path.open("rb") as fh:
        for no, raw in zip(range(1, within + 1), fh, strict=False):
            try:
                text = raw.decode("utf-8-sig" if no == 1 else "utf-8")
                obj = _DECODER.decode(text) if text.strip() else None
            except (ValueError, RecursionError):  # not UTF-8, not JSON, a key twice
                continue
            if isinstance(obj, dict):
                return obj
    return None


def _parquet_label_is_scalar(path: Path, label_field: str) -> bool:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.ParquetFile(path).schema_arrow
    except (pa.ArrowException, OSError, ValueError, OverflowError):
        return False
    if label_field not in schema.names:
        return False
    kind = schema.field(label_field).type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    # lists of every kind, maps (lists of pairs) and structs: not one class a row
    return not pa.types.is_nested(kind)


def checked_row_chunks(
    path: Path, params: DataParams, bad: BadRows, size: int = 0
) -> Iterator[list[Row]]:
    """:func:`read_rows`' rows of a JSON Lines or Parquet file (see :func:`rows_stream`),
    ``size`` lines or rows at a time (default :data:`ROW_CHUNK`), the memory flat, for as
    long as every row is good: raises :class:`NotStreamed` at the first bad row (under any
    ``data.on_bad_rows``), when the first row lacks a configured column, or when there is no
    row, so that the caller reads the file with :func:`read_rows`, which reports them in its
    own order (every line parsed before any row is checked). Notes (a column renamed) go to
    ``bad``."""
    trial = BadRows("fail", notes=bad.notes)  # a bad row raises: the file is read whole
    wanted = [*params.text_fields, params.label_field]
    size = size or ROW_CHUNK
    first = True
    try:
        if detect_format(path, params.format) == "parquet":
            chunks, _ = _parquet_chunks(path, size)
            where = "row"
        else:
            chunks, where = _jsonl_chunks(path, trial, size), "line"
        for chunk in chunks:
            if first and any(c not in chunk[0][1] for c in wanted):
                raise NotStreamed
            first = False
            rows = []
            for line, row in chunk:
                checked = _check_row(path, where, line, row, params, trial)
                if checked is None:
                    raise NotStreamed
                rows.append(checked)
            yield rows
    except UserError:
        raise NotStreamed from None
    if first:
        raise NotStreamed


def _parquet_chunks(path: Path, size: int) -> tuple[Iterator[list[tuple[int, Row]]], int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    errors = (pa.ArrowException, OSError, ValueError, OverflowError)
    try:
        # pre_buffer (the default) keeps every row group read so far: memory grows with rows
        file = pq.ParquetFile(path, pre_buffer=False)
        names = [str(n) for n in file.schema_arrow.names]
        total = file.metadata.num_rows
    except errors as err:
        raise UserError(
            f"{path}: not a readable Parquet file ({_first_line(err)}); re-export it"
        ) from None
    _check_header(path, 1, names)
    if not total:
        raise UserError(f"{path}: the Parquet file has no rows")

    def chunks() -> Iterator[list[tuple[int, Row]]]:
        start = 1
        try:
            for batch in file.iter_batches(batch_size=size):
                rows = batch.to_pylist()
                yield list(enumerate(rows, start=start))
                start += len(rows)
        except errors as err:
            raise UserError(
                f"{path}, row {start}: not a readable Parquet file ({_first_line(err)}); "
                "re-export it"
            ) from None

    return chunks(), total


def stream_records(
    path: Path, params: DataParams, bad: BadRows, wanted: list[str], size: int
) -> RecordStream:
    """The records of ``path`` in chunks of up to ``size``, read as :func:`read_records`
    reads them. Uncompressed UTF-8 JSONL and Parquet files are read a chunk at a time (the
    memory stays flat); CSV/TSV (a quoted field may span lines), JSON arrays, CoNLL
    (sentences of words; a tag column is not needed), compressed files and other encodings
    are parsed whole, then handed out in chunks."""
    if path.is_file():
        kind = detect_format(path, params.format)
        suffix, compression = _suffixes(path)
        with path.open("rb") as fh:
            head = fh.read(64)
        utf8 = _is_utf8(params.encoding) and not head.startswith(
            (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
        )
        if kind == "jsonl" and suffix != ".json" and not compression and utf8:
            if _looks_utf16(head):
                raise UserError(
                    f"{path}: every other byte at the start is zero: it looks like UTF-16; "
                    "re-save it as UTF-8"
                )
            with path.open("rb") as fh:
                total = sum(1 for raw in fh if raw.strip())
            if not total:
                raise UserError(f"{path}: the file is empty; expected one JSON object per line")
            return RecordStream(_jsonl_chunks(path, bad, size), total, True)
        if kind == "parquet" and not compression:
            chunks, total = _parquet_chunks(path, size)
            return RecordStream(chunks, total, True)
    if path.is_file() and detect_format(path, params.format) == "conll":
        # a sentence per record, its words under the (one) text field; tags not needed
        field_name = wanted[0] if len(wanted) == 1 else "tokens"
        sentences = read_conll(path, params, bad, tags=False)
        rows = [(s["_line"], {field_name: s["tokens"]}) for s in sentences]
    else:
        rows, _ = read_records(path, params, bad, wanted)
    chunks = iter([rows[i : i + size] for i in range(0, len(rows), size)])
    return RecordStream(chunks, len(rows) + len(bad.rows), False)


def read_rows(path: Path, params: DataParams, bad: BadRows) -> list[Row]:
    """Rows of one sequence-classification file, each with text fields, label (str), ``_line``.

    Raises UserError naming the file (and line and column) for anything the user must fix.
    """
    raw, where = read_records(path, params, bad)
    if not raw:
        raise UserError(f"{path}: no usable data rows; check the file and data.on_bad_rows")
    columns = list(raw[0][1])
    missing = [c for c in [*params.text_fields, params.label_field] if c not in columns]
    if missing:
        raise UserError(
            f"{path}: column(s) {missing} not found; the file has {columns}; "
            "set data.text_fields and data.label_field to existing columns"
        )
    # a token task's rows: named, or with data.task auto a list label in the first row (as
    # prepare._fields decides the task)
    first = raw[0][1].get(params.label_field)
    token = params.task == "token" or (params.task == "auto" and isinstance(first, list))
    rows = []
    for line, row in raw:
        checked = _check_row(path, where, line, row, params, bad, token)
        if checked is not None:
            rows.append(checked)
    if not rows:
        raise UserError(f"{path}: no usable data rows; every row was bad (see data.on_bad_rows)")
    return rows


# --------------------------------------------------------------------------- CoNLL

_SPACES = re.compile(" +")


def _conll_columns(body: str) -> list[str]:
    """Columns of a token line: tab-separated when it holds a tab, else space-separated."""
    if "\t" in body:
        return body.split("\t")
    return _SPACES.split(body.strip(" "))


def read_conll(path: Path, params: DataParams, bad: BadRows, tags: bool = True) -> list[Row]:
    """Sentences of a CoNLL file: ``tokens`` and ``tags`` (IOB1 or IOB2 as written).

    Token per line with the tag in ``data.conll_tag_column``, columns separated by tabs (a
    token may then hold spaces) or by spaces, a blank line between sentences; ``-DOCSTART-``
    lines are ignored wherever they stand. Under ``on_bad_rows: skip`` a bad line skips its
    whole sentence, never the line alone. ``tags`` False (``nlpflow predict``): the words
    only, one column or more, the other columns neither read nor checked.
    """
    if not path.is_file():
        raise UserError(f"{path}: file not found; check data.source / data.files in params.yaml")
    sentences = list(conll_sentences(path, params, bad, decoded_lines(path, params, bad), tags))
    if not sentences:
        raise no_sentences(path)
    return sentences


def no_sentences(path: Path) -> UserError:
    """The error of a CoNLL file without a usable sentence."""
    return UserError(f"{path}: no sentences found; expected token and tag columns")


def conll_streams(path: Path, params: DataParams) -> bool:
    """Whether a CoNLL file can be read line by line (:func:`utf8_lines`) as
    :func:`decoded_lines` reads it whole: an uncompressed file, ``data.encoding`` UTF-8, no
    UTF-16/32 byte-order mark or look, every byte valid UTF-8 (checked in 1 MB blocks). Any
    other file goes to :func:`read_conll`, which names its problem."""
    try:
        if not path.is_file() or detect_format(path, params.format) != "conll":
            return False
    except UserError:  # the reader names the problem
        return False
    if _suffixes(path)[1] or not _is_utf8(params.encoding):
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as fh:
        head = fh.read(64)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or _looks_utf16(head):
            return False  # the UTF-32 marks start like UTF-16's
        fh.seek(0)
        try:
            while block := fh.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def utf8_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a file :func:`conll_streams` accepts, one line at a time:
    what :func:`decoded_lines` gives for it, without holding the file."""
    with path.open("rb") as fh:
        for no, raw in enumerate(fh, start=1):
            yield no, raw.decode("utf-8-sig" if no == 1 else "utf-8")


def conll_sentences(
    path: Path,
    params: DataParams,
    bad: BadRows,
    lines: Iterable[tuple[int, str]],
    tags: bool = True,
    width: int = 0,
    prev: int = 0,
) -> Generator[Row, None, int]:
    """The sentences of :func:`read_conll` from the file's ``lines`` (line number, text),
    one at a time, bad lines reported to ``bad`` as they are met. To go on reading after a
    blank line (a sentence boundary): ``width``, the columns the file's first token line
    set (0: none yet), and ``prev``, the line before; returns the ``width`` reached."""
    tokens: list[str] = []
    found: list[str] = []  # the tags
    start = 0
    last = 0
    problem: tuple[int, str, str, str] | None = None  # the sentence's first bad line

    def flush() -> Row | None:
        nonlocal problem
        sentence: Row | None = None
        if problem is not None:
            no, column, reason, text = problem
            skipped = f" (sentence at lines {start}-{last} skipped)"
            reported = [b for b in bad.rows if b.file == str(path) and b.line == no]
            if reported:  # an undecodable line, reported as it was read
                reported[0].reason += skipped
            else:
                bad.report(path, "line", no, column, reason + skipped, text)
        elif tokens:
            sentence = {"tokens": list(tokens), "_line": start}
            if tags:
                sentence["tags"] = list(found)
        tokens.clear()
        found.clear()
        problem = None
        return sentence

    for no, text in lines:
        if no > prev + 1 and bad.policy == "skip":
            # lines prev+1 .. no-1 were undecodable (and reported): their sentence goes too
            if not tokens and problem is None:
                start = prev + 1
            problem = problem or (prev + 1, "", "not valid UTF-8", "")
            last = no - 1
        prev = no
        body = text.removesuffix("\n").removesuffix("\r")
        if not body.strip(" \t"):
            if (sentence := flush()) is not None:
                yield sentence
            continue
        parts = _conll_columns(body)
        if parts[0] == "-DOCSTART-":
            if (sentence := flush()) is not None:
                yield sentence
            continue
        if not tokens and problem is None:
            start = no
        last = no
        width = width or len(parts)
        reason = column = ""
        if len(parts) < (2 if tags else 1) or len(parts) != width:
            reason = (
                f"expected {max(width, 2 if tags else 1)} whitespace-separated columns "
                f"({'token ... tag' if tags else 'the token first'}), found {len(parts)}"
            )
        elif not parts[0]:
            reason = "the token is empty"
        elif tags:
            tag = parts[params.conll_tag_column]
            if tag != "O" and not (len(tag) > 2 and tag[:2] in ("B-", "I-")):
                column = f"column {params.conll_tag_column}"
                reason = f"tag {tag!r} is not O, B-TYPE or I-TYPE"
        if reason:
            if bad.policy != "skip":
                bad.report(path, "line", no, column, reason, text)
            problem = problem or (no, column, reason, text)
            continue
        tokens.append(parts[0])
        found.append(parts[params.conll_tag_column] if tags else "")
    after = [b.line for b in bad.rows if b.file == str(path) and b.line > prev]
    if after and (tokens or problem):  # the file's last line(s) undecodable
        problem = problem or (after[0], "", "not valid UTF-8", "")
        last = after[-1]
    if (sentence := flush()) is not None:
        yield sentence
    return width


# --------------------------------------------------------------------------- directories


def split_files(directory: Path) -> dict[str, Path]:
    """The data files of a directory source, by split name."""
    if not directory.is_dir():
        raise UserError(f"{directory}: not a directory")
    found: dict[str, Path] = {}
    files = sorted(p for p in directory.iterdir() if p.is_file() and is_data_file(p))
    for split, names in SPLIT_NAMES.items():
        for name in names:
            match = [p for p in files if data_stem(p).lower() == name]
            if match:
                found[split] = match[0]
                break
    if not files:
        listing = sorted(p.name for p in directory.iterdir())
        raise UserError(
            f"{directory}: no data files (.csv, .tsv, .jsonl, .parquet, .conll) in the directory; "
            f"it has {listing or 'nothing'}"
        )
    if "train" not in found:
        raise UserError(
            f"{directory}: no train file found (train.csv, .tsv, .jsonl, .parquet, .conll); "
            f"the directory has {sorted(p.name for p in directory.iterdir())}; "
            "name the files or set data.files"
        )
    return found
