"""Preprocess in Arrow batches: the streamed CSV reader and the column-wise text operations
give exactly what the strict Python reader and the per-text functions give."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlpflow.data import columns, fastcsv, files, prepare
from nlpflow.data.clean import clean_steps, normalise_for_match
from nlpflow.data.files import BadRows, read_rows
from nlpflow.data.prepare import load_splits, to_dataset_dict
from nlpflow.data.report import data_card, describe
from nlpflow.errors import UserError
from nlpflow.families.text2text.params import Text2TextDataParams
from nlpflow.params import CleaningParams, DataParams

PIECES = [
    *"abcXYZ019_ .,!-@/:\t\n\r\x0b\x0c\x1c\x1f\"'",
    "www.",
    "http://",
    "https://x.",
    "é",
    "\u00a0",
    "ﬁ",
    "İ",
    "\u2028",
    "K",
    "ſ",
    "\x85",
    "@bob",
    "ß",
    "  ",
]


def _texts(n: int, pieces: list[str], seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(n)]


@pytest.mark.parametrize("ascii_only", [False, True])
def test_column_operations_equal_the_python_functions(ascii_only: bool) -> None:
    pieces = [p for p in PIECES if p.isascii()] if ascii_only else PIECES
    texts = _texts(3000, pieces, seed=int(ascii_only))
    # a sliced array (offset buffers) behaves as a fresh one
    arr = pa.array(["pad"] * 3 + texts).slice(3)
    for params in (
        CleaningParams(),
        CleaningParams(
            unicode="none",
            lowercase=True,
            replace_urls=True,
            replace_users=True,
            max_chars=5,
        ),
        CleaningParams(whitespace=False, unicode="NFC", replace_urls=True),
    ):
        cleaned, bits = columns.clean_column(arr, params)
        expected = [clean_steps(t, params) for t in texts]
        assert cleaned.to_pylist() == [text for text, _ in expected]
        assert bits.tolist() == [steps for _, steps in expected]
    # cleaned by `whitespace` (no cap after it): the shortcuts for single-spaced rows
    tidy, _ = columns.clean_column(arr, CleaningParams())
    simple = columns.simple_rows(tidy)
    tidy_texts = tidy.to_pylist()
    assert columns.blank_rows(tidy, simple, single_spaced=True).tolist() == [
        not t.strip() for t in tidy_texts
    ]
    assert columns.lengths(tidy, simple, single_spaced=True)[1].tolist() == [
        len(t.split()) for t in tidy_texts
    ]
    assert sorted(columns.lower_words(tidy, single_spaced=True).to_pylist()) == sorted(
        {w.lower() for t in tidy_texts for w in t.split()}
    )
    assert columns.match_keys(tidy, simple).to_pylist() == [
        normalise_for_match(t) for t in tidy_texts
    ]
    assert columns.blank_rows(arr).tolist() == [not t.strip() for t in texts]
    pairs = columns.joined([arr, pa.array(texts[::-1])], "\x1f")
    assert columns.match_keys(pairs).to_pylist() == [
        normalise_for_match(a + "\x1f" + b) for a, b in zip(texts, texts[::-1], strict=True)
    ]
    chars, words = columns.lengths(arr)
    assert chars.tolist() == [len(t) for t in texts]
    assert words.tolist() == [len(t.split()) for t in texts]
    words = columns.lower_words(arr).to_pylist()
    assert sorted(words) == sorted({w.lower() for t in texts for w in t.split()})
    digests = columns.digests(arr)
    assert len(set(digests.tolist())) == len(set(texts))


def _params(source: Path, **kw: Any) -> DataParams:
    base: dict[str, Any] = {
        "source": str(source),
        "text_fields": ["text", "title"],
        "label_field": "label",
        "leakage": "drop",
    }
    base.update(kw)
    return DataParams(**base)


def _write(path: Path, rows: list[list[str]], lineterminator: str = "\r\n") -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator=lineterminator)
        writer.writerow(["text", "title", "label", "id", "note"])
        writer.writerows(rows)


def _rows(n: int) -> list[list[str]]:
    rng = random.Random(3)
    words = ['say "hi"', "a,b", "Plain", "é", "  spaced ", "URL www.x.org", 'ab"c', "dup"]
    return [
        [
            " ".join(rng.choice(words) for _ in range(rng.randint(0, 4))),
            rng.choice(words),
            rng.choice([" pos", "neg ", "neu"]),
            f"r{i}" if i % 3 else "",
            rng.choice(["", "n1"]),
        ]
        for i in range(n)
    ]


def _outputs(params: DataParams, seed: int = 5) -> tuple[Any, ...]:
    data = load_splits(params, seed)
    report = describe(data)
    card = data_card(data, report, seed, "plots")
    dataset = to_dataset_dict(data)
    return report, card, {s: dataset[s].to_list() for s in dataset}, data.meta()


@pytest.mark.parametrize("lineterminator", ["\r\n", "\n"])
def test_streamed_csv_gives_what_the_python_reader_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lineterminator: str
) -> None:
    path = tmp_path / "news.csv"
    rows = _rows(600)
    _write(path, rows, lineterminator)
    with open(path, "ab") as fh:  # a blank line and a last line without a line end
        fh.write(lineterminator.encode() + b"last one,t,pos,,")
    params = _params(path)
    # blocks of 1,500 bytes: dozens of batches through the threads, in file order
    monkeypatch.setattr(fastcsv, "BLOCK", 1500)
    assert len(list(fastcsv.read_batches(path, params))) > 10
    assert sum(t.num_rows for t in fastcsv.read_batches(path, params)) == len(rows) + 1
    # two text fields, and one (cleaned by `whitespace`: the single-spaced shortcuts)
    for fields in (["text", "title"], ["text"]):
        params = replace(params, text_fields=fields)
        streamed = _outputs(params)
        with monkeypatch.context() as python_only:
            python_only.setattr(fastcsv, "eligible", lambda *a: False)
            assert _outputs(params) == streamed


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'"abc"def,t,pos,,\n', "text after a closing quote"),
        (b"a\rb,t,pos,,\n", "a lone carriage return"),
        (b'"two\nlines",t,pos,,\n', "a field across lines"),
        (b"a,t,,,\n", "an empty label"),
        (b"a,t,pos\n", "too few columns"),
    ],
)
def test_files_the_stream_cannot_take_go_to_the_python_reader(
    tmp_path: Path, body: bytes, why: str
) -> None:
    path = tmp_path / "a.csv"
    good = b"".join(f"text {i},t{i},{'pos' if i % 2 else 'neg'},,\n".encode() for i in range(40))
    path.write_bytes(b"text,title,label,id,note\n" + good + body + good.replace(b"text", b"more"))
    params = _params(path)
    if why != "an empty label":  # (the label is checked after reading)
        with pytest.raises(fastcsv.NotFast):
            for _ in fastcsv.read_batches(path, params):
                pass
    try:
        expected: Any = read_rows(path, params, BadRows("fail"))
    except UserError as err:
        expected = str(err)
    if isinstance(expected, str):
        with pytest.raises(UserError) as raised:
            load_splits(params, 0)
        assert str(raised.value) == expected, why
    else:
        data = load_splits(params, 0)
        assert sum(len(s) for s in data.splits.values()) <= len(expected), why


def test_a_directory_source_is_listed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for split, n in (("train", 40), ("test", 6)):
        _write(
            tmp_path / f"{split}.csv",
            [[f"{split} {i}", "t", "ab"[i % 2], "", ""] for i in range(n)],
        )
    calls = []
    listing = prepare.split_files

    def counted(directory: Path) -> dict[str, Path]:
        calls.append(directory)
        return listing(directory)

    monkeypatch.setattr(prepare, "split_files", counted)
    data = load_splits(_params(tmp_path), seed=0)
    assert len(calls) == 1
    assert len(data.splits["test"]) == 6


def test_streamed_splits_hold_no_duplicates_or_empty_texts(tmp_path: Path) -> None:
    """What the digest search drops, checked on the texts themselves."""
    path = tmp_path / "news.csv"
    _write(path, _rows(600))
    report, _, dataset, _ = _outputs(_params(path))
    for split, rows in dataset.items():
        keys = [(r["text"], r["title"], r["label"]) for r in rows]
        assert len(set(keys)) == len(keys), split
        assert all(r["text"].strip() and r["title"].strip() for r in rows), split
    cleaning = report["splits"]["train"]["cleaning"]
    assert cleaning["duplicates_dropped"] > 0 and cleaning["empty_dropped"] > 0


# JSON Lines: rows as json.dumps writes them, metadata keys that come and go, an id column,
# blank lines and, now and then, a bad row or line (every kind the whole-file reader reports)
JSON_TEXT = st.lists(st.sampled_from([*PIECES[:24], "é", "\u2028", '"', "\\"]), max_size=5).map(
    "".join
)
LABEL = st.sampled_from(["pos", "neg", " pos", 1, 2])
NOTE = st.one_of(st.none(), JSON_TEXT, st.integers(0, 9), st.just({"a": 1}))
BAD_VALUES = [("text", None), ("text", 3), ("text", ["a"]), ("label", ""), ("label", None)]
BAD_LINES = ['{"text": "a", "label": "pos"', '{"text": "a", "text": "b", "label": "pos"}', "[1]"]


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(
        st.tuples(JSON_TEXT, LABEL, NOTE, st.booleans(), st.booleans()), min_size=40, max_size=60
    ),
    id_from=st.sampled_from([0, 20, 100]),
    bad=st.one_of(st.none(), st.none(), st.sampled_from(BAD_VALUES + BAD_LINES)),
    ascii_only=st.booleans(),
    policy=st.sampled_from(["fail", "skip"]),
)
def test_streamed_jsonl_gives_what_the_whole_file_gives(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rows: list[tuple[str, Any, Any, bool, bool]],
    id_from: int,
    bad: Any,
    ascii_only: bool,
    policy: str,
) -> None:
    # the same outcome (figures, card, rows; or the one-line error) as the file read whole,
    # whichever way the stream goes: in chunks of 7 lines, or whole at a bad row or a key the
    # first chunk did not have
    records = []
    for i, (text, label, note, with_note, blank_after) in enumerate(rows):
        record: dict[str, Any] = {"text": f"row {i} {text}", "label": label}
        if with_note and note is not None:
            record["note"] = note
        if i >= id_from:
            record["id"] = f"r{i}"
        records.append(json.dumps(record, ensure_ascii=ascii_only) + ("\n" if blank_after else ""))
    if isinstance(bad, tuple):
        key, value = bad
        records[len(records) * 2 // 3] = json.dumps({"text": "bad", "label": "pos", key: value})
    elif bad is not None:
        records[len(records) * 2 // 3] = bad
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(records) + "\n", encoding="utf-8")
    _both_ways(DataParams(source=str(path), text_fields=["text"], on_bad_rows=policy), monkeypatch)


def test_a_good_jsonl_file_streams_in_chunks_and_a_bad_one_goes_whole(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    rows = [{"text": f"text {i}", "label": "ab"[i % 2], "note": i} for i in range(25)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    params = DataParams(source=str(path), text_fields=["text"])
    assert files.rows_stream(path, params)
    chunks = list(files.checked_row_chunks(path, params, BadRows("fail"), size=10))
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert [r for c in chunks for r in c] == read_rows(path, params, BadRows("fail"))
    with path.open("a", encoding="utf-8") as fh:  # one bad row at the end: the file goes whole
        fh.write(json.dumps({"text": None, "label": "a"}) + "\n")
    with pytest.raises(files.NotStreamed):
        list(files.checked_row_chunks(path, params, BadRows("skip"), size=10))
    # a token task's rows (tags: a list) and a .json file (maybe one array) are read whole
    tags = tmp_path / "tags.jsonl"
    tags.write_text(json.dumps({"text": ["a"], "label": ["O"]}) + "\n", encoding="utf-8")
    assert not files.rows_stream(tags, params)
    array = tmp_path / "rows.json"
    array.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert not files.rows_stream(array, params)


@pytest.mark.parametrize("bad", [None, ("text", None), ("label", " ")])
def test_streamed_parquet_gives_what_the_whole_file_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: tuple[str, Any] | None
) -> None:
    import pandas as pd

    rng = random.Random(4)
    frame = pd.DataFrame(
        {
            "text": [f"row {i} {rng.choice(PIECES)}{rng.choice(PIECES)}" for i in range(60)],
            "label": [rng.choice(["pos", "neg", " pos"]) for _ in range(60)],
            "note": [rng.choice([None, "n", "é"]) for _ in range(60)],
            "id": [f"r{i}" for i in range(60)],
        }
    )
    if bad is not None:
        frame.loc[41, bad[0]] = bad[1]
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path, row_group_size=9)
    params = DataParams(source=str(path), text_fields=["text"], on_bad_rows="skip")
    monkeypatch.setattr(files, "ROW_CHUNK", 7)
    assert files.rows_stream(path, params)
    if bad is None:
        assert len(list(files.checked_row_chunks(path, params, BadRows("fail")))) == 9
    streamed = _outputs(params)
    with monkeypatch.context() as whole:
        whole.setattr(files, "rows_stream", lambda *a: False)
        assert _outputs(params) == streamed
    tags = tmp_path / "tags.parquet"  # a token task's tags: read whole
    pd.DataFrame({"text": [["a"]], "label": [["O"]]}).to_parquet(tags)
    assert not files.rows_stream(tags, params)


def test_parquet_chunks_do_not_keep_the_row_groups_read(tmp_path: Path) -> None:
    # pyarrow's pre_buffer (its default) kept every row group read so far: 200 bytes a row
    # more with every row (a 5,000,000-row file took 2.5x the memory of a 1,000,000-row one)
    import pyarrow.parquet as pq

    path = tmp_path / "rows.parquet"
    texts = [f"{i:06d} " + "x" * 200 for i in range(5000)]
    with pq.ParquetWriter(path, pa.schema([("text", pa.string()), ("label", pa.string())])) as w:
        for _ in range(20):  # 20 row groups, about 1 MB each
            w.write_table(pa.table({"text": texts, "label": ["pos"] * 5000}))
    chunks, total = files._parquet_chunks(path, 5000)
    assert total == 100_000
    before = pa.total_allocated_bytes()
    held = [pa.total_allocated_bytes() - before for _ in chunks]
    assert max(held) < 4_000_000, held  # about one row group in flight, not twenty


def _both_ways(params: DataParams, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The outcome (outputs, or the error's message) streamed, checked equal to the whole
    file's; chunks of 7 rows."""

    def outcome() -> Any:
        try:
            return _outputs(params)
        except UserError as err:
            return str(err)

    monkeypatch.setattr(files, "ROW_CHUNK", 7)
    streamed = outcome()
    with monkeypatch.context() as whole:
        whole.setattr(files, "rows_stream", lambda *a: False)
        assert outcome() == streamed
    return streamed


