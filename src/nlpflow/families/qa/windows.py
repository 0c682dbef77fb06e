"""Question-context pairs as model windows, answers as token positions, and back to text.

A context longer than fits beside its question in ``max_length`` tokens is split into
windows (features) that overlap by ``stride`` tokens, with a fast tokenizer's
``return_overflowing_tokens``/``stride``/``return_offsets_mapping``: every window holds the
whole question and a slice of the context. Each window keeps, per token, the character span
of the context it covers (``None`` for the question, special and padding tokens), so a span
of window tokens maps back to a span of context characters.

Training labels: the window's token positions of the (first) gold answer, or the position
of the classifier token (``[CLS]``; position 0 when the tokenizer has none) when the window
does not hold the whole answer or the question has none, as BERT's SQuAD v2 recipe does.
An answerable question none of whose windows holds the whole answer is *lost to windowing*:
the model can never be trained or scored right on it; :func:`window_report` counts those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nlpflow.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

Offsets = list[tuple[int, int] | None]


@dataclass
class Window:
    """One model input: a question and a slice of its context.

    ``input_ids``/``attention_mask``/``token_type_ids``: the encoding (``token_type_ids``
    empty when the tokenizer gives none); ``example``: the index of the question in the
    list encoded; ``offsets``: per token, the (start, end) characters of the context it
    covers, None outside the context; ``cls_index``: where "no answer" points;
    ``start_position``/``end_position``: the training labels (token indices, inclusive),
    or None when no answers were given.
    """

    input_ids: list[int]
    attention_mask: list[int]
    token_type_ids: list[int]
    example: int
    offsets: Offsets
    cls_index: int
    start_position: int | None = None
    end_position: int | None = None

    @property
    def context_range(self) -> tuple[int, int]:
        """First and last token index of the context slice (inclusive)."""
        inside = [i for i, o in enumerate(self.offsets) if o is not None]
        return inside[0], inside[-1]


@dataclass
class WindowReport:
    """What windowing did to a split: counts for the data card.

    ``questions``: questions encoded; ``windows``: model inputs made; ``split_questions``:
    questions whose context needed more than one window; ``max_windows``: the most windows of
    one question; ``answers_lost``: answerable questions none of whose windows holds the
    whole first gold answer (``lost_ids`` lists up to 20); ``inexact_answers``: answers that
    do not start and end on token boundaries, so the best span the model can give differs from
    the gold text (``inexact_ids`` up to 20).
    """

    questions: int = 0
    windows: int = 0
    split_questions: int = 0
    max_windows: int = 0
    answers_lost: int = 0
    inexact_answers: int = 0
    lost_ids: list[str] = field(default_factory=list)
    inexact_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "windows": self.windows,
            "split_questions": self.split_questions,
            "max_windows": self.max_windows,
            "answers_lost_to_windowing": self.answers_lost,
            "inexact_answer_boundaries": self.inexact_answers,
            "lost_examples": self.lost_ids,
            "inexact_examples": self.inexact_ids,
        }


def check_fits(
    tokenizer: PreTrainedTokenizerFast,
    questions: Sequence[str],
    ids: Sequence[str],
    max_length: int,
    stride: int,
) -> None:
    """Raise UserError naming the first question that leaves no room for a context window
    longer than ``stride`` tokens (the tokenizer could not split its context)."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    lengths = tokenizer(list(questions), add_special_tokens=False)["input_ids"]
    for qid, tokens in zip(ids, lengths, strict=True):
        room = max_length - specials - len(tokens)
        if room <= stride:
            raise UserError(
                f"question '{qid}' is {len(tokens)} tokens: with tokenizer.max_length "
                f"{max_length} that leaves {room} tokens of context per window, not more than "
                f"tokenizer.stride {stride}; raise max_length or lower the stride"
            )


def _cls_index(input_ids: list[int], cls_id: int | None) -> int:
    if cls_id is not None and cls_id in input_ids:
        return input_ids.index(cls_id)
    return 0


def answer_positions(offsets: Offsets, start_char: int, end_char: int) -> tuple[int, int] | None:
    """Token positions (inclusive) of the context characters ``[start_char, end_char)`` in a
    window, or None when the window does not hold all of them.

    The start token is the last context token starting at or before ``start_char``; the end
    token the first one from there ending at or after ``end_char``. An answer that starts or
    ends inside a token maps to that whole token.
    """
    inside = [i for i, o in enumerate(offsets) if o is not None]
    if not inside:
        return None
    first, last = inside[0], inside[-1]
    first_span, last_span = offsets[first], offsets[last]
    assert first_span is not None and last_span is not None
    if first_span[0] > start_char or last_span[1] < end_char:
        return None
    start = first
    for i in inside:
        span = offsets[i]
        assert span is not None
        if span[0] <= start_char:
            start = i
        else:
            break
    for i in inside:
        span = offsets[i]
        assert span is not None
        if i >= start and span[1] >= end_char:
            return start, i
    return None  # pragma: no cover - last_span[1] >= end_char guarantees a match


def char_span(context: str, offsets: Offsets, start: int, end: int) -> tuple[int, int]:
    """The context characters ``[begin, stop)`` from token ``start`` through token ``end`` of
    a window, without the whitespace that byte-level tokens (RoBERTa, GPT-2) carry in their
    offsets. Raises ValueError when either token is outside the context."""
    first, last = offsets[start], offsets[end]
    if first is None or last is None:
        raise ValueError(f"tokens {start}..{end} are not both in the context")
    begin, stop = first[0], last[1]
    while begin < stop and context[begin].isspace():
        begin += 1
    while stop > begin and context[stop - 1].isspace():
        stop -= 1
    return begin, stop


