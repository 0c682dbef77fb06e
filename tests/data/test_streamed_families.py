"""Regression, text-to-text, multi-label, token classification and multiple choice stream through preprocess: on the same input the streamed path
writes, byte for byte, the processed splits, ``metrics/preprocess.json``, the plot data and
the data card that the in-memory path writes, and its bad rows read the same."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlpflow.data import fastcsv, prepare
from nlpflow.data.prepare import load_splits, to_dataset_dict
from nlpflow.data.report import data_card, describe
from nlpflow.errors import UserError
from nlpflow.params import DataParams
from stages import preprocess

WORDS = ["good", "Bad", "the", "film", "é", "naïve", "ﬁne", "  spaced ", "www.x.org", "OK!", "@bob"]
LABELS = ["1.5", " 2 ", "-0.0", "0", "1e3", "3.25", "-7", "0.1", "2.50", "4"]


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 6))) for _ in range(n)]
    for i in range(0, n, 7):  # repeats: duplicates within a split, leakage across splits
        texts[i] = texts[i // 2]
    for i in range(3, n, 11):  # the same text up to case and punctuation
        texts[i] = texts[i - 1].upper() + "!"
    return texts


def _regression_rows(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "text": t,
            "score": rng.choice(LABELS) if i % 9 else LABELS[i % len(LABELS)],
            "id": f"r{i}" if i % 4 else "",
            "source": rng.choice(["", "web", "news"]),
        }
        for i, t in enumerate(_texts(n, seed))
    ]


def _text2text_rows(n: int, seed: int = 2) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "input": t or "x",
            "target": " ".join(rng.choice(WORDS[:5]) for _ in range(rng.randint(1, 4))),
            "kind": rng.choice(["a", "b"]),
        }
        for t in _texts(n, seed)
    ]


def _multilabel_rows(n: int, seed: int = 5, lists: bool = False) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    names = ["sport", "politics", "tech", "arts", "rare"]
    rows = []
    for i, t in enumerate(_texts(n, seed)):
        labels = rng.sample(names[:4], rng.randint(0, 3)) + (["rare"] if i % 97 == 5 else [])
        cell = ",".join(f" {x}" if rng.random() < 0.2 else x for x in labels)
        rows.append({"text": t, "topics": labels if lists else cell, "id": f"m{i}"})
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from nlpflow.families.choice import stream as choice_stream

    monkeypatch.setattr(prepare, "stream_target", lambda task, params: None)
    monkeypatch.setattr(prepare, "CLASS_STREAMS", ("sequence",))
    monkeypatch.setattr(choice_stream, "streams", lambda raw, params: False)


def _same_error(params: DataParams, monkeypatch: pytest.MonkeyPatch) -> str:
    """The UserError of ``params`` streamed, checked equal to the in-memory path's."""
    with pytest.raises(UserError) as streamed:
        load_splits(params, 0)
    with monkeypatch.context() as m:
        _in_memory(m)
        with pytest.raises(UserError) as memory:
            load_splits(params, 0)
    assert str(streamed.value) == str(memory.value)
    return str(streamed.value)


def _stage_outputs(params: Path, out: Path) -> dict[str, bytes]:
    preprocess.main(
        [
            "--params",
            str(params),
            "--out",
            str(out / "processed"),
            "--metrics",
            str(out / "preprocess.json"),
            "--plots",
            str(out / "plots"),
            "--report",
            str(out / "data.md"),
        ]
    )
    return {str(f.relative_to(out)): f.read_bytes() for f in sorted(out.rglob("*")) if f.is_file()}


