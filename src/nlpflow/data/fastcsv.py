"""CSV and TSV files read in Arrow record batches, when the strict Python reader would read
them the same way.

The Python reader (:func:`nlpflow.data.files.read_rows`) names the file, line and column of
every problem, which needs it to hold the whole file as Python objects. Most files have no
problem: this reader streams those in blocks of about 4 MB through ``pyarrow.csv`` and keeps
memory flat. It takes a file only when every line is a record the ``csv`` module (strict,
minimal quoting) reads exactly as pyarrow does: plain UTF-8 without NUL bytes or carriage
returns, a header naming the configured columns, and each non-blank line matching the
record pattern (quoted fields closed before the delimiter, no field spanning lines). On
anything else it raises :class:`NotFast` and the caller reads the file with the Python
reader, which explains the problem or handles it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nlpflow.data.files import PIPELINE_COLUMNS, _suffixes, detect_format
from nlpflow.params import DataParams

if TYPE_CHECKING:
    import pyarrow as pa

BLOCK = 4 * 1024 * 1024
LINE_COLUMN = "_line"


class NotFast(Exception):
    """The file needs the Python reader."""


def _record_pattern(delimiter: str, columns: int, crlf: bool = False) -> str:
    """A line (without its ``\\n``; ``crlf``: with its ``\\r`` if any) that is one record."""
    d = f"\\x{{{ord(delimiter):x}}}"
    field = f'(?:"(?:[^"]|"")*"|[^"{d}\\r][^{d}\\r]*|)'
    end = "\\r?$" if crlf else "$"
    return f"^{field}(?:{d}{field}){{{columns - 1}}}{end}"


def _as_text(data: bytes) -> pa.Array:
    """``data`` as a one-element Arrow string array, without a copy; raises :class:`NotFast`
    when it is not UTF-8 (checked only when it is not plain ASCII)."""
    import pyarrow as pa

    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    text = pa.LargeStringArray.from_buffers(1, offsets, pa.py_buffer(data))
    if not data.isascii():
        try:
            text.validate(full=True)
        except pa.ArrowInvalid:
            raise NotFast from None
    return text


def _header(path: Path, params: DataParams, delimiter: str) -> tuple[list[str], int, bool]:
    """Column names, the byte length of the header line (BOM included) and whether it ends
    in ``\\r\\n`` (then, as for the Python reader, ``\\r\\n`` ends every record)."""
    with open(path, "rb") as fh:
        head = fh.readline()
    if not head.endswith(b"\n"):
        raise NotFast
    crlf = head.endswith(b"\r\n")
    if b"\r" in head[: len(head) - (2 if crlf else 1)]:
        raise NotFast
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotFast from None
    try:
        line = text.removesuffix("\n").removesuffix("\r") if crlf else text.removesuffix("\n")
        names = next(csv.reader([line], delimiter=delimiter, strict=True))
    except (csv.Error, StopIteration):
        raise NotFast from None
    wanted = [*params.text_fields, params.label_field]
    consumed = set(wanted)
    clash = [n for n in names if n in PIPELINE_COLUMNS and n not in consumed]
    if not set(wanted) <= set(names) or len(set(names)) != len(names) or clash:
        raise NotFast
    return names, len(head), crlf


def eligible(path: Path, params: DataParams) -> bool:
    """Whether this file may be streamed (format, encoding and settings; the lines are
    checked as they are read)."""
    if not path.is_file():
        return False
    try:
        kind = detect_format(path, params.format)
    except Exception:
        return False
    return (
        kind in ("csv", "tsv")
        and not _suffixes(path)[1]
        and params.encoding.lower().replace("_", "-") in ("utf-8", "utf8")
        and params.quoting != "none"
        and (params.header is True or params.header == "auto")
        and path.stat().st_size > 0
    )


def read_batches(path: Path, params: DataParams) -> Iterator[pa.Table]:
    """Tables of string columns (every column of the file) plus ``_line`` (the line each row
    is on), in file order. Raises :class:`NotFast` (possibly after some batches) when the
    file needs the Python reader."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    kind = detect_format(path, params.format)
    delimiter = params.delimiter or ("\t" if kind == "tsv" else ",")
    names, header_bytes, crlf = _header(path, params, delimiter)
    pattern = _record_pattern(delimiter, len(names), crlf)
    parse = pacsv.ParseOptions(
        delimiter=delimiter,
        quote_char='"',
        double_quote=True,
        escape_char=False,
        newlines_in_values=False,
        ignore_empty_lines=True,
    )
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        check_utf8=False,  # each block is checked before it is parsed (_as_text)
    )
    read = pacsv.ReadOptions(column_names=names, use_threads=True, block_size=BLOCK)
    line = 1  # lines before the block
    rows = 0
    with open(path, "rb") as fh:
        fh.seek(header_bytes)
        carry = b""
        while True:
            block = fh.read(BLOCK)
            data = carry + block
            if block:
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                data, carry = data[: cut + 1], data[cut + 1 :]
            elif not data:
                break
            else:
                carry = b""
            if b"\x00" in data:
                raise NotFast
            # \r\n ends a record when the header line ends so (pyarrow reads it as a line
            # end); any other \r is ordinary to the Python reader, a line end to pyarrow
            if data.count(b"\r") != (data.count(b"\r\n") if crlf else 0):
                raise NotFast
            text = _as_text(data)
            lines = pc.list_flatten(pc.split_pattern(text, "\n"))
            if data.endswith(b"\n"):
                lines = lines.slice(0, len(lines) - 1)
            filled = pc.greater(pc.binary_length(lines), 0)
            if crlf:  # "\r" alone is a blank line
                filled = pc.and_(filled, pc.not_equal(lines, "\r"))
            filled = np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)
            numbers = line + 1 + np.flatnonzero(filled)
            line += len(lines)
            if not len(numbers):
                continue
            good = pc.match_substring_regex(lines.filter(pa.array(filled)), pattern)
            if not pc.all(good).as_py():
                raise NotFast
            try:
                table = pacsv.read_csv(
                    io.BytesIO(data),
                    read_options=read,
                    parse_options=parse,
                    convert_options=convert,
                )
            except pa.ArrowInvalid:
                raise NotFast from None
            if table.num_rows != len(numbers):
                raise NotFast
            rows += table.num_rows
            yield table.append_column(LINE_COLUMN, pa.array(numbers, pa.int64()))
    if not rows:
        raise NotFast
