"""Token classification, model side: ``AutoModelForTokenClassification``, a label per
sub-token."""

from __future__ import annotations

from typing import Any, ClassVar

from nlpflow.families.model import ModelFamily


class TokenModel(ModelFamily):
    name: ClassVar[str] = "token"

    def auto_class(self) -> Any:
        from transformers import AutoModelForTokenClassification

        return AutoModelForTokenClassification

    def bert_class(self) -> Any:
        from transformers import BertForTokenClassification

        return BertForTokenClassification
