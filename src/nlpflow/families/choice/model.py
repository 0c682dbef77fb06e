"""Multiple choice, model side: ``AutoModelForMultipleChoice``, one score per option.

The head maps each (context, option) sequence's pooled output to one number; the N numbers of
a row, ``(B, N)``, are the logits softmaxed over the options. The config's ``id2label`` names
the positions ``"0"`` .. ``"N-1"`` (``meta.json``'s label names), which the saved model is
checked against.
"""

from __future__ import annotations

from typing import Any, ClassVar

from nlpflow.families.model import ModelFamily


class ChoiceModel(ModelFamily):
    name: ClassVar[str] = "choice"

    def auto_class(self) -> Any:
        from transformers import AutoModelForMultipleChoice

        return AutoModelForMultipleChoice

    def bert_class(self) -> Any:
        from transformers import BertForMultipleChoice

        return BertForMultipleChoice
