"""Round trips: what pandas, json and a CoNLL writer write, the loader reads back exactly.

Random tables of unicode text (quotes, delimiters, line breaks of every kind, tabs, control
and separator characters, emoji, fields longer than the csv module's default limit, empty
texts) are written as users' tools write them and read through ``read_rows`` /
``read_conll``: the same rows, texts and labels must come back. Examples are bounded and
derandomized, so the suite stays fast and every run checks the same cases.
"""

from __future__ import annotations

import json
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nlpflow.data import fastcsv
from nlpflow.data.files import BadRows, read_conll, read_rows
from nlpflow.params import DataParams

# Characters users' texts really hold and parsers trip on: the delimiters, quotes, every
# character str.splitlines breaks on, NUL and other controls, a BOM, emoji, private use.
SPECIAL = [
    *",;\t|\"'\\\n\r\x00\x0b\x0c\x1c\x1d\x1e\x1f\x7f\x85\xa0\u2028\u2029\ufeff",
    "\r\n",
    "\U0001f600",  # emoji
    "\U0001f469\u200d\U0001f4bb",  # emoji joined by a zero-width joiner
    "\ue000",  # private use
    "\u200b",  # zero-width space
    "e\u0301",  # a combining accent
]
CHAR = st.one_of(st.sampled_from(SPECIAL), st.characters(exclude_categories=["Cs"]))
SHORT_TEXT = st.lists(CHAR, max_size=12).map("".join)
# now and then a field longer than the csv module's default limit of 131,072 characters
TEXT = st.one_of(
    SHORT_TEXT,
    st.builds(lambda t: (t or "x") * (140_000 // max(1, len(t or "x"))), SHORT_TEXT),
)
LABEL = st.lists(CHAR, min_size=1, max_size=6).map("".join).filter(lambda s: s.strip() == s != "")
TABLE = st.lists(st.tuples(TEXT, TEXT, LABEL), min_size=1, max_size=6)
LONG = 'a,"b"\n\x0c' * 30_000  # 150,000 characters

PROPS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _params(**kw: Any) -> DataParams:
    base: dict[str, Any] = {"source": "x", "text_fields": ["first", "second"], "label_field": "y"}
    base.update(kw)
    return DataParams(**base)


def _frame(table: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(len(table))],
            "first": [a for a, _, _ in table],
            "second": [b for _, b, _ in table],
            "y": [y for _, _, y in table],
        }
    )


def _read_back(path: Path, **kw: Any) -> list[tuple[str, str, str, str]]:
    rows = read_rows(path, _params(**kw), BadRows("fail"))
    return [(r["id"], r["first"], r["second"], r["y"]) for r in rows]


def _write_csv(frame: pd.DataFrame, path: Path, sep: str, crlf: bool, bom: bool) -> Path:
    """``frame`` as pandas writes it: ``sep``-separated, CRLF or LF, with a BOM or without."""
    frame.to_csv(
        path,
        sep=sep,
        index=False,
        lineterminator="\r\n" if crlf else "\n",
        encoding="utf-8-sig" if bom else "utf-8",
    )
    return path


def _expected(table: list[tuple[str, str, str]]) -> list[tuple[str, str, str, str]]:
    return [(f"r{i}", a, b, y) for i, (a, b, y) in enumerate(table)]


@PROPS
@given(table=TABLE, crlf=st.booleans(), bom=st.booleans())
@example(table=[("a\x0cb", "c\rd", "pos")], crlf=False, bom=False)  # the form feed
@example(table=[(LONG, "", "pos"), ("x", "y\r", "neg")], crlf=False, bom=False)
@example(table=[("x", "y\r", "neg")], crlf=True, bom=True)
def test_pandas_csv_and_tsv_read_back_exactly(
    table: list[tuple[str, str, str]], crlf: bool, bom: bool
) -> None:
    frame = _frame(table)
    with TemporaryDirectory() as tmp:
        for name, sep in (("t.csv", ","), ("t.tsv", "\t"), ("t.semi.csv", ";")):
            path = _write_csv(frame, Path(tmp) / name, sep, crlf, bom)
            delimiter = ";" if sep == ";" else ""
            assert _read_back(path, delimiter=delimiter) == _expected(table), name


