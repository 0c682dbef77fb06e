"""A classification data set run as generation (``data.text2text.label_task``) through the
stages, in process: the anagram pairs written as ``first | second`` -> ``yes``/``no``, the
outputs parsed back to labels and scored as a classifier's, beside the baselines'."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from stages import error_analysis, evaluate, preprocess, probe, tokenize, train
from tests.conftest import dump_params, tiny_params


def test_label_task_through_generation(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        dump_params(
            tiny_params(
                data={"task": "text2text", "anagram": {"size": 150},
                      "text2text": {"label_task": True}},
                tokenizer={"vocab_size": 200},
                model={"text2text": {"kind": "seq2seq", "max_input_length": 12,
                                     "max_target_length": 3}},
                train={"epochs": 1, "early_stopping": {"metric": "loss", "mode": "min"}},
                evaluate={"bootstrap_resamples": 50, "generation": {
                    "max_new_tokens": 3, "prompted": {"few_shot": 1, "max_rows": 5}}},
            )
        )
    )  # fmt: skip
    a, r = ["--params", str(params)], tmp_path
    preprocess.main([*a, "--out", str(r / "processed"), "--metrics", str(r / "pre.json"),
                     "--plots", str(r / "plots-data"), "--report", str(r / "data.md")])  # fmt: skip
    meta = json.loads((r / "processed" / "meta.json").read_text())
    assert meta["task"] == "text2text" and meta["target_labels"] == ["no", "yes"]
    tokenize.main([*a, "--data", str(r / "processed"), "--out", str(r / "tokenized"),
                   "--tokenizer-out", str(r / "tokenizer"), "--metrics", str(r / "tok.json"),
                   "--report", str(r / "tok.md")])  # fmt: skip
    common = ["--data", str(r / "tokenized"), "--tokenizer", str(r / "tokenizer")]
    probe.main([*a, *common, "--out", str(r / "probe.json"), "--plot", str(r / "probe-plot.json"),
                "--plan", str(r / "plan.json")])  # fmt: skip
    train.main([*a, *common, "--probe", str(r / "plan.json"), "--models", str(r / "models"),
                "--checkpoints", str(r / "ckpt"), "--metrics", str(r / "train.json"),
                "--plots", str(r / "plots-train")])  # fmt: skip
    evaluate.main([*a, "--model", str(r / "models" / "best"), "--processed",
                   str(r / "processed"), "--tokenized", str(r / "tokenized"), "--predictions",
                   str(r / "pred"), "--metrics", str(r / "evaluate.json"), "--plots",
                   str(r / "plots-eval")])  # fmt: skip

    test = json.loads((r / "evaluate.json").read_text())["test"]
    labels = test["labels"]
    rows = [json.loads(x) for x in (r / "pred" / "test.jsonl").read_text().splitlines()]
    n = len(rows)
    assert labels["n"] == test["n"] == n
    # the figures are those of the predictions' parsed labels
    assert labels["accuracy"] == round(sum(x["parsed_label"] == x["label"] for x in rows) / n, 6)
    unparseable = sum(x["parsed_label"] is None for x in rows)
    assert labels["unparseable_share"] == round(unparseable / n, 6)
    assert sum(labels["parsed"].values()) == n and labels["parsed"]["unparseable"] == unparseable
    for key in ("accuracy", "f1_macro", "unparseable_share"):
        assert labels["ci"][key]["low"] <= labels[key] <= labels["ci"][key]["high"]
    # the baselines as classifiers: the majority label of train, and the copied input (never
    # a label name: all unparseable)
    from datasets import load_from_disk

    train_targets = load_from_disk(str(r / "processed"))["train"]["label"]
    majority = min(Counter(train_targets).items(), key=lambda kv: (-kv[1], kv[0]))[0]
    base = labels["baselines"]
    assert base["most_common_target"]["accuracy"] == round(
        sum(x["label"] == majority for x in rows) / n, 6
    )
    assert base["most_common_target"]["unparseable_share"] == 0.0
    assert base["copy_input"]["unparseable_share"] == 1.0
    assert base["zero_shot"]["n"] == base["few_shot"]["n"] == 5

    error_analysis.main([*a, "--predictions", str(r / "pred"), "--processed",
                         str(r / "processed"), "--evaluate-metrics", str(r / "evaluate.json"),
                         "--report", str(r / "errors.md"), "--metrics", str(r / "errors.json"),
                         "--plots", str(r / "plots-errors")])  # fmt: skip
    report = (r / "errors.md").read_text()
    assert "## Labels parsed back from the outputs" in report
    assert f"unparseable {unparseable}" in report
