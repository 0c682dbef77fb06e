"""text2text through every stage, in process: preprocess, tokenize, probe, lr_range, train
(teacher forcing), evaluate (generation) and error_analysis, for both model kinds on a tiny
model and a small built-in data set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from datasets import load_from_disk
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
)

from stages import error_analysis, evaluate, lr_range, preprocess, probe, tokenize, train
from tests.conftest import dump_params, tiny_params

T2T = {"source": "builtin:text2text", "text_fields": ["input"], "label_field": "target"}


def _params(root: Path, kind: str, **extra: Any) -> Path:
    params = tiny_params(
        data={**T2T, "text2text": {"size": 120}},
        tokenizer={"vocab_size": 300},
        model={"text2text": {"kind": kind, "max_input_length": 4, "max_target_length": 5}},
        # exact match of 8 greedy validation generations at each epoch, early stopping on it
        train={
            "epochs": 4,
            "generation_sample": 8,
            "early_stopping": {"metric": "exact_match", "mode": "max", "patience": 1},
        },
        evaluate={
            "bootstrap_resamples": 100,
            "generation": {"prompted": {"few_shot": 2, "max_rows": 10, "seed": 3}},
        },
        **extra,
    )
    path = root / "params.yaml"
    path.write_text(dump_params(params))
    return path


def _run(root: Path, params: Path, with_lr_range: bool = True) -> None:
    a = ["--params", str(params)]
    preprocess.main([*a, "--out", str(root / "processed"), "--metrics",
                     str(root / "preprocess.json"), "--plots", str(root / "plots-data"),
                     "--report", str(root / "data.md")])  # fmt: skip
    tokenize.main([*a, "--data", str(root / "processed"), "--out", str(root / "tokenized"),
                   "--tokenizer-out", str(root / "tokenizer"), "--metrics",
                   str(root / "tokenize.json"), "--report", str(root / "tokenization.md")])  # fmt: skip
    common = ["--data", str(root / "tokenized"), "--tokenizer", str(root / "tokenizer")]
    probe.main([*a, *common, "--out", str(root / "probe.json"), "--plot",
                str(root / "probe-plot.json"), "--plan", str(root / "plan.json")])  # fmt: skip
    if with_lr_range:
        lr_range.main([*a, *common, "--probe", str(root / "plan.json"), "--metrics",
                       str(root / "lr_range.json"), "--plot", str(root / "lr.tsv"), "--image",
                       str(root / "lr.png")])  # fmt: skip
    train.main([*a, *common, "--probe", str(root / "plan.json"), "--models",
                str(root / "models"), "--checkpoints", str(root / "checkpoints"), "--metrics",
                str(root / "train.json"), "--plots", str(root / "plots-train")])  # fmt: skip


@pytest.mark.parametrize("kind", ["seq2seq", "causal"])
def test_every_stage(kind: str, tmp_path: Path) -> None:
    params = _params(tmp_path, kind)
    _run(tmp_path, params)

    # tokenize: what training reads, with the template's tail never cut
    ds = load_from_disk(str(tmp_path / "tokenized"))
    meta = json.loads((tmp_path / "tokenized" / "meta.json").read_text())
    assert meta["task"] == "text2text" and meta["max_length"] == 4
    tok = AutoTokenizer.from_pretrained(tmp_path / "tokenizer")
    row = ds["train"][0]
    if kind == "causal":
        cut = row["prompt_length"]
        prompt, target = row["input_ids"][:cut], row["input_ids"][cut:]
        counted = [t for t in row["labels"] if t != -100]
        assert counted == target  # the shifted labels score exactly the target tokens
        assert row["labels"][cut - 1] == target[0] and row["labels"][-1] == -100
        assert tok.convert_ids_to_tokens(prompt)[-1] == "="
    else:
        prompt, target = row["input_ids"], row["labels"]
        assert row["decoder_input_ids"] == [tok.pad_token_id, *target[:-1]]
        assert tok.convert_ids_to_tokens(prompt)[-2:] == ["=", "[EOS]"]
    assert tok.convert_ids_to_tokens(target)[-1] == "[EOS]" and len(target) <= 5
    report = json.loads((tmp_path / "tokenize.json").read_text())
    train_stats = report["splits"]["train"]
    assert train_stats["n"] == len(ds["train"])
    # sort/spell + up to 6 letters or 4 digits: inputs of 5-7 tokens are cut to 4
    assert 0 < train_stats["inputs_truncated"] <= train_stats["n"]
    assert train_stats["input_tokens"]["max"] == 7.0
    assert any("max_input_length (4 tokens)" in w for w in report["warnings"])
    assert "prompt," in (tmp_path / "tokenization.md").read_text()

    # probe, lr_range and train ran on this architecture; the saved model is of the kind
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["batch_size"] >= 1
    metrics = json.loads((tmp_path / "train.json").read_text())
    # stopped by exact match on the validation sample (flat at epoch 2, patience 1) while the
    # loss still fell: a loss or accuracy monitor would have gone on
    assert metrics["monitor"]["metric"] == "exact_match"
    assert metrics["stop_reason"] == "early_stopping" and metrics["epochs_run"] == 2
    config = AutoConfig.from_pretrained(tmp_path / "models" / "best")
    assert config.is_encoder_decoder == (kind == "seq2seq")
    epochs = (tmp_path / "plots-train" / "epochs.tsv").read_text().splitlines()
    header = epochs[0].split("\t")
    assert "val_accuracy" in header and "val_exact_match" in header
    first, last = (
        dict(zip(header, line.split("\t"), strict=True)) for line in epochs[1 :: len(epochs) - 2]
    )
    assert float(last["val_loss"]) < float(first["train_loss"])
    assert float(last["val_loss"]) < float(first["val_loss"])
    assert float(last["val_exact_match"]) <= float(first["val_exact_match"])

    # evaluate: generation, metrics with intervals beside the baselines, predictions
    a = ["--params", str(params)]
    evaluate.main([*a, "--model", str(tmp_path / "models" / "best"), "--processed",
                   str(tmp_path / "processed"), "--tokenized", str(tmp_path / "tokenized"),
                   "--predictions", str(tmp_path / "pred"), "--metrics",
                   str(tmp_path / "evaluate.json"), "--plots", str(tmp_path / "plots-eval"),
                   "--latency", str(tmp_path / "latency.json")])  # fmt: skip
    result = json.loads((tmp_path / "evaluate.json").read_text())
    test = result["test"]
    assert test["n"] == len(ds["test"])
    for key in ("exact_match", "token_f1", "rouge1", "rougeL", "bleu", "chrf", "perplexity"):
        assert key in test and key in test["ci"]
    assert (
        test["ci"]["exact_match"]["low"] <= test["exact_match"] <= test["ci"]["exact_match"]["high"]
    )
    assert test["perplexity"] > 1.0
    assert set(test["baselines"]) == {"copy_input", "most_common_target", "zero_shot", "few_shot"}
    # the base model prompted through the template on the first 10 rows, few-shot with 2
    # train examples; compared with the fine-tuned model on those same rows
    for name, shots in (("zero_shot", 0), ("few_shot", 2)):
        entry = test["baselines"][name]
        assert entry["n"] == 10 and entry["shots"] == shots and entry["shots_seed"] == 3
        assert entry["base_model"].startswith("untrained")
        assert set(test["paired"][name]) >= {"exact_match", "token_f1"}
    # the untrained base model is, bit for bit, the model the train stage starts from
    import torch

    from nlpflow.contracts import TrainInputs
    from nlpflow.families.text2text.evaluate import base_model
    from nlpflow.params import load_params
    from nlpflow.training.distributed import Distributed
    from nlpflow.training.probe import BatchPlan
    from nlpflow.training.setup import build_run

    inputs = TrainInputs.from_params(load_params(params))
    run = build_run(
        inputs, tmp_path / "tokenized", tmp_path / "tokenizer",
        BatchPlan.read(str(tmp_path / "plan.json"), inputs.train.effective_batch_size),
        torch.device("cpu"), Distributed(),
    )  # fmt: skip
    fine = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    base, _ = base_model(fine.from_pretrained(tmp_path / "models" / "best"), tok, None, inputs.seed)
    start = run.model.state_dict()
    assert all(torch.equal(v, start[k]) for k, v in base.state_dict().items())
    # train's exact match on the validation sample is evaluate's on the same rows (the best
    # epoch's model is models/best)
    val_rows = [
        json.loads(x) for x in (tmp_path / "pred" / "validation.jsonl").read_text().splitlines()
    ]
    hits = [" ".join(r["prediction"].split()) == " ".join(r["label"].split()) for r in val_rows[:8]]
    assert sum(hits) / 8 == pytest.approx(metrics["best"]["val_exact_match"])
    assert test["baselines"]["copy_input"]["exact_match"] == 0.0  # an input never is its target
    assert set(test["failures"]) == {"empty", "repetition", "truncated", "copied_input"}
    lines = (tmp_path / "pred" / "test.jsonl").read_text().splitlines()
    first_row = json.loads(lines[0])
    assert {"id", "input", "label", "prediction", "failures", "kind"} <= set(first_row)
    assert json.loads((tmp_path / "latency.json").read_text()) == {}

    error_analysis.main([*a, "--predictions", str(tmp_path / "pred"), "--processed",
                         str(tmp_path / "processed"), "--evaluate-metrics",
                         str(tmp_path / "evaluate.json"), "--report", str(tmp_path / "errors.md"),
                         "--metrics", str(tmp_path / "errors.json"), "--plots",
                         str(tmp_path / "plots-errors")])  # fmt: skip
    report = (tmp_path / "errors.md").read_text()
    assert report.startswith(f"# Generation errors (test, {test['n']} examples)")
    assert "## Worst generations" in report and "## Failure kinds" in report
    assert "zero_shot" in report and "untrained" in report
    slices = json.loads((tmp_path / "plots-errors" / "slices_test.json").read_text())
    assert sum(s["n"] for s in slices) == test["n"]
    # nlpflow predict on the test inputs writes what evaluate generated
    from nlpflow.predict import predict_file

    rows = [json.loads(line) for line in lines]
    source = tmp_path / "new.jsonl"
    source.write_text("".join(json.dumps({"input": r["input"]}) + "\n" for r in rows))
    predict_file(tmp_path / "models" / "best", source, tmp_path / "out.jsonl", log=lambda _: None)
    predicted = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [p["prediction"] for p in predicted] == [r["prediction"] for r in rows]
    errors = json.loads((tmp_path / "errors.json").read_text())["test"]
    assert errors["wrong"] == round(test["n"] * (1 - test["exact_match"]))


@pytest.mark.parametrize(("kind", "layers"), [("seq2seq", 2), ("causal", 1)])
def test_the_fine_tuned_model_beats_the_copy_and_prompted_baselines(
    kind: str, layers: int, tmp_path: Path
) -> None:
    """The whole pipeline on a learnable slice of builtin:text2text (sorting 3-4 letters of
    six): fine-tuning wins on exact match by a clear margin over copying the input, the most
    common target and the untrained base model prompted zero-shot and 2-shot (the lower end
    of each paired 95% interval at least 0.3)."""
    from tests.training.tiny import one_torch_thread

    params = tiny_params(
        data={**T2T, "text2text": {"size": 400, "kinds": {"sort": 1.0, "spell": 0.0},
                                   "min_letters": 3, "max_letters": 4, "alphabet": "abcdef"}},
        tokenizer={"vocab_size": 300},
        model={"hidden_size": 32, "num_layers": layers, "num_heads": 2, "intermediate_size": 64,
               "dropout": 0.0,
               "text2text": {"kind": kind, "max_input_length": 8, "max_target_length": 6}},
        train={"epochs": 10, "lr": 0.005, "effective_batch_size": 16, "warmup_ratio": 0.05,
               "early_stopping": {"metric": "loss", "mode": "min", "patience": 0}},
        evaluate={"bootstrap_resamples": 200,
                  "generation": {"max_new_tokens": 6,
                                 "prompted": {"few_shot": 2, "max_rows": 20, "seed": 3}}},
    )  # fmt: skip
    path = tmp_path / "params.yaml"
    path.write_text(dump_params(params))
    with one_torch_thread():
        _run(tmp_path, path, with_lr_range=False)
        evaluate.main(["--params", str(path), "--model", str(tmp_path / "models" / "best"),
                       "--processed", str(tmp_path / "processed"), "--tokenized",
                       str(tmp_path / "tokenized"), "--predictions", str(tmp_path / "pred"),
                       "--metrics", str(tmp_path / "evaluate.json"), "--plots",
                       str(tmp_path / "plots-eval"), "--latency",
                       str(tmp_path / "latency.json")])  # fmt: skip
    test = json.loads((tmp_path / "evaluate.json").read_text())["test"]
    assert test["n"] == 40 and test["exact_match"] >= 0.5, test["exact_match"]
    for name in ("copy_input", "most_common_target", "zero_shot", "few_shot"):
        assert test["baselines"][name]["exact_match"] <= 0.05, name
        margin = test["paired"][name]["exact_match"]
        assert margin["low"] >= 0.3 and margin["p_not_better"] == 0.0, (name, margin)
