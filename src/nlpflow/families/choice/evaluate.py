"""Multiple choice, evaluation side: accuracy with its interval and per gold position, the
heuristic baselines with the paired margin, predictions with every option's probability, the
error report. The metrics and baselines are :mod:`nlpflow.families.choice.metrics` and
:mod:`~nlpflow.families.choice.baselines`; the report :mod:`~nlpflow.families.choice.report`.

``metrics/evaluate.json`` per split: ``n``, ``accuracy``, ``log_loss``, ``per_position``,
``ci`` and ``baselines`` (``position``, ``longest``, ``overlap``: ``accuracy``,
``per_position``, ``margin`` (the model's accuracy minus the baseline's) and ``margin_ci``
(the paired bootstrap interval of that difference, with ``p_not_better``)), those of the three
that ``evaluate.baselines`` names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nlpflow.errors import UserError
from nlpflow.families.choice import CONTEXT, LABEL, OPTIONS
from nlpflow.families.evaluate import (
    ErrorAnalysisJob,
    ErrorAnalysisResult,
    EvalFamily,
    EvaluateJob,
)

if TYPE_CHECKING:
    from nlpflow.data.saved import DataMeta
    from nlpflow.evaluation.evaluate import Evaluation


class ChoiceEval(EvalFamily):
    name: ClassVar[str] = "choice"
    summary_keys: ClassVar[tuple[str, ...]] = ("accuracy",)

    def evaluate(self, job: EvaluateJob) -> Evaluation:
        from nlpflow.evaluation.evaluate import Evaluation, SplitEvaluation
        from nlpflow.evaluation.predict import forward_batches
        from nlpflow.families.choice.baselines import CHOICE_BASELINES, baseline_scores
        from nlpflow.families.choice.metrics import choice_metrics, chosen, margin_over

        params, meta = job.params, job.meta
        width = len(meta.label_names)
        train = job.processed["train"]
        train_labels = np.asarray(train[LABEL], dtype=np.int64)
        results = []
        for i, split in enumerate(job.splits):
            processed, tokenized = job.processed[split], job.tokenized[split]
            y_true = np.asarray(processed[LABEL], dtype=np.int64)
            if not np.array_equal(np.asarray(tokenized["labels"], dtype=np.int64), y_true):
                raise UserError(
                    f"{job.tokenized_dir}/{split} does not line up with "
                    f"{job.processed_dir}/{split}; rerun the tokenize stage"
                )
            ids = tokenized["input_ids"]
            types = (
                tokenized["token_type_ids"] if "token_type_ids" in tokenized.column_names else None
            )
            probs = np.zeros((len(y_true), width), dtype=np.float64)
            for idx, p in forward_batches(
                job.model, ids, params.batch_size, job.pad_id, types, progress=None
            ):
                if p.shape[1] != width:
                    raise UserError(
                        f"{job.model_dir}: the model scores {p.shape[1]} options, the data has "
                        f"{width}; retrain the model on this data (dvc repro train)"
                    )
                probs[idx] = p
            seed = job.seed + 1000 * i
            level, resamples = params.confidence_level, params.bootstrap_resamples
            metrics = choice_metrics(probs, y_true, True, resamples, seed, level)
            contexts, options = processed[CONTEXT], processed[OPTIONS]
            metrics["baselines"] = {}
            for name in [b for b in CHOICE_BASELINES if b in params.baselines]:
                scores = baseline_scores(name, train_labels, contexts, options, width)
                base = choice_metrics(scores, y_true, probabilities=False)
                base.pop("n")
                margin = margin_over(probs, scores, y_true, resamples, seed, level)
                base["margin"] = {"accuracy": margin["accuracy"]}
                if "ci" in margin:
                    base["margin_ci"] = {"accuracy": margin["ci"]}
                metrics["baselines"][name] = base
            predicted = chosen(probs)
            rows = _records(processed, probs, predicted, meta.metadata_fields)
            results.append(SplitEvaluation(split, y_true, probs, predicted, rows, metrics))
        return Evaluation(meta, results)

    def write_plots(self, evaluation: Evaluation, directory: Path) -> None:
        """``position_accuracy_<split>.json``: accuracy per gold position, the model's and
        each baseline's (a bar chart in ``dvc plots``), and its PNG."""
        from nlpflow.evaluation.metrics import round_floats
        from nlpflow.io import write_json

        for r in evaluation.splits:
            records = []
            sources = {"model": r.metrics, **r.metrics.get("baselines", {})}
            for who, m in sources.items():
                for position, stats in m["per_position"].items():
                    if stats["accuracy"] is not None:
                        records.append(
                            {"position": position, "scorer": who, "accuracy": stats["accuracy"]}
                        )
            write_json(directory / f"position_accuracy_{r.name}.json", round_floats(records))
            _position_png(directory / f"position_accuracy_{r.name}.png", records, r.name)

    def load_predictions(self, path: Path, meta: DataMeta) -> list[dict[str, Any]]:
        from nlpflow.families.choice.report import REQUIRED

        if not path.is_file():
            raise UserError(f"{path}: not found; run the evaluate stage first")
        width = len(meta.label_names)
        rows = []
        with path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise UserError(
                        f"{path}, line {line_no}: not valid JSON ({err.msg}); rerun evaluate"
                    ) from None
                missing = [k for k in REQUIRED if not isinstance(row, dict) or k not in row]
                if missing:
                    raise UserError(
                        f"{path}, line {line_no}: a multiple-choice prediction needs {missing}; "
                        "rerun the evaluate stage"
                    )
                names = meta.label_names
                probs = row["probabilities"]
                if (
                    len(row[OPTIONS]) != width
                    or not isinstance(probs, dict)
                    or sorted(probs) != sorted(names)
                    or row["label"] not in names
                    or row["prediction"] not in names
                ):
                    raise UserError(
                        f"{path}, line {line_no}: not a prediction of {width} options "
                        f"(positions {names}); rerun the evaluate stage"
                    )
                # The report works on indices: position j is label name j.
                row["label"] = names.index(row["label"])
                row["prediction"] = names.index(row["prediction"])
                row["probabilities"] = [float(probs[n]) for n in names]
                rows.append(row)
        return rows

    def error_analysis(self, job: ErrorAnalysisJob) -> ErrorAnalysisResult:
        from nlpflow.families.choice.report import error_report
        from nlpflow.markdown import level_label

        level = job.params.evaluate.confidence_level
        lines, figures = error_report(
            job.rows, job.params.error_analysis.max_examples, level, job.meta.metadata_fields
        )
        head = [f"# Error analysis: multiple choice, {job.split} split", ""]
        m = job.evaluate or {}
        if "accuracy" in m:
            ci = m.get("ci", {}).get("accuracy")
            shown = f"Accuracy {m['accuracy']:.4f}"
            if ci:
                shown += f" ({level_label(level)} {ci['low']:.4f}–{ci['high']:.4f})"
            base = m.get("baselines", {})
            if base:
                best = max(base, key=lambda b: base[b]["accuracy"])
                shown += (
                    f"; the best heuristic baseline, {best}, scores {base[best]['accuracy']:.4f}"
                )
                margin_ci = base[best].get("margin_ci", {}).get("accuracy")
                if margin_ci:
                    shown += (
                        f" (margin {base[best]['margin']['accuracy']:+.4f}, "
                        f"{level_label(level)} {margin_ci['low']:+.4f} to "
                        f"{margin_ci['high']:+.4f})"
                    )
            head += [shown + ".", ""]
        if job.plots:
            from nlpflow.evaluation.plots import save_slices_png
            from nlpflow.families.choice.report import by_gold_position, metadata_slices
            from nlpflow.io import atomic_dir

            width = len(job.meta.label_names)
            slices = {
                "gold position": {str(j): s for j, s in by_gold_position(job.rows, width).items()},
                **metadata_slices(job.rows, job.meta.metadata_fields),
            }
            png = f"slices_{job.split}.png"
            with atomic_dir(job.plots) as tmp:
                save_slices_png(tmp / png, slices, f"Accuracy by slice ({job.split})", level)
            from nlpflow.families.sequence.evaluate import relative

            link = relative(Path(job.plots) / png, job.report)
            head += [f"![Accuracy by slice]({link})", ""]
        summary = f"error_analysis: {figures['errors']} errors of {figures['n']} on {job.split}"
        worst = [(s["accuracy"], j) for j, s in figures["by_gold_position"].items() if s["n"]]
        if worst:
            acc, j = min(worst)
            summary += f"; weakest gold position {j} ({acc:.4f})"
        return ErrorAnalysisResult("\n".join([*head, *lines, ""]), figures, summary)


