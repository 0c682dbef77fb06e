"""The QA family's stage hooks: SQuAD JSON and JSONL read with ``data.task: qa`` (a bad
answer_start refused with one line), answers kept uncleaned in the processed ``label``
struct, splits stratified by answerable / unanswerable, windows as tokenized rows, and the
train side's span loss, correct count and probe batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from nlpflow.data.prepare import load_splits, to_dataset_dict
from nlpflow.errors import UserError
from nlpflow.families.qa.data import QaData
from nlpflow.families.qa.model import span_loss
from nlpflow.families.qa.train import QaCriterion, QaTrain
from nlpflow.params import DataParams, TokenizerParams


def _squad(n: int) -> dict[str, Any]:
    paragraphs = []
    for i in range(n):
        context = f"Item {i} lives in  Town{i % 7}. It was made in {1900 + i}."
        answerable = i % 3 != 0
        answer = f"Town{i % 7}"
        paragraphs.append(
            {
                "context": context,
                "qas": [
                    {
                        "id": f"q{i}",
                        "question": f"Where does item {i} live?",
                        "answers": [{"text": answer, "answer_start": context.index(answer)}]
                        if answerable
                        else [],
                        "is_impossible": not answerable,
                    }
                ],
            }
        )
    return {"version": "v2.0", "data": [{"title": "items", "paragraphs": paragraphs}]}


def _params(source: Path) -> DataParams:
    return DataParams(
        source=str(source), text_fields=["question", "context"], label_field="answers",
        task="qa",
    )  # fmt: skip


def test_a_squad_json_file_is_read_split_by_answerability_and_kept_uncleaned(
    tmp_path: Path,
) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps(_squad(90)), encoding="utf-8")
    data = load_splits(_params(path), seed=0)
    assert data.task == "qa" and data.label_names == ["start", "end"]
    for split, rows in data.splits.items():
        unanswerable = sum(not r["answers"]["text"] for r in rows) / len(rows)
        assert unanswerable == pytest.approx(1 / 3, abs=0.05), split
    dataset = to_dataset_dict(data)
    row = next(r for r in dataset["train"] if r["label"]["text"])
    # Two spaces before the town stay: cleaning would move every offset after them.
    assert "  Town" in row["context"]
    start = row["label"]["answer_start"][0]
    assert row["context"][start : start + len(row["label"]["text"][0])] == row["label"]["text"][0]


def test_a_bad_answer_start_in_jsonl_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    rows = [
        {"question": "who?", "context": "anna keeps it .", "answers": {"text": ["anna"],
         "answer_start": [0]}},
        {"question": "who?", "context": "tom keeps it .", "answers": {"text": ["tom"],
         "answer_start": [3]}},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_splits(_params(path), seed=0)
    message = str(err.value)
    assert "\n" not in message and "line 2" in message and "answer_start 3" in message


def test_windows_become_tokenized_rows_with_their_positions() -> None:
    from datasets import Dataset, DatasetDict

    from nlpflow.modeling.tokenizers import train_tokenizer

    context = " ".join(f"w{i}" for i in range(40)) + " the answer is here ."
    rows = {
        "id": ["a", "b"],
        "question": ["where is it ?", "what is missing ?"],
        "context": [context, "nothing here ."],
        "label": [
            {"text": ["here"], "answer_start": [context.index("here")]},
            {"text": [], "answer_start": []},
        ],
    }
    tok = train_tokenizer([context, "where is it what missing nothing here"], vocab_size=120)
    dataset = DatasetDict({"train": Dataset.from_dict(rows)})
    out = QaData().encode_splits(dataset, tok, 24, TokenizerParams(stride=4), "mem", True)
    assert out is not None
    tokenized, figures, sample = out
    train = tokenized["train"]
    windowing = figures["splits"]["train"]["windowing"]
    assert windowing["questions"] == 2 and windowing["windows"] == len(train) > 2
    assert windowing["answers_lost_to_windowing"] == 0
    held = [r for r in train if r["example"] == 0 and r["labels"][0] != r["cls_index"]]
    assert len(held) >= 1
    r = held[0]
    s, e = r["labels"]
    assert context[r["offset_start"][s] : r["offset_end"][e]] == "here"
    assert all(r["labels"] == [r["cls_index"]] * 2 for r in train if r["example"] == 1)
    assert "answers lost to windowing" in sample


def test_the_span_criterion_sums_the_span_loss_and_counts_both_positions() -> None:
    from transformers.modeling_outputs import QuestionAnsweringModelOutput

    torch.manual_seed(0)
    start, end = torch.randn(3, 7), torch.randn(3, 7)
    labels = torch.tensor([[1, 2], [0, 0], [4, 6]])
    out = QuestionAnsweringModelOutput(start_logits=start, end_logits=end)
    crit = QaCriterion()
    mean = span_loss(start, end, labels[:, 0], labels[:, 1])
    assert crit.sum(out, labels).item() == pytest.approx(3 * mean.item(), rel=1e-6)
    start[0, 1], end[0, 2] = 50.0, 50.0  # the first window right at both ends
    start[1, 0] = 50.0  # the second right at the start only
    end[1, 3] = 50.0
    assert crit.correct(out, labels).item() == 1
    assert crit.denominator(labels[:, 0]) == 3.0
    probe = QaTrain().probe_batch(torch.zeros(1, 5, dtype=torch.long), 4, 2, True)
    assert probe["labels"].shape == (4, 2) and probe["input_ids"].shape == (4, 5)


def test_a_saved_squad_v2_dataset_is_read_with_its_answer_structs(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    rows = [
        {"id": r["id"], "title": "items", "context": p["context"], "question": r["question"],
         "answers": {"text": [a["text"] for a in r["answers"]],
                     "answer_start": [a["answer_start"] for a in r["answers"]]}}
        for p in _squad(60)["data"][0]["paragraphs"]
        for r in p["qas"]
    ]  # fmt: skip
    DatasetDict(
        {"train": Dataset.from_list(rows[:40]), "validation": Dataset.from_list(rows[40:])}
    ).save_to_disk(str(tmp_path / "squad"))
    params = _params(tmp_path / "squad")
    params.hub_splits = {"test": "validation"}  # the hub's squad_v2 has no test split
    data = load_splits(params, seed=0)
    assert len(data.splits["test"]) == 20 and data.metadata_fields == ["title"]
    answered = [r for r in data.splits["train"] if r["answers"]["text"]]
    assert answered and all(
        r["context"][r["answers"]["answer_start"][0] :].startswith(r["answers"]["text"][0])
        for r in answered
    )