WORDS = [[f"w{i}", "x"] for i in range(40)]
TAGS = [["B-X", "O"] if i % 2 else ["O", "B-Y"] for i in range(40)]


def test_token_rows_the_stream_must_not_take(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tags in a fixed-size list (datasets' Sequence(length=n)), and a JSONL file whose first
    # good row is a token row (line 2's BOM makes it bad JSON to the reader): token tasks
    import pyarrow.parquet as pq

    fixed = tmp_path / "t.parquet"
    pq.write_table(
        pa.table({"tokens": WORDS, "tags": pa.array(TAGS, pa.list_(pa.string(), 2))}), fixed
    )
    bom = tmp_path / "b.jsonl"
    lines = "".join(
        json.dumps({"tokens": w, "tags": t}) + "\n" for w, t in zip(WORDS, TAGS, strict=True)
    )
    bom.write_bytes(b'\n\xef\xbb\xbf{"tokens": "w", "tags": "O"}\n' + lines.encode())
    for path in (fixed, bom):
        params = DataParams(
            source=str(path), text_fields=["tokens"], label_field="tags", on_bad_rows="skip"
        )
        assert not files.rows_stream(path, params)
        assert _both_ways(params, monkeypatch)[0]["task"] == "token"
    label_task = DataParams(
        source=str(fixed),
        text_fields=["tokens"],
        label_field="tags",
        task="text2text",
        text2text=Text2TextDataParams(label_task=True),
    )
    assert "is a token task" in _both_ways(label_task, monkeypatch)


def test_sequence_rows_in_columns_named_tokens_and_tags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one label a row: not CoNLL's columns though they have its names (it crashed read whole)
    path = tmp_path / "n.jsonl"
    rows = [{"tokens": f"row {i} text", "tags": "ab"[i % 2]} for i in range(40)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for task in ("auto", "sequence"):
        params = DataParams(source=str(path), text_fields=["tokens"], label_field="tags", task=task)
        assert _both_ways(params, monkeypatch)[0]["task"] == "sequence"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"text": "a", "label": "pos", "n": ' + "9" * 5000 + "}", "not valid JSON (Exceeds"),
        ('{"text": "a \\ud800 b", "label": "pos"}', "a \\ud800-\\udfff escape that is half"),
    ],
)
def test_json_a_python_reader_refuses_late_is_a_bad_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, reason: str
) -> None:
    rows = [json.dumps({"text": f"row {i} 😀", "label": "ab"[i % 2]}) for i in range(40)]
    rows[20] = line
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    failed = _both_ways(DataParams(source=str(path), text_fields=["text"]), monkeypatch)
    assert failed.startswith(f"{path}, line 21: {reason}")
    skipped = _both_ways(
        DataParams(source=str(path), text_fields=["text"], on_bad_rows="skip"), monkeypatch
    )
    assert sum(v["rows"] for v in skipped[0]["splits"].values()) == 39
    array = tmp_path / "r.json"
    array.write_text("[" + ",".join(rows) + "]", encoding="utf-8")
    with pytest.raises(UserError):
        load_splits(DataParams(source=str(array), text_fields=["text"]), 0)


