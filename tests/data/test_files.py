"""Local files read as users write them: CSV, TSV, JSONL, Parquet, CoNLL."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpflow.data.files import BadRows, read_conll, read_rows, split_files
from nlpflow.data.prepare import load_splits
from nlpflow.params import DataParams


def _params(**kw: object) -> DataParams:
    base: dict[str, object] = {"source": "x", "text_fields": ["text"], "label_field": "label"}
    base.update(kw)
    return DataParams(**base)  # type: ignore[arg-type]


def test_csv_tsv_jsonl_parquet_read(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text('text,label\n"hello, world",pos\nbye,neg\n')
    (tmp_path / "a.tsv").write_text("text\tlabel\nhello\tpos\n")
    (tmp_path / "a.jsonl").write_text('{"text": "hi", "label": 1}\n\n{"text": "yo", "label": 0}\n')
    bad = BadRows("fail")
    rows = read_rows(tmp_path / "a.csv", _params(), bad)
    assert [(r["text"], r["label"], r["_line"]) for r in rows] == [
        ("hello, world", "pos", 2),
        ("bye", "neg", 3),
    ]
    assert read_rows(tmp_path / "a.tsv", _params(), bad)[0]["text"] == "hello"
    rows = read_rows(tmp_path / "a.jsonl", _params(), bad)
    assert [(r["label"], r["_line"]) for r in rows] == [("1", 1), ("0", 3)]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["a", "b"], "label": [3, 4]}), tmp_path / "a.parquet")
    assert [r["label"] for r in read_rows(tmp_path / "a.parquet", _params(), bad)] == ["3", "4"]


def test_headerless_file_with_column_names_and_quotes(tmp_path: Path) -> None:
    (tmp_path / "ag.tsv").write_text('"He said ""hi"" twice"\tWorld\nplain text\tSports\n')
    rows = read_rows(tmp_path / "ag.tsv", _params(column_names=["text", "label"]), BadRows("fail"))
    assert [r["text"] for r in rows] == ['He said "hi" twice', "plain text"]


def test_quoting_none_keeps_quotes_as_characters(tmp_path: Path) -> None:
    (tmp_path / "sms.tsv").write_text('label\ttext\nham\t"ok" he said\nspam\tWIN "now\n')
    rows = read_rows(tmp_path / "sms.tsv", _params(quoting="none"), BadRows("fail"))
    assert [r["text"] for r in rows] == ['"ok" he said', 'WIN "now']


def test_skip_collects_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("text,label\nfine,a\nno label,\nx,a,extra\nalso fine,b\n")
    bad = BadRows("skip")
    rows = read_rows(tmp_path / "a.csv", _params(), bad)
    assert [r["text"] for r in rows] == ["fine", "also fine"]
    assert [(b.line, b.column) for b in bad.rows] == [(4, ""), (3, "label")]


def test_conll_iob_with_docstart_anywhere(tmp_path: Path) -> None:
    (tmp_path / "a.conll").write_text(
        "-DOCSTART- -X- O O\n\nAda NNP B-PER\nLovelace NNP I-PER\nwrote VBD O\n\n"
        "-DOCSTART- -X- O O\nParis NNP I-LOC\nis VBZ O\n"
    )
    sents = read_conll(tmp_path / "a.conll", _params(), BadRows("fail"))
    assert [(s["tokens"], s["tags"]) for s in sents] == [
        (["Ada", "Lovelace", "wrote"], ["B-PER", "I-PER", "O"]),
        (["Paris", "is"], ["I-LOC", "O"]),
    ]


def test_directory_source_carves_validation_from_train(tmp_path: Path) -> None:
    lines = "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(100))
    (tmp_path / "train.csv").write_text("text,label\n" + lines)
    (tmp_path / "test.csv").write_text("text,label\nx,a\ny,b\n")
    data = load_splits(_params(source=str(tmp_path)), seed=0)
    assert len(data.splits["train"]) + len(data.splits["validation"]) == 100
    assert len(data.splits["validation"]) > 0 and len(data.splits["test"]) == 2
    assert data.label_names == ["a", "b"]
    assert split_files(tmp_path).keys() == {"train", "test"}


def test_save_to_disk_directory_with_class_labels(tmp_path: Path) -> None:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    feats = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    ds = Dataset.from_dict(
        {"text": [f"t{i}" for i in range(40)], "label": [i % 2 for i in range(40)]}, features=feats
    )
    DatasetDict(
        {"train": ds, "test": ds.select(range(4)).map(lambda r: {"text": r["text"] + "!"})}
    ).save_to_disk(str(tmp_path / "saved"))
    data = load_splits(_params(source=str(tmp_path / "saved"), leakage="warn"), seed=0)
    assert data.label_names == ["neg", "pos"]
    assert len(data.splits["test"]) == 4
    # "t0!" and "t0" differ only by punctuation: a normalised duplicate across splits.
    assert data.leakage.counts["train/test"]["normalised"] >= 1


@pytest.mark.parametrize("policy", ["warn", "drop"])
def test_leakage_policies(tmp_path: Path, policy: str) -> None:
    (tmp_path / "train.csv").write_text(
        "text,label\n" + "".join(f"s{i},{'ab'[i % 2]}\n" for i in range(30))
    )
    (tmp_path / "test.csv").write_text("text,label\ns1,b\nS1!,b\nnew,a\n")
    data = load_splits(_params(source=str(tmp_path), leakage=policy), seed=0)
    assert data.leakage.counts["train/test"] == {"exact": 1, "normalised": 1}
    assert len(data.splits["test"]) == (3 if policy == "warn" else 1)


def test_hub_source_offline_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets.config
    import huggingface_hub.constants

    from nlpflow.errors import UserError

    # Offline mode as a user without network would set it; the libraries read it at import.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError) as err:
        load_splits(_params(source="hub:nlpflow-no-such/dataset"), seed=0)
    assert str(err.value).startswith("cannot load hub data set 'nlpflow-no-such/dataset'")
    assert "save_to_disk" in str(err.value)


def test_a_saved_dataset_names_its_splits_as_a_directory_of_files_may(tmp_path: Path) -> None:
    """`val` is a validation split in a directory of files; a saved dataset reads it alike."""
    from datasets import Dataset, DatasetDict

    def part(n: int, tag: str) -> Dataset:
        return Dataset.from_dict(
            {"text": [f"{tag} {i}" for i in range(n)], "label": ["ab"[i % 2] for i in range(n)]}
        )

    DatasetDict({"train": part(30, "a"), "val": part(6, "b"), "test": part(4, "c")}).save_to_disk(
        str(tmp_path / "saved")
    )
    data = load_splits(_params(source=str(tmp_path / "saved")), seed=0)
    assert len(data.splits["validation"]) == 6  # not carved from train
    assert len(data.splits["train"]) == 30


def test_token_rows_of_jsonl_and_parquet_files_as_hugging_face_writes_them(
    tmp_path: Path,
) -> None:
    """A list of words and a list of tags per row (CoNLL-2003 on the Hub): ``task: auto``
    reads it as a token task, integer tags as their digits; a bad row is named or skipped."""
    import json
    from dataclasses import replace

    import pandas as pd

    from nlpflow.errors import UserError

    good = [
        {"tokens": ["John", "lives", "in", "Paris"], "ner_tags": ["B-PER", "O", "O", "B-LOC"]},
        {"tokens": ["IBM", "hired", "Mary"], "ner_tags": ["B-ORG", "O", "B-PER"]},
    ] * 10
    bad = [
        {"tokens": ["too", "few"], "ner_tags": ["O"]},
        {"tokens": ["an", " ", "blank"], "ner_tags": ["O", "O", "O"]},
        {"tokens": "not a list", "ner_tags": ["O"]},
        {"tokens": ["one", "tag"], "ner_tags": "O O"},
        {"tokens": ["blank", "tag"], "ner_tags": ["O", " "]},
    ]
    path = tmp_path / "ner.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [*good, *bad]))
    params = _params(
        source=str(path), text_fields=["tokens"], label_field="ner_tags", on_bad_rows="skip"
    )
    data = load_splits(params, seed=0)
    assert data.task == "token"
    assert sorted(data.label_names) == ["B-LOC", "B-ORG", "B-PER", "O"]
    assert [(b.line, b.column) for b in data.bad_rows.rows] == [
        (21, "ner_tags"),
        (22, "tokens"),
        (23, "tokens"),
        (24, "ner_tags"),
        (25, "ner_tags"),
    ]
    assert "2 words but 1 tags" in data.bad_rows.rows[0].reason
    assert "tag 1 is empty" in data.bad_rows.rows[4].reason
    with pytest.raises(UserError) as failed:
        load_splits(replace(params, on_bad_rows="fail"), seed=0)
    assert "ner.jsonl, line 21" in str(failed.value)
    assert "2 words but 1 tags" in str(failed.value)

    ints = pd.DataFrame({"tokens": [r["tokens"] for r in good], "ner_tags": [[1, 0]] * 20})
    ints["tokens"] = [list(t)[:2] for t in ints["tokens"]]
    ints.to_parquet(tmp_path / "ner.parquet")
    params = _params(
        source=str(tmp_path / "ner.parquet"), text_fields=["tokens"], label_field="ner_tags"
    )
    data = load_splits(params, seed=0)
    assert data.task == "token"
    assert data.label_names == ["0", "1"]