def _records(
    processed: Any, probs: np.ndarray, predicted: np.ndarray, metadata_fields: list[str]
) -> list[dict[str, Any]]:
    """One prediction record per row: ``id``, ``context``, ``options``, ``label`` and
    ``prediction`` (option positions as the label names ``"0"`` .. ``"N-1"``, as a
    classification record holds class names, so ``nlpflow compare`` scores two runs as
    classifiers over the positions), ``confidence`` (the chosen option's probability),
    ``probabilities`` (position name -> probability) and the metadata columns."""
    columns = processed.to_dict()
    out = []
    for i in range(len(probs)):
        record = {
            "id": columns["id"][i],
            CONTEXT: columns[CONTEXT][i],
            OPTIONS: columns[OPTIONS][i],
            "label": str(int(columns[LABEL][i])),
            "prediction": str(int(predicted[i])),
            "confidence": float(probs[i, predicted[i]]),
            "probabilities": {str(j): float(p) for j, p in enumerate(probs[i])},
        }
        for name in metadata_fields:
            if name in columns:
                record[name] = columns[name][i]
        out.append(record)
    return out


def _position_png(path: Path, records: list[dict[str, Any]], split: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scorers = list(dict.fromkeys(r["scorer"] for r in records))
    positions = sorted({r["position"] for r in records}, key=int)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.8 / max(1, len(scorers))
    for k, who in enumerate(scorers):
        got = {r["position"]: r["accuracy"] for r in records if r["scorer"] == who}
        xs = [int(p) + k * width for p in positions if p in got]
        ax.bar(xs, [got[p] for p in positions if p in got], width, label=who)
    ax.set_xticks([int(p) + 0.4 - width / 2 for p in positions], positions)
    ax.set_xlabel("gold position")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"Accuracy by gold position ({split})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
