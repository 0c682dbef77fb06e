"""The model side of a task family: which ``transformers`` class and head, and the config
it carries. See :mod:`nlpflow.families` for the whole interface.

Imported by every stage that builds or loads a model (probe, lr_range, train, evaluate,
error_analysis); a family's ``model.py`` imports only ``transformers`` (inside functions)
and nothing else of the project beside :mod:`nlpflow.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.errors import UserError

if TYPE_CHECKING:
    from nlpflow.params import ModelParams


class ModelFamily:
    """Model hooks; the defaults are sequence classification's."""

    name: ClassVar[str] = ""

    def build(self, params: Any, tokenizer: Any, max_length: int) -> Any | None:
        """The model built whole by the family (its own architectures, as text-to-text's
        encoder-decoder and decoder-only models), or None for the shared build: the Auto
        class or a BERT with the head of :meth:`config_kwargs`. ``params``: the ``model``
        section (or the probe's subset of it)."""
        return None

    def auto_class(self) -> Any:
        """The ``transformers`` Auto class that loads a pretrained encoder with this head
        (``AutoModelForSequenceClassification``...)."""
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def bert_class(self) -> Any:
        """The BERT class built from a config when ``model.name_or_path`` is empty."""
        from transformers import BertForSequenceClassification

        return BertForSequenceClassification

    def from_scratch(
        self, params: ModelParams, tokenizer: Any, head: dict[str, Any], max_length: int
    ) -> Any:
        """The model built from a config when ``model.name_or_path`` is empty: a small BERT
        of ``params``' shape (dropout ``params.dropout``, 0.1 when None), sized to
        ``tokenizer``, with position embeddings for ``max_length`` tokens and the head's
        config (:meth:`config_kwargs`), of class :meth:`bert_class`, its weights drawn with
        standard deviation ``params.initializer_range``. A family whose model is not an
        encoder (seq2seq, causal LM) overrides this."""
        from transformers import BertConfig

        dropout = 0.1 if params.dropout is None else params.dropout
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=params.hidden_size,
            num_hidden_layers=params.num_layers,
            num_attention_heads=params.num_heads,
            intermediate_size=params.intermediate_size,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            max_position_embeddings=max(max_length, 8),
            type_vocab_size=2,
            pad_token_id=tokenizer.pad_token_id,
            initializer_range=params.initializer_range,
            **head,
        )
        return self.bert_class()(config)

    def config_kwargs(self, label_names: Sequence[str]) -> dict[str, Any]:
        """Keyword arguments of the model config: ``num_labels``, ``id2label``,
        ``label2id`` (and ``problem_type`` where the family has one)."""
        return {
            "num_labels": len(label_names),
            "id2label": dict(enumerate(label_names)),
            "label2id": {name: i for i, name in enumerate(label_names)},
        }

    def check_config(self, config: Any, label_names: Sequence[str], model_dir: Path) -> None:
        """A saved model's config against the data: a UserError naming ``model_dir`` when
        its outputs mean something else (a model whose label ids mean other classes would
        be scored against the wrong ones)."""
        id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
        model_labels = [id2label.get(i, "?") for i in range(len(id2label))]
        if model_labels != list(label_names):
            raise UserError(
                f"{model_dir}: the model's labels {model_labels} differ from the data's "
                f"{list(label_names)}; retrain the model on this data (dvc repro train)"
            )


def model_family(task: str) -> ModelFamily:
    """The model side of the family ``task`` (``DataMeta.task``)."""
    from nlpflow.families.choice.model import ChoiceModel
    from nlpflow.families.multilabel.model import MultilabelModel
    from nlpflow.families.qa.model import QaModel
    from nlpflow.families.regression.model import RegressionModel
    from nlpflow.families.sequence.model import SequenceModel
    from nlpflow.families.text2text.model import Text2TextModel
    from nlpflow.families.token.model import TokenModel

    known: list[type[ModelFamily]] = [
        SequenceModel,
        TokenModel,
        RegressionModel,
        QaModel,
        Text2TextModel,
        MultilabelModel,
        ChoiceModel,
    ]
    for cls in known:
        if cls.name == task:
            return cls()
    from nlpflow.families.names import TASKS

    if task in TASKS:  # a family whose stages stop before this one
        raise UserError(
            f"the {task} task has no model side in the pipeline yet (only its earlier "
            f"stages run; its library is nlpflow.families.{task}); this stage handles "
            f"{[c.name for c in known]}"
        )
    raise UserError(
        f"unknown task '{task}' in the data's meta.json; known: {[c.name for c in known]}"
    )
