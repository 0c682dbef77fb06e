"""The extractive QA family through the six stages, in process, on ``builtin:qa`` with a tiny
model: windows in tokenize, the span loss in train, the no-answer threshold tuned on
validation and applied to test in evaluate; the model must beat "always no answer" and the
best-overlap sentence by a clear margin, and every output a user reads must be there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import dump_params, tiny_params
from tests.families.test_regression_pipeline import run_stages

QA = {
    "data": {
        "source": "builtin:qa",
        "text_fields": ["question", "context"],
        "label_field": "answers",
        "qa": {"size": 1000, "min_facts": 4, "max_facts": 5, "unanswerable": 0.3},
        "splits": {"train": 0.7, "validation": 0.15, "test": 0.15},
    },
    # Windows of 40 tokens with a stride of 8: the longer contexts are split in two.
    "tokenizer": {"vocab_size": 200, "max_length": 40, "stride": 8, "truncation": "only_second"},
    "model": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128,
              "dropout": 0.0},
    "probe": {"max_batch_size": 32, "max_candidates": 8},
    "train": {"epochs": 10, "effective_batch_size": 32, "lr": 0.003, "warmup_ratio": 0.05,
              "early_stopping": {"metric": "loss", "mode": "min", "patience": 0}},
    # n_best 20 and max_answer_length 30 (the defaults): what nlpflow predict uses.
    "evaluate": {"bootstrap_resamples": 200, "baselines": ["no_answer", "sentence_overlap"]},
    "error_analysis": {"length_buckets": "auto", "behaviour": {"invariance": [],
                       "directional": [], "templates": ""}},
}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("qa")
    params = root / "params.yaml"
    params.write_text(dump_params(tiny_params(**QA)))
    run_stages(root, params)
    from stages import model_card

    model_card.main(["--params", str(params), "--model", str(root / "models" / "best"),
                     "--evaluate", str(root / "evaluate.json"), "--error-analysis",
                     str(root / "error_analysis.json"), "--data-card", str(root / "data.json"),
                     "--out", str(root / "card.md")])  # fmt: skip
    return root


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_model_beats_both_baselines_by_a_clear_margin(run: Path) -> None:
    metrics = _json(run / "evaluate.json")
    test = metrics["test"]
    base = test["baselines"]
    print({k: test[k] for k in ("exact", "f1", "HasAns_f1", "NoAns_f1")},
          {b: (v["exact"], v["f1"]) for b, v in base.items()})  # fmt: skip
    best = max(base["no_answer"]["f1"], base["sentence_overlap"]["f1"])
    assert test["f1"] > best + 0.15, (test["f1"], best)
    assert test["ci"]["f1"]["low"] > best  # the interval's low end beats both
    assert test["baselines"]["no_answer"]["margin"]["f1"] == pytest.approx(
        test["f1"] - base["no_answer"]["f1"], abs=2e-6
    )
    # "Always no answer" scores the unanswerable share, 0 on answerable questions.
    assert base["no_answer"]["HasAns_f1"] == 0.0 and base["no_answer"]["NoAns_f1"] == 1.0
    assert set(metrics["threshold"]) == {"fixed", "tuned", "used"}
    assert metrics["threshold"]["used"] == metrics["threshold"]["tuned"]


def test_predictions_are_spans_of_their_context_and_the_metrics_follow_from_them(
    run: Path,
) -> None:
    from nlpflow.families.qa.metrics import question_scores, squad_metrics

    lines = (run / "predictions" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    for r in rows:
        if r["prediction"]:
            assert r["context"][r["start"] : r["start"] + len(r["prediction"])] == r["prediction"]
        else:
            assert r["start"] == -1
    scores = question_scores([r["answers"] for r in rows], [r["prediction"] for r in rows])
    test = _json(run / "evaluate.json")["test"]
    assert test["n"] == len(rows)
    for key, value in squad_metrics(scores).items():
        assert test[key] == pytest.approx(value, abs=2e-6), key


def test_windows_and_training(run: Path) -> None:
    tokenize = _json(run / "tokenize.json")
    train = tokenize["splits"]["train"]
    windowing = train["windowing"]
    assert train["examples"] == windowing["windows"] > windowing["questions"]
    assert windowing["split_questions"] > 0 and windowing["answers_lost_to_windowing"] == 0
    assert "label: " in (run / "tokenization.md").read_text()
    summary = _json(run / "train.json")
    assert summary["monitor"]["metric"] == "loss"
    header = (run / "plots-train" / "epochs.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["epoch", "step", "train_loss", "val_loss", "val_accuracy"]
    config = _json(run / "models" / "best" / "config.json")
    assert config["architectures"] == ["BertForQuestionAnswering"]


def test_reports(run: Path) -> None:
    data = _json(run / "data.json")
    assert data["task"] == "qa" and data["imbalance_ratio"] is None
    shares = [data["splits"][s]["qa"]["unanswerable_share"] for s in ("train", "test")]
    assert abs(shares[0] - shares[1]) < 0.05  # stratified by answerable / unanswerable
    assert "## Questions and answers" in (run / "data.md").read_text()
    assert (run / "plots-evaluate" / "scores_test.png").is_file()
    assert (run / "plots-errors" / "slices_test.png").is_file()
    report = (run / "errors.md").read_text()
    for heading in ("## Answers by question word", "## Baselines", "worst answers"):
        assert heading in report, heading
    errors = _json(run / "error_analysis.json")["test"]
    assert errors["f1"] == pytest.approx(_json(run / "evaluate.json")["test"]["f1"], abs=2e-6)


def test_the_model_card_holds_the_qa_metrics_and_usage(run: Path) -> None:
    import yaml

    text = (run / "card.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["pipeline_tag"] == "question-answering"
    results = meta["model-index"][0]["results"][0]
    f1 = next(m["value"] for m in results["metrics"] if m["type"] == "f1")
    assert f1 == pytest.approx(_json(run / "evaluate.json")["test"]["f1"], abs=1e-4)
    assert 'pipeline("question-answering"' in text and "Weakest slice" in text
    used = _json(run / "evaluate.json")["threshold"]["used"]
    assert f"nlpflow predict --model models/best --threshold {used:g}" in text


def test_predict_answers_a_new_file_as_evaluate_did_and_lists_bad_rows(
    run: Path, tmp_path: Path
) -> None:
    from nlpflow.predict import predict_file, rejects_path

    lines = (run / "predictions" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    rows = [{"question": r["question"], "context": r["context"]} for r in records]
    rows.insert(3, {"question": "who keeps the box ?"})  # no context
    rows.insert(5, {"question": "  ", "context": "anna keeps the box ."})
    source = tmp_path / "new.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    threshold = _json(run / "evaluate.json")["threshold"]["used"]
    summary = predict_file(run / "models" / "best", source, out, threshold=threshold,
                           log=lambda _: None)  # fmt: skip
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert summary.predicted == len(records) == len(got)
    assert [g["prediction"] for g in got] == [r["prediction"] for r in records]
    assert [g["start"] for g in got] == [r["start"] for r in records]
    rejects = [json.loads(line) for line in rejects_path(out).read_text().splitlines()]
    assert [(r["row"], r["field"]) for r in rejects] == [(4, "context"), (6, "question")]