def test_split_files_with_different_kinds_of_rows_are_refused(tmp_path: Path) -> None:
    # a token train file with a test file of one label a row (read alone, each looked fine:
    # the test words became single characters), and the other way round
    token = "".join(
        json.dumps({"tokens": w, "tags": t}) + "\n" for w, t in zip(WORDS, TAGS, strict=True)
    )
    scalar = "".join(json.dumps({"tokens": f"t {i}", "tags": "O"}) + "\n" for i in range(10))
    for train, test in ((token, scalar), (scalar, token)):
        (tmp_path / "train.json").write_text(train, encoding="utf-8")
        (tmp_path / "test.jsonl").write_text(test, encoding="utf-8")
        params = DataParams(source=str(tmp_path), text_fields=["tokens"], label_field="tags")
        with pytest.raises(UserError) as raised:
            load_splits(params, 0)
        assert str(raised.value).startswith(f"{tmp_path / 'test.jsonl'}: its rows are")


def test_the_card_shows_token_examples_of_any_text_field(tmp_path: Path) -> None:
    # the examples read the words from a field named "tokens" only (a KeyError otherwise)
    path = tmp_path / "ner.jsonl"
    rows = "".join(
        json.dumps({"words": w, "ner": t}) + "\n" for w, t in zip(WORDS, TAGS, strict=True)
    )
    path.write_text(rows, encoding="utf-8")
    card = _outputs(DataParams(source=str(path), text_fields=["words"], label_field="ner"))[1]
    assert "[x]B-Y" in card
