"""The extractive QA head: ``AutoModelForQuestionAnswering`` and its span loss.

The head is one linear layer giving two logits per token, a start and an end logit. The
loss is the mean of the start and end cross-entropies over the tokens of each window
(BERT's SQuAD loss, what the Hugging Face heads compute when given ``start_positions`` and
``end_positions``); positions outside the window (a label past a truncated end) are clamped
to ``T`` and ignored, as those heads do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.model import ModelFamily

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

MODEL_CLASS = "AutoModelForQuestionAnswering"


def span_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
) -> torch.Tensor:
    """Mean of the start and end cross-entropies.

    ``start_logits``/``end_logits``: ``(B, T)``; ``start_positions``/``end_positions``:
    ``(B,)`` token indices. Returns a scalar tensor (mean over the batch).
    """
    import torch.nn.functional as F

    length = start_logits.shape[1]
    starts = start_positions.clamp(0, length)
    ends = end_positions.clamp(0, length)
    start_loss = F.cross_entropy(start_logits.float(), starts, ignore_index=length)
    end_loss = F.cross_entropy(end_logits.float(), ends, ignore_index=length)
    return (start_loss + end_loss) / 2


def qa_model_from_config(config: Any) -> PreTrainedModel:
    """A freshly initialised QA model of ``config`` (a ``PretrainedConfig``)."""
    from transformers import AutoModelForQuestionAnswering

    return AutoModelForQuestionAnswering.from_config(config)


class QaModel(ModelFamily):
    """``AutoModelForQuestionAnswering``: two outputs per token (``start``, ``end``)."""

    name: ClassVar[str] = "qa"

    def auto_class(self) -> Any:
        from transformers import AutoModelForQuestionAnswering

        return AutoModelForQuestionAnswering

    def bert_class(self) -> Any:
        from transformers import BertForQuestionAnswering

        return BertForQuestionAnswering

    def check_config(self, config: Any, label_names: Sequence[str], model_dir: Path) -> None:
        architectures = list(getattr(config, "architectures", None) or [])
        if architectures and not any(a.endswith("ForQuestionAnswering") for a in architectures):
            raise UserError(
                f"{model_dir}: a {architectures[0]}, not a question-answering model; retrain "
                "it on this data (dvc repro train)"
            )
        super().check_config(config, label_names, model_dir)
