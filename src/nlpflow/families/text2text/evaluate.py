"""Text-to-text, evaluation side: generation on validation and test, metrics with intervals
beside the copy-input and most-common-target baselines, perplexity from the target-token
losses, and the error report (failure kinds, worst generations, input-length slices).

The prompts are the tokenized ``input_ids`` (the prompt part for a decoder-only model), so
generation reads exactly what training read; generation follows ``evaluate.generation``.

Beside the copy-input and most-common-target baselines, the base model (the pretrained
``model.name_or_path`` before fine-tuning, or for a model built from its config the untrained
initial model, rebuilt with the same seed as train) is prompted through the same template,
zero-shot and few-shot (``evaluate.generation.prompted``), on the first ``max_rows`` rows of
each split and compared with the fine-tuned model on those same rows. A label task
(``DataMeta.target_labels``) also scores every output parsed back to a label.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

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


def _label_metrics(
    names: list[str],
    targets: list[str],
    outputs: list[str],
    baselines: dict[str, list[str]],
    job: EvaluateJob,
    index: int,
) -> dict[str, Any]:
    """A label task's classification metrics of the model's outputs parsed back to labels,
    and each baseline's accuracy, macro-F1 and unparseable share (a prompted baseline on its
    own rows, the first ones of the split)."""
    from nlpflow.families.text2text.evaluation import label_task_metrics

    params = job.params
    seed = job.seed + 1000 * index
    out = label_task_metrics(
        targets, outputs, names, params.bootstrap_resamples, seed, params.confidence_level
    )
    out["baselines"] = {}
    for name, produced in baselines.items():
        m = label_task_metrics(targets[: len(produced)], produced, names, 0, seed, 0.95)
        out["baselines"][name] = {
            k: m[k] for k in ("n", "accuracy", "f1_macro", "unparseable_share") if k in m
        }
    return out


class _Prompted:
    """The base model prompted zero-shot and few-shot (``evaluate.generation.prompted``)."""

    def __init__(self, job: EvaluateJob, model: Any, what: str, encoder: Any,
                 train_inputs: list[str], train_targets: list[str]) -> None:  # fmt: skip
        self.job, self.model, self.what, self.encoder = job, model, what, encoder
        self.train_inputs, self.train_targets = train_inputs, train_targets

    @classmethod
    def build(
        cls, job: EvaluateJob, tokenizer: Any, train_inputs: list[str], train_targets: list[str]
    ) -> _Prompted | None:
        """None when nothing is prompted (``max_rows`` 0, or neither zero- nor few-shot)."""
        p = job.params.generation.prompted
        if not p.max_rows or not (p.zero_shot or p.few_shot):
            return None
        from nlpflow.families.text2text.encoding import Text2TextEncoder
        from nlpflow.families.text2text.params import Text2TextModelParams

        model, what = base_model(job.model, tokenizer, job.base_model, job.seed)
        t2t = Text2TextModelParams(**job.model.config.text2text)
        return cls(job, model, what, Text2TextEncoder(tokenizer, t2t), train_inputs, train_targets)

    def score(
        self,
        inputs: list[str],
        targets: list[str],
        outputs: list[str],
        metrics: dict[str, Any],
        seed: int,
    ) -> dict[str, list[str]]:
        """Generate with the base model on the first ``max_rows`` rows, put each baseline's
        metrics (with ``margin``: the fine-tuned model minus it on the same rows) under
        ``metrics["baselines"]`` and its paired bootstrap under ``metrics["paired"]``;
        returns each baseline's outputs."""
        from nlpflow.families.text2text.evaluation import compare_to_baselines
        from nlpflow.families.text2text.metrics import score_generations
        from nlpflow.families.text2text.modeling import prompted_baseline

        params, p = self.job.params, self.job.params.generation.prompted
        n = min(p.max_rows, len(inputs))
        runs = ([("zero_shot", 0)] if p.zero_shot else []) + (
            [("few_shot", p.few_shot)] if p.few_shot else []
        )
        produced: dict[str, list[str]] = {}
        for name, k in runs:
            out, info = prompted_baseline(
                self.model, self.encoder, self.train_inputs, self.train_targets, inputs[:n], k,
                p.seed, params.generation,
            )  # fmt: skip
            produced[name] = [g.text for g in out]
            base, paired = compare_to_baselines(
                score_generations(outputs[:n], targets[:n]),
                {name: score_generations(produced[name], targets[:n])},
                params.bootstrap_resamples, seed, params.confidence_level,
            )  # fmt: skip
            entry = base[name]
            entry.update(
                base_model=self.what,
                rows=f"the first {n} of {len(inputs)}",
                shots=k,
                shots_seed=p.seed,
                fewest_shots_used=info["fewest_shots_used"],
                empty_outputs=sum(not g.text.strip() for g in out),
            )
            metrics["baselines"][name] = entry
            metrics["paired"][name] = paired[name]
        return produced


