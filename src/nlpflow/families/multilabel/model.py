"""Multi-label classification, model side: ``AutoModelForSequenceClassification`` with
``problem_type="multi_label_classification"`` (sigmoid outputs; transformers' own loss for
it is BCE, the same as our training loss)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.model import ModelFamily

PROBLEM_TYPE = "multi_label_classification"


class MultilabelModel(ModelFamily):
    name: ClassVar[str] = "multilabel"

    def config_kwargs(self, label_names: Sequence[str]) -> dict[str, Any]:
        return {**super().config_kwargs(label_names), "problem_type": PROBLEM_TYPE}

    def check_config(self, config: Any, label_names: Sequence[str], model_dir: Path) -> None:
        super().check_config(config, label_names, model_dir)
        if getattr(config, "problem_type", None) != PROBLEM_TYPE:
            raise UserError(
                f"{model_dir}: the model's problem_type is {getattr(config, 'problem_type', None)!r}, "
                f"not {PROBLEM_TYPE!r}: it was trained for another task; retrain it on this data "
                "(dvc repro train)"
            )