def _compare_stage(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_params: Callable[..., Path],
    data: dict[str, Any],
) -> dict[str, bytes]:
    params = write_params(data=data)
    parsed = _choice_params(**data) if "choice" in data else DataParams(**data)
    assert load_splits(parsed, 0).streamed
    streamed = _stage_outputs(params, tmp_path / "streamed")
    with monkeypatch.context() as m:
        _in_memory(m)
        assert not load_splits(parsed, 0).streamed
        memory = _stage_outputs(params, tmp_path / "memory")
    assert sorted(streamed) == sorted(memory)
    different = [k for k in streamed if streamed[k] != memory[k]]
    # datasets' cache key: the streamed writer's is a hash of the shard (as for sequence
    # classification), from_dict's a hash of its own state; every other byte is the same
    states = [k for k in different if k.endswith("/state.json")]
    assert different == states, different
    for k in states:
        a, b = json.loads(streamed[k]), json.loads(memory[k])
        assert a.pop("_fingerprint") != b.pop("_fingerprint") and a == b
    return streamed


def _compare(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_params: Callable[..., Path],
    data: dict[str, Any],
) -> dict[str, Any]:
    """The figures of both paths compared: a CSV through the whole stage (every output file),
    other files (read by the Python reader, then the same passes) through load_splits, the
    report, the data card and the splits (cheaper: no plots)."""
    if data["source"].endswith(".csv"):
        out = _compare_stage(tmp_path, monkeypatch, write_params, data)
        return dict(json.loads(out["preprocess.json"]))
    params = DataParams(**data)
    assert load_splits(params, 3).streamed
    streamed = _load_outputs(params)
    with monkeypatch.context() as m:
        _in_memory(m)
        assert _load_outputs(params) == streamed
    return dict(streamed[0])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_regression_streamed_writes_what_the_in_memory_path_writes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_params: Callable[..., Path],
    suffix: str,
) -> None:
    rows = _regression_rows(400)
    rows[20]["score"] = "high"  # a bad row, skipped: listed in the card the same way
    rows[50]["score"] = "inf"
    path = _write(tmp_path / f"scores{suffix}", rows)
    data = {
        "source": str(path),
        "task": "regression",
        "text_fields": ["text"],
        "label_field": "score",
        "leakage": "drop",
        "on_bad_rows": "skip",
    }
    report = _compare(tmp_path, monkeypatch, write_params, data)
    train = report["splits"]["train"]
    assert report["skipped_rows"] == 2 and report["leakage"]["total"] > 0
    assert train["cleaning"]["duplicates_dropped"] > 0 and "target" in train


def test_regression_files_per_split_stream_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_params: Callable[..., Path]
) -> None:
    """A train and a test file (validation carved from train, by label quintile)."""
    folder = tmp_path / "data"
    folder.mkdir()
    _write(folder / "train.csv", _regression_rows(300, seed=3))
    _write(folder / "test.csv", _regression_rows(60, seed=4))
    data = {
        "source": str(folder),
        "task": "regression",
        "text_fields": ["text"],
        "label_field": "score",
    }
    _compare(tmp_path, monkeypatch, write_params, data)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_text2text_streamed_writes_what_the_in_memory_path_writes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_params: Callable[..., Path],
    suffix: str,
) -> None:
    path = _write(tmp_path / f"pairs{suffix}", _text2text_rows(400))
    data = {
        "source": str(path),
        "task": "text2text",
        "text_fields": ["input"],
        "label_field": "target",
        "leakage": "drop",
    }
    report = _compare(tmp_path, monkeypatch, write_params, data)
    assert report["splits"]["train"]["cleaning"]


@pytest.mark.parametrize(
    ("task", "label", "value", "reason"),
    [
        ("regression", "score", "high", "label 'high' is not a number"),
        ("regression", "score", " ", "the label is empty"),
        ("text2text", "target", " ", "the target is empty"),
    ],
)
def test_a_bad_row_is_the_same_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str, label: str, value: str, reason: str
) -> None:
    rows = _regression_rows(80) if task == "regression" else _text2text_rows(80)
    rows[30][label] = value
    path = _write(tmp_path / "rows.csv", rows)
    text = "text" if task == "regression" else "input"
    params = DataParams(source=str(path), task=task, text_fields=[text], label_field=label)
    message = _same_error(params, monkeypatch)
    assert message.startswith(f"{path}, line 32, column '{label}': {reason}")


def _load_outputs(params: DataParams) -> tuple[Any, ...]:
    data = load_splits(params, 3)
    report = describe(data)
    dataset = to_dataset_dict(data)
    return report, data_card(data, report, 3, "plots"), {s: dataset[s].to_list() for s in dataset}


