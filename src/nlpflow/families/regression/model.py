"""Regression, model side: ``AutoModelForSequenceClassification`` with one output
(``num_labels=1``, ``problem_type: regression``). The model predicts the standardised
target; ``config.target_mean``/``target_std`` (set by the train side) restore its scale."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.model import ModelFamily


class RegressionModel(ModelFamily):
    name: ClassVar[str] = "regression"

    def config_kwargs(self, label_names: Sequence[str]) -> dict[str, Any]:
        return {**super().config_kwargs(label_names), "problem_type": "regression"}

    def check_config(self, config: Any, label_names: Sequence[str], model_dir: Path) -> None:
        if int(getattr(config, "num_labels", 0)) != 1 or config.problem_type != "regression":
            raise UserError(
                f"{model_dir}: not a regression model (num_labels {config.num_labels}, "
                f"problem_type {config.problem_type}); retrain it on this data (dvc repro train)"
            )
        if not isinstance(getattr(config, "target_std", None), float):
            raise UserError(
                f"{model_dir}/config.json lacks target_mean/target_std (the target's "
                "standardisation); retrain the model (dvc repro train)"
            )
        super().check_config(config, label_names, model_dir)


def restore(config: Any, standardised: Any) -> Any:
    """Model outputs in the target's units: ``output * target_std + target_mean``."""
    return standardised * float(config.target_std) + float(config.target_mean)