def span_text(context: str, offsets: Offsets, start: int, end: int) -> str:
    """The context text from token ``start`` through token ``end`` (see :func:`char_span`)."""
    begin, stop = char_span(context, offsets, start, end)
    return context[begin:stop]


def encode_windows(
    tokenizer: PreTrainedTokenizerFast,
    rows: Sequence[dict[str, Any]],
    max_length: int,
    stride: int,
    labels: bool = True,
) -> tuple[list[Window], WindowReport]:
    """Windows of every row (reader layout: ``id``, ``question``, ``context``, ``answers``),
    in row order, and what windowing did.

    ``labels``: compute ``start_position``/``end_position`` from the first gold answer.
    Raises UserError when a question leaves no room for its context (:func:`check_fits`).
    """
    if stride < 0 or stride >= max_length:
        raise UserError(
            f"params.yaml: tokenizer.stride {stride} must be >= 0 and below max_length {max_length}"
        )
    questions = [r["question"].lstrip() for r in rows]
    ids = [str(r["id"]) for r in rows]
    check_fits(tokenizer, questions, ids, max_length, stride)
    report = WindowReport(questions=len(rows))
    if not rows:
        return [], report
    enc = tokenizer(
        questions,
        [r["context"] for r in rows],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    cls_id = tokenizer.cls_token_id
    windows: list[Window] = []
    per_row: dict[int, list[Window]] = {}
    for f, example in enumerate(enc["overflow_to_sample_mapping"]):
        sequence_ids = enc.sequence_ids(f)
        offsets: Offsets = [
            (int(o[0]), int(o[1])) if s == 1 else None
            for o, s in zip(enc["offset_mapping"][f], sequence_ids, strict=True)
        ]
        input_ids = list(enc["input_ids"][f])
        window = Window(
            input_ids=input_ids,
            attention_mask=list(enc["attention_mask"][f]),
            token_type_ids=list(enc["token_type_ids"][f]) if "token_type_ids" in enc else [],
            example=int(example),
            offsets=offsets,
            cls_index=_cls_index(input_ids, cls_id),
        )
        windows.append(window)
        per_row.setdefault(int(example), []).append(window)
    report.windows = len(windows)
    for index, row in enumerate(rows):
        mine = per_row.get(index, [])
        report.max_windows = max(report.max_windows, len(mine))
        report.split_questions += len(mine) > 1
        answers = row["answers"]
        gold = (
            (answers["answer_start"][0], answers["answer_start"][0] + len(answers["text"][0]))
            if answers["text"]
            else None
        )
        held = False
        for window in mine:
            positions = answer_positions(window.offsets, *gold) if gold else None
            if positions is not None and not held:
                held = True
                got = span_text(row["context"], window.offsets, *positions)
                if got != answers["text"][0]:
                    report.inexact_answers += 1
                    if len(report.inexact_ids) < 20:
                        report.inexact_ids.append(str(row["id"]))
            if labels:
                start, end = positions or (window.cls_index, window.cls_index)
                window.start_position, window.end_position = start, end
        if gold is not None and not held:
            report.answers_lost += 1
            if len(report.lost_ids) < 20:
                report.lost_ids.append(str(row["id"]))
    return windows, report


# Columns of a tokenized QA split (one row per window), plain lists that Arrow stores as
# list<int> columns; an offset of -1 marks a token outside the context.
WINDOW_COLUMNS = (
    "input_ids", "attention_mask", "token_type_ids", "example", "offset_start", "offset_end",
    "cls_index", "start_positions", "end_positions",
)  # fmt: skip


def window_columns(windows: Sequence[Window]) -> dict[str, list[Any]]:
    """The windows as columns (:data:`WINDOW_COLUMNS`), one row per window; positions are -1
    when the windows carry no labels."""
    return {
        "input_ids": [w.input_ids for w in windows],
        "attention_mask": [w.attention_mask for w in windows],
        "token_type_ids": [w.token_type_ids for w in windows],
        "example": [w.example for w in windows],
        "offset_start": [[o[0] if o else -1 for o in w.offsets] for w in windows],
        "offset_end": [[o[1] if o else -1 for o in w.offsets] for w in windows],
        "cls_index": [w.cls_index for w in windows],
        "start_positions": [-1 if w.start_position is None else w.start_position for w in windows],
        "end_positions": [-1 if w.end_position is None else w.end_position for w in windows],
    }


def windows_from_columns(columns: dict[str, Sequence[Any]]) -> list[Window]:
    """The windows back from :func:`window_columns`'s layout (e.g. a tokenized split read
    with ``Dataset.to_dict()``). Raises ValueError when a column is missing or the offsets
    of a row differ in length from its ids."""
    missing = [c for c in WINDOW_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"tokenized QA data lacks the column(s) {missing}; rerun tokenize")
    out = []
    for i, ids in enumerate(columns["input_ids"]):
        starts, ends = columns["offset_start"][i], columns["offset_end"][i]
        if not len(starts) == len(ends) == len(ids):
            raise ValueError(f"window {i}: {len(ids)} ids but {len(starts)} offsets")
        start, end = int(columns["start_positions"][i]), int(columns["end_positions"][i])
        out.append(
            Window(
                input_ids=[int(x) for x in ids],
                attention_mask=[int(x) for x in columns["attention_mask"][i]],
                token_type_ids=[int(x) for x in columns["token_type_ids"][i]],
                example=int(columns["example"][i]),
                offsets=[
                    (int(a), int(b)) if a >= 0 else None for a, b in zip(starts, ends, strict=True)
                ],
                cls_index=int(columns["cls_index"][i]),
                start_position=None if start < 0 else start,
                end_position=None if end < 0 else end,
            )
        )
    return out
