"""Text-to-text, evaluation side: generation on validation and test, metrics with intervals
beside the copy-input and most-common-target baselines, perplexity from the target-token
losses, and the error report (failure kinds, worst generations, input-length slices).

The prompts are the tokenized ``input_ids`` (the prompt part for a decoder-only model), so
generation reads exactly what training read; generation follows ``evaluate.generation``.
"""

from __future__ import annotations

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

if TYPE_CHECKING:
    from nlpflow.data.saved import DataMeta
    from nlpflow.evaluation.evaluate import Evaluation

PREDICTION_KEYS = ("id", "label", "prediction", "generated_tokens", "ended", "failures")


def _prompts(split: Any) -> list[list[int]]:
    if "prompt_length" in split.column_names:
        return [ids[:n] for ids, n in zip(split["input_ids"], split["prompt_length"], strict=True)]
    return [list(ids) for ids in split["input_ids"]]


def _target_losses(model: Any, split: Any, pad_id: int, batch_size: int) -> tuple[Any, Any]:
    """Per example: summed cross-entropy (nats) of the target tokens and their number."""
    import torch

    from nlpflow.families.text2text.train import IGNORE, Text2TextTrain

    padded = Text2TextTrain().padded_split(split, pad_id)
    device = next(model.parameters()).device
    sums = torch.zeros(len(padded), dtype=torch.float64)
    counts = torch.zeros(len(padded), dtype=torch.int64)
    with torch.no_grad():
        for index in torch.arange(len(padded)).split(batch_size):
            batch = padded.batch(index, device)
            labels = batch.pop("labels")
            logits = model(**batch).logits.float()
            losses = torch.nn.functional.cross_entropy(
                logits.transpose(1, 2), labels, ignore_index=IGNORE, reduction="none"
            )
            sums[index] = losses.sum(dim=1).double().cpu()
            counts[index] = (labels != IGNORE).sum(dim=1).cpu()
    return sums.numpy(), counts.numpy()


