"""Sequence classification, model side: ``AutoModelForSequenceClassification`` (the
defaults of :class:`~nlpflow.families.model.ModelFamily`)."""

from __future__ import annotations

from typing import ClassVar

from nlpflow.families.model import ModelFamily


class SequenceModel(ModelFamily):
    name: ClassVar[str] = "sequence"
