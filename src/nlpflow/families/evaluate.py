"""The evaluation side of a task family: predictions, test metrics with intervals and
baselines, plots, the error report. See :mod:`nlpflow.families` for the whole interface.

Imported by the evaluate and error_analysis stages (and ``nlpflow compare``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.errors import UserError

if TYPE_CHECKING:
    from nlpflow.contracts import ErrorAnalysisInputs
    from nlpflow.data.saved import DataMeta
    from nlpflow.evaluation.evaluate import Evaluation
    from nlpflow.params import EvaluateParams


@dataclass(frozen=True)
class EvaluateJob:
    """What the evaluate stage hands a family: the loaded model and data, the params."""

    model: Any  # the saved model in eval mode (nlpflow.evaluation.predict.load_classifier)
    pad_id: int
    model_dir: Path
    meta: DataMeta  # the processed data's
    processed: Any  # DatasetDict of data/processed: train and ``splits``, metadata columns
    tokenized: Any  # DatasetDict of data/tokenized: ``splits``, rows in the processed order
    params: EvaluateParams
    seed: int
    splits: Sequence[str]  # ("validation", "test")
    processed_dir: Path
    tokenized_dir: Path
    # The model params' name_or_path and trust_remote_code (contracts.EvaluateModel): where
    # a family finds the base model it prompts beside the fine-tuned one (text2text).
    base_model: Any = None


@dataclass(frozen=True)
class ErrorAnalysisJob:
    """What the error_analysis stage hands a family (paths as given on its command line)."""

    meta: DataMeta
    rows: list[dict[str, Any]]  # the split's prediction records (data/predictions/<split>.jsonl)
    split: str  # "test"
    params: ErrorAnalysisInputs
    evaluate: dict[str, Any] | None  # metrics/evaluate.json's entry of the split, if given
    threshold: dict[str, float] | None  # metrics/evaluate.json's threshold (binary tasks)
    model: str | None  # models/best, for behavioural tests
    tokenized: str | None  # data/tokenized (its meta's max_length and truncation)
    figures: str | None  # the evaluate stage's plot directory (PNGs linked from the report)
    plots: str | None  # this stage's plot directory (written atomically by the family)
    report: Path  # where the report goes (links are made relative to it)


@dataclass(frozen=True)
class ErrorAnalysisResult:
    report: str  # the markdown report
    metrics: dict[str, Any]  # metrics/error_analysis.json's entry of the split
    summary: str  # the console line, without the timing


class EvalFamily:
    """Evaluation hooks. Each family implements :meth:`evaluate`, :meth:`write_plots`,
    :meth:`load_predictions` and :meth:`error_analysis`; the others have defaults."""

    name: ClassVar[str] = ""
    # The metrics the evaluate stage's console line shows, the first the main one (the
    # baseline beside it is the best on it).
    summary_keys: ClassVar[tuple[str, ...]] = ()
    # Whether a higher main metric is better (summary_keys[0]).
    higher_is_better: ClassVar[bool] = True
    # Whether evaluate --latency times the model's forward pass on validation inputs (a
    # classifier's cost); a generating family leaves metrics/latency.json empty.
    measures_latency: ClassVar[bool] = True
    # Whether data/tokenized has one row per processed example, in the same order (checked
    # before evaluate); False for a family that encodes an example as several rows (QA
    # windows) and maps them back itself.
    one_row_per_example: ClassVar[bool] = True

    def evaluate(self, job: EvaluateJob) -> Evaluation:
        """Predict on ``job.splits`` and score; nothing written. The returned
        :class:`~nlpflow.evaluation.evaluate.Evaluation` holds per split the prediction
        records (``rows``: one JSON object per example, with ``id``, the text fields,
        ``label`` and ``prediction``) and ``metrics`` (with ``n``, ``ci``: the bootstrap
        intervals, and ``baselines``: each baseline's metrics and ``margin``)."""
        raise NotImplementedError

    def write_plots(self, evaluation: Evaluation, directory: Path) -> None:
        """Plot data (JSON/TSV for ``dvc plots``) and PNGs of every split into
        ``directory`` (a fresh temporary directory, published whole afterwards)."""
        raise NotImplementedError

    def load_predictions(self, path: Path, meta: DataMeta) -> list[dict[str, Any]]:
        """The records of one ``data/predictions/<split>.jsonl``, checked (a UserError
        naming the file and line for a record this family cannot use)."""
        raise NotImplementedError

    def error_analysis(self, job: ErrorAnalysisJob) -> ErrorAnalysisResult:
        """The error report of ``job.split`` (and its plots, into ``job.plots``)."""
        raise NotImplementedError

    def summary_line(self, split: str, m: dict[str, Any]) -> str:
        """The evaluate stage's console line of one split: main metrics with intervals and
        the best baseline on the first."""

        def with_ci(key: str) -> str:
            ci = m.get("ci", {}).get(key)
            value = f"{key}={m[key]:.4f}"
            return value + (f" [{ci['low']:.4f}, {ci['high']:.4f}]" if ci else "")

        keys = self.summary_keys
        parts = [with_ci(k) for k in keys if k in m]
        base = m.get("baselines", {})
        if base and keys:
            main = keys[0]
            sign = 1.0 if self.higher_is_better else -1.0
            best = max(base, key=lambda b: sign * base[b].get(main, sign * float("-inf")))
            if main in base[best]:
                parts.append(f"best baseline {best} {main}={base[best][main]:.4f}")
        return f"{split}: n={m['n']} " + " ".join(parts)


def eval_family(task: str) -> EvalFamily:
    """The evaluation side of the family ``task`` (``DataMeta.task``)."""
    from nlpflow.families.choice.evaluate import ChoiceEval
    from nlpflow.families.multilabel.evaluate import MultilabelEval
    from nlpflow.families.qa.evaluate import QaEval
    from nlpflow.families.regression.evaluate import RegressionEval
    from nlpflow.families.sequence.evaluate import SequenceEval
    from nlpflow.families.text2text.evaluate import Text2TextEval
    from nlpflow.families.token.evaluate import TokenEval

    known: list[type[EvalFamily]] = [
        SequenceEval,
        TokenEval,
        RegressionEval,
        QaEval,
        Text2TextEval,
        MultilabelEval,
        ChoiceEval,
    ]
    for cls in known:
        if cls.name == task:
            return cls()
    from nlpflow.families.names import TASKS

    if task in TASKS:  # a family whose stages stop before this one
        raise UserError(
            f"the {task} task has no evaluation side in the pipeline yet (only its earlier "
            f"stages run; its library is nlpflow.families.{task}); this stage handles "
            f"{[c.name for c in known]}"
        )
    raise UserError(
        f"unknown task '{task}' in the data's meta.json; known: {[c.name for c in known]}"
    )