def base_model(fine_tuned: Any, tokenizer: Any, source: Any, seed: int) -> tuple[Any, str]:
    """The model before fine-tuning, in eval mode on the fine-tuned model's device, and a
    sentence naming it: ``source.name_or_path`` loaded as the fine-tuned model's kind, or
    (empty) the untrained model of the fine-tuned model's config, its weights drawn right
    after seeding with ``seed`` as the train stage draws them (bit for bit the weights
    training started from)."""
    import copy

    from nlpflow.families.text2text.modeling import _set_generation_ids

    name = getattr(source, "name_or_path", "") if source is not None else ""
    if name:
        from nlpflow.families.text2text.modeling import build_text2text_model
        from nlpflow.families.text2text.params import Text2TextModelParams
        from nlpflow.params import ModelParams

        kind: Literal["seq2seq", "causal"] = (
            "seq2seq" if fine_tuned.config.is_encoder_decoder else "causal"
        )
        trust = bool(getattr(source, "trust_remote_code", False))
        model = build_text2text_model(
            ModelParams(name_or_path=name, trust_remote_code=trust),
            Text2TextModelParams(kind=kind),
            tokenizer,
        )
        what = f"pretrained {name}, before fine-tuning"
    else:
        from nlpflow.seeding import seed_everything

        seed_everything(seed)
        model = type(fine_tuned)(copy.deepcopy(fine_tuned.config))
        _set_generation_ids(model, tokenizer)
        what = (
            f"untrained: the initial model train started from (built from its config, seed {seed})"
        )
    model.to(next(fine_tuned.parameters()).device)
    model.eval()
    return model, what


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
        train_inputs = list(job.processed["train"][field_])
        train_targets = list(job.processed["train"]["label"])
        prompted = _Prompted.build(job, tokenizer, train_inputs, train_targets)
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
            outputs_of = dict(baselines)
            if prompted is not None:
                outputs_of.update(
                    prompted.score(inputs, targets, outputs, metrics, job.seed + 1000 * i)
                )
            if job.meta.target_labels:
                metrics["labels"] = _label_metrics(
                    job.meta.target_labels, targets, outputs, outputs_of, job, i
                )
            # texts and names, not numbers: the error report shows the worst generations
            metrics.pop("worst")
            metrics.pop("higher_is_better")
            kinds, _ = failure_summary(
                inputs, targets, outputs, [g.tokens for g in out], [g.ended for g in out],
                gen.max_new_tokens,
            )  # fmt: skip
            parsed = None
            if job.meta.target_labels:
                from nlpflow.families.text2text.outputs import LabelParser

                parsed, _ = LabelParser(job.meta.target_labels).parse_all(outputs)
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
                if job.meta.target_labels:
                    row["parsed_label"] = parsed[j] if parsed is not None else None
                for m in job.meta.metadata_fields:
                    row[m] = processed[j][m]
                rows.append(row)
            empty = np.zeros(0, dtype=np.int64)
            results.append(SplitEvaluation(split, empty, np.zeros((0, 0)), empty, rows, metrics))
        return Evaluation(job.meta, results)

    def summary_line(self, split: str, m: dict[str, Any]) -> str:
        """The shared line, plus a label task's accuracy and unparseable share."""
        line = super().summary_line(split, m)
        labels = m.get("labels")
        if labels and "accuracy" in labels:
            line += (
                f" labels: accuracy={labels['accuracy']:.4f} "
                f"unparseable={labels['unparseable_share']:.4f}"
            )
        return line

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
