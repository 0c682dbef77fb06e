"""Sequence classification, training side: the defaults of
:class:`~nlpflow.families.train.TrainFamily` (cross-entropy, accuracy and macro-F1)."""

from __future__ import annotations

from typing import ClassVar

from nlpflow.families.train import TrainFamily


class SequenceTrain(TrainFamily):
    name: ClassVar[str] = "sequence"
