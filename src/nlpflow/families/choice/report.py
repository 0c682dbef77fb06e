"""The multiple-choice error report: confident wrong choices, errors by gold position, slices.

Works on prediction records, one per example: ``context``, ``options`` (N texts), ``label``
(the right option's index), ``prediction`` (the chosen index), ``probabilities`` (N floats)
and any metadata columns. Plain Python: testable without a model.

- **Confident wrong choices**: the wrong rows where the model was surest of its choice, each
  shown with its context and every option with its probability, the right and the chosen one
  marked. These are where to look for a wrong label or a cue the model learned instead of the
  task.
- **Errors by gold position**: accuracy (with its Wilson interval) of the rows whose answer
  stands at each position, and the position most often chosen instead; beside it the gold x
  chosen position counts. A model that learned "the answer is usually first" shows here.
- **Slices**: accuracy per value of each metadata column with at most ``MAX_SLICE_VALUES``
  values (the built-in task's ``category`` and ``mentioned``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from nlpflow.evaluation.error_analysis import SliceStats
from nlpflow.markdown import interval, level_label, table

MAX_SLICE_VALUES = 20
REQUIRED = ("context", "options", "label", "prediction", "probabilities")


def _check(records: Sequence[dict[str, Any]]) -> int:
    """N, after checking every record has the keys and N options, probabilities."""
    width = len(records[0]["options"]) if records else 0
    for i, r in enumerate(records):
        missing = [k for k in REQUIRED if k not in r]
        if missing:
            raise ValueError(f"prediction record {i} lacks {missing}")
        if len(r["options"]) != width or len(r["probabilities"]) != width:
            raise ValueError(f"prediction record {i} has another number of options than {width}")
    return width


def confident_errors(records: Sequence[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The wrong records, surest first (the chosen option's probability; ties in file order),
    at most ``limit``."""
    wrong = [r for r in records if r["prediction"] != r["label"]]
    order = sorted(
        range(len(wrong)), key=lambda i: -float(wrong[i]["probabilities"][wrong[i]["prediction"]])
    )
    return [wrong[i] for i in order[:limit]]


def by_gold_position(records: Sequence[dict[str, Any]], width: int) -> dict[int, SliceStats]:
    """Per gold position ``j`` (every position of ``width``), the rows and how many are right."""
    n, right = Counter[int](), Counter[int]()
    for r in records:
        n[r["label"]] += 1
        right[r["label"]] += int(r["prediction"] == r["label"])
    return {j: SliceStats(n[j], right[j]) for j in range(width)}


def position_counts(records: Sequence[dict[str, Any]], width: int) -> list[list[int]]:
    """``[gold][chosen]`` counts, ``width`` x ``width``."""
    out = [[0] * width for _ in range(width)]
    for r in records:
        out[r["label"]][r["prediction"]] += 1
    return out


def metadata_slices(
    records: Sequence[dict[str, Any]], fields: Sequence[str]
) -> dict[str, dict[str, SliceStats]]:
    """Per metadata field with at most :data:`MAX_SLICE_VALUES` values, accuracy per value."""
    out: dict[str, dict[str, SliceStats]] = {}
    for name in fields:
        values = Counter(str(r.get(name)) for r in records)
        if not values or len(values) > MAX_SLICE_VALUES:
            continue
        right = Counter(str(r.get(name)) for r in records if r["prediction"] == r["label"])
        out[name] = {v: SliceStats(values[v], right[v]) for v in sorted(values)}
    return out


def _pct(stats: SliceStats, level: float) -> str:
    if not stats.n:
        return "-"
    low, high = stats.interval(level)
    return f"{stats.accuracy:.1%} ({interval(100 * low, 100 * high, digits=1)}%)"


def error_report(
    records: Sequence[dict[str, Any]],
    max_examples: int,
    level: float,
    metadata_fields: Sequence[str] = (),
) -> tuple[list[str], dict[str, Any]]:
    """Markdown lines of the report and its figures for ``metrics/error_analysis.json``.

    The figures: ``n``, ``errors``, ``by_gold_position`` (``{"j": {"n", "errors",
    "accuracy"}}``), ``confident_errors`` (how many wrong choices had probability >= 0.9) and
    ``slices`` (``{field: {value: {"n", "accuracy"}}}``).

    Raises:
        ValueError: a record lacks a key or has another number of options than the first.
    """
    width = _check(records)
    wrong = [r for r in records if r["prediction"] != r["label"]]
    positions = by_gold_position(records, width)
    slices = metadata_slices(records, metadata_fields)
    ci = level_label(level)
    lines = [
        "## Errors by gold position",
        "",
        f"{len(wrong)} of {len(records)} choices wrong. Accuracy of the rows whose right option "
        f"stands at each position ({ci}, Wilson), and the position chosen most often instead.",
        "",
    ]
    rows = []
    for j, stats in positions.items():
        instead = Counter(r["prediction"] for r in wrong if r["label"] == j).most_common(1)
        rows.append(
            [j, stats.n, stats.errors, _pct(stats, level), instead[0][0] if instead else "-"]
        )
    lines += table(["gold position", "rows", "errors", "accuracy", "chosen instead"], rows, "rrrrr")
    lines += ["", "Rows: gold position; columns: chosen position.", ""]
    counts = position_counts(records, width)
    lines += table(
        ["gold ↓ chosen →", *map(str, range(width))],
        [[j, *counts[j]] for j in range(width)],
        "r" * (width + 1),
    )
    shown = confident_errors(records, max_examples)
    lines += ["", "## Confident wrong choices", ""]
    if not shown:
        lines.append("No wrong choice.")
    else:
        lines.append(
            f"The {len(shown)} wrong choices the model was surest of, with every option "
            "(→ chosen, ✓ right)."
        )
    for k, r in enumerate(shown, start=1):
        probs = r["probabilities"]
        pred, gold = r["prediction"], r["label"]
        head = f"**{k}.**"
        if r.get("id") is not None:
            head += f" `{r['id']}`"
        lines += [
            "",
            f"{head} chose option {pred} (p = {probs[pred]:.3f}); the right option is {gold} "
            f"(p = {probs[gold]:.3f}).",
            "",
            "> " + " ".join(str(r["context"]).split()),
            "",
        ]
        marks = {pred: "→ chosen", gold: "✓ right"}
        lines += table(
            ["option", "text", "p", ""],
            [[j, o, f"{probs[j]:.3f}", marks.get(j, "")] for j, o in enumerate(r["options"])],
            "rlrl",
        )
    if slices:
        lines += ["", "## Slices", "", f"Accuracy per value of each metadata column ({ci})."]
        for name, values in slices.items():
            lines += ["", f"### {name}", ""]
            lines += table(
                [name, "rows", "errors", "accuracy"],
                [[v, s.n, s.errors, _pct(s, level)] for v, s in values.items()],
                "lrrr",
            )
    figures = {
        "n": len(records),
        "errors": len(wrong),
        "by_gold_position": {
            str(j): {
                "n": s.n,
                "errors": s.errors,
                "accuracy": round(s.accuracy, 6) if s.n else None,
            }
            for j, s in positions.items()
        },
        "confident_errors": sum(
            1 for r in wrong if float(r["probabilities"][r["prediction"]]) >= 0.9
        ),
        "slices": {
            name: {v: {"n": s.n, "accuracy": round(s.accuracy, 6)} for v, s in values.items()}
            for name, values in slices.items()
        },
    }
    return lines, figures
