"""``nlpflow compare`` on extractive QA predictions: EM/F1 (overall, HasAns, NoAns) paired by
question id from the records' own scores, McNemar on exact matches, right-to-wrong flips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlpflow.evaluation.compare import compare, read_side, render
from nlpflow.families.qa.metrics import score_question


def _write(path: Path, predictions: list[str]) -> Path:
    rows = []
    for i, pred in enumerate(predictions):
        golds = [] if i % 4 == 0 else [f"answer {i}"]
        em, f1 = score_question(golds, pred)
        rows.append(
            {"id": f"q{i}", "question": f"what is {i} ?", "context": f"it is answer {i} .",
             "answers": golds, "answer_starts": [] if not golds else [6], "prediction": pred,
             "start": -1 if not pred else 6, "probability": 0.9, "exact": em, "f1": f1}
        )  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_better_reader_wins_and_its_flips_are_listed(tmp_path: Path) -> None:
    n = 80
    right = ["" if i % 4 == 0 else f"answer {i}" for i in range(n)]
    # A: half-right spans ("answer" without the number) on answerable questions 1..39.
    worse = [r if i >= 40 or not r else "answer" for i, r in enumerate(right)]
    better = list(right)
    better[41] = "it"  # B misses one A got right
    a = read_side(str(_write(tmp_path / "a.jsonl", worse)), "test")
    b = read_side(str(_write(tmp_path / "b.jsonl", better)), "test")
    c = compare(a, b, resamples=300, seed=1)
    assert c.task == "qa" and c.n == n
    em_a = sum(p == r for p, r in zip(worse, right, strict=True)) / n
    assert c.metrics["exact"]["a"] == pytest.approx(em_a)
    assert c.metrics["exact"]["b"] == pytest.approx((n - 1) / n)
    assert c.metrics["NoAns_exact"]["diff"] == 0.0
    assert c.intervals["f1"]["low"] > 0 and c.intervals["exact"]["p_not_better"] < 0.01
    assert [rb["id"] for _, rb in c.regressions] == ["q41"]
    assert c.fixes == sum(1 for i in range(1, 40) if i % 4) and c.mcnemar["p_value"] < 0.001
    text = render(c)
    assert "80 test questions" in text and "| q41 | what is 41 ? | answer 41 |" in text


def test_qa_and_classification_records_are_not_compared(tmp_path: Path) -> None:
    from nlpflow.errors import UserError

    qa = _write(tmp_path / "a.jsonl", ["x"] * 8)
    other = tmp_path / "b.jsonl"
    other.write_text(
        "".join(
            json.dumps(
                {"id": f"q{i}", "label": "a", "prediction": "a", "probabilities": {"a": 1.0}}
            )
            + "\n"
            for i in range(8)
        ),
        encoding="utf-8",
    )
    with pytest.raises(UserError) as err:
        compare(read_side(str(qa), "test"), read_side(str(other), "test"))
    assert "test sets differ" in str(err.value) or "same kind of task" in str(err.value)
