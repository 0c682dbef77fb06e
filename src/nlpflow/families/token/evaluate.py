"""Token classification, evaluation side: seqeval's entity scores, token accuracy,
intervals and baselines (the error report and plots are classification's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from nlpflow.families.evaluate import EvaluateJob
from nlpflow.families.sequence.evaluate import ClassificationEval

if TYPE_CHECKING:
    from nlpflow.evaluation.evaluate import Evaluation


class TokenEval(ClassificationEval):
    name: ClassVar[str] = "token"
    summary_keys: ClassVar[tuple[str, ...]] = ("f1", "token_accuracy")

    def evaluate(self, job: EvaluateJob) -> Evaluation:
        from nlpflow.evaluation.evaluate import evaluate_token
        from nlpflow.modeling.tokenizers import load_tokenizer

        return evaluate_token(
            job.model, job.pad_id, job.meta, job.processed, job.tokenized, job.params,
            job.seed, job.splits, job.processed_dir, job.tokenized_dir,
            load_tokenizer(job.model_dir),
        )  # fmt: skip
