"""The data-file faults of issue 10, each on its small input with the right value.

Every case is a file as a user's tool writes it: the reader either returns exactly the rows in
it or stops with one line naming the file, the line and what to do.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from nlpflow.data.files import BadRows, read_conll, read_rows, split_files
from nlpflow.data.prepare import load_splits
from nlpflow.errors import UserError
from nlpflow.params import DataParams, ParamsError, load_params


def _params(**kw: Any) -> DataParams:
    base: dict[str, Any] = {"source": "x", "text_fields": ["text"], "label_field": "label"}
    base.update(kw)
    return DataParams(**base)


def _texts(path: Path, **kw: Any) -> list[tuple[str, str]]:
    rows = read_rows(path, _params(**kw), BadRows(kw.pop("on_bad_rows", "fail")))
    return [(r["text"], r["label"]) for r in rows]


# --------------------------------------------------------------------------- duplicate names


def test_duplicate_header_names_are_refused_with_their_positions(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("id,text,label,text\n1,first text,pos,second text\n")
    with pytest.raises(UserError) as err:
        read_rows(path, _params(), BadRows("fail"))
    assert str(err.value) == (
        f"{path}, line 1: column name 'text' appears 2 times in the header (columns 2, 4); "
        "rename the columns so that each name is used once"
    )


def test_duplicate_keys_in_a_json_line_and_parquet_columns_are_refused(tmp_path: Path) -> None:
    jsonl = tmp_path / "dup.jsonl"
    jsonl.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y", "text": "c"}\n')
    with pytest.raises(UserError) as err:
        read_rows(jsonl, _params(), BadRows("fail"))
    assert str(err.value) == (
        f"{jsonl}, line 2, column 'text': the key appears more than once in the object; keep one"
    )
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "dup.parquet"
    table = pa.Table.from_arrays(
        [pa.array(["a"]), pa.array(["x"]), pa.array(["b"])], names=["text", "label", "text"]
    )
    pq.write_table(table, parquet)
    with pytest.raises(UserError) as err:
        read_rows(parquet, _params(), BadRows("fail"))
    assert "column name 'text' appears 2 times in the header (columns 1, 3)" in str(err.value)


# --------------------------------------------------------------------------- quoting

STRAY = (
    "label\ttext\n"
    'ham\t"Hey there, long time no see\n'  # a stray opening quote on line 2
    "spam\tWIN a prize now\n"
    "ham\tare you coming?\n"
    "ham\tok\n"
    'ham\tsee you "soon" then\n'  # line 6: the quote closes, text follows
    "spam\tlast one\n"
)


def test_a_stray_opening_quote_is_named_with_the_lines_it_would_merge(tmp_path: Path) -> None:
    path = tmp_path / "sms.tsv"
    path.write_text(STRAY)
    with pytest.raises(UserError) as err:
        read_rows(path, _params(), BadRows("fail"))
    assert str(err.value) == (
        f"{path}, line 2: a quoted field opened on line 2 closes on line 6 with more text after "
        "the closing quote, so lines 2-6 cannot be read as rows; double the quotes inside a "
        'quoted field (""), or set data.quoting: none if quotes are ordinary characters'
    )


def test_quoting_none_reads_every_line_as_its_own_row(tmp_path: Path) -> None:
    path = tmp_path / "sms.tsv"
    path.write_text(STRAY)
    assert _texts(path, quoting="none") == [
        ('"Hey there, long time no see', "ham"),
        ("WIN a prize now", "spam"),
        ("are you coming?", "ham"),
        ("ok", "ham"),
        ('see you "soon" then', "ham"),
        ("last one", "spam"),
    ]


def test_a_quote_never_closed_is_named_and_skip_drops_the_merged_lines_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "open.csv"
    path.write_text('text,label\nfine,a\n"never closed,b\nmore,a\n')
    with pytest.raises(UserError) as err:
        read_rows(path, _params(), BadRows("fail"))
    assert str(err.value).startswith(f"{path}, line 3: a quoted field opened on line 3 is never")
    bad = BadRows("skip")
    path.write_text('text,label\nfine,a\n"stray" quote,b\nmore,a\n')
    rows = read_rows(path, _params(), bad)
    assert [r["text"] for r in rows] == ["fine", "more"]
    assert [(b.line, b.reason[:40]) for b in bad.rows] == [
        (3, "a quoted field has more text after its c")
    ]


def test_rows_spanning_lines_are_noted_for_the_data_card(tmp_path: Path) -> None:
    """A stray quote that closes exactly at a field's end parses as a valid multi-line field:
    it cannot be refused, so it is shown."""
    path = tmp_path / "multi.csv"
    path.write_text('text,label\n"two\nlines",a\nplain,b\n')
    bad = BadRows("fail")
    assert [r["text"] for r in read_rows(path, _params(), bad)] == ["two\nlines", "plain"]
    assert bad.notes == [
        "multi.csv: 1 row(s) span several lines (a quoted field holds a line break), e.g. "
        "lines 2-3; if that is a stray quote, set data.quoting: none"
    ]


# --------------------------------------------------------------------------- line breaks

OTHER_BREAKS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", OTHER_BREAKS, ids=[f"U+{ord(c):04X}" for c in OTHER_BREAKS])
@pytest.mark.parametrize("policy", ["fail", "skip"])
def test_records_split_only_on_newlines(tmp_path: Path, char: str, policy: str) -> None:
    frame = pd.DataFrame({"text": [f"before{char}after", "next"], "label": ["pos", "neg"]})
    csv = tmp_path / "a.csv"
    frame.to_csv(csv, index=False)
    assert char in csv.read_text(encoding="utf-8")  # pandas leaves it unquoted
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in frame.to_dict("records")),
        encoding="utf-8",
    )
    expected = [(f"before{char}after", "pos"), ("next", "neg")]
    assert _texts(csv, on_bad_rows=policy) == expected
    assert _texts(jsonl, on_bad_rows=policy) == expected


def test_a_field_longer_than_the_csv_modules_limit_reads(tmp_path: Path) -> None:
    review = "a very long review " * 7_000  # 133,000 characters > 131,072
    path = tmp_path / "long.csv"
    pd.DataFrame({"text": [review, "short"], "label": ["pos", "neg"]}).to_csv(path, index=False)
    assert _texts(path) == [(review, "pos"), ("short", "neg")]
    assert _texts(path, on_bad_rows="skip") == [(review, "pos"), ("short", "neg")]
    import csv

    assert csv.field_size_limit() == 131_072  # the module's global setting is restored


# --------------------------------------------------------------------------- delimiters


def test_a_semicolon_file_from_excel_names_the_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefftext;label\r\nsehr gut;pos\r\nnicht gut;neg\r\n".encode())
    with pytest.raises(UserError) as err:
        read_rows(path, _params(), BadRows("fail"))
    assert str(err.value) == (
        f"{path}, line 1: the header is ';'-separated (['text', 'label']), not ','-separated; "
        "set data.delimiter: ';'"
    )
    assert _texts(path, delimiter=";") == [("sehr gut", "pos"), ("nicht gut", "neg")]


def test_a_headerless_semicolon_file_names_the_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text("sehr gut;pos\nnicht gut;neg\nso lala;neg\n")
    with pytest.raises(UserError) as err:
        read_rows(path, _params(column_names=["text", "label"]), BadRows("fail"))
    assert str(err.value) == (
        f"{path}, line 1: expected 2 columns as in the header, found 1; the file looks "
        "';'-separated, not ','; set data.delimiter: ';'"
    )


# --------------------------------------------------------------------------- encodings


def test_utf16_is_named_and_data_encoding_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    frame = pd.DataFrame({"text": ["naïve café", "ok"], "label": ["pos", "neg"]})
    frame.to_csv(path, index=False, encoding="utf-16")
    with pytest.raises(UserError) as err:
        read_rows(path, _params(on_bad_rows="skip"), BadRows("skip"))
    assert str(err.value) == (
        f"{path}: the file is UTF-16 (it starts with a UTF-16 byte-order mark), not UTF-8; "
        "set data.encoding: utf-16 or re-save it as UTF-8"
    )
    assert _texts(path, encoding="utf-16") == [("naïve café", "pos"), ("ok", "neg")]
    for text in ("plain ascii", "naïve café"):  # the first is valid UTF-8, byte for byte
        data = frame.assign(text=[text, "ok"]).to_csv(index=False).encode("utf-16-le")
        path.write_bytes(data)  # no byte-order mark
        with pytest.raises(UserError) as err:
            read_rows(path, _params(), BadRows("fail"))
        assert str(err.value) == (
            f"{path}: every other byte at the start is zero: it looks like UTF-16; set "
            "data.encoding: utf-16 or re-save it as UTF-8"
        )
        assert _texts(path, encoding="utf-16-le") == [(text, "pos"), ("ok", "neg")]


def test_cp1252_suggests_the_encoding_not_skipping(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("text,label\nok,neg\ncafé crème,pos\n".encode("cp1252"))
    with pytest.raises(UserError) as err:
        read_rows(path, _params(), BadRows("fail"))
    assert str(err.value) == (
        f"{path}, line 3: not valid UTF-8 (byte 21); re-save the file as UTF-8, or set "
        "data.encoding to the file's encoding (e.g. cp1252 for Excel on Windows)"
    )
    assert "on_bad_rows" not in str(err.value)
    assert _texts(path, encoding="cp1252") == [("ok", "neg"), ("café crème", "pos")]


def test_an_unknown_encoding_is_a_params_error(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  encoding: utf-9\n")
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert str(err.value) == "params.yaml: data.encoding 'utf-9' is not a known text encoding"


# --------------------------------------------------------------------------- compression


def _zst(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


def _zip(data: bytes) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("inner.csv", data)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "compress"),
    [
        ("a.csv.gz", gzip.compress),
        ("a.tsv.bz2", bz2.compress),
        ("a.jsonl.xz", lzma.compress),
        ("a.csv.zip", _zip),
        ("a.csv.zst", _zst),
    ],
)
def test_compressed_inputs_read(tmp_path: Path, name: str, compress: Any) -> None:
    frame = pd.DataFrame({"text": ["héllo, world", "bye"], "label": ["pos", "neg"]})
    if ".jsonl" in name:
        raw = frame.to_json(orient="records", lines=True).encode()
    else:
        raw = frame.to_csv(index=False, sep="\t" if ".tsv" in name else ",").encode()
    if name.endswith(".zst"):
        pytest.importorskip("zstandard")
    path = tmp_path / name
    path.write_bytes(compress(raw))
    assert _texts(path) == [("héllo, world", "pos"), ("bye", "neg")]


def test_zst_without_zstandard_and_a_corrupt_gzip_fail_clearly(tmp_path: Path) -> None:
    path = tmp_path / "a.csv.gz"
    path.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(UserError) as err:
        read_rows(path, _params(), BadRows("fail"))
    assert str(err.value).startswith(f"{path}: cannot decompress it as gzip (")
    try:
        import zstandard  # noqa: F401
    except ImportError:
        zst = tmp_path / "a.csv.zst"
        zst.write_bytes(b"\x28\xb5\x2f\xfd")
        with pytest.raises(UserError) as err:
            read_rows(zst, _params(), BadRows("fail"))
        assert "needs the zstandard package (pip install zstandard)" in str(err.value)


def test_a_directory_of_compressed_split_files(tmp_path: Path) -> None:
    lines = "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(40))
    (tmp_path / "train.csv.gz").write_bytes(gzip.compress(("text,label\n" + lines).encode()))
    (tmp_path / "test.csv.gz").write_bytes(gzip.compress(b"text,label\nx,a\ny,b\n"))
    assert {s: p.name for s, p in split_files(tmp_path).items()} == {
        "train": "train.csv.gz",
        "test": "test.csv.gz",
    }
    data = load_splits(_params(source=str(tmp_path)), seed=0)
    assert len(data.splits["test"]) == 2
    assert sum(len(data.splits[s]) for s in ("train", "validation")) == 40


# --------------------------------------------------------------------------- CoNLL


def test_conll_skip_drops_whole_sentences_never_one_line(tmp_path: Path) -> None:
    path = tmp_path / "a.conll"
    path.write_text(
        "Ada B-PER\nLovelace I-PER\nwrote O\n\n"
        "Alan B-PER\nTuring X-PER\nthought O\nhard O\n\n"  # line 6 is bad: lines 5-8 go
        "Paris B-LOC\n"
    )
    bad = BadRows("skip")
    sentences = read_conll(path, _params(), bad)
    assert [s["tokens"] for s in sentences] == [["Ada", "Lovelace", "wrote"], ["Paris"]]
    assert [(b.line, b.reason) for b in bad.rows] == [
        (6, "tag 'X-PER' is not O, B-TYPE or I-TYPE (sentence at lines 5-8 skipped)")
    ]
    with pytest.raises(UserError) as err:
        read_conll(path, _params(), BadRows("fail"))
    assert str(err.value) == (
        f"{path}, line 6, column 'column -1': tag 'X-PER' is not O, B-TYPE or I-TYPE"
    )


def test_conll_with_tabs_keeps_tokens_with_spaces(tmp_path: Path) -> None:
    path = tmp_path / "a.conll"
    path.write_text("New York\tB-LOC\nis\tO\n\n\u200b\tO\nok\tO\n")
    sentences = read_conll(path, _params(), BadRows("fail"))
    assert [s["tokens"] for s in sentences] == [["New York", "is"], ["\u200b", "ok"]]


# --------------------------------------------------------------------------- classes per split


def test_a_class_absent_from_test_is_warned_and_an_unseen_label_still_refused(
    tmp_path: Path,
) -> None:
    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + "".join(f"t{i},{'abc'[i % 3]}\n" for i in range(60)))
    test = tmp_path / "test.csv"
    test.write_text("text,label\nx,a\ny,b\n")
    data = load_splits(_params(files={"train": str(train), "test": str(test)}), seed=0)
    assert data.warnings == [
        "the test split has no example of ['c']: their recall and F1 are undefined there; "
        "add data or change data.splits"
    ]
    test.write_text("text,label\nx,a\ny,d\n")
    with pytest.raises(UserError) as err:
        load_splits(_params(files={"train": str(train), "test": str(test)}), seed=0)
    assert str(err.value) == (
        f"{test}: label(s) ['d'] occur in the test split but never in train; fix the labels "
        "or re-split so train has every class"
    )


def test_lone_carriage_return_line_ends_are_named(tmp_path: Path) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(b"text,label\rhello,pos\rbye,neg\r")
    with pytest.raises(UserError) as err:
        read_rows(path, _params(), BadRows("fail"))
    assert str(err.value) == (
        f"{path}: the lines end in a lone carriage return (\\r, as old Mac programs wrote); "
        "re-save the file with \\n or \\r\\n line ends"
    )


def test_conll_skip_drops_the_sentence_of_an_undecodable_line(tmp_path: Path) -> None:
    path = tmp_path / "a.conll"
    path.write_bytes(b"Ada B-PER\nwrote O\n\nCaf\xe9 B-LOC\nopened O\n\nParis B-LOC\n")
    bad = BadRows("skip")
    sentences = read_conll(path, _params(), bad)
    assert [s["tokens"] for s in sentences] == [["Ada", "wrote"], ["Paris"]]
    assert [(b.line, b.reason) for b in bad.rows] == [
        (4, "not valid UTF-8 (sentence at lines 4-5 skipped)")
    ]
    path.write_bytes(b"Ada B-PER\nwrote O\n\nParis B-LOC\nCaf\xe9 O\n")
    bad = BadRows("skip")
    assert [s["tokens"] for s in read_conll(path, _params(), bad)] == [["Ada", "wrote"]]
    assert [(b.line, b.reason) for b in bad.rows] == [
        (5, "not valid UTF-8 (sentence at lines 4-5 skipped)")
    ]


def test_names_from_the_file_are_escaped_so_the_error_stays_one_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text('text,label,"a\nb","a\nb"\nx,y,1,2\n')
    with pytest.raises(UserError) as err:
        read_rows(path, _params(), BadRows("fail"))
    assert str(err.value) == (
        f"{path}, line 1: column name 'a\\nb' appears 2 times in the header (columns 3, 4); "
        "rename the columns so that each name is used once"
    )


def test_a_json_list_of_records_reads_and_pandas_default_orient_is_named(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ['a, "b"', "c\nd"], "label": ["pos", "neg"]})
    path = tmp_path / "a.json"
    frame.to_json(path, orient="records", indent=2)
    assert _texts(path) == [('a, "b"', "pos"), ("c\nd", "neg")]
    frame.to_json(path)  # pandas' default orient: {"text": {"0": ...}, ...}
    with pytest.raises(UserError) as err:
        read_rows(path, _params(), BadRows("fail"))
    assert str(err.value) == (
        f"{path}: one object of columns (pandas' default to_json); write it with "
        "to_json(orient='records') or to_json(orient='records', lines=True)"
    )
