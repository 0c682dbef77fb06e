"""A classification data set run as generation (``data.text2text.label_task``) through the
stages, in process: the anagram pairs written as ``first | second`` -> ``yes``/``no``, the
outputs parsed back to labels and scored as a classifier's, beside the baselines'."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from nlpflow.errors import UserError
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
    assert meta["label_task_fields"] == ["first", "second"]
    # the data card counts the target classes, as a classifier's card counts labels
    from datasets import load_from_disk

    processed = load_from_disk(str(r / "processed"))
    card = (r / "data.md").read_text()
    assert "## Labels" in card and "2 classes" in card and "## Target" not in card
    counts = json.loads((r / "pre.json").read_text())["splits"]
    for split in ("train", "validation", "test"):
        assert counts[split]["labels"] == dict(Counter(processed[split]["label"]))
        assert "target" not in counts[split]
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
    train_targets = processed["train"]["label"]
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

    # nlpflow predict on the classification file's own fields (first, second): joined as
    # preprocess joined them, generated, parsed back to a label
    from nlpflow.families.predict import predict_family
    from nlpflow.families.text2text.outputs import LabelParser
    from nlpflow.predict import load_model, predict_file

    picked = list(processed["test"])[:4]  # the pairs as the classification file holds them
    source = {x["id"]: dict(zip(("first", "second"), x["input"].split(" | "), strict=True))
              for x in picked}  # fmt: skip
    new = r / "new.jsonl"
    new.write_text("".join(json.dumps({"id": i, **pair}) + "\n" for i, pair in source.items()))
    loaded = load_model(r / "models" / "best", 8)
    fam = predict_family("text2text")
    for x in picked:
        assert fam.inputs(source[x["id"]], loaded) == [x["input"]]
    said: list[str] = []
    predict_file(r / "models" / "best", new, r / "new-out.jsonl", log=said.append)
    out = [json.loads(x) for x in (r / "new-out.jsonl").read_text().splitlines()]
    how = Counter(o["parsed_as"] for o in out)
    assert (
        f"predict: outputs read back as labels: exact {how['exact']}, normalised "
        f"{how['normalised']}, unparseable {how['unparseable']}"
    ) in said
    assert [o["id"] for o in out] == [x["id"] for x in picked]
    parser = LabelParser(["no", "yes"])
    for o in out:
        assert (o["parsed_label"], o["parsed_as"]) == parser.parse(o["prediction"])
    by_id = {x["id"]: x for x in rows}
    for o in out:  # greedy: evaluate's first 3 tokens are predict's first 3
        seen = by_id[o["id"]]
        assert o["prediction"].startswith(seen["prediction"])
        if seen["ended"]:
            assert o["prediction"] == seen["prediction"]
    # with evaluate's own generation settings (--max-new-tokens 3), evaluate's outputs exactly
    predict_file(r / "models" / "best", new, r / "same.jsonl", generation={"max_new_tokens": 3})
    same = [json.loads(x) for x in (r / "same.jsonl").read_text().splitlines()]
    assert [(o["prediction"], o["generated_tokens"], o["ended"]) for o in same] == [
        (by_id[i]["prediction"], by_id[i]["generated_tokens"], by_id[i]["ended"]) for i in source
    ]
    with pytest.raises(UserError) as bad_setting:
        predict_file(r / "models" / "best", new, r / "y.jsonl", generation={"num_beams": 0})
    assert str(bad_setting.value) == "--num-beams must be an integer >= 1, not 0"
    with pytest.raises(UserError) as err:
        predict_file(r / "models" / "best", r / "pred" / "test.jsonl", r / "x.jsonl")
    assert "['first', 'second']" in str(err.value)
