"""Extractive QA files: SQuAD JSON (v1.1 and v2.0 as published) and JSONL, checked row by row.

Every reader returns the same rows, one per question, in file order::

    {"id": str, "title": str, "context": str, "question": str,
     "answers": {"text": [str, ...], "answer_start": [int, ...]}}

``answer_start`` is a character offset into ``context`` (Python string index, as SQuAD's
files use); empty lists mean the question has no answer in its context (SQuAD v2's
``is_impossible``). A problem a user can fix stops with one line naming the file, the
question (id and place) and what to do: a missing or mistyped field, an ``answer_start``
where the context does not hold the answer text, an unanswerable question with answers,
a question id used twice.

Formats:

- SQuAD JSON: ``{"version": ..., "data": [{"title", "paragraphs": [{"context", "qas":
  [{"id", "question", "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}]}``.
  SQuAD v2's ``plausible_answers`` of unanswerable questions are ignored.
- JSONL: one object per line with ``context``, ``question`` and ``answers`` as Hugging Face's
  ``squad``/``squad_v2`` data sets hold them (``{"text": [...], "answer_start": [...]}``; a
  list of ``{"text", "answer_start"}`` objects is read too); ``id`` and ``title`` optional (a
  missing id becomes ``line-N``). A JSON list of such objects is read the same way (a
  missing id becomes ``item-N``, counted from 0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nlpflow.errors import UserError

Row = dict[str, Any]
FIELDS = ("id", "title", "context", "question", "answers")


def _excerpt(text: str, width: int = 40) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def _answers(raw: Any, where: str) -> tuple[list[str], list[int]]:
    """(texts, starts) from either answer layout; raises UserError naming ``where``."""
    if isinstance(raw, dict):
        missing = [k for k in ("text", "answer_start") if k not in raw]
        if missing:
            raise UserError(
                f"{where}: 'answers' has no '{missing[0]}' list; expected "
                "{'text': [...], 'answer_start': [...]} (empty lists: no answer)"
            )
        texts, starts = raw["text"], raw["answer_start"]
        if not isinstance(texts, list) or not isinstance(starts, list):
            raise UserError(f"{where}: 'answers.text' and 'answers.answer_start' must be lists")
        if len(texts) != len(starts):
            raise UserError(
                f"{where}: 'answers' has {len(texts)} texts but {len(starts)} answer_start "
                "values; give one start per text"
            )
    elif isinstance(raw, list):
        texts, starts = [], []
        for k, item in enumerate(raw):
            if not isinstance(item, dict) or "text" not in item or "answer_start" not in item:
                raise UserError(
                    f"{where}: answers[{k}] is not an object with 'text' and 'answer_start'"
                )
            texts.append(item["text"])
            starts.append(item["answer_start"])
    else:
        raise UserError(
            f"{where}: 'answers' must be {{'text': [...], 'answer_start': [...]}} or a list "
            f"of {{'text', 'answer_start'}} objects, not {type(raw).__name__}"
        )
    for k, (text, start) in enumerate(zip(texts, starts, strict=True)):
        if not isinstance(text, str):
            raise UserError(f"{where}: answer {k} text is {type(text).__name__}, not a string")
        if isinstance(start, bool) or not isinstance(start, int):
            raise UserError(
                f"{where}: answer {k} answer_start is {start!r}; expected a character offset "
                "(an integer)"
            )
    return list(texts), list(starts)


def check_question(row: Row, where: str) -> Row:
    """Check one question row (types, non-empty texts, every answer where its start says).

    Returns the row in the reader layout; raises UserError naming ``where``.
    """
    for name in ("context", "question"):
        value = row.get(name)
        if value is None:
            raise UserError(f"{where}: missing field '{name}'")
        if not isinstance(value, str):
            raise UserError(f"{where}: '{name}' is {type(value).__name__}, not a string")
        if not value.strip():
            raise UserError(f"{where}: '{name}' is empty")
    if "answers" not in row:
        raise UserError(
            f"{where}: missing field 'answers'; give {{'text': [], 'answer_start': []}} for a "
            "question without an answer"
        )
    context: str = row["context"]
    texts, starts = _answers(row["answers"], where)
    for k, (text, start) in enumerate(zip(texts, starts, strict=True)):
        if not text.strip():
            raise UserError(
                f"{where}: answer {k} text is empty; a question without an answer has empty "
                "answer lists"
            )
        found = context[start : start + len(text)] if 0 <= start <= len(context) else ""
        if found != text:
            hint = context.find(text)
            fix = (
                f"the text first occurs at {hint}" if hint >= 0 else "the context does not hold it"
            )
            raise UserError(
                f"{where}: answer_start {start} does not match the answer text "
                f"'{_excerpt(text)}' (the context there reads '{_excerpt(found)}'; {fix}); "
                "fix answer_start or the text"
            )
    return {
        "id": str(row["id"]),
        "title": str(row.get("title") or ""),
        "context": context,
        "question": row["question"],
        "answers": {"text": texts, "answer_start": starts},
    }


def _unique_ids(path: Path, rows: list[tuple[str, Row]]) -> list[Row]:
    seen: dict[str, str] = {}
    for where, row in rows:
        if row["id"] in seen:
            raise UserError(
                f"{where}: question id '{row['id']}' is used twice (also {seen[row['id']]}); "
                "ids must be unique"
            )
        seen[row["id"]] = where
    return [row for _, row in rows]


def _load_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(
            f"{path}: not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
        ) from None


def read_squad_json(path: Path, document: Any | None = None) -> list[Row]:
    """Questions of a SQuAD JSON file (v1.1 or v2.0), in file order."""
    path = Path(path)
    if document is None:
        document = _load_json(path, _read_text(path))
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        raise UserError(f"{path}: a SQuAD file holds {{'data': [articles]}}; no 'data' list found")
    rows: list[tuple[str, Row]] = []
    for a, article in enumerate(data):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise UserError(f"{path}: data[{a}] has no 'paragraphs' list")
        title = article.get("title", "")
        for p, paragraph in enumerate(paragraphs):
            place = f"data[{a}].paragraphs[{p}]"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                raise UserError(f"{path}: {place} has no 'qas' list")
            for q, qa in enumerate(paragraph["qas"]):
                if not isinstance(qa, dict):
                    raise UserError(f"{path}: {place}.qas[{q}] is not an object")
                qid = qa.get("id")
                where = f"{path}: {place}.qas[{q}]" + (f" (id '{qid}')" if qid else "")
                if qid is None or qid == "":
                    raise UserError(f"{where}: missing field 'id'")
                if qa.get("is_impossible") and qa.get("answers"):
                    raise UserError(
                        f"{where}: is_impossible is true but the question has answers; "
                        "remove one or the other"
                    )
                row = {
                    "id": qid,
                    "title": title,
                    "context": paragraph.get("context"),
                    "question": qa.get("question"),
                    "answers": qa.get("answers", [] if qa.get("is_impossible") else None),
                }
                if row["answers"] is None:
                    del row["answers"]
                rows.append((where, check_question(row, where)))
    if not rows:
        raise UserError(f"{path}: the file holds no questions")
    return _unique_ids(path, rows)


def _read_objects(path: Path, objects: list[tuple[str, Any]]) -> list[Row]:
    rows: list[tuple[str, Row]] = []
    for where, obj in objects:
        if not isinstance(obj, dict):
            raise UserError(f"{where}: expected a JSON object, found {type(obj).__name__}")
        obj = dict(obj)
        if obj.get("id") in (None, ""):
            obj["id"] = f"{where.rsplit(', ', 1)[-1].replace(' ', '-')}"
        else:
            where += f" (id '{obj['id']}')"
        rows.append((where, check_question(obj, where)))
    if not rows:
        raise UserError(f"{path}: the file holds no questions")
    return _unique_ids(path, rows)


def read_qa_jsonl(path: Path, text: str | None = None) -> list[Row]:
    """Questions of a JSONL file, one object per line (blank lines skipped); a missing id
    becomes ``line-N``."""
    path = Path(path)
    if text is None:
        text = _read_text(path)
    objects: list[tuple[str, Any]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            objects.append((where, json.loads(line)))
        except json.JSONDecodeError as err:
            raise UserError(f"{where}: not valid JSON ({err.msg}, column {err.colno})") from None
    return _read_objects(path, objects)


def _read_text(path: Path) -> str:
    if path.is_dir():
        raise UserError(f"{path}: is a directory; name a SQuAD JSON or JSONL file")
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; check data.source / data.files") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}); re-save it as UTF-8") from None


def read_qa_file(path: str | Path) -> list[Row]:
    """Questions of a SQuAD JSON or a JSONL file, told apart by content: a JSON document
    with a ``data`` list is SQuAD, anything else is read line by line."""
    path = Path(path)
    text = _read_text(path)
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON list of question objects
        document = _load_json(path, text)
        if isinstance(document, list):
            return _read_objects(path, [(f"{path}, item {i}", o) for i, o in enumerate(document)])
    if stripped.startswith("{"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            document = None  # several objects: JSONL
        if isinstance(document, dict) and "data" in document:
            return read_squad_json(path, document)
    return read_qa_jsonl(path, text)
