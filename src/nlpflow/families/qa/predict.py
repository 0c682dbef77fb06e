"""Extractive QA, prediction side: each row's question and context (no cleaning: answers
are character spans of the context as given), windowed as in training (``max_length`` and
``stride`` from ``nlpflow.json``), answered with the n-best spans over its windows;
``prediction`` (the answer, ``""`` for no answer), ``start`` (its first character, -1),
``score`` (the softmax share of the answer among the n-best spans and no answer) and
``best_span`` (the best span even when no answer is given). ``--threshold``: the no-answer
threshold (metrics/evaluate.json's ``threshold.used``, tuned on validation; default 0)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.predict import Item, LoadedModel, PredictFamily, Reject, Row, text_value

N_BEST = 20
MAX_ANSWER_LENGTH = 30


class QaPredict(PredictFamily):
    name: ClassVar[str] = "qa"
    output_keys: ClassVar[tuple[str, ...]] = ("prediction", "start", "score", "best_span")

    def __init__(self, top_k: int = 5, threshold: float | None = None, positive: str = "") -> None:
        super().__init__(top_k, threshold, positive)
        self.split_contexts = 0

    def check(self, loaded: LoadedModel) -> None:
        if self.positive:
            raise UserError("--positive applies to binary sequence tasks")
        if loaded.meta.stride is None or loaded.tokenizer is None:
            raise UserError(
                "the model's nlpflow.json has no window stride (a QA model tokenized before "
                "it was saved); rerun tokenize and train (dvc repro train)"
            )

    def inputs(self, row: Row, loaded: LoadedModel) -> list[Any] | Reject:
        out: list[Any] = []
        for name in loaded.meta.text_fields:
            text = text_value(row.get(name), name)
            if isinstance(text, Reject):
                return text
            if not text.strip():
                return Reject(-1, name, "the text is empty")
            out.append(text)
        tok, meta = loaded.tokenizer, loaded.meta
        assert meta.max_length is not None and meta.stride is not None
        question = len(tok(out[0].lstrip(), add_special_tokens=False)["input_ids"])
        room = meta.max_length - tok.num_special_tokens_to_add(pair=True) - question
        if room <= meta.stride:
            return Reject(
                -1, meta.text_fields[0],
                f"the question is {question} tokens: no room for a context window in "
                f"{meta.max_length} tokens with stride {meta.stride}",
            )  # fmt: skip
        return out

    def predict(
        self, items: Sequence[Item], loaded: LoadedModel
    ) -> tuple[list[dict[str, Any]], list[bool]]:
        from nlpflow.families.qa.postprocess import answer_all, window_logits
        from nlpflow.families.qa.windows import encode_windows

        meta = loaded.meta
        assert meta.max_length is not None and meta.stride is not None
        rows = [
            {"id": str(it.row), "question": it.inputs[0], "context": it.inputs[1],
             "answers": {"text": [], "answer_start": []}}
            for it in items
        ]  # fmt: skip
        windows, report = encode_windows(
            loaded.tokenizer, rows, meta.max_length, meta.stride, labels=False
        )
        if not loaded.encoder.segments:
            for w in windows:
                w.token_type_ids = []
        self.split_contexts += report.split_questions
        starts, ends = window_logits(loaded.model, windows, loaded.batch_size, loaded.pad_id)
        answers = answer_all(
            [r["context"] for r in rows], windows, starts, ends, N_BEST, MAX_ANSWER_LENGTH,
            allow_null=True, null_threshold=0.0 if self.threshold is None else self.threshold,
        )  # fmt: skip
        out = [
            {"prediction": a.text, "start": a.start, "score": a.probability,
             "best_span": a.best.text if a.best else ""}
            for a in answers
        ]  # fmt: skip
        # Nothing is cut: a long context is split into windows that all get read.
        return out, [False] * len(items)

    def notes(self) -> list[str]:
        rule = f"no-answer threshold {0.0 if self.threshold is None else self.threshold:g}"
        split = f"{self.split_contexts} context(s) read in several windows; " * bool(
            self.split_contexts
        )
        return [f"{split}{rule} (evaluate's is threshold.used in metrics/evaluate.json)"]
