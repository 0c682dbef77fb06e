"""The multilabel family's data, model and train sides, each on tiny inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nlpflow.errors import UserError
from nlpflow.families.data import data_family
from nlpflow.families.model import model_family
from nlpflow.families.multilabel.metrics import multilabel_metrics
from nlpflow.families.train import train_family
from tests.conftest import dump_params, tiny_params


def _preprocess(tmp_path: Path, **data: Any) -> dict[str, Any]:
    from stages import preprocess

    base = {"task": "multilabel", "text_fields": ["text"], "label_field": "labels"}
    params = tiny_params(data={**base, **data})
    (tmp_path / "params.yaml").write_text(dump_params(params))
    preprocess.main(
        ["--out", "processed", "--metrics", "m.json", "--plots", "p", "--report", "r.md"]
    )
    return json.loads((tmp_path / "processed" / "meta.json").read_text())


def _jsonl(path: Path, rows: list[tuple[str, Any]]) -> Path:
    path.write_text("".join(json.dumps({"text": t, "labels": y}) + "\n" for t, y in rows))
    return path


def test_jsonl_files_through_preprocess(tmp_path: Path) -> None:
    words = ["cat", "dog", "sun", "rain", "tea", "milk"]
    rows = [(f"{a} {b} {i}", [x for x in ("pets", "sky") if (i + len(x)) % 3]) for i, (a, b) in
            enumerate((a, b) for a in words for b in words)]  # fmt: skip
    train = _jsonl(tmp_path / "train.jsonl", rows[:30])
    test = _jsonl(tmp_path / "test.jsonl", rows[30:])
    meta = _preprocess(tmp_path, files={"train": str(train), "test": str(test)})
    assert meta["task"] == "multilabel"
    assert meta["label_names"] == ["pets", "sky"]
    from datasets import load_from_disk

    processed = load_from_disk(str(tmp_path / "processed"))
    assert processed["train"].features["label"].feature.names == ["pets", "sky"]


def test_unknown_label_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [(f"text {i}", ["a"] if i % 2 else ["b"]) for i in range(40)]
    train = _jsonl(tmp_path / "train.jsonl", rows)
    test = _jsonl(tmp_path / "test.jsonl", [("x", ["a"]), ("y", ["c"])])
    with pytest.raises(SystemExit):
        _preprocess(tmp_path, files={"train": str(train), "test": str(test)})
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {test}, line 2, column 'labels': label 'c' occurs in no train")
    assert "\n" not in err


def test_csv_with_a_delimiter_param(tmp_path: Path) -> None:
    lines = ["text,labels"] + [f"t{i} w{i % 7},{'a|b' if i % 3 else ''}" for i in range(60)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    meta = _preprocess(tmp_path, source=str(tmp_path / "d.csv"), multilabel={"delimiter": "|"})
    assert meta["label_names"] == ["a", "b"]


def test_data_side_strata_clean_and_names() -> None:
    fam = data_family("multilabel")
    rows = [{"t": "x", "y": ["a", "r"]}, {"t": "x", "y": ["a", "r"]}, {"t": "z", "y": []}]
    rows += [{"t": f"w{i}", "y": ["a"]} for i in range(3)]
    assert fam.strata(rows, "y") == ["r", "r", "", "a", "a", "a"]  # the rarest label
    from nlpflow.params import CleaningParams

    cleaned = fam.clean(rows, ["t"], "y", CleaningParams())
    assert cleaned is not None
    assert [r["y"] for r in cleaned[0]][:2] == [["a", "r"], []]  # the duplicate dropped
    assert fam.labels_of(rows[:3], "y") == ["a", "r", "a", "r"]
    assert fam.label_values(rows[:3], "y", ["a", "r"]) == [[0, 1], [0, 1], []]
    one = {"train": "d.jsonl", "validation": "d.jsonl", "test": "d.jsonl"}
    splits = {"train": rows[3:], "validation": rows[:1], "test": rows[2:3]}
    # one source split at random: a label only outside train is kept, and warned about
    assert fam.label_names(splits, "y", one) == ["a", "r"]
    warnings = fam.warnings(["a", "r"], splits, "y")
    assert warnings[0].startswith("label(s) ['r'] occur in no train example")


def test_model_side_problem_type(tmp_path: Path) -> None:
    from transformers import BertConfig

    fam = model_family("multilabel")
    kwargs = fam.config_kwargs(["a", "b"])
    assert kwargs["problem_type"] == "multi_label_classification"
    config = BertConfig(**kwargs)
    fam.check_config(config, ["a", "b"], tmp_path)
    config.problem_type = "single_label_classification"
    with pytest.raises(UserError) as err:
        fam.check_config(config, ["a", "b"], tmp_path)
    assert "problem_type is 'single_label_classification'" in str(err.value)


def _tokenized(k: int = 3) -> Any:
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    features = Features(
        {
            "input_ids": Sequence(Value("int32")),
            "labels": Sequence(ClassLabel(names=[f"l{j}" for j in range(k)])),
        }
    )
    return Dataset.from_dict(
        {"input_ids": [[2, 5, 6, 3], [2, 7, 3], [2, 5, 5, 5, 3]], "labels": [[0, 2], [], [1]]},
        features=features,
    )


def test_train_side_split_criterion_and_validation() -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    fam = train_family("multilabel")
    split = fam.padded_split(_tokenized(), pad_id=0)
    assert split.labels.tolist() == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    assert not split.token_task
    batch = split.batch(torch.tensor([1, 2]), torch.device("cpu"))
    assert batch["labels"].shape == (2, 3)
    assert batch["input_ids"].shape == (2, 5)
    assert split.subset(torch.tensor([0])).labels.tolist() == [[1.0, 0.0, 1.0]]

    class Train:
        class_weights: Any = "balanced"
        label_smoothing = 0.0
        loss = "auto"

    crit = fam.criterion(Train(), ["l0", "l1", "l2"], split, overfit=False)
    # negatives / positives per label: 2/1, 2/1, 2/1
    assert crit.pos_weight.tolist() == [2.0, 2.0, 2.0]
    Train.class_weights = {"l1": 3.0}
    assert fam.criterion(Train(), ["l0", "l1", "l2"], split, False).pos_weight.tolist() == [
        1.0,
        3.0,
        1.0,
    ]
    Train.label_smoothing = 0.1
    with pytest.raises(UserError) as err:
        fam.criterion(Train(), ["l0", "l1", "l2"], split, False)
    assert "label_smoothing applies to single-label tasks" in str(err.value)
    with pytest.raises(UserError) as err:
        fam.check_loss("cross_entropy")
    assert "use auto or binary_cross_entropy" in str(err.value)

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=8, num_labels=3,
        problem_type="multi_label_classification",
    )  # fmt: skip
    model = BertForSequenceClassification(config).eval()  # no dropout in the reference below
    from nlpflow.families.multilabel.loss import BCECriterion

    out = fam.validate(
        model, split, 2, torch.device("cpu"), BCECriterion(), None, ["a", "b", "c"], None
    )
    assert set(out) == set(fam.metric_names(["a", "b", "c"]))
    with torch.no_grad():
        logits = model(
            input_ids=split.input_ids.long(),
            attention_mask=(torch.arange(5)[None] < split.lengths[:, None]).long(),
        ).logits
    predicted = (logits >= 0).numpy().astype(int)
    truth = split.labels.numpy().astype(int)
    m = multilabel_metrics(truth, predicted, predicted.astype(float), ["a", "b", "c"])
    assert out["f1_micro"] == pytest.approx(m["f1_micro"])
    assert out["f1_macro"] == pytest.approx(m["f1_macro"])
    assert out["subset_accuracy"] == pytest.approx(m["subset_accuracy"])
    assert out["accuracy"] == pytest.approx(1 - m["hamming_loss"])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, split.labels)
    assert out["loss"] == pytest.approx(float(bce), rel=1e-5)
    assert fam.probe_labels(4, 7, 3).shape == (4, 3)
    assert fam.uniform_classes(["a", "b", "c"]) == 2


def test_a_saved_dataset_with_class_label_lists(tmp_path: Path) -> None:
    """GoEmotions' layout on the hub: ``labels`` a list of ClassLabel ids."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    features = Features(
        {"text": Value("string"), "labels": Sequence(ClassLabel(names=["joy", "anger", "fear"]))}
    )
    split = {
        "text": [f"text number {i}" for i in range(40)],
        "labels": [[i % 3] if i % 4 else [] for i in range(40)],
    }
    DatasetDict(
        {
            "train": Dataset.from_dict(split, features=features),
            "test": Dataset.from_dict(split, features=features).select(range(10)),
        }
    ).save_to_disk(str(tmp_path / "saved"))
    meta = _preprocess(tmp_path, source=str(tmp_path / "saved"), leakage="warn")
    assert meta["task"] == "multilabel"
    assert meta["label_names"] == ["anger", "fear", "joy"]


def test_one_label_is_a_task(tmp_path: Path) -> None:
    """A single label (present or not) is a multi-label task of one sigmoid output."""
    from nlpflow.data.saved import read_meta

    rows = [(f"text {i} w{i % 5}", ["spam"] if i % 3 == 0 else []) for i in range(60)]
    data = _jsonl(tmp_path / "d.jsonl", rows)
    meta = _preprocess(tmp_path, source=str(data))
    assert meta["label_names"] == ["spam"]
    assert read_meta(tmp_path / "processed").label_names == ["spam"]
