"""From start/end logits of every window to one answer per question.

For each question, over all of its windows:

- candidate spans: in each window, the ``n_best`` highest start logits times the ``n_best``
  highest end logits, kept when both tokens are in the context, the end is not before the
  start and the span is at most ``max_answer_length`` tokens; a span's score is
  ``start_logit + end_logit``; the same characters found in two overlapping windows count
  once, with the higher score;
- the no-answer score: ``start_logit + end_logit`` at the classifier token, the lowest over
  the question's windows (the window most sure that it holds an answer decides);
- the answer: the best span, or ``""`` (no answer) when no-answer is allowed (SQuAD v2) and
  its score beats the best span's by more than ``null_threshold``, or when no span is valid.

``margin = null score - best span score`` is kept per question, so the threshold can be tuned
on validation (:func:`nlpflow.families.qa.metrics.best_null_threshold`) and applied to the
test split without running the model again (:func:`apply_threshold`). ``probability`` is the
softmax share of the answer given among the n-best spans and no-answer: a confidence for
sorting errors, not a calibrated probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nlpflow.evaluation.metrics import FloatArray
from nlpflow.families.qa.windows import Window, char_span


@dataclass(frozen=True)
class Candidate:
    """A span of the context: its text, character offsets (end exclusive) and score."""

    text: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Answer:
    """The answer to one question.

    ``text``: the predicted span, ``""`` for no answer; ``start``: its first character (-1 for
    no answer); ``best``: the best span even when no answer is predicted (None if no span was
    valid); ``null_score``; ``margin``: null score - best span score (``inf`` without a span);
    ``probability``: softmax share of the chosen answer among ``n_best`` and no-answer;
    ``n_best``: the candidates, best first.
    """

    text: str
    start: int
    best: Candidate | None
    null_score: float
    margin: float
    probability: float
    n_best: list[Candidate] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "prediction": self.text,
            "start": self.start,
            "best_span": self.best.text if self.best else "",
            "null_score": self.null_score,
            "margin": self.margin if np.isfinite(self.margin) else None,
            "probability": self.probability,
        }


def _top(logits: FloatArray, n: int) -> list[int]:
    return [int(i) for i in np.argsort(-logits, kind="stable")[:n]]


def window_candidates(
    context: str,
    window: Window,
    start_logits: FloatArray,
    end_logits: FloatArray,
    n_best: int,
    max_answer_length: int,
) -> list[Candidate]:
    """The valid spans among the top ``n_best`` starts and ends of one window."""
    offsets = window.offsets
    out = []
    for s in _top(start_logits, n_best):
        if s >= len(offsets) or offsets[s] is None:
            continue
        for e in _top(end_logits, n_best):
            if e >= len(offsets) or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                continue
            begin, stop = char_span(context, offsets, s, e)
            if begin == stop:  # only whitespace
                continue
            score = float(start_logits[s] + end_logits[e])
            out.append(Candidate(context[begin:stop], begin, stop, score))
    return out


def _softmax_share(chosen: float, scores: Sequence[float]) -> float:
    values = np.asarray(scores, dtype=np.float64)
    top = values.max()
    return float(np.exp(chosen - top) / np.exp(values - top).sum())


def answer_question(
    context: str,
    windows: Sequence[Window],
    start_logits: Sequence[FloatArray],
    end_logits: Sequence[FloatArray],
    n_best: int = 20,
    max_answer_length: int = 30,
    allow_null: bool = True,
    null_threshold: float = 0.0,
) -> Answer:
    """The answer to one question from the logits ``(T,)`` of each of its windows."""
    spans: dict[tuple[int, int], Candidate] = {}
    null_score = float("inf")
    for window, starts, ends in zip(windows, start_logits, end_logits, strict=True):
        starts = np.asarray(starts, dtype=np.float64)
        ends = np.asarray(ends, dtype=np.float64)
        null_score = min(null_score, float(starts[window.cls_index] + ends[window.cls_index]))
        for cand in window_candidates(context, window, starts, ends, n_best, max_answer_length):
            key = (cand.start, cand.end)
            if key not in spans or spans[key].score < cand.score:
                spans[key] = cand
    ranked = sorted(spans.values(), key=lambda c: (-c.score, c.start, c.end))[:n_best]
    best = ranked[0] if ranked else None
    margin = null_score - best.score if best else float("inf")
    scores = [c.score for c in ranked] + [null_score]
    if best is None or (allow_null and margin > null_threshold):
        return Answer("", -1, best, null_score, margin, _softmax_share(null_score, scores), ranked)
    return Answer(
        best.text, best.start, best, null_score, margin, _softmax_share(best.score, scores), ranked
    )


def answer_all(
    contexts: Sequence[str],
    windows: Sequence[Window],
    start_logits: Sequence[FloatArray] | FloatArray,
    end_logits: Sequence[FloatArray] | FloatArray,
    n_best: int = 20,
    max_answer_length: int = 30,
    allow_null: bool = True,
    null_threshold: float = 0.0,
) -> list[Answer]:
    """One answer per context (question), from the logits of every window: ``start_logits[f]``
    and ``end_logits[f]`` belong to ``windows[f]`` (shape ``(T_f,)``; padding past the
    window's tokens is ignored). Raises ValueError when a question has no window."""
    if not (len(windows) == len(start_logits) == len(end_logits)):
        raise ValueError("windows, start_logits and end_logits differ in length")
    grouped: dict[int, list[int]] = {}
    for f, window in enumerate(windows):
        grouped.setdefault(window.example, []).append(f)
    out = []
    for index, context in enumerate(contexts):
        mine = grouped.get(index, [])
        if not mine:
            raise ValueError(f"question {index} has no window: encode every question")
        out.append(
            answer_question(
                context,
                [windows[f] for f in mine],
                [np.asarray(start_logits[f])[: len(windows[f].input_ids)] for f in mine],
                [np.asarray(end_logits[f])[: len(windows[f].input_ids)] for f in mine],
                n_best,
                max_answer_length,
                allow_null,
                null_threshold,
            )
        )
    return out


def apply_threshold(answers: Sequence[Answer], null_threshold: float) -> list[Answer]:
    """The answers under another no-answer threshold (same spans and scores)."""
    out = []
    for a in answers:
        scores = [c.score for c in a.n_best] + [a.null_score]
        if a.best is None or a.margin > null_threshold:
            out.append(
                replace(a, text="", start=-1, probability=_softmax_share(a.null_score, scores))
            )
        else:
            share = _softmax_share(a.best.score, scores)
            out.append(replace(a, text=a.best.text, start=a.best.start, probability=share))
    return out


def window_logits(
    model: Any, windows: Sequence[Window], batch_size: int, pad_id: int
) -> tuple[list[FloatArray], list[FloatArray]]:
    """Start and end logits ``(T_f,)`` float64 of every window (a QA model in eval mode),
    in batches of windows of similar length (padding after each window's tokens)."""
    import inspect

    import torch

    use_types = "token_type_ids" in inspect.signature(model.forward).parameters
    device = next(model.parameters()).device
    order = np.argsort([len(w.input_ids) for w in windows], kind="stable")
    starts: list[FloatArray] = [np.zeros(0)] * len(windows)
    ends: list[FloatArray] = [np.zeros(0)] * len(windows)
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            width = max(len(windows[i].input_ids) for i in idx)

            def pad(values: list[int], fill: int, width: int = width) -> list[int]:
                return values + [fill] * (width - len(values))

            batch = {
                "input_ids": torch.tensor([pad(windows[i].input_ids, pad_id) for i in idx]),
                "attention_mask": torch.tensor(
                    [pad([1] * len(windows[i].input_ids), 0) for i in idx]
                ),
            }
            if use_types and windows[idx[0]].token_type_ids:
                batch["token_type_ids"] = torch.tensor(
                    [pad(windows[i].token_type_ids, 0) for i in idx]
                )
            out = model(**{k: v.to(device) for k, v in batch.items()})
            s = out.start_logits.double().cpu().numpy()
            e = out.end_logits.double().cpu().numpy()
            for j, i in enumerate(idx):
                n = len(windows[i].input_ids)
                starts[i], ends[i] = s[j, :n], e[j, :n]
    return starts, ends
