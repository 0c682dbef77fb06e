"""The prediction side of a task family: ``nlpflow predict`` on a new file.

``nlpflow.predict`` does what every task shares (reading the file in chunks, the rejects,
truncation counts, the writers, progress); it asks the model's family (``DataMeta.task``,
from ``models/best/nlpflow.json``) for what differs:

- ``check(loaded)``: the options (``--threshold``) against the model, before reading;
- ``inputs(row, loaded)`` -> the model inputs of one raw row, one value per text field
  (cleaned as in training: ``meta.cleaning``), or a :class:`Reject` saying which field is
  unusable and why (missing, null, empty, wrong type);
- ``predict(items, loaded)`` -> per item the keys its output record gets
  (``output_keys``) and whether its input was truncated;
- ``notes()`` -> console sentences about what was done to the inputs (texts split, cleaned).

The defaults are sequence classification's: ``prediction`` (the arg-max label), ``score``
(its probability; with ``--threshold`` in a binary task, the positive label where its
probability reaches the threshold, as evaluate decides) and ``top_k`` (``[{label, score}]``,
the ``top_k`` most probable). A family with other outputs (regression: a value; multi-label: labels over thresholds; choice: the
chosen option; QA: a span) overrides ``predict`` and ``output_keys``, and ``inputs`` when its
rows are shaped differently; then it adds its class to :func:`predict_family`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.errors import UserError

if TYPE_CHECKING:
    from nlpflow.data.saved import DataMeta
    from nlpflow.modeling.encoder import Encoder
    from nlpflow.params import CleaningParams

Row = dict[str, Any]


@dataclass
class Reject:
    """A row that was not predicted: its number, the field at fault ("" for the whole row)."""

    row: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "reason": self.reason}


@dataclass
class Item:
    """A usable row: its number, the raw row, and the model inputs of its text fields."""

    row: int
    raw: Row
    inputs: list[Any]  # per text field: the cleaned text (sequence) or the words (token)


@dataclass
class LoadedModel:
    """A trained model with what is needed to encode for it (``nlpflow.json``)."""

    meta: DataMeta
    model: Any
    pad_id: int
    encoder: Encoder
    batch_size: int
    tokenizer: Any = None  # the fast tokenizer (a family that encodes itself: QA windows)


def text_value(value: Any, name: str) -> str | Reject:
    if value is None:
        return Reject(-1, name, "the text field is missing or null")
    if not isinstance(value, str):
        return Reject(-1, name, f"expected text, got {type(value).__name__} {str(value)[:40]!r}")
    return value


class PredictFamily:
    """Prediction hooks; the defaults are sequence classification's (single texts and
    pairs). ``top_k``: how many labels with scores each record lists."""

    name: ClassVar[str] = ""
    output_keys: ClassVar[tuple[str, ...]] = ("prediction", "score", "top_k")

    def __init__(self, top_k: int = 5, threshold: float | None = None, positive: str = "") -> None:
        self.top_k = top_k
        # Binary tasks: the positive label where p(positive) >= threshold (evaluate's rule
        # with evaluate.threshold, or the threshold it tuned); None: the arg-max.
        self.threshold = threshold
        self.positive = positive
        self.cleaned: Counter[str] = Counter()
        self._cleaning: CleaningParams | None = None

    def check(self, loaded: LoadedModel) -> None:
        """Options against the model, before any row is read (a UserError to fix)."""
        names = loaded.meta.label_names
        if self.threshold is None:
            if self.positive:
                raise UserError("--positive goes with --threshold (binary tasks)")
            return
        if len(names) != 2:
            raise UserError(
                f"--threshold needs a binary task; this model has {len(names)} labels {names}"
            )
        if not 0.0 <= self.threshold <= 1.0:
            raise UserError(f"--threshold {self.threshold} must be between 0 and 1")
        if self.positive and self.positive not in names:
            raise UserError(f"--positive '{self.positive}' is not one of the labels {names}")

    def read_fields(self, meta: DataMeta) -> list[str]:
        """The columns of the input file the model reads (the default: the text fields it
        was trained on)."""
        return list(meta.text_fields)

    def output_names(self, meta: DataMeta) -> tuple[str, ...]:
        """The keys each output record gets for a model with ``meta`` (the default:
        :attr:`output_keys`)."""
        return self.output_keys

    def inputs(self, row: Row, loaded: LoadedModel) -> list[Any] | Reject:
        """The cleaned text of each text field of ``row``, or a Reject (row number -1:
        the caller fills it in)."""
        from nlpflow.data.clean import clean_text
        from nlpflow.params import CleaningParams

        if self._cleaning is None:
            # As the training texts were cleaned (data.cleaning, saved in nlpflow.json).
            known = {f.name for f in dataclasses.fields(CleaningParams)}
            saved = loaded.meta.cleaning or {"unicode": "none", "whitespace": False}
            self._cleaning = CleaningParams(**{k: v for k, v in saved.items() if k in known})
        cleaning = self._cleaning
        out: list[Any] = []
        for name in loaded.meta.text_fields:
            text = text_value(row.get(name), name)
            if isinstance(text, Reject):
                return text
            text = clean_text(text, cleaning, self.cleaned)
            if not text.strip():
                return Reject(-1, name, "the text is empty (after cleaning)")
            out.append(text)
        return out

    @staticmethod
    def encode_columns(loaded: LoadedModel, columns: list[list[Any]]) -> Any:
        """The model inputs of ``columns`` (one list per text field); a UserError for a row
        the encoder cannot fit (the default: :meth:`Encoder.encode`)."""
        return loaded.encoder.encode(columns)

    def encode(self, loaded: LoadedModel, columns: list[list[Any]]) -> Any:
        """What :func:`nlpflow.predict.usable` encodes a chunk with (a family whose rows
        are not one text or pair overrides it)."""
        return self.encode_columns(loaded, columns)

    def predict(
        self, items: Sequence[Item], loaded: LoadedModel
    ) -> tuple[list[dict[str, Any]], list[bool]]:
        """Per item the keys of :attr:`output_keys`, and whether its input was truncated."""
        import numpy as np

        from nlpflow.evaluation.predict import predict_probabilities

        lm = loaded
        columns = [[it.inputs[f] for it in items] for f in range(len(lm.meta.text_fields))]
        encoded = lm.encoder.encode(columns)
        lengths = lm.encoder.lengths(columns)
        probs = predict_probabilities(
            lm.model, encoded.input_ids, lm.batch_size, lm.pad_id,
            token_type_ids=encoded.token_type_ids, progress=False,
        )  # fmt: skip
        names = lm.meta.label_names
        top_k = max(1, min(self.top_k, len(names)))
        # Ties go to the lower label id, as argmax (and evaluate) does.
        order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
        if self.threshold is None:
            chosen = probs.argmax(axis=1)
        else:  # as evaluate decides (nlpflow.evaluation.metrics.threshold_predictions)
            positive = names.index(self.positive) if self.positive else 1
            chosen = np.where(probs[:, positive] >= self.threshold, positive, 1 - positive)
        out = []
        for i in range(len(items)):
            top = [{"label": names[j], "score": float(probs[i, j])} for j in order[i]]
            j = int(chosen[i])
            out.append({"prediction": names[j], "score": float(probs[i, j]), "top_k": top})
        return out, [bool(n > lm.encoder.max_length) for n in lengths]

    def notes(self) -> list[str]:
        """What was done to the inputs, one sentence each, for the console."""
        changed = ", ".join(f"{k} {n}" for k, n in sorted(self.cleaned.items()))
        return [f"cleaned as in training (texts changed: {changed})"] if changed else []


def predict_family(
    task: str,
    top_k: int = 5,
    threshold: float | None = None,
    positive: str = "",
    generation: dict[str, Any] | None = None,
) -> PredictFamily:
    """The prediction side of the family ``task`` (``DataMeta.task``). ``generation``:
    text2text only, ``evaluate.generation`` keys (``max_new_tokens``, ``num_beams``) that
    replace its defaults; raises UserError for another task."""
    from nlpflow.families.choice.predict import ChoicePredict
    from nlpflow.families.multilabel.predict import MultilabelPredict
    from nlpflow.families.qa.predict import QaPredict
    from nlpflow.families.regression.predict import RegressionPredict
    from nlpflow.families.sequence.predict import SequencePredict
    from nlpflow.families.text2text.predict import Text2TextPredict
    from nlpflow.families.token.predict import TokenPredict

    known: list[type[PredictFamily]] = [
        SequencePredict,
        TokenPredict,
        RegressionPredict,
        QaPredict,
        Text2TextPredict,
        MultilabelPredict,
        ChoicePredict,
    ]
    if generation and task != Text2TextPredict.name:
        raise UserError(
            f"--max-new-tokens and --num-beams apply to text2text models; this is a {task} model"
        )
    for cls in known:
        if cls.name == task:
            if generation:
                return Text2TextPredict(top_k, threshold, positive, generation=generation)
            return cls(top_k, threshold, positive)
    raise UserError(
        f"nlpflow predict does not handle '{task}' models yet; it knows {[c.name for c in known]}"
    )
