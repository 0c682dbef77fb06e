"""A split's generation results: metrics with intervals beside the baselines, the paired
difference to each baseline, failure kinds, the worst generations and slices by input length.

The layout follows ``metrics/<split>.json`` of the classifiers: the model's metrics at the top
with ``ci``, ``baselines.<name>`` with the same metrics and ``margin`` (model - baseline), and
``paired.<name>``: the bootstrap interval of model - baseline over shared resamples with
``p_not_better`` (the share of resamples where the model does not beat the baseline).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nlpflow.evaluation.bootstrap import paired_differences
from nlpflow.families.text2text.metrics import (
    HIGHER_IS_BETTER,
    GenerationScores,
    batch_metrics,
    generation_metrics,
    score_generations,
)
from nlpflow.families.text2text.outputs import FAILURE_KINDS, failure_kinds

# The metrics a baseline is compared on ("did fine-tuning help?").
MAIN_METRICS = ("exact_match", "token_f1", "rougeL", "bleu", "chrf")
LENGTH_SLICES = 3


def failure_summary(
    inputs: Sequence[str],
    targets: Sequence[str],
    outputs: Sequence[str],
    generated_tokens: Sequence[int],
    ended: Sequence[bool],
    max_new_tokens: int,
) -> tuple[list[list[str]], dict[str, dict[str, float]]]:
    """The failure kinds of every generation and, per kind, its count and share of the split."""
    kinds = [
        failure_kinds(o, x, y, t, e, max_new_tokens)
        for x, y, o, t, e in zip(inputs, targets, outputs, generated_tokens, ended, strict=True)
    ]
    counts = Counter(k for row in kinds for k in row)
    n = len(outputs)
    return kinds, {
        k: {"count": counts[k], "share": counts[k] / n if n else 0.0} for k in FAILURE_KINDS
    }


def compare_to_baselines(
    model_scores: GenerationScores,
    baselines: dict[str, GenerationScores],
    resamples: int,
    seed: int,
    level: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``baselines``, ``paired``): each baseline's metrics and margin, and the paired
    bootstrap of model - baseline on :data:`MAIN_METRICS`."""
    model = generation_metrics(model_scores, 0, seed, level)
    out, paired = {}, {}
    for name, scores in baselines.items():
        metrics = generation_metrics(scores, resamples, seed, level)
        metrics["margin"] = {
            k: model[k] - metrics[k]
            for k in MAIN_METRICS
            if model.get(k) is not None and metrics.get(k) is not None
        }
        out[name] = metrics

        def only_main(fn: Any) -> Any:
            return lambda w: {k: v for k, v in fn(w).items() if k in MAIN_METRICS}

        paired[name] = paired_differences(
            only_main(batch_metrics(scores)),
            only_main(batch_metrics(model_scores)),
            model_scores.n,
            resamples,
            seed,
            level,
        )
    return out, paired


def worst_generations(
    inputs: Sequence[str],
    targets: Sequence[str],
    outputs: Sequence[str],
    scores: GenerationScores,
    kinds: Sequence[Sequence[str]],
    n: int = 20,
) -> list[dict[str, Any]]:
    """The ``n`` generations with the lowest token F1 (then ROUGE-L, then the longest input
    first), with input, target, output, their scores and failure kinds."""
    order = sorted(
        range(len(outputs)),
        key=lambda i: (scores.token_f1[i], scores.rouge["rougeL"][i], -len(inputs[i]), i),
    )
    return [
        {
            "index": i,
            "input": inputs[i],
            "target": targets[i],
            "output": outputs[i],
            "token_f1": float(scores.token_f1[i]),
            "rougeL": float(scores.rouge["rougeL"][i]),
            "failures": list(kinds[i]),
        }
        for i in order[:n]
        if scores.exact_match[i] < 1
    ]


def length_slices(
    inputs: Sequence[str], scores: GenerationScores, slices: int = LENGTH_SLICES
) -> list[dict[str, Any]]:
    """Exact match and token F1 by input length in words: ``slices`` ranges cut at the
    length quantiles (fewer when lengths repeat), each with its count."""
    lengths = np.array([len(x.split()) for x in inputs])
    if lengths.size == 0:
        return []
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, slices + 1)).round())
    out = []
    for k, (low, high) in enumerate(itertools.pairwise(edges)):
        last = k == len(edges) - 2
        mask = (lengths >= low) & ((lengths <= high) if last else (lengths < high))
        if not mask.any():
            continue
        top = int(high) if last else int(high) - 1
        out.append(
            {
                "input_words": f"{int(low)}-{top}" if top > low else f"{int(low)}",
                "n": int(mask.sum()),
                "exact_match": float(scores.exact_match[mask].mean()),
                "token_f1": float(scores.token_f1[mask].mean()),
            }
        )
    if len(edges) == 1:
        out.append(
            {
                "input_words": f"{int(edges[0])}",
                "n": int(lengths.size),
                "exact_match": float(scores.exact_match.mean()),
                "token_f1": float(scores.token_f1.mean()),
            }
        )
    return out