class Text2TextEval(EvalFamily):
    name: ClassVar[str] = "text2text"
    summary_keys: ClassVar[tuple[str, ...]] = ("exact_match", "token_f1", "rougeL", "chrf")
    measures_latency: ClassVar[bool] = False

    def evaluate(self, job: EvaluateJob) -> Evaluation:
        from nlpflow.evaluation.evaluate import Evaluation, SplitEvaluation
        from nlpflow.families.text2text.evaluation import evaluate_split, failure_summary
        from nlpflow.families.text2text.modeling import generate
        from nlpflow.families.text2text.outputs import (
            copy_input_baseline,
            most_common_target_baseline,
        )
        from nlpflow.modeling.tokenizers import load_tokenizer

        params, gen = job.params, job.params.generation
        tokenizer = load_tokenizer(job.model_dir)
        field_ = job.meta.text_fields[0]
        train_targets = list(job.processed["train"]["label"])
        results = []
        for i, split in enumerate(job.splits):
            processed, tokenized = job.processed[split], job.tokenized[split]
            inputs, targets = list(processed[field_]), list(processed["label"])
            out = generate(job.model, tokenizer, _prompts(tokenized), gen)
            outputs = [g.text for g in out]
            sums, counts = _target_losses(job.model, tokenized, job.pad_id, params.batch_size)
            baselines = {
                "copy_input": copy_input_baseline(inputs),
                "most_common_target": most_common_target_baseline(train_targets, len(inputs)),
            }
            metrics = evaluate_split(
                inputs, targets, outputs, [g.tokens for g in out], [g.ended for g in out],
                gen.max_new_tokens, baselines, params.bootstrap_resamples, job.seed + 1000 * i,
                params.confidence_level, list(sums), list(counts),
            )  # fmt: skip
            # texts and names, not numbers: the error report shows the worst generations
            metrics.pop("worst")
            metrics.pop("higher_is_better")
            kinds, _ = failure_summary(
                inputs, targets, outputs, [g.tokens for g in out], [g.ended for g in out],
                gen.max_new_tokens,
            )  # fmt: skip
            rows = []
            for j in range(len(inputs)):
                row = {
                    "id": processed[j]["id"],
                    field_: inputs[j],
                    "label": targets[j],
                    "prediction": outputs[j],
                    "generated_tokens": out[j].tokens,
                    "ended": out[j].ended,
                    "failures": kinds[j],
                }
                for m in job.meta.metadata_fields:
                    row[m] = processed[j][m]
                rows.append(row)
            empty = np.zeros(0, dtype=np.int64)
            results.append(SplitEvaluation(split, empty, np.zeros((0, 0)), empty, rows, metrics))
        return Evaluation(job.meta, results)

    def write_plots(self, evaluation: Evaluation, directory: Path) -> None:
        """``lengths.json``: per split, output against target length in words (counts)."""
        from collections import Counter

        from nlpflow.io import write_json

        points = []
        for result in evaluation.splits:
            pairs = Counter(
                (len(r["label"].split()), len(r["prediction"].split())) for r in result.rows
            )
            points += [
                {"split": result.name, "target_words": t, "output_words": o, "count": c}
                for (t, o), c in sorted(pairs.items())
            ]
        write_json(directory / "lengths.json", points)

    def load_predictions(self, path: Path, meta: DataMeta) -> list[dict[str, Any]]:
        import json

        if not path.is_file():
            raise UserError(f"{path} not found; run the evaluate stage first")
        rows = []
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"{path}, line {no}: not valid JSON; rerun evaluate") from None
            missing = [k for k in (*PREDICTION_KEYS, meta.text_fields[0]) if k not in row]
            if missing:
                raise UserError(f"{path}, line {no}: lacks {missing}; rerun evaluate")
            rows.append(row)
        return rows

    def error_analysis(self, job: ErrorAnalysisJob) -> ErrorAnalysisResult:
        from nlpflow.families.text2text.evaluation import (
            error_report,
            length_slices,
            worst_generations,
        )
        from nlpflow.families.text2text.metrics import score_generations
        from nlpflow.families.text2text.outputs import FAILURE_KINDS

        field_ = job.meta.text_fields[0]
        inputs = [r[field_] for r in job.rows]
        targets = [r["label"] for r in job.rows]
        outputs = [r["prediction"] for r in job.rows]
        kinds = [r["failures"] for r in job.rows]
        scores = score_generations(outputs, targets)
        n = len(job.rows)
        failures = {
            k: {
                "count": sum(k in f for f in kinds),
                "share": sum(k in f for f in kinds) / n if n else 0.0,
            }
            for k in FAILURE_KINDS
        }
        result: dict[str, Any] = dict(job.evaluate or {"n": n})
        result["failures"] = failures
        result["slices"] = {"input_length": length_slices(inputs, scores)}
        result["worst"] = worst_generations(inputs, targets, outputs, scores, kinds)
        report = error_report(job.split, result, job.params.evaluate.confidence_level)
        wrong = int(n - scores.exact_match.sum())
        metrics = {
            "n": n,
            "wrong": wrong,
            "failures": failures,
            "slices": result["slices"],
        }
        if job.plots:  # plot data for dvc plots: exact match by input length, failure kinds
            from nlpflow.io import atomic_dir, write_json

            with atomic_dir(job.plots) as tmp:
                write_json(tmp / f"slices_{job.split}.json", result["slices"]["input_length"])
                write_json(
                    tmp / f"failures_{job.split}.json",
                    [{"kind": k, "count": v["count"]} for k, v in failures.items()],
                )
        counted = ", ".join(f"{k} {v['count']}" for k, v in failures.items() if v["count"])
        summary = f"error_analysis: {job.split}: {wrong} of {n} outputs differ from the target" + (
            f" ({counted})" if counted else ""
        )
        return ErrorAnalysisResult(report, metrics, summary)
