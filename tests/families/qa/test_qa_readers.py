"""SQuAD JSON and JSONL files: read as published, bad input refused with one clear line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nlpflow.errors import UserError
from nlpflow.families.qa.builtin import QaBuiltinParams, generate_qa
from nlpflow.families.qa.readers import check_question, read_qa_file

CONTEXT = "Super Bowl 50 was played in Santa Clara. The Broncos won."


def squad(qas: list[dict[str, Any]], version: str = "v2.0") -> dict[str, Any]:
    return {
        "version": version,
        "data": [{"title": "Super_Bowl", "paragraphs": [{"context": CONTEXT, "qas": qas}]}],
    }


def write(tmp_path: Path, name: str, content: Any) -> Path:
    path = tmp_path / name
    if isinstance(content, list):
        path.write_text("\n".join(json.dumps(r) for r in content) + "\n", encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return path


def test_squad_v2_json_as_published(tmp_path: Path) -> None:
    qas = [
        {
            "id": "q1",
            "question": "Where was it played?",
            "answers": [
                {"text": "Santa Clara", "answer_start": 28},
                {"text": "Santa Clara", "answer_start": 28},
            ],
            "is_impossible": False,
        },
        {
            "id": "q2",
            "question": "Who lost?",
            "answers": [],
            "plausible_answers": [{"text": "The Broncos", "answer_start": 41}],
            "is_impossible": True,
        },
    ]
    rows = read_qa_file(write(tmp_path, "dev-v2.0.json", squad(qas)))
    assert rows == [
        {
            "id": "q1",
            "title": "Super_Bowl",
            "context": CONTEXT,
            "question": "Where was it played?",
            "answers": {"text": ["Santa Clara", "Santa Clara"], "answer_start": [28, 28]},
        },
        {
            "id": "q2",
            "title": "Super_Bowl",
            "context": CONTEXT,
            "question": "Who lost?",
            "answers": {"text": [], "answer_start": []},
        },
    ]


def test_squad_v1_json_without_is_impossible(tmp_path: Path) -> None:
    qas = [
        {"id": "a", "question": "Who won?", "answers": [{"text": "Broncos", "answer_start": 45}]}
    ]
    rows = read_qa_file(write(tmp_path, "train-v1.1.json", squad(qas, "1.1")))
    assert rows[0]["answers"] == {"text": ["Broncos"], "answer_start": [45]}


def test_jsonl_in_the_hub_layout_and_as_answer_objects(tmp_path: Path) -> None:
    lines = [
        {
            "id": "x",
            "context": CONTEXT,
            "question": "Who won?",
            "answers": {"text": ["Broncos"], "answer_start": [45]},
        },
        {"context": CONTEXT, "question": "Why?", "answers": {"text": [], "answer_start": []}},
        {
            "context": CONTEXT,
            "question": "Where?",
            "answers": [{"text": "Santa", "answer_start": 28}],
        },
    ]
    rows = read_qa_file(write(tmp_path, "train.jsonl", lines))
    assert [r["id"] for r in rows] == ["x", "line-2", "line-3"]
    assert rows[1]["answers"] == {"text": [], "answer_start": []}
    assert rows[2]["answers"] == {"text": ["Santa"], "answer_start": [28]}
    assert rows[0]["title"] == ""


def test_builtin_rows_pass_the_reader_checks(tmp_path: Path) -> None:
    rows = generate_qa(QaBuiltinParams(size=50), seed=3)
    back = read_qa_file(write(tmp_path, "b.jsonl", rows))
    assert back == rows


def _error(path: Path) -> str:
    with pytest.raises(UserError) as err:
        read_qa_file(path)
    return str(err.value)


def test_answer_start_not_matching_the_text(tmp_path: Path) -> None:
    qas = [{"id": "q9", "question": "Who?", "answers": [{"text": "Broncos", "answer_start": 40}]}]
    message = _error(write(tmp_path, "bad.json", squad(qas)))
    assert message.startswith(f"{tmp_path / 'bad.json'}: data[0].paragraphs[0].qas[0] (id 'q9')")
    assert "answer_start 40 does not match the answer text 'Broncos'" in message
    assert "the context there reads ' The Br'" in message
    assert "the text first occurs at 45" in message
    assert "\n" not in message


def test_answer_start_past_the_context_jsonl(tmp_path: Path) -> None:
    row = {
        "id": "r",
        "context": "abc",
        "question": "q?",
        "answers": {"text": ["zz"], "answer_start": [9]},
    }
    message = _error(write(tmp_path, "bad.jsonl", [row]))
    assert "bad.jsonl, line 1 (id 'r'): answer_start 9 does not match" in message
    assert "the context does not hold it" in message


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            {"question": "q?", "answers": {"text": [], "answer_start": []}},
            "missing field 'context'",
        ),
        ({"context": "c", "answers": {"text": [], "answer_start": []}}, "missing field 'question'"),
        ({"context": "c", "question": "q?"}, "missing field 'answers'"),
        ({"context": "c", "question": " ", "answers": []}, "'question' is empty"),
        ({"context": 3, "question": "q", "answers": []}, "'context' is int, not a string"),
        ({"context": "c", "question": "q", "answers": {"text": ["c"]}}, "no 'answer_start' list"),
        (
            {"context": "c", "question": "q", "answers": {"text": ["c"], "answer_start": []}},
            "1 texts but 0 answer_start",
        ),
        (
            {"context": "c", "question": "q", "answers": {"text": ["c"], "answer_start": ["0"]}},
            "answer_start is '0'; expected a character offset",
        ),
        (
            {"context": "c", "question": "q", "answers": {"text": [""], "answer_start": [0]}},
            "answer 0 text is empty",
        ),
        ({"context": "c", "question": "q", "answers": "c"}, "'answers' must be"),
    ],
)
def test_bad_rows_name_line_and_field(tmp_path: Path, row: dict[str, Any], expected: str) -> None:
    path = write(tmp_path, "f.jsonl", [{"context": "ok", "question": "q", "answers": []}, row])
    message = _error(path)
    assert message.startswith(f"{path}, line 2")
    assert expected in message


def test_duplicate_ids_and_impossible_with_answers(tmp_path: Path) -> None:
    qa = {"id": "d", "question": "Who?", "answers": [{"text": "Broncos", "answer_start": 45}]}
    message = _error(write(tmp_path, "dup.json", squad([qa, dict(qa)])))
    assert "qas[1] (id 'd'): question id 'd' is used twice (also" in message
    impossible = {**qa, "is_impossible": True}
    message = _error(write(tmp_path, "imp.json", squad([impossible])))
    assert "is_impossible is true but the question has answers" in message


def test_file_level_errors(tmp_path: Path) -> None:
    assert "file not found" in _error(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text('{"data": [', encoding="utf-8")
    assert "not valid JSON" in _error(tmp_path / "broken.json")
    assert "no 'paragraphs' list" in _error(write(tmp_path, "np.json", {"data": [{"title": "t"}]}))
    assert "holds no questions" in _error(write(tmp_path, "empty.json", {"data": []}))
    (tmp_path / "blank.jsonl").write_text("\n\n", encoding="utf-8")
    assert "holds no questions" in _error(tmp_path / "blank.jsonl")


def test_check_question_keeps_unicode_offsets() -> None:
    context = "Café “Zürich” opened in 1998."
    start = context.index("1998")
    row = {"id": 7, "context": context, "question": "When?",
           "answers": {"text": ["1998"], "answer_start": [start]}}  # fmt: skip
    assert check_question(row, "here")["id"] == "7"


def test_json_list_of_questions(tmp_path: Path) -> None:
    items = [
        {"context": CONTEXT, "question": "Who won?",
         "answers": {"text": ["Broncos"], "answer_start": [45]}},
        {"id": "z", "context": CONTEXT, "question": "Who lost?",
         "answers": {"text": ["Broncos"], "answer_start": [44]}},
    ]  # fmt: skip
    path = tmp_path / "list.json"
    path.write_text(json.dumps(items[:1], indent=1), encoding="utf-8")
    assert read_qa_file(path)[0]["id"] == "item-0"
    (tmp_path / "bad_list.json").write_text(json.dumps(items), encoding="utf-8")
    message = _error(tmp_path / "bad_list.json")
    assert message.startswith(f"{tmp_path / 'bad_list.json'}, item 1 (id 'z'): answer_start 44")