def _streamed(path: Path, **kw: Any) -> list[dict[str, Any]] | None:
    """The rows the Arrow stream reads, or None when it hands the file to the Python reader."""
    try:
        return [r for t in fastcsv.read_batches(path, _params(**kw)) for r in t.to_pylist()]
    except fastcsv.NotFast:
        return None


@PROPS
@given(table=TABLE, crlf=st.booleans(), bom=st.booleans())
@example(table=[("a,b", 'say "hi"', "pos"), ("", "c", "neg")], crlf=True, bom=True)
@example(table=[("x", "y\r", "neg")], crlf=True, bom=False)  # a \r that ends no line
@example(table=[("x", "y\r\nz", "neg")], crlf=True, bom=False)  # a field across lines
def test_the_arrow_stream_reads_pandas_csv_as_the_python_reader_does(
    table: list[tuple[str, str, str]], crlf: bool, bom: bool
) -> None:
    # the stream must take every file without line breaks or NUL inside a field, and read it
    # exactly as the Python reader does (texts, labels, ids, line numbers)
    takes = not any(c in text for row in table for text in row for c in "\n\r\x00")
    frame = _frame(table)
    with TemporaryDirectory() as tmp:
        for name, sep in (("t.csv", ","), ("t.tsv", "\t")):
            path = _write_csv(frame, Path(tmp) / name, sep, crlf, bom)
            streamed = _streamed(path)
            assert (streamed is not None) == takes, name
            if streamed is not None:
                assert streamed == read_rows(path, _params(), BadRows("fail")), name


@PROPS
@given(table=TABLE)
@example(table=[("a\u2028b", "\x85", "pos"), ("", "\x00", "neg")])
def test_pandas_jsonl_and_json_dumps_lines_read_back_exactly(
    table: list[tuple[str, str, str]],
) -> None:
    frame = _frame(table)
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.jsonl"
        for force_ascii in (True, False):
            frame.to_json(path, orient="records", lines=True, force_ascii=force_ascii)
            assert _read_back(path) == _expected(table)
        array = Path(tmp) / "a.json"  # one JSON list of objects, as pandas writes by default
        frame.to_json(array, orient="records", force_ascii=False)
        assert _read_back(array) == _expected(table)
        records = frame.to_dict("records")
        path.write_text(
            "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8"
        )
        assert _read_back(path) == _expected(table)


@PROPS
@given(table=TABLE)
def test_pandas_parquet_reads_back_exactly(table: list[tuple[str, str, str]]) -> None:
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.parquet"
        _frame(table).to_parquet(path, index=False)
        assert _read_back(path) == _expected(table)


# A token holds no column separator and no line break; with spaces as separators no space.
TOKEN_CHAR = CHAR.filter(lambda c: c not in ("\t", "\n", "\r", "\r\n"))
TOKEN = st.lists(TOKEN_CHAR, min_size=1, max_size=6).map("".join)
TAG = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC"])
SENTENCES = st.lists(
    st.lists(st.tuples(TOKEN, TAG), min_size=1, max_size=6), min_size=1, max_size=5
)


def _token_ok(token: str, sep: str) -> bool:
    # A space-separated line cannot hold a token with a space; "-DOCSTART-" is a marker.
    return token != "-DOCSTART-" and (sep == "\t" or " " not in token) and token.strip(" \t")


@PROPS
@given(sentences=SENTENCES, sep=st.sampled_from(["\t", " "]), pos=st.booleans())
@example(sentences=[[("\u200b", "B-PER"), ("\x0c", "I-PER"), ("a\u2028b", "O")]], sep=" ", pos=True)
def test_conll_with_tabs_or_spaces_reads_back_exactly(
    sentences: list[list[tuple[str, str]]], sep: str, pos: bool
) -> None:
    sentences = [[(t, tag) for t, tag in s if _token_ok(t, sep)] for s in sentences]
    sentences = [s for s in sentences if s]
    if not sentences:
        return
    lines = ["-DOCSTART- -X- O O", ""]
    for s in sentences:
        lines += [sep.join([t, "NN", tag] if pos else [t, tag]) for t, tag in s] + [""]
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.conll"
        path.write_text("\n".join(lines), encoding="utf-8")
        got = read_conll(path, _params(), BadRows("fail"))
    assert [(r["tokens"], r["tags"]) for r in got] == [
        ([t for t, _ in s], [tag for _, tag in s]) for s in sentences
    ]