def _same_outcome(params: DataParams, monkeypatch: pytest.MonkeyPatch) -> None:
    """The figures, card and rows of ``params`` (or its one-line error) streamed equal the
    in-memory path's."""

    def outcome() -> Any:
        try:
            return _load_outputs(params)
        except UserError as err:
            return str(err)

    streamed = outcome()
    with monkeypatch.context() as m:
        _in_memory(m)
        assert outcome() == streamed


TEXT = st.lists(
    st.sampled_from(["a", "B", " ", "é", ".", "ﬁ", "\t", "x y", "\u00a0"]), max_size=6
).map("".join)
NUMBER = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.integers(-5, 5).map(str),
    st.sampled_from(["1e400", "nan", "1_0", " 3 ", "+.5", "x"]),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(TEXT, NUMBER, TEXT, st.booleans()), min_size=30, max_size=80),
    task=st.sampled_from(["regression", "text2text", "multilabel"]),
)
def test_generated_rows_give_the_same_outputs(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    rows: list[tuple[str, str, str, bool]],
    task: str,
) -> None:
    path = tmp_path_factory.mktemp("rows") / "rows.csv"
    if task == "regression":
        _write(
            path,
            [
                {"text": t + f" {i}" * u or "e", "score": n, "note": m}
                for i, (t, n, m, u) in enumerate(rows)
            ],
        )
        fields = {"text_fields": ["text"], "label_field": "score"}
    elif task == "multilabel":  # cells such as "x", "3,B", "1e400,B", ","
        _write(
            path,
            [
                {"text": t + f" {i}" * u, "topics": n if u else f"{n},B"}
                for i, (t, n, _, u) in enumerate(rows)
            ],
        )
        fields = {"text_fields": ["text"], "label_field": "topics"}
    else:
        _write(
            path,
            [
                {"input": t + f" {i}" * u, "target": m, "note": n}
                for i, (t, n, m, u) in enumerate(rows)
            ],
        )
        fields = {"text_fields": ["input"], "label_field": "target"}
    params = DataParams(source=str(path), task=task, on_bad_rows="skip", leakage="drop", **fields)
    _same_outcome(params, monkeypatch)


@pytest.mark.parametrize(
    ("source", "fields"),
    [
        ("builtin:regression", {"text_fields": ["first", "second"], "label_field": "score"}),
        ("builtin:text2text", {"text_fields": ["input"], "label_field": "target"}),
        ("builtin:multilabel", {"text_fields": ["text"], "label_field": "labels"}),
        ("builtin:entities", {"text_fields": ["tokens"], "label_field": "tags"}),
    ],
)
def test_built_in_sources_stream_alike(
    monkeypatch: pytest.MonkeyPatch, source: str, fields: dict[str, Any]
) -> None:
    """Generated rows (two text fields for regression) go through the same passes."""
    params = DataParams(source=source, **fields)
    assert load_splits(params, 3).streamed
    streamed = _load_outputs(params)
    with monkeypatch.context() as m:
        _in_memory(m)
        assert _load_outputs(params) == streamed


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_multilabel_streamed_writes_what_the_in_memory_path_writes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_params: Callable[..., Path],
    suffix: str,
) -> None:
    rows = _multilabel_rows(400, lists=suffix == ".jsonl")
    rows[40]["topics"] = "sport,,tech" if suffix == ".csv" else ["sport", ""]  # skipped
    path = _write(tmp_path / f"topics{suffix}", rows)
    data = {
        "source": str(path),
        "task": "multilabel",
        "text_fields": ["text"],
        "label_field": "topics",
        "leakage": "drop",
        "on_bad_rows": "skip",
    }
    report = _compare(tmp_path, monkeypatch, write_params, data)
    assert report["skipped_rows"] == 1 and report["leakage"]["total"] > 0
    assert set(report["splits"]["train"]["labels"]) == {"arts", "politics", "rare", "sport", "tech"}


