"""`nlpflow predict` on tiny models trained through the real stages: a pair task, a single-text
task and a token task; files with bad rows; the errors a user can fix."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nlpflow.cli import main as cli
from nlpflow.errors import UserError
from nlpflow.families.names import TASKS
from nlpflow.predict import predict_file, rejects_path
from tests.predict_tiny import single_text_csv, train_tiny
from tests.training.tiny import one_torch_thread


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in anagram pairs (first, second), one epoch."""
    return train_tiny(tmp_path_factory.mktemp("pair"), epochs=1)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One text field from a CSV file; cleaning replaces URLs with <url>."""
    root = tmp_path_factory.mktemp("single")
    source = single_text_csv(root / "reviews.csv")
    data = {
        "source": str(source), "text_fields": ["text"], "label_field": "label",
        "cleaning": {"replace_urls": True},
    }  # fmt: skip
    return train_tiny(root, epochs=1, data=data)


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in entities (a list of words, a tag per word), one epoch, max_length 16."""
    data = {
        "source": "builtin:entities", "text_fields": ["tokens"], "label_field": "tags",
        "entities": {"size": 120},
    }  # fmt: skip
    return train_tiny(
        tmp_path_factory.mktemp("token"), epochs=1, data=data, tokenizer={"max_length": 16}
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
        encoding="utf-8",
    )
    return path


def split_rows(model: Path, split: str = "test") -> tuple[list[dict[str, Any]], Any]:
    """The processed rows of a split of the model's training run, and its tokenized split."""
    from nlpflow.data.saved import read_processed, read_tokenized

    data = model.parents[1] / "data"
    processed, _ = read_processed(data / "processed", [split])
    tokenized, _ = read_tokenized(data / "tokenized", [split])
    return processed[split].to_list(), tokenized[split]


# --------------------------------------------------------------------------- what the model sees


def test_pair_file_gets_the_probabilities_of_the_tokenized_split(
    pair: Path, tmp_path: Path
) -> None:
    """Reading, cleaning and encoding a new file reproduce what training tokenized: the test
    split written as a JSONL file (with its texts' spaces doubled, which cleaning collapses)
    gets the same probabilities as the tokenize stage's ids fed to the model directly."""
    from nlpflow.evaluation.predict import load_classifier, predict_split

    rows, tokenized = split_rows(pair)
    inputs = [{"first": r["first"].replace(" ", "  "), "second": f" {r['second']} "} for r in rows]
    out = tmp_path / "out.jsonl"
    summary = predict_file(pair, write_jsonl(tmp_path / "in.jsonl", inputs), out, top_k=2)
    model, pad = load_classifier(pair, ["no", "yes"])
    expected = predict_split(model, tokenized, 8, pad)
    got = read_jsonl(out)
    assert summary.predicted == len(rows) == len(got) and summary.rejects == []
    probs = np.array([[{t["label"]: t["score"] for t in g["top_k"]}[n] for n in ("no", "yes")]
                      for g in got])  # fmt: skip
    np.testing.assert_allclose(probs, expected, atol=1e-9)
    assert [g["prediction"] for g in got] == [["no", "yes"][int(i)] for i in expected.argmax(1)]
    assert [g["row"] for g in got] == list(range(1, len(rows) + 1))  # JSONL lines
    assert got[0]["first"] == inputs[0]["first"]  # the input as given, not as cleaned
    assert not rejects_path(out).exists()


