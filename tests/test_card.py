"""The model card (nlpflow.card, stages/model_card.py) without DVC: its metadata and numbers
come from the metrics files, transformers' pipeline still loads the directory, and dvc.yaml
gives the card a stage of its own beside train's model files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from nlpflow.card import CardInputs, card_values, render_card, section_names
from nlpflow.data.saved import DataMeta
from nlpflow.errors import UserError
from nlpflow.modelinfo import MODEL_CARD, MODEL_FILES, check_model_files, write_model_info
from tests.conftest import ROOT, tiny_params

META = DataMeta(
    ["first", "second"], ["no", "yes"], ["kind"], label_field="label",
    cleaning={"unicode": "NFKC", "whitespace": True, "lowercase": False},
).tokenized(32, "longest_first")  # fmt: skip
EVALUATE: dict[str, Any] = {
    "validation": {"n": 10, "accuracy": 0.5},
    "test": {
        "n": 40, "accuracy": 0.875, "f1_macro": 0.871234, "mcc": 0.75, "log_loss": 0.3125,
        "classes_missing": 0, "per_class": {"no": {"f1": 0.9}},
        "ci": {"accuracy": {"low": 0.775, "high": 0.975}, "f1_macro": {"low": 0.76, "high": 0.97}},
        "baselines": {
            "majority": {"accuracy": 0.55, "f1_macro": 0.354839},
            "tfidf_logreg": {"accuracy": 0.6, "f1_macro": 0.598},
        },
    },
    "threshold": {"fixed": 0.5, "tuned": 0.42, "used": 0.5},
}  # fmt: skip
ERRORS: dict[str, Any] = {
    "test": {
        "n": 40, "accuracy": 0.875, "errors": 5,
        "slices": {
            "kind": {"added": {"n": 3, "accuracy": 0.0}, "substituted": {"n": 12, "accuracy": 0.75},
                     "anagram": {"n": 25, "accuracy": 0.96}},
        },
        "behaviour": {
            "invariance_case": {"tested": 20, "failed": 0, "failure_rate": 0.0},
            "a_dropped_letter_lowers_p_yes": {"tested": 10, "failed": 3, "failure_rate": 0.3},
        },
    }
}  # fmt: skip
DATA: dict[str, Any] = {
    "source": "builtin:anagram",
    "splits": {"train": {"rows": 320, "labels": {"no": 170, "yes": 150}, "words": {"p50": 9}}},
    "imbalance_ratio": 1.13, "leakage": {"total": 0}, "warnings": ["a warning"],
}  # fmt: skip


def card(**override: Any) -> str:
    params = {k: tiny_params()[k] for k in ("seed", "data", "tokenizer", "model", "train")}
    parts: dict[str, Any] = {
        "meta": META, "evaluate": EVALUATE, "error_analysis": ERRORS, "data": DATA,
        "params": {**params, "evaluate": {"confidence_level": 0.9}},
    }  # fmt: skip
    return render_card(CardInputs(**{**parts, **override}))


def test_metadata_holds_the_test_metrics_of_evaluate_json() -> None:
    text = card()
    head = yaml.safe_load(text.split("---\n")[1])
    assert head["license"] == "unknown" and head["pipeline_tag"] == "text-classification"
    assert head["datasets"] == ["builtin:anagram"] and "nlpflow" in head["tags"]
    result = head["model-index"][0]["results"][0]
    assert result["task"]["type"] == "text-classification"
    assert result["dataset"]["split"] == "test (n=40)"
    assert card_values(text) == {
        "accuracy": 0.875, "f1_macro": 0.871234, "mcc": 0.75, "log_loss": 0.3125,
    }  # fmt: skip
    assert head["metrics"] == ["accuracy", "f1_macro", "mcc"]


def test_body_shows_intervals_baselines_limits_data_and_params() -> None:
    text = card()
    assert section_names(text) == [
        "How to use", "Evaluation (test split, n = 40)", "Limitations", "Training data",
        "Training procedure",
    ]  # fmt: skip
    assert "| accuracy | 0.875 | [0.775, 0.975] | 0.55 | 0.6 |" in text
    assert "| f1_macro | 0.871234 | [0.76, 0.97] | 0.354839 | 0.598 |" in text
    assert "90% interval" in text and "tuned on validation 0.42" in text
    # the weakest slice of at least 5 examples (added, n=3, is too small to be called that)
    assert "Weakest slice: `kind` = `substituted`, accuracy 0.75 on 12 examples" in text
    assert "Behavioural tests failed: 1 of 2" in text
    assert "`a_dropped_letter_lowers_p_yes`: 3 of 10 cases failed (0.3)" in text
    assert "| train | 320 | no 170, yes 150 | 9 |" in text and "warning: a warning" in text
    assert "cleaning (repeated by `nlpflow predict`): unicode NFKC, whitespace" in text
    assert "source: builtin:anagram" in text and "effective_batch_size: 16" in text
    # the command that decides as evaluate did (its threshold, here the fixed 0.5)
    assert "nlpflow predict --model models/best --threshold 0.5 new.csv" in text
    assert card() == text  # nothing of this machine or this moment in it


def test_token_card_and_no_failed_behaviour() -> None:
    meta = DataMeta(["tokens"], ["B-PER", "I-PER", "O"], task="token").tokenized(
        16, "longest_first"
    )
    evaluate = {"test": {"n": 8, "f1": 0.5, "token_accuracy": 0.9, "ci": {"f1": {"low": 0.2, "high": 0.8}},
                         "baselines": {"word_majority": {"f1": 0.25, "token_accuracy": 0.7}}}}  # fmt: skip
    errors = {"test": {"n": 8, "errors": 2, "accuracy": 0.75, "slices": {}, "behaviour": {
        "invariance_case": {"tested": 4, "failed": 0, "failure_rate": 0.0}}}}  # fmt: skip
    text = card(meta=meta, evaluate=evaluate, error_analysis=errors)
    head = yaml.safe_load(text.split("---\n")[1])
    assert head["pipeline_tag"] == "token-classification"
    assert card_values(text) == {"f1": 0.5, "token_accuracy": 0.9}
    assert "| f1 | 0.5 | [0.2, 0.8] | 0.25 |" in text
    assert "All 1 behavioural tests passed." in text and "Weakest slice" not in text
    assert "nlpflow predict --model models/best new.csv" in text  # no threshold for tags


def test_transformers_pipeline_loads_a_directory_with_its_card(tmp_path: Path) -> None:
    from transformers import pipeline

    from tests.evaluation import tiny

    paths = tiny.make_all(tmp_path / "seq")
    (paths["model"] / MODEL_CARD).write_text(card(), encoding="utf-8")
    classify = pipeline("text-classification", model=str(paths["model"]), device="cpu")
    out = classify({"text": "a b c", "text_pair": "c b a"})
    first = out[0] if isinstance(out, list) else out
    assert first["label"] in ("no", "yes")
    token = tiny.make_token_all(tmp_path / "tok")
    meta = DataMeta(["tokens"], tiny.TAG_NAMES, task="token").tokenized(32, "longest_first")
    errors = {"test": {"n": 1, "errors": 0, "accuracy": 1.0}}
    evaluate = {"test": {"n": 1, "f1": 1.0}}
    (token["model"] / MODEL_CARD).write_text(
        card(meta=meta, evaluate=evaluate, error_analysis=errors), encoding="utf-8"
    )
    tagger = pipeline("token-classification", model=str(token["model"]), device="cpu")
    assert all(w["entity"] in tiny.TAG_NAMES for w in tagger("Anna lives in Paris"))


def test_dvc_yaml_train_lists_the_model_files_and_the_card_has_its_own_stage() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    outs = [o if isinstance(o, str) else next(iter(o)) for o in stages["train"]["outs"]]
    assert [o for o in outs if o.startswith("models/best")] == [
        f"models/best/{name}" for name in MODEL_FILES
    ]
    assert stages["model_card"]["outs"] == [f"models/best/{MODEL_CARD}"]
    for stage in ("evaluate", "error_analysis"):  # the model's files, not the card: no cycle
        deps = stages[stage]["deps"]
        assert "models/best" not in deps and f"models/best/{MODEL_CARD}" not in deps
        assert {f"models/best/{name}" for name in MODEL_FILES} <= set(deps)


def test_a_model_that_saves_other_files_is_named(tmp_path: Path) -> None:
    model = tmp_path / "best"
    model.mkdir()
    for name in MODEL_FILES:
        (model / name).write_text("{}")
    check_model_files(model)
    (model / "vocab.txt").write_text("x")
    (model / "tokenizer.json").unlink()
    with pytest.raises(UserError) as err:
        check_model_files(model)
    assert "also wrote ['vocab.txt'] and did not write ['tokenizer.json']" in str(err.value)


def test_the_stage_writes_the_card_and_refuses_missing_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stages.model_card import main
    from tests.conftest import dump_params

    model = tmp_path / "best"
    model.mkdir()
    (model / "config.json").write_text("{}")
    write_model_info(model, META)
    (tmp_path / "params.yaml").write_text(dump_params(tiny_params()))
    for name, content in (("e.json", EVALUATE), ("a.json", ERRORS), ("p.json", DATA)):
        (tmp_path / name).write_text(json.dumps(content))
    argv = [
        "--params", str(tmp_path / "params.yaml"), "--model", str(model),
        "--evaluate", str(tmp_path / "e.json"), "--error-analysis", str(tmp_path / "a.json"),
        "--data-card", str(tmp_path / "p.json"), "--out", str(model / MODEL_CARD),
    ]  # fmt: skip
    assert main(argv) == 0
    assert card_values((model / MODEL_CARD).read_text())["accuracy"] == 0.875
    (tmp_path / "e.json").unlink()
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "e.json not found; run the evaluate stage first" in capsys.readouterr().err


def test_regression_card_names_the_target_and_the_weakest_slice_by_rmse() -> None:
    meta = DataMeta(["text"], ["score"], task="regression", label_field="score").tokenized(
        16, "longest_first"
    )
    evaluate = {"test": {"n": 30, "rmse": 0.25, "r2": 0.5, "ci": {"rmse": {"low": 0.2, "high": 0.3}},
                         "baselines": {"mean": {"rmse": 0.5, "r2": 0.0}}}}  # fmt: skip
    errors = {"test": {"n": 30, "rmse": 0.25, "slices": {"length": {
        "short": {"n": 12, "rmse": 0.4}, "long": {"n": 15, "rmse": 0.1}, "odd": {"n": 3, "rmse": 0.9},
    }}}}  # fmt: skip
    data = {"source": "x.csv", "splits": {"train": {"rows": 20, "words": {"p50": 4, "max": 9}}},
            "imbalance_ratio": None}  # fmt: skip
    text = card(meta=meta, evaluate=evaluate, error_analysis=errors, data=data)
    assert card_values(text) == {"rmse": 0.25, "r2": 0.5}
    assert yaml.safe_load(text.split("---\n")[1])["datasets"] == ["x.csv"]
    assert "| rmse | 0.25 | [0.2, 0.3] | 0.5 |" in text
    assert "one value per text" in text and "Target: `score`" in text
    assert "value = score * config.target_std + config.target_mean" in text
    assert "Weakest slice: `length` = `short`, rmse 0.4 on 12 examples (overall 0.25)" in text
    assert "| train | 20 | 4 | 9 |" in text and "imbalance ratio" not in text
    assert "None" not in text.split("## Training procedure")[0]


def test_text2text_card_reads_list_slices_and_notes_the_prompted_rows() -> None:
    """text2text's error analysis holds its slices as a list per slicing (by input length),
    and its prompted baselines ran on the first rows only: the card says so."""
    meta = DataMeta(["input"], ["target"], task="text2text", label_field="target").tokenized(
        16, "only_first"
    )
    evaluate = {"test": {"n": 40, "exact_match": 0.8, "token_f1": 0.9, "ci": {},
                         "baselines": {"copy_input": {"exact_match": 0.0},
                                       "zero_shot": {"exact_match": 0.0, "rows": "the first 20 of 40"}}}}  # fmt: skip
    errors = {"test": {"n": 40, "wrong": 8, "slices": {"input_length": [
        {"input_words": "2-3", "n": 25, "exact_match": 0.9, "token_f1": 0.95},
        {"input_words": "4-7", "n": 15, "exact_match": 0.6, "token_f1": 0.8},
    ]}}}  # fmt: skip
    text = card(
        meta=meta, evaluate=evaluate, error_analysis=errors, data={"source": "builtin:text2text"}
    )
    assert "Weakest slice: `input_length` = `4-7`, exact_match 0.6 on 15 examples" in text
    assert "Rows of the split scored: zero_shot on the first 20 of 40." in text


def test_a_label_task_card_names_the_classes_and_their_counts() -> None:
    """A classification source run as generation: the classes written out, counted per split
    as the data card counts them."""
    meta = DataMeta(["input"], ["target"], task="text2text", label_field="target",
                    target_labels=["no", "yes"]).tokenized(16, "only_first")  # fmt: skip
    data = {"source": "builtin:anagram", "imbalance_ratio": 1.5,
            "splits": {"train": {"rows": 50, "labels": {"no": 30, "yes": 20},
                                 "words": {"p50": 3, "max": 5}}}}  # fmt: skip
    text = card(meta=meta, data=data)
    assert "target `target`: 2 classes written out (`no`, `yes`)" in text
    assert "| train | 50 | no 30, yes 20 | 3 | 5 |" in text
    assert "imbalance ratio (largest / smallest class) 1.5" in text