def test_multilabel_files_per_split_and_a_label_train_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_params: Callable[..., Path]
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    _write(folder / "train.csv", _multilabel_rows(300, seed=6))
    test = _multilabel_rows(60, seed=7)
    _write(folder / "test.csv", test)
    data = {
        "source": str(folder),
        "task": "multilabel",
        "text_fields": ["text"],
        "label_field": "topics",
    }
    _compare(tmp_path, monkeypatch, write_params, data)
    test[33].update(text="a text of its own", topics="sport,unheard")
    _write(folder / "test.csv", test)
    params = DataParams(**data)
    message = _same_error(params, monkeypatch)
    assert message.startswith(f"{folder / 'test.csv'}, line 35, column 'topics'")


# --------------------------------------------------------------------------- token classification

KINDS = ["PER", "ORG", "LOC", "MISC"]


def _sentences(n: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """Words and IOB2 tags; a sentence in 7 repeated (leakage), one in 5 with two entities
    side by side (B- after I- of another type, and after the same type)."""
    rng = random.Random(seed)
    out: list[tuple[list[str], list[str]]] = []
    for i in range(n):
        if i % 7 == 3 and out:
            out.append(out[i // 2])
            continue
        words = [rng.choice([*WORDS[:4], "x", "y", "z"]) + str(rng.randint(0, 9)) for _ in range(6)]
        tags = ["O"] * 6
        spans = [(1, 2), (3, 5)] if i % 5 == 0 else [(rng.randint(0, 4), rng.randint(1, 2))]
        for start, width in spans:
            kind = rng.choice(KINDS[:2]) if i % 5 == 0 else rng.choice(KINDS)
            for j in range(start, min(6, start + width)):
                tags[j] = ("B-" if j == start else "I-") + kind
        out.append((words, tags))
    return out


def _iob1(tags: list[str]) -> list[str]:
    """IOB2 tags as CoNLL-2003 publishes them: B- only right after an entity of its type."""
    out, prev = [], "O"
    for tag in tags:
        same = prev != "O" and prev[2:] == tag[2:]
        out.append("I-" + tag[2:] if tag.startswith("B-") and not same else tag)
        prev = tag
    return out


def _conll(path: Path, sentences: list[tuple[list[str], list[str]]], iob1: bool = False) -> Path:
    lines = []
    for i, (words, tags) in enumerate(sentences):
        if i % 10 == 0:
            lines += ["-DOCSTART- -X- -X- O", ""]
        for word, tag in zip(words, _iob1(tags) if iob1 else tags, strict=True):
            lines.append(f"{word} NN {'O' if tag == 'O' else 'I-NP'} {tag}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


TOKEN_FIELDS = {"text_fields": ["tokens"], "label_field": "tags"}


def test_token_conll_streamed_writes_what_the_in_memory_path_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_params: Callable[..., Path]
) -> None:
    """A CoNLL-2003-like file in IOB1 (converted per part) through the whole stage."""
    path = _conll(tmp_path / "ner.conll", _sentences(400, 8), iob1=True)
    data = {"source": str(path), "leakage": "drop", **TOKEN_FIELDS}
    out = _compare_stage(tmp_path, monkeypatch, write_params, data)
    report = json.loads(out["preprocess.json"])
    assert report["source_tag_scheme"] == "IOB1" and report["leakage"]["total"] > 0
    assert b"B-" in out["data.md"] and report["task"] == "token"


def test_token_files_per_split_bad_lines_and_unseen_tags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A train file in IOB2 with bad lines skipped, a test file in IOB1 with a tag train
    lacks (a warning; Windows line ends), validation carved from train, read in blocks of
    2,000 bytes; then a bad line under fail."""
    from nlpflow.families.token import stream

    monkeypatch.setattr(stream, "BLOCK", 2000)  # several blocks, batches and rewrites
    folder = tmp_path / "data"
    folder.mkdir()
    train = _conll(folder / "train.conll", _sentences(300, 9))
    text = train.read_text(encoding="utf-8").splitlines()
    text[40] = "word NN O B-"  # a bad tag: its sentence skipped
    text[90] = "two columns"[:3]  # too few columns
    train.write_text("\n".join(text) + "\n", encoding="utf-8")
    test = _sentences(60, 10)
    test[5][1][0] = "B-EVENT"
    path = _conll(folder / "test.conll", test, iob1=True)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    params = DataParams(source=str(folder), on_bad_rows="skip", **TOKEN_FIELDS)
    assert load_splits(params, 3).streamed
    streamed = _load_outputs(params)
    with monkeypatch.context() as m:
        _in_memory(m)
        assert _load_outputs(params) == streamed
    report = streamed[0]
    assert report["skipped_rows"] == 2 and report["source_tag_scheme"] == "IOB1"
    assert "B-EVENT" in report["warnings"][0]
    message = _same_error(replace(params, on_bad_rows="fail"), monkeypatch)
    assert message == f"{train}, line 41, column 'column -1': tag 'B-' is not O, B-TYPE or I-TYPE"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"a NN O\nb NN\n", "line 2: expected 3 whitespace-separated columns"),
        (b"a NN O\n\xff NN O\n", "line 2: not valid UTF-8"),  # read whole: the same error
        (b"-DOCSTART- -X- -X- O\n\n", "no sentences found"),
    ],
)
def test_a_bad_conll_file_is_the_same_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, reason: str
) -> None:
    path = tmp_path / "ner.conll"
    path.write_bytes(content)
    message = _same_error(DataParams(source=str(path), **TOKEN_FIELDS), monkeypatch)
    assert message.startswith(f"{path}") and reason in message and "\n" not in message


class _Kept:
    """What a PartBuilder keeps of a batch (its ``keep``), in memory."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def keep(self, key: str, value: np.ndarray) -> None:
        self.arrays[key] = value


def test_tag_columns_follow_the_per_sentence_functions() -> None:
    """The column-wise scheme detection, IOB1 conversion and example groups of random tag
    sequences equal detect_scheme, iob1_to_iob2 and entity_group sentence by sentence."""
    import pyarrow as pa

    from nlpflow.data.entities import detect_scheme, iob1_to_iob2
    from nlpflow.data.stream import Codes, entity_group
    from nlpflow.families.token.stream import TagHook, iob2_column

    rng = random.Random(4)
    tags = ["O", "B-A", "I-A", "B-B", "I-B", "I-C", "B-O"]
    for _ in range(200):
        sentences = [rng.choices(tags, k=rng.randint(0, 6)) for _ in range(rng.randint(1, 6))]
        col = pa.array([[], *sentences], pa.list_(pa.string())).slice(1)
        groups = Codes()
        hook = TagHook("tags", groups)
        builder = _Kept()
        hook(cast(Any, builder), pa.table({"tags": col}))
        assert hook.scheme == detect_scheme(sentences)
        assert [groups.names[c] for c in builder.arrays["label_codes"]] == [
            entity_group(s) for s in sentences
        ]
        assert iob2_column(col).to_pylist() == [iob1_to_iob2(s) for s in sentences]


@pytest.mark.parametrize("block", [7, 40, 4 << 20])
def test_conll_blocks_read_as_read_conll_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Plain blocks (split by Arrow) and the others (read_conll's parser) give read_conll's
    sentences and bad lines: tabs, Windows line ends, doubled spaces, blank lines of spaces,
    -DOCSTART- inside a sentence, a byte-order mark, no newline at the end."""
    from nlpflow.data.files import BadRows, read_conll
    from nlpflow.families.token import stream

    monkeypatch.setattr(stream, "BLOCK", block)
    text = (
        "\ufeffa NN O\nb NN B-X\n\n-DOCSTART- -X- O\n\nc NN I-X\n-DOCSTART- -X- O\nd NN O\n"
        "\n  \ne NN O\r\nf NN B-Y\r\n\r\ng\tNN\tO\nh  NN O\n\ni NN B-\nj NN O\n\n"
        "k NN\n\nl m NN O\n\nn NN O\n\no NN I-Y"
    )
    path = tmp_path / "odd.conll"
    path.write_text(text, encoding="utf-8")
    params = DataParams(source=str(path), on_bad_rows="skip", **TOKEN_FIELDS)
    memory, streamed = BadRows("skip"), BadRows("skip")
    rows = read_conll(path, params, memory)
    tables = list(stream.conll_tables(path, params, streamed))
    assert [r for t in tables for r in t.to_pylist()] == rows
    assert streamed == memory and len(rows) == 7 and len(memory.rows) == 3


# --------------------------------------------------------------------------- multiple choice

ENDINGS = [f"ending{i}" for i in range(4)]


def _choice_rows(n: int, seed: int = 11) -> list[dict[str, Any]]:
    """SWAG-like rows: repeats (duplicates, leakage), texts to clean, an id and a note
    column, a column named ``options`` (kept as ``options_in_file``)."""
    rng = random.Random(seed)
    texts = _texts(n * 5, seed)
    rows = []
    for i in range(n):
        ends = [texts[5 * i + k] or "x" for k in range(1, 5)]
        context = texts[5 * i] or "y"
        if i % 13 == 4:  # options cut differently, joined alike: not one row
            ends = ["a b", "c", "d", "e"] if i % 2 else ["a", "b c", "d", "e"]
            context = "same"
        row = {"id": f"c{i}" if i % 3 else "", "sent1": context}
        row.update(zip(ENDINGS, ends, strict=True))
        label = "0" if i % 13 == 4 else str(rng.randrange(4))
        row.update(label=label, note=rng.choice(["", "a", "b"]), options="z")
        rows.append(row)
    for i in range(0, n, 9):  # whole rows repeated: duplicates within, leaks across splits
        rows[i] = {**rows[i // 2], "id": f"d{i}"}
    return rows


CHOICE_FIELDS = {
    "task": "choice",
    "text_fields": ["sent1"],
    "label_field": "label",
    "choice": {"options": ENDINGS},
}


def _choice_params(**data: Any) -> DataParams:
    from nlpflow.families.choice.config import ChoiceParams

    data = {**CHOICE_FIELDS, **data}
    return DataParams(**{**data, "choice": ChoiceParams(**data["choice"])})


def test_choice_streamed_writes_what_the_in_memory_path_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_params: Callable[..., Path]
) -> None:
    """Option columns of a CSV through the whole stage, bad rows skipped (an empty option,
    a label out of range, one not a number): every output byte for byte."""
    rows = _choice_rows(400)
    rows[20]["ending2"] = " "
    rows[50]["label"] = "4"
    rows[70]["label"] = "two"
    rows[90]["ending1"] = rows[90]["ending0"] = rows[90]["ending3"]  # the answer repeated
    rows[90]["label"] = "3"
    path = _write(tmp_path / "swag.csv", rows)
    data = {"source": str(path), "leakage": "drop", "on_bad_rows": "skip", **CHOICE_FIELDS}
    out = _compare_stage(tmp_path, monkeypatch, write_params, data)
    report = json.loads(out["preprocess.json"])
    train = report["splits"]["train"]
    assert report["skipped_rows"] == 3 and report["leakage"]["total"] > 0
    assert train["cleaning"]["duplicates_dropped"] > 0 and sum(train["labels"].values()) > 250
    assert b"options_in_file" in out["data.md"] and b"repeat the right option" in out["data.md"]


def test_choice_files_per_split_and_a_file_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A train TSV read in batches of 2,000 bytes, a test CSV the batches cannot take (a
    quoted line break: the Python reader reads it whole), validation carved from train."""
    monkeypatch.setattr(fastcsv, "BLOCK", 2000)
    folder = tmp_path / "data"
    folder.mkdir()
    train = _choice_rows(300, seed=12)
    with open(folder / "train.tsv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, list(train[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(train)
    test = _choice_rows(60, seed=13)
    test[7]["sent1"] = "two\nlines"
    _write(folder / "test.csv", test)
    params = _choice_params(source=str(folder))
    data = load_splits(params, 3)
    assert data.streamed and len(data.splits["test"]) > 50
    streamed = _load_outputs(params)
    with monkeypatch.context() as m:
        _in_memory(m)
        assert not load_splits(params, 3).streamed
        assert _load_outputs(params) == streamed


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("ending1", "", "option 2 is empty"),
        ("label", "7", "label 7 is out of range (0 to 3 for 4 options)"),
        ("label", "1.5", "label '1.5' is not an option index"),
        ("sent1", " ", "the context (sent1) is empty"),
    ],
)
def test_a_bad_choice_row_is_the_same_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, column: str, value: str, reason: str
) -> None:
    rows = _choice_rows(80)
    rows[30][column] = value
    path = _write(tmp_path / "swag.csv", rows)
    params = _choice_params(source=str(path))
    message = _same_error(params, monkeypatch)
    assert message.startswith(f"{path}, line 32, column '{column}': {reason}"), message
    assert "\n" not in message


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            TEXT,
            st.lists(TEXT.map(lambda t: t + "o"), min_size=4, max_size=4),
            st.sampled_from(["0", "1", "2", "3", "0", "1", " 2 ", "3.0", "x", "4"]),
            st.sampled_from([0, 0, 0, 1, 2]),  # 1: an option blank; 2: the context unique
        ),
        min_size=40,
        max_size=80,
    ),
    ascii=st.booleans(),
)
def test_generated_choice_rows_give_the_same_outputs(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    rows: list[tuple[str, list[str], str, int]],
    ascii: bool,
) -> None:
    """Generated contexts, options and labels (blank, odd spaces, repeats, bad labels),
    bad rows skipped, in batches of 600 bytes: the same outputs or the same error. ASCII
    texts: batches without a bad row are checked at once, in Arrow."""
    monkeypatch.setattr(fastcsv, "BLOCK", 600)
    path = tmp_path_factory.mktemp("rows") / "swag.csv"

    def text(t: str) -> str:
        return t.encode("ascii", "ignore").decode() if ascii else t

    _write(
        path,
        [
            {
                "sent1": text(c) + f" {i}" * (u == 2) or "c",
                **{e: " " if u == 1 and k == 1 else text(ends[k]) for k, e in enumerate(ENDINGS)},
                "label": label,
            }
            for i, (c, ends, label, u) in enumerate(rows)
        ],
    )
    params = _choice_params(source=str(path), on_bad_rows="skip", leakage="drop")
    _same_outcome(params, monkeypatch)


