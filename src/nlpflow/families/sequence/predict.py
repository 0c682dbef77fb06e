"""Sequence classification, prediction side: the defaults of
:class:`~nlpflow.families.predict.PredictFamily` (a label, its probability, the top k)."""

from __future__ import annotations

from typing import ClassVar

from nlpflow.families.predict import PredictFamily


class SequencePredict(PredictFamily):
    name: ClassVar[str] = "sequence"