def test_single_text_csv_to_csv_cleans_as_training_did(single: Path, tmp_path: Path) -> None:
    """No label column; the training's cleaning applies (two URLs both become <url>, so the
    rows score the same); the CSV output has the input columns, the prediction and top-k."""
    source = tmp_path / "new.csv"
    source.write_text(
        "id,text\n1,good http://a.example/x\n2,good www.other.org/y?q=1\n3,bad dull\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.csv"
    summary = predict_file(single, source, out, top_k=1)
    with out.open(newline="", encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert summary.predicted == 3 and [g["id"] for g in got] == ["1", "2", "3"]
    assert list(got[0]) == ["id", "text", "row", "prediction", "score", "top_k", "truncated"]
    assert got[0]["score"] == got[1]["score"] and got[1]["text"] == "good www.other.org/y?q=1"
    assert got[0]["score"] != got[2]["score"]
    top = json.loads(got[2]["top_k"])
    assert len(top) == 1 and top[0]["label"] == got[2]["prediction"] in ("neg", "pos")
    assert [g["row"] for g in got] == ["2", "3", "4"]  # file lines, the header is line 1
    assert "urls_replaced 2" in " ".join(summary.notes)


def test_token_words_get_a_tag_each_and_truncation_is_reported(token: Path, tmp_path: Path) -> None:
    """Per word the tag and score of its first sub-token, as evaluate computes them; a text is
    split on whitespace; words past max_length get null and the row counts as truncated."""
    from nlpflow.evaluation.predict import load_classifier, predict_token_split
    from nlpflow.modeling.tokenizers import load_tokenizer

    rows, tokenized = split_rows(token)
    long = ["Paris"] * 40
    inputs = [{"tokens": r["tokens"]} for r in rows] + [{"tokens": " ".join(long)}]
    out = tmp_path / "tags.jsonl"
    summary = predict_file(token, write_jsonl(tmp_path / "in.jsonl", inputs), out)
    got = read_jsonl(out)
    names = json.loads((token / "nlpflow.json").read_text())["label_names"]
    model, pad = load_classifier(token, names, "token")
    words = [r["tokens"] for r in rows]
    expected = predict_token_split(model, tokenized, words, load_tokenizer(token), 8, pad)
    for g, probs in zip(got, expected.probabilities, strict=False):
        assert len(g["prediction"]) == len(g["tokens"]) == len(probs)
        for tag, score, p in zip(g["prediction"], g["score"], probs, strict=True):
            if np.isnan(p).any():
                assert tag is None and score is None
            else:
                assert tag == names[int(p.argmax())] and score == pytest.approx(p.max(), abs=1e-9)
    from nlpflow.evaluation.entities import get_entities

    assert sum(len(g["entities"]) for g in got) > 0
    for g in got:  # entities as evaluate reads them from the tags
        spans = [(e["type"], e["start"], e["end"] - 1) for e in g["entities"]]
        assert spans == get_entities([t or "O" for t in g["prediction"]])
        for e in g["entities"]:
            words = (g.get("words") or g["tokens"])[e["start"] : e["end"]]
            assert e["text"] == " ".join(words)
            assert e["score"] == pytest.approx(np.mean(g["score"][e["start"] : e["end"]]))
    last = got[-1]
    assert last["words"] == long and last["truncated"] is True
    assert last["prediction"][-1] is None and last["prediction"][0] is not None
    assert summary.truncated[-1] == len(inputs)
    assert any("split on whitespace" in n for n in summary.notes)


# --------------------------------------------------------------------------- bad rows


def test_bad_rows_are_listed_with_their_reason_never_dropped(
    pair: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"first": "a b c", "second": "c b a"},
            {"first": "a b c"},
            {"first": "   ", "second": "a b"},
            {"first": 7, "second": "a b"},
            "{not json",
            {"first": "c a b", "second": "b a c", "prediction": "kept"},
        ],
    )
    out = tmp_path / "out.jsonl"
    code = cli(["predict", "--model", str(pair), str(source), str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    got = read_jsonl(out)
    assert [g["row"] for g in got] == [1, 6]
    assert got[1]["prediction_in_file"] == "kept" and got[1]["prediction"] in ("no", "yes")
    rejects = read_jsonl(rejects_path(out))
    assert [(r["row"], r["field"]) for r in rejects] == [
        (2, "second"), (3, "first"), (4, "first"), (5, ""),
    ]  # fmt: skip
    assert "missing" in rejects[0]["reason"] and "empty" in rejects[1]["reason"]
    assert "int" in rejects[2]["reason"] and "JSON" in rejects[3]["reason"]
    assert "2 of 6 rows predicted" in printed
    assert "4 row(s) rejected (not predicted), rows 2, 3, 4, 5" in printed
    assert "progress: 6/6 rows" in printed  # plain lines, not a bar, off a terminal


def test_a_stale_rejects_file_goes_when_no_row_is_rejected(pair: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    rejects_path(out).write_text('{"row": 9}\n')
    predict_file(pair, write_jsonl(tmp_path / "in.jsonl", [{"first": "a", "second": "a"}]), out)
    assert not rejects_path(out).exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{"first": "a b", "second": " "}\n',
            "no row could be predicted (1 rejected; first: row 1",
        ),
        ('{"one": "a b", "two": "b a"}\n', "column(s) ['first', 'second'] not found"),
        ("", "the file is empty"),
    ],
)
def test_unusable_files_stop_with_one_line_and_write_nothing(
    pair: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(content)
    out = tmp_path / "out.jsonl"
    assert cli(["predict", "--model", str(pair), str(source), str(out)]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [source]


def test_model_without_nlpflow_json_and_unknown_output_are_refused(
    pair: Path, tmp_path: Path
) -> None:
    import shutil

    old = tmp_path / "old-model"
    shutil.copytree(pair, old)
    (old / "nlpflow.json").unlink()
    source = write_jsonl(tmp_path / "in.jsonl", [{"first": "a", "second": "a"}])
    with pytest.raises(UserError) as err:
        predict_file(old, source, tmp_path / "out.jsonl")
    assert "nlpflow.json not found" in str(err.value) and "dvc repro train" in str(err.value)
    with pytest.raises(UserError) as err:
        predict_file(pair, source, tmp_path / "out.xlsx")
    assert "'.xlsx'" in str(err.value)


def test_parquet_input_in_small_chunks(pair: Path, tmp_path: Path) -> None:
    """Parquet rows are numbered from 1; chunks smaller than the file give the same output;
    values JSON has no form for (NaN, dates) are written as null and text."""
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"first": f"a b {c}", "second": f"{c} b a", "weight": float("nan") if c == "d" else 1.0,
         "day": datetime.date(2024, 1, 2)}
        for c in "cdefg"
    ]  # fmt: skip
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows), source)
    whole, chunked = tmp_path / "whole.jsonl", tmp_path / "chunked.jsonl"
    predict_file(pair, source, whole)
    predict_file(pair, source, chunked, chunk_rows=2, batch_size=1)
    a, b = read_jsonl(whole), read_jsonl(chunked)
    assert [r["prediction"] for r in a] == [r["prediction"] for r in b]
    # other batches pad differently: the same numbers up to float rounding
    assert [r["score"] for r in a] == pytest.approx([r["score"] for r in b], abs=1e-6)
    assert [r["row"] for r in read_jsonl(whole)] == [1, 2, 3, 4, 5]
    assert a[1]["weight"] is None and a[0]["weight"] == 1.0 and a[0]["day"] == "2024-01-02"
    as_csv = tmp_path / "out.csv"
    predict_file(pair, source, as_csv)
    with as_csv.open(newline="", encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert got[1]["weight"] == "" and got[0]["day"] == "2024-01-02"


def test_jsonl_and_parquet_are_read_a_chunk_at_a_time(tmp_path: Path) -> None:
    """Memory stays flat: a JSONL file is parsed chunk by chunk (a bad line late in the file
    is met only when its chunk is read), Parquet in row batches; CSV is parsed whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nlpflow.data.files import BadRows, stream_records
    from nlpflow.params import DataParams

    params = DataParams(text_fields=["text"], label_field="\0", on_bad_rows="skip")
    lines = [json.dumps({"text": f"t{i}"}) for i in range(10)] + ["{bad"]
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    bad = BadRows("skip")
    stream = stream_records(jsonl, params, bad, ["text"], 4)
    assert stream.streamed and stream.total == 11
    first = next(stream.chunks)
    assert [n for n, _ in first] == [1, 2, 3, 4] and bad.rows == []
    rest = list(stream.chunks)
    assert [len(c) for c in rest] == [4, 2] and [b.line for b in bad.rows] == [11]
    parquet = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist([{"text": f"t{i}"} for i in range(5)]), parquet)
    stream = stream_records(parquet, params, BadRows("skip"), ["text"], 2)
    assert stream.streamed and stream.total == 5
    assert [[n for n, _ in c] for c in stream.chunks] == [[1, 2], [3, 4], [5]]
    csv_file = tmp_path / "a.csv"
    csv_file.write_text("text\nx\ny\nz\n")
    stream = stream_records(csv_file, params, BadRows("skip"), ["text"], 2)
    assert not stream.streamed and [len(c) for c in stream.chunks] == [2, 1]


def test_threshold_decides_as_evaluate_does(pair: Path, tmp_path: Path) -> None:
    """--threshold: the positive label (default the second) where its probability reaches
    the threshold, as evaluate's threshold_predictions decides; options that do not fit the
    model are refused before any row is read."""
    from nlpflow.evaluation.metrics import threshold_predictions
    from nlpflow.families.predict import predict_family

    rows, _ = split_rows(pair)
    source = write_jsonl(
        tmp_path / "in.jsonl", [{"first": r["first"], "second": r["second"]} for r in rows]
    )
    predict_file(pair, source, tmp_path / "a.jsonl")
    plain = read_jsonl(tmp_path / "a.jsonl")
    probs = np.array([[{t["label"]: t["score"] for t in r["top_k"]}[n] for n in ("no", "yes")]
                      for r in plain])  # fmt: skip
    cut = float(np.median(probs[:, 1]))
    for positive, index in (("", 1), ("no", 0)):
        out = tmp_path / f"t{positive}.jsonl"
        predict_file(pair, source, out, threshold=cut, positive=positive)
        expected = threshold_predictions(probs, index, cut)
        got = read_jsonl(out)
        assert [r["prediction"] for r in got] == [["no", "yes"][int(i)] for i in expected]
        assert [r["score"] for r in got] == pytest.approx(
            [probs[i, int(j)] for i, j in enumerate(expected)], abs=1e-9
        )
    for kwargs, message in (
        ({"threshold": 1.5}, "must be between 0 and 1"),
        ({"threshold": 0.5, "positive": "maybe"}, "'maybe' is not one of the labels"),
        ({"positive": "yes"}, "--positive goes with --threshold"),
    ):
        with pytest.raises(UserError) as err:
            predict_file(pair, source, tmp_path / "x.jsonl", **kwargs)
        assert message in str(err.value)
        assert not (tmp_path / "x.jsonl").exists()
    with pytest.raises(UserError) as err:
        predict_family("regression-that-does-not-exist")
    assert "does not handle 'regression-that-does-not-exist'" in str(err.value)


def test_threshold_is_refused_for_a_token_model(token: Path, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"tokens": ["Anna", "lives"]}])
    with pytest.raises(UserError) as err:
        predict_file(token, source, tmp_path / "out.jsonl", threshold=0.5)
    assert "apply to binary sequence tasks" in str(err.value)
    with pytest.raises(UserError) as err:
        predict_file(token, source, tmp_path / "out.jsonl", generation={"max_new_tokens": 3})
    assert str(err.value) == (
        "--max-new-tokens and --num-beams apply to text2text models; this is a token model"
    )
    assert not (tmp_path / "out.jsonl").exists()


def test_token_model_on_a_conll_file_with_or_without_tags(token: Path, tmp_path: Path) -> None:
    """A CoNLL file gives a sentence per record (its words; a tag column, if any, is not
    read); row numbers are the sentences' first lines."""
    untagged = tmp_path / "words.conll"
    untagged.write_text("-DOCSTART-\n\nAnna\nlives\nin\nParis\n\nBob\nsleeps\n")
    tagged = tmp_path / "tagged.conll"
    tagged.write_text("Anna B-PER\nlives O\nin O\nParis B-LOC\n\nBob B-PER\nsleeps O\n")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    predict_file(token, untagged, a)
    predict_file(token, tagged, b)
    got = read_jsonl(a)
    assert [r["tokens"] for r in got] == [["Anna", "lives", "in", "Paris"], ["Bob", "sleeps"]]
    assert [r["row"] for r in got] == [3, 8]
    assert [len(r["prediction"]) for r in got] == [4, 2]
    other = read_jsonl(b)
    assert [r["prediction"] for r in other] == [r["prediction"] for r in got]
    assert [r["row"] for r in other] == [1, 6]


def test_regression_model_predicts_numbers_in_the_targets_units(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """The regression family's prediction side: ``prediction`` is the model's output restored
    to the target's units, as evaluate computes it from the tokenized split."""
    from nlpflow.evaluation.predict import forward_batches, load_classifier
    from nlpflow.families.regression.model import restore

    data = {
        "source": "builtin:regression", "text_fields": ["first", "second"],
        "label_field": "score", "regression": {"size": 120},
    }  # fmt: skip
    train = {"early_stopping": {"metric": "rmse", "mode": "min"}}
    model_dir = train_tiny(tmp_path_factory.mktemp("regression"), epochs=1, data=data, train=train)
    rows, tokenized = split_rows(model_dir)
    source = write_jsonl(
        tmp_path / "in.jsonl", [{"first": r["first"], "second": r["second"]} for r in rows]
    )
    out = tmp_path / "out.csv"
    predict_file(model_dir, source, out)
    with out.open(newline="", encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert list(got[0]) == ["first", "second", "row", "prediction", "truncated"]
    model, pad = load_classifier(model_dir, ["score"], "regression")
    expected = np.empty(len(rows))
    types = (
        list(tokenized["token_type_ids"]) if "token_type_ids" in tokenized.column_names else None
    )
    for idx, logits in forward_batches(
        model, list(tokenized["input_ids"]), 8, pad, types, False, softmax=False
    ):
        expected[idx] = logits.reshape(len(idx), -1)[:, 0]
    expected = restore(model.config, expected)
    np.testing.assert_allclose([float(g["prediction"]) for g in got], expected, atol=1e-9)


@pytest.mark.parametrize("task", TASKS)
def test_every_family_has_a_predict_side(task: str) -> None:
    """`nlpflow predict` covers every task family (issue 12): a family registered in
    families.names.TASKS without a prediction side fails here, not in a user's hands."""
    from nlpflow.families.predict import predict_family

    family = predict_family(task)
    assert family.name == task and family.output_keys


def test_a_bar_on_a_terminal_and_plain_lines_elsewhere(
    pair: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"first": f"a b {c}", "second": f"{c} b a"} for c in "cdefghijkl"]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    lines: list[str] = []
    predict_file(
        pair, source, tmp_path / "bar.jsonl", chunk_rows=3, progress=True, log=lines.append
    )
    assert not [x for x in lines if x.startswith("progress:")]
    assert "0/10 [" in capsys.readouterr().err  # tqdm's bar (on stderr), cleared at the end
    lines.clear()
    predict_file(
        pair, source, tmp_path / "plain.jsonl", chunk_rows=3, progress=False, log=lines.append
    )
    shown = [x for x in lines if x.startswith("progress:")]
    assert [x.split()[1] for x in shown] == ["3/10", "6/10", "9/10", "10/10"]


def test_reading_problems_name_predicts_options(pair: Path, tmp_path: Path) -> None:
    """A headerless CSV: the reader's advice names --column-names, not a params key; with
    it the file reads. A first chunk of unparseable lines is rejects, not a missing column."""
    source = tmp_path / "new.csv"
    source.write_text("a b c,c b a\nd e,e d\n")
    with pytest.raises(UserError) as err:
        predict_file(pair, source, tmp_path / "out.jsonl")
    assert "--column-names" in str(err.value) and "data." not in str(err.value)
    reading = {"column_names": ["first", "second"], "header": False}
    summary = predict_file(pair, source, tmp_path / "out.jsonl", reading=reading)
    assert summary.predicted == 2
    broken = write_jsonl(tmp_path / "b.jsonl", ["{x", "{y", {"first": "a", "second": "a"}])
    summary = predict_file(pair, broken, tmp_path / "b-out.jsonl", chunk_rows=1)
    assert summary.predicted == 1 and [r.row for r in summary.rejects] == [1, 2]