def test_ascii_batches_are_checked_at_once_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Printable-ASCII batches with no bad record are checked in Arrow at once (a column
    ``context`` renamed, an id, a repeated answer, two context fields); a batch with a bad
    row, or a text beyond ASCII, row by row: the same outputs as in memory."""
    from nlpflow.families.choice import stream

    monkeypatch.setattr(fastcsv, "BLOCK", 3000)
    at_once = []
    check = stream._checked_at_once
    monkeypatch.setattr(stream, "_checked_at_once", lambda *a: at_once.append(t := check(*a)) or t)
    rows = _choice_rows(300, seed=14)
    ascii_words = " ".join(w for w in WORDS if w.isascii()).split()
    rng = random.Random(3)
    for i, row in enumerate(rows):
        for key in ["sent1", *ENDINGS]:
            row[key] = " ".join(rng.choice(ascii_words) for _ in range(3)) if i > 20 else row[key]
        row["context"] = "m" if i % 2 else "n"
        row["sent2"] = f" then {i % 5} "
    rows[200]["label"] = "9"
    rows[100]["ending0"] = rows[100]["ending2"] = "the same"
    rows[100]["label"] = "2"
    path = _write(tmp_path / "swag.csv", rows)
    params = _choice_params(
        source=str(path), text_fields=["sent1", "sent2"], on_bad_rows="skip", leakage="drop"
    )
    assert load_splits(params, 3).streamed
    streamed = _load_outputs(params)
    assert any(t is not None for t in at_once) and any(t is None for t in at_once)
    with monkeypatch.context() as m:
        _in_memory(m)
        assert _load_outputs(params) == streamed
    report = streamed[0]
    assert report["skipped_rows"] == 1 and "context_in_file" in streamed[2]["train"][0]