def evaluate_split(
    inputs: Sequence[str],
    targets: Sequence[str],
    outputs: Sequence[str],
    generated_tokens: Sequence[int],
    ended: Sequence[bool],
    max_new_tokens: int,
    baselines: Mapping[str, Sequence[str]],
    resamples: int,
    seed: int,
    level: float,
    loss_sums: Sequence[float] | None = None,
    token_counts: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Everything a split's metrics file and error report need (module docstring for the
    layout); ``baselines`` maps a name to its outputs, one per input."""
    scores = score_generations(outputs, targets, loss_sums, token_counts)
    result = generation_metrics(scores, resamples, seed, level)
    kinds, failures = failure_summary(
        inputs, targets, outputs, generated_tokens, ended, max_new_tokens
    )
    result["failures"] = failures
    base_scores = {name: score_generations(out, targets) for name, out in baselines.items()}
    result["baselines"], result["paired"] = compare_to_baselines(
        scores, base_scores, resamples, seed, level
    )
    result["slices"] = {"input_length": length_slices(inputs, scores)}
    result["worst"] = worst_generations(inputs, targets, outputs, scores, kinds)
    result["higher_is_better"] = list(HIGHER_IS_BETTER)
    return result


# --------------------------------------------------------------------------- labels written out


def label_task_metrics(
    true_labels: Sequence[str],
    outputs: Sequence[str],
    label_names: Sequence[str],
    resamples: int,
    seed: int,
    level: float,
) -> dict[str, Any]:
    """A classification data set run as generation: each output parsed back to a label
    (:class:`~nlpflow.families.text2text.outputs.LabelParser`), then accuracy, macro and
    weighted F1 with intervals, per-class scores, and how outputs were parsed.

    An unparseable output is a wrong prediction that no class receives: it lowers accuracy
    and the true class's recall, never a class's precision (scikit-learn's ``labels=`` rule);
    macro averages run over the label names only. ``unparseable_share`` has an interval too.
    Raises ValueError for a true label outside ``label_names``.
    """
    from nlpflow.evaluation.bootstrap import bootstrap_intervals
    from nlpflow.evaluation.metrics import confusion_scores, weighted_confusion
    from nlpflow.families.text2text.outputs import LabelParser

    names = list(label_names)
    unknown = sorted(set(true_labels) - set(names))
    if unknown:
        raise ValueError(f"true labels {unknown[:5]} are not among the label names")
    parser = LabelParser(names)
    parsed, counts = parser.parse_all(outputs)
    k = len(names)
    y_true = np.array([names.index(t) for t in true_labels], dtype=np.int64)
    y_pred = np.array([k if p is None else names.index(p) for p in parsed], dtype=np.int64)
    missed = (y_pred == k).astype(np.float64)

    def compute(weights: Any) -> dict[str, Any]:
        s = confusion_scores(weighted_confusion(y_true, y_pred, k + 1, weights))
        f1, support = s["per_class_f1"][:, :k], s["support"][:, :k]
        total = support.sum(axis=1)
        return {
            "accuracy": s["accuracy"],
            "f1_macro": f1.mean(axis=1),
            "f1_weighted": (f1 * support).sum(axis=1) / np.where(total > 0, total, 1),
            "unparseable_share": (weights @ missed) / weights.sum(axis=1),
        }

    n = len(outputs)
    out: dict[str, Any] = {"n": n}
    if n:
        point = compute(np.ones((1, n)))
        out.update({key: float(values[0]) for key, values in point.items()})
        s = confusion_scores(weighted_confusion(y_true, y_pred, k + 1, np.ones((1, n))))
        out["per_class"] = {
            name: {
                "precision": float(s["per_class_precision"][0, i]),
                "recall": float(s["per_class_recall"][0, i]),
                "f1": float(s["per_class_f1"][0, i]),
                "support": int(s["support"][0, i]),
            }
            for i, name in enumerate(names)
        }
    out["parsed"] = counts
    out["ambiguous_labels"] = parser.ambiguous
    out["ci"] = bootstrap_intervals(compute, n, resamples, seed, level)
    out["unparseable_examples"] = [o for o, p in zip(outputs, parsed, strict=True) if p is None][
        :10
    ]
    return out


# --------------------------------------------------------------------------- report


def _label_lines(labels: dict[str, Any] | None, level: float) -> list[str]:
    """The label task's section: outputs parsed back to labels, accuracy and macro-F1 with
    intervals, the unparseable share, beside each baseline's."""
    if not labels:
        return []
    from nlpflow.markdown import interval, level_label, table

    ci = labels.get("ci", {})

    def shown(key: str) -> str:
        value = labels.get(key)
        if value is None:
            return ""
        out = f"{value:.4f}"
        if key in ci:
            out += f" ({interval(ci[key]['low'], ci[key]['high'])})"
        return out

    names = list(labels.get("baselines", {}))
    rows = []
    for key in ("accuracy", "f1_macro", "unparseable_share"):
        row = [key, shown(key)]
        for name in names:
            v = labels["baselines"][name].get(key)
            row.append("" if v is None else f"{v:.4f}")
        rows.append(row)
    parsed = labels.get("parsed", {})
    lines = [
        "## Labels parsed back from the outputs",
        "",
        f"Each output read as a label name: exactly {parsed.get('exact', 0)}, after "
        f"normalising (case, spaces, punctuation) {parsed.get('normalised', 0)}, unparseable "
        f"{parsed.get('unparseable', 0)} (counted wrong, for no class). Intervals: "
        f"{level_label(level)}.",
        "",
        *table(["metric", "model", *names], rows, "l" + "r" * (1 + len(names))),
        "",
    ]
    examples = labels.get("unparseable_examples", [])
    if examples:
        lines += ["Unparseable outputs: " + ", ".join(f"`{e}`" for e in examples[:5]), ""]
    return lines


_SHOWN = ("exact_match", "token_f1", "rouge1", "rouge2", "rougeL", "bleu", "chrf", "perplexity")


def error_report(split: str, result: dict[str, Any], level: float) -> str:
    """``reports/errors.md`` for one split of :func:`evaluate_split`'s result: the metrics
    with their intervals beside each baseline and the paired difference, the failure kinds,
    the worst generations (input, target, output) and the input-length slices."""
    from nlpflow.markdown import interval, level_label, table

    ci = result.get("ci", {})
    lines = [f"# Generation errors ({split}, {result['n']} examples)", ""]
    names = list(result.get("baselines", {}))
    rows = []
    for key in _SHOWN:
        value = result.get(key)
        if value is None:
            continue
        shown = f"{value:.4f}"
        if key in ci:
            shown += f" ({interval(ci[key]['low'], ci[key]['high'])})"
        row = [key, shown]
        for name in names:
            base = result["baselines"][name].get(key)
            row.append("" if base is None else f"{base:.4f}")
        rows.append(row)
    lines += [
        f"Metrics with their {level_label(level)} (bootstrap) beside the baselines; BLEU and "
        "chrF on sacrebleu's 0-100 scale.",
        "",
        *table(["metric", "model", *names], rows, "l" + "r" * (1 + len(names))),
        "",
    ]
    for name in names:
        base = result["baselines"][name]
        if "base_model" in base:
            lines.append(
                f"- {name}: the base model ({base['base_model']}) prompted through the "
                f"training template with {base['shots']} train example(s) (seed "
                f"{base['shots_seed']}), on {base['rows']} rows; its margin and paired "
                "difference compare the fine-tuned model on those same rows."
            )
    if any("base_model" in result["baselines"][n] for n in names):
        lines.append("")
    lines += _label_lines(result.get("labels"), level)
    paired = result.get("paired", {})
    if paired:
        rows = []
        for name, diffs in paired.items():
            for key, d in diffs.items():
                rows.append(
                    [
                        name,
                        key,
                        interval(d["low"], d["high"], signed=True),
                        f"{d['p_not_better']:.3f}",
                    ]
                )
        lines += [
            f"## Model minus baseline (paired bootstrap, {level_label(level)})",
            "",
            "`p_not_better`: the share of resamples in which the model does not beat the baseline.",
            "",
            *table(["baseline", "metric", "difference", "p_not_better"], rows, "llrr"),
            "",
        ]
    failures = result.get("failures", {})
    rows = [[k, v["count"], f"{100 * v['share']:.1f}%"] for k, v in failures.items()]
    lines += ["## Failure kinds", "", *table(["kind", "count", "share"], rows, "lrr"), ""]
    worst = result.get("worst", [])
    rows = [
        [w["input"], w["target"], w["output"], f"{w['token_f1']:.3f}", ", ".join(w["failures"])]
        for w in worst
    ]
    lines += [
        "## Worst generations (lowest token F1)",
        "",
        *table(["input", "target", "output", "token F1", "failures"], rows, "lllrl"),
        "",
    ]
    rows = [
        [s["input_words"], s["n"], f"{s['exact_match']:.3f}", f"{s['token_f1']:.3f}"]
        for s in result.get("slices", {}).get("input_length", [])
    ]
    lines += [
        "## By input length (words)",
        "",
        *table(["input words", "n", "exact match", "token F1"], rows, "lrrr"),
        "",
    ]
    return "\n".join(lines)
