"""Extractive QA, evaluation side: start/end logits of every window, n-best spans per
question (:mod:`~nlpflow.families.qa.postprocess`), the no-answer threshold tuned on the
validation split (best F1) and applied to the test split, SQuAD EM/F1 overall and on
HasAns/NoAns questions with bootstrap intervals beside the ``no_answer`` and
``sentence_overlap`` baselines (:mod:`~nlpflow.families.qa.scoring`), one prediction record
per question, and the error report (:mod:`~nlpflow.families.qa.report`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nlpflow.errors import UserError
from nlpflow.families.evaluate import (
    ErrorAnalysisJob,
    ErrorAnalysisResult,
    EvalFamily,
    EvaluateJob,
)
from nlpflow.families.qa.baselines import BASELINES

if TYPE_CHECKING:
    from nlpflow.data.saved import DataMeta
    from nlpflow.evaluation.evaluate import Evaluation
    from nlpflow.families.qa.postprocess import Answer
    from nlpflow.families.qa.windows import Window

RECORD_KEYS = ("id", "question", "context", "answers", "answer_starts", "prediction", "start",
               "probability", "exact", "f1")  # fmt: skip
WORST = 10


def _rows(processed: Any) -> list[dict[str, Any]]:
    """Processed rows in the reader layout (``answers`` from the ``label`` column)."""
    rows = processed.select_columns(["id", "question", "context", "label"]).to_list()
    for r in rows:
        r["answers"] = r.pop("label")
    return rows


def _windows(tokenized: Any, n_rows: int, where: str) -> list[Window]:
    from nlpflow.families.qa.windows import Window

    cols = tokenized.to_dict()
    out = []
    for i, ids in enumerate(cols["input_ids"]):
        starts, ends = cols["offset_start"][i], cols["offset_end"][i]
        start, end = cols["labels"][i]
        out.append(
            Window(
                input_ids=list(ids),
                attention_mask=[1] * len(ids),
                token_type_ids=list(cols["token_type_ids"][i]) if "token_type_ids" in cols else [],
                example=int(cols["example"][i]),
                offsets=[(a, b) if a >= 0 else None for a, b in zip(starts, ends, strict=True)],
                cls_index=int(cols["cls_index"][i]),
                start_position=int(start),
                end_position=int(end),
            )
        )
    examples = {w.example for w in out}
    if examples != set(range(n_rows)):
        raise UserError(
            f"{where}: the windows do not cover the processed questions one to one "
            f"({len(examples)} questions in windows, {n_rows} processed); rerun tokenize"
        )
    return out


def _logits(job: EvaluateJob, windows: list[Window]) -> tuple[list[Any], list[Any]]:
    from nlpflow.families.qa.postprocess import window_logits

    return window_logits(job.model, windows, job.params.batch_size, job.pad_id)


def _lost(rows: list[dict[str, Any]], windows: list[Window]) -> int:
    """Answerable questions none of whose windows holds the answer (labels at the classifier
    token in every window)."""
    held = {w.example for w in windows if w.start_position != w.cls_index}
    return sum(1 for i, r in enumerate(rows) if r["answers"]["text"] and i not in held)


class QaEval(EvalFamily):
    name: ClassVar[str] = "qa"
    summary_keys: ClassVar[tuple[str, ...]] = ("f1", "exact", "HasAns_f1", "NoAns_f1")
    higher_is_better: ClassVar[bool] = True
    one_row_per_example: ClassVar[bool] = False

    def evaluate(self, job: EvaluateJob) -> Evaluation:
        from nlpflow.evaluation.evaluate import Evaluation, SplitEvaluation
        from nlpflow.families.qa.metrics import question_scores
        from nlpflow.families.qa.postprocess import answer_all, apply_threshold
        from nlpflow.families.qa.report import prediction_records
        from nlpflow.families.qa.scoring import split_metrics, tune_null_threshold

        p = job.params
        # Other families' baselines in evaluate.baselines do not apply (as they ignore ours).
        baselines = [b for b in p.baselines if b in BASELINES]
        raw: dict[str, tuple[list[dict[str, Any]], list[Answer], int]] = {}
        for split in job.splits:
            rows = _rows(job.processed[split])
            where = f"{job.tokenized_dir}/{split}"
            windows = _windows(job.tokenized[split], len(rows), where)
            starts, ends = _logits(job, windows)
            answers = answer_all(
                [r["context"] for r in rows], windows, starts, ends,
                p.n_best, p.max_answer_length, allow_null=True, null_threshold=0.0,
            )  # fmt: skip
            raw[split] = (rows, answers, _lost(rows, windows))
        threshold = {"fixed": 0.0, "tuned": 0.0, "used": 0.0}
        if "validation" in raw:
            rows, answers, _ = raw["validation"]
            tuned = tune_null_threshold(rows, answers)["null_threshold"]
            threshold.update(tuned=float(tuned), used=float(tuned))
        results = []
        for i, split in enumerate(job.splits):
            rows, answers, lost = raw[split]
            final = apply_threshold(answers, threshold["used"])
            texts = [a.text for a in final]
            metrics = split_metrics(
                rows, texts, p.bootstrap_resamples, job.seed + 1000 * i, p.confidence_level,
                baselines,
            )  # fmt: skip
            metrics["answers_lost_to_windowing"] = lost
            scores = question_scores([r["answers"]["text"] for r in rows], texts)
            records = prediction_records(rows, final, scores.exact.tolist(), scores.f1.tolist())
            has = scores.has_answer.astype(np.int64)
            answered = np.asarray([bool(t) for t in texts], dtype=np.int64)
            probs = np.asarray([[a.probability] for a in final], dtype=np.float64)
            results.append(SplitEvaluation(split, has, probs, answered, records, metrics))
        return Evaluation(job.meta, results, None, threshold, {})

    def write_plots(self, evaluation: Evaluation, directory: Path) -> None:
        """``scores_<split>.json`` (EM and F1 overall, HasAns, NoAns of the model and each
        baseline, for a ``dvc plots`` bar chart) and a PNG of it per split."""
        from nlpflow.evaluation.plots import _figure, _save_png
        from nlpflow.io import write_json

        groups = ("", "HasAns_", "NoAns_")
        for r in evaluation.splits:
            systems = {"model": r.metrics, **r.metrics.get("baselines", {})}
            points = [
                {"system": name, "group": g.rstrip("_") or "all", "metric": m, "value": s[g + m]}
                for name, s in systems.items()
                for g in groups
                for m in ("exact", "f1")
                if g + m in s
            ]
            write_json(directory / f"scores_{r.name}.json", points)
            fig = _figure(8, 4)
            ax = fig.subplots()
            names = list(systems)
            keys = [g + "f1" for g in groups if g + "f1" in r.metrics]
            width = 0.8 / max(1, len(names))
            for k, name in enumerate(names):
                ax.bar(
                    np.arange(len(keys)) + k * width,
                    [systems[name].get(key, 0.0) for key in keys],
                    width,
                    label=name,
                )
            ax.set_xticks(np.arange(len(keys)) + width * (len(names) - 1) / 2, keys)
            ax.set(title=f"F1 against the baselines ({r.name})", ylabel="F1", ylim=(0, 1))
            ax.legend()
            _save_png(fig, directory / f"scores_{r.name}.png")

    def load_predictions(self, path: Path, meta: DataMeta) -> list[dict[str, Any]]:
        if not path.is_file():
            raise UserError(f"{path} not found; run the evaluate stage first (dvc repro evaluate)")
        rows = []
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise UserError(f"{path}, line {lineno}: not valid JSON ({err.msg})") from None
                missing = [k for k in RECORD_KEYS if not isinstance(row, dict) or k not in row]
                if missing:
                    raise UserError(
                        f"{path}, line {lineno}: missing key(s) {missing}; rerun the evaluate stage"
                    )
                rows.append(row)
        if not rows:
            raise UserError(f"{path} holds no predictions")
        return rows

    def error_analysis(self, job: ErrorAnalysisJob) -> ErrorAnalysisResult:
        from nlpflow.families.qa.metrics import question_scores, squad_metrics
        from nlpflow.families.qa.report import report_lines, slice_scores

        records = job.rows
        scores = question_scores(
            [r["answers"] for r in records], [r["prediction"] for r in records]
        )
        overall = squad_metrics(scores)
        lists = {
            "question_word": slice_scores(records, "question_word"),
            "answer_length": slice_scores(records, "answer_length"),
        }
        # {slicing: {value: n, exact, f1, errors}}, as the other families write slices.
        slices = {
            by: {s["slice"]: {k: v for k, v in s.items() if k != "slice"} for s in group}
            for by, group in lists.items()
        }
        metrics: dict[str, Any] = {"n": len(records), **overall, "slices": slices}
        candidates = [s for group in lists.values() for s in group if s["n"] >= 5]
        weakest = min(candidates, key=lambda s: (s["f1"], s["slice"]), default=None)
        if weakest is not None:
            family = next(k for k, v in lists.items() if weakest in v)
            metrics["weakest_slice"] = {"family": family, "value": weakest["slice"]}
        if job.plots:
            from nlpflow.io import atomic_dir

            with atomic_dir(job.plots) as tmp:
                _save_slices_png(tmp / f"slices_{job.split}.png", slices, job.split)
        lost = (job.evaluate or {}).get("answers_lost_to_windowing")
        windowing = None if lost is None else {
            "answers_lost_to_windowing": lost, "questions": len(records)
        }  # fmt: skip
        lines = [
            f"# Error analysis ({job.split})",
            "",
            f"{len(records)} questions ({int(scores.has_answer.sum())} answerable): "
            f"EM {overall['exact']:.4f}, F1 {overall['f1']:.4f}"
            + (
                f"; no-answer threshold {job.threshold['used']:.4f} (tuned on validation)"
                if job.threshold
                else ""
            ),
            "",
        ]
        if job.evaluate and job.evaluate.get("baselines"):
            lines += ["## Baselines", ""]
            for name, b in job.evaluate["baselines"].items():
                lines.append(f"- {name}: EM {b['exact']:.4f}, F1 {b['f1']:.4f}")
            lines.append("")
        lines += report_lines(records, WORST, windowing)
        summary = (
            f"error_analysis: EM {overall['exact']:.4f}, F1 {overall['f1']:.4f} on "
            f"{len(records)} {job.split} questions"
        )
        if weakest is not None:
            summary += (
                f"; weakest slice {weakest['slice']} (F1 {weakest['f1']:.4f}, n={weakest['n']})"
            )
        return ErrorAnalysisResult("\n".join(lines) + "\n", metrics, summary)


def _save_slices_png(path: Path, slices: dict[str, dict[str, Any]], split: str) -> None:
    """F1 by question word and by gold answer length, one bar chart each."""
    from nlpflow.evaluation.plots import _figure, _save_png

    families = [f for f in slices if slices[f]]
    fig = _figure(5 * max(1, len(families)), 3.6)
    axes = fig.subplots(1, max(1, len(families)), squeeze=False)[0]
    for ax, family in zip(axes, families, strict=False):
        names = list(slices[family])
        ax.barh(range(len(names)), [slices[family][n]["f1"] for n in names])
        ax.set_yticks(range(len(names)), names, parse_math=False)
        ax.set(title=f"F1 by {family.replace('_', ' ')} ({split})", xlabel="F1", xlim=(0, 1))
    _save_png(fig, path)
