"""Extractive QA, data side: text fields ``question`` and ``context``, label field
``answers`` (``{"text": [...], "answer_start": [...]}``, empty lists: no answer), checked
on reading (every answer where its start says); texts are not cleaned (answer offsets
point into them); splits stratified by answerable / unanswerable; SQuAD JSON and JSONL
files read with ``data.task: qa``; the built-in ``builtin:qa``.

Tokenize makes several rows (windows) of one question: the family's
:meth:`QaData.tokenize` encodes each split with :func:`~nlpflow.families.qa.windows.
encode_windows` and stores :data:`~nlpflow.families.qa.windows.WINDOW_COLUMNS` (``labels``
is the window's ``[start, end]`` token positions), and counts the answers windowing loses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.data import Builtin, DataFamily, Row

if TYPE_CHECKING:
    from nlpflow.data.files import BadRows

TEXT_FIELDS = ("question", "context")
LABEL_FIELD = "answers"
# meta.json's label_names: the two outputs per token of the QA head.
OUTPUTS = ["start", "end"]
SAMPLE_WINDOWS = 3


def _generate(params: Any, seed: int) -> list[Row]:
    from nlpflow.families.qa.builtin import QaBuiltinParams, generate_qa

    return generate_qa(QaBuiltinParams(**dataclasses.asdict(params.qa)), seed)


class QaData(DataFamily):
    name: ClassVar[str] = "qa"
    has_classes: ClassVar[bool] = False
    target_description: ClassVar[str] = "answers, spans of the context (below)"

    def builtins(self) -> dict[str, Builtin]:
        return {"builtin:qa": Builtin(_generate, TEXT_FIELDS, LABEL_FIELD)}

    def read_file(self, path: Path, params: Any, bad: BadRows) -> list[Row] | None:
        from nlpflow.families.qa.readers import read_qa_file

        rows = read_qa_file(path)
        for i, row in enumerate(rows, start=1):
            row["_line"] = i
        return rows

    def normalise(
        self,
        raw: dict[str, list[Row]],
        label_field: str,
        origin: dict[str, str],
        bad: BadRows,
    ) -> dict[str, Any]:
        """Every row checked as the QA readers check it (a saved or hub data set, or rows
        read by the usual readers): a UserError naming the source, the row and the problem."""
        from nlpflow.families.qa.readers import check_question

        if label_field != LABEL_FIELD:
            raise UserError(
                f"params.yaml: a qa task reads its answers from 'answers'; set "
                f"data.label_field to answers (not {label_field!r})"
            )
        for part, rows in raw.items():
            for i, row in enumerate(rows, start=1):
                where = f"{origin[part]}, row {row.get('_line', i)}"
                line = row.get("_line", i)
                row.setdefault("id", f"{part}-{line}")
                checked = check_question(row, where)
                row.update(checked)
        return {}

    def strata(self, rows: Sequence[Row], label_field: str) -> list[str]:
        """Answerable and unanswerable questions in the same shares in every split."""
        return ["answer" if r[label_field]["text"] else "none" for r in rows]

    def clean(
        self, rows: list[Row], text_fields: list[str], label_field: str, params: Any
    ) -> tuple[list[Row], dict[str, int]] | None:
        return None  # answer_start offsets point into the text as given

    def labels_of(self, rows: Sequence[Row], label_field: str) -> list[str]:
        return []

    def label_names(
        self, splits: dict[str, list[Row]], label_field: str, origin: dict[str, str]
    ) -> list[str]:
        if not any(r[label_field]["text"] for r in splits["train"]):
            raise UserError(
                f"{origin['train']}: no train question has an answer; an extractive QA model "
                "learns spans from answered questions"
            )
        return list(OUTPUTS)

    def warnings(
        self, names: list[str], splits: dict[str, list[Row]], label_field: str
    ) -> list[str]:
        has_null = {s: any(not r[label_field]["text"] for r in splits[s]) for s in splits}
        if not has_null["train"] and (has_null["validation"] or has_null["test"]):
            return [
                "train has no unanswerable question but validation or test has: the model "
                "never learns to answer nothing"
            ]
        return []

    def split_figures(self, rows: Sequence[Row], label_field: str) -> dict[str, Any] | None:
        from nlpflow.families.qa.card import describe_questions

        return {"qa": describe_questions(rows)}

    def card_lines(self, report: dict[str, Any]) -> list[str]:
        from nlpflow.families.qa.card import card_lines

        figures = {s: v["qa"] for s, v in report["splits"].items()}
        return ["## Questions and answers", "", *card_lines(figures)]

    def text_feature(self) -> Any:
        from datasets import Value

        return Value("string")

    def label_feature(self, label_names: list[str]) -> Any:
        from datasets import Sequence as Seq
        from datasets import Value

        return {"text": Seq(Value("string")), "answer_start": Seq(Value("int32"))}

    def label_values(self, rows: Sequence[Row], label_field: str, label_names: list[str]) -> list:
        return [
            {
                "text": list(r[label_field]["text"]),
                "answer_start": list(r[label_field]["answer_start"]),
            }
            for r in rows
        ]

    def tokenized_label_feature(self, processed: Any) -> Any:
        from datasets import Sequence as Seq
        from datasets import Value

        return Seq(Value("int32"), length=2)

    def encode_splits(
        self,
        dataset: Any,
        tokenizer: Any,
        max_length: int,
        params: Any,
        where: str,
        segments: bool,
    ) -> tuple[Any, dict[str, Any], str] | None:
        """Windows of every split (:func:`~nlpflow.families.qa.windows.encode_windows`),
        one row each, with the figures of windowing per split and a sample page."""
        from datasets import Dataset, DatasetDict, Features, Value
        from datasets import Sequence as Seq

        from nlpflow.families.qa.windows import encode_windows, window_columns

        if not getattr(tokenizer, "is_fast", False):
            raise UserError(
                f"{where}: extractive QA needs a fast tokenizer (character offsets); "
                f"{type(tokenizer).__name__} is not one"
            )
        if params.stride >= max_length:
            raise UserError(
                f"params.yaml: tokenizer.stride {params.stride} must be below the max_length "
                f"{max_length} in use"
            )
        features = Features(
            {
                "input_ids": Seq(Value("int32")),
                **({"token_type_ids": Seq(Value("int8"))} if segments else {}),
                "labels": Seq(Value("int32"), length=2),
                "example": Value("int32"),
                "offset_start": Seq(Value("int32")),
                "offset_end": Seq(Value("int32")),
                "cls_index": Value("int32"),
                "length": Value("int32"),
            }
        )
        out, figures = {}, {}
        sample = ["# Tokenization sample", ""]
        for split, data in dataset.items():
            rows = data.select_columns(["id", "question", "context", "label"]).to_list()
            for r in rows:
                r["answers"] = r.pop("label")
            windows, report = encode_windows(tokenizer, rows, max_length, params.stride)
            columns = window_columns(windows)
            starts = columns.pop("start_positions")
            ends = columns.pop("end_positions")
            columns["labels"] = [[s, e] for s, e in zip(starts, ends, strict=True)]
            columns["length"] = [len(ids) for ids in columns["input_ids"]]
            columns.pop("attention_mask")
            if not segments:
                columns.pop("token_type_ids")
            elif not any(columns["token_type_ids"]):
                columns["token_type_ids"] = [[0] * n for n in columns["length"]]
            out[split] = Dataset.from_dict(columns, features=features)
            lengths = sorted(columns["length"])
            unknown = tokenizer.unk_token_id
            n_tokens = sum(lengths)
            n_unk = sum(ids.count(unknown) for ids in columns["input_ids"]) if unknown else 0
            figures[split] = {
                "examples": report.windows,
                "questions": report.questions,
                # questions whose context did not fit one window (split, not cut)
                "truncated_fraction": round(report.split_questions / max(1, report.questions), 4),
                "unknown_token_rate": round(n_unk / max(1, n_tokens), 5),
                "length_p50": lengths[len(lengths) // 2] if lengths else 0,
                "length_p95": lengths[int(0.95 * (len(lengths) - 1))] if lengths else 0,
                "length_max": lengths[-1] if lengths else 0,
                "windowing": report.as_dict(),
            }
            if split == "train":
                sample += _sample(tokenizer, rows, windows)
        sample[2:2] = _windowing_lines(figures, max_length, params.stride)
        warnings = [
            f"{split}: {f['windowing']['answers_lost_to_windowing']} answerable question(s) "
            "have no window holding the whole answer (lost to windowing): raise "
            "tokenizer.max_length or tokenizer.stride"
            for split, f in figures.items()
            if f["windowing"]["answers_lost_to_windowing"]
        ]
        return DatasetDict(out), {"splits": figures, "warnings": warnings}, "\n".join(sample)


def _sample(tokenizer: Any, rows: list[Row], windows: list[Any]) -> list[str]:
    lines = []
    for window in windows[:SAMPLE_WINDOWS]:
        row = rows[window.example]
        tokens = tokenizer.convert_ids_to_tokens(window.input_ids)
        start, end = window.start_position, window.end_position
        span = (
            "no answer (the classifier token)"
            if start == window.cls_index
            else (f"tokens {start}..{end}: `{' '.join(tokens[start : end + 1])}`")
        )
        lines += [
            f"## Question `{row['id']}`",
            "",
            f"- question: {row['question']!r}; gold: {row['answers']['text']}",
            f"- {len(tokens)} tokens: `{' · '.join(tokens)}`",
            f"- label: {span}",
            "",
        ]
    return lines


def _windowing_lines(figures: dict[str, Any], max_length: int, stride: int) -> list[str]:
    """The windowing counts per split as a markdown table."""
    from nlpflow.markdown import table

    splits = list(figures)
    rows = [
        [label, *(figures[s]["windowing"][key] for s in splits)]
        for label, key in (
            ("questions", "questions"),
            ("model windows", "windows"),
            ("questions split into windows", "split_questions"),
            ("most windows of one question", "max_windows"),
            ("answers lost to windowing", "answers_lost_to_windowing"),
            ("answers not on token boundaries", "inexact_answer_boundaries"),
        )
    ]
    return [
        f"## Windows (max_length {max_length}, stride {stride})",
        "",
        *table(["", *splits], rows, "l" + "r" * len(splits)),
        "",
    ]
