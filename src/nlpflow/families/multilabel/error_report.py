"""What a multi-label model gets wrong: missed and spurious labels, worst examples, co-occurrence.

- per label: how often it was missed (true, not predicted: a false negative) and how often it
  was spurious (predicted, not true: a false positive), beside its support;
- label swaps: in one example, label ``a`` missed while ``b`` was predicted instead, counted
  per pair (the model mixing up two labels, rather than missing or adding one);
- the worst examples: most wrong decisions first, then the surest wrong ones (the summed
  distance of the wrong labels' scores from the truth), with gold and predicted sets and the
  scores of every label involved;
- co-occurrence: how often two labels are true together, with the conditional share
  ``P(b | a)``, in the gold labels and in the predictions (a model that learned a correlation
  too well predicts the pair more often than the data has it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from nlpflow.markdown import table


def _arrays(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(y_pred).astype(np.int64)
    if y.shape != p.shape or y.ndim != 2:
        raise ValueError(f"y_true {y.shape} and y_pred {p.shape} must both be (n, k)")
    return y, p


def _names(label_names: Sequence[str], mask: npt.NDArray[np.int64]) -> list[str]:
    """The names of the columns where ``mask`` (one row) is nonzero."""
    return [label_names[j] for j in np.flatnonzero(mask).tolist()]


def label_errors(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, label_names: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Per label: ``support`` (true), ``predicted``, ``missed`` (fn) and ``spurious`` (fp)."""
    y, p = _arrays(y_true, y_pred)
    return {
        name: {
            "support": int(y[:, j].sum()),
            "predicted": int(p[:, j].sum()),
            "missed": int((y[:, j] & (1 - p[:, j])).sum()),
            "spurious": int(((1 - y[:, j]) & p[:, j]).sum()),
        }
        for j, name in enumerate(label_names)
    }


def label_swaps(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, label_names: Sequence[str], limit: int = 10
) -> list[dict[str, Any]]:
    """Pairs (``missed``, ``predicted_instead``) that occur in the same example, most first."""
    y, p = _arrays(y_true, y_pred)
    missed = y & (1 - p)  # (n, k)
    spurious = (1 - y) & p
    counts = missed.T @ spurious  # (k, k): [a, b] examples missing a and adding b
    pairs = [
        {"missed": label_names[a], "predicted_instead": label_names[b], "count": int(counts[a, b])}
        for a, b in zip(*(ix.tolist() for ix in np.nonzero(counts)), strict=True)
    ]
    pairs.sort(key=lambda d: (-int(d["count"]), str(d["missed"]), str(d["predicted_instead"])))
    return pairs[:limit]


def worst_examples(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    scores: npt.ArrayLike,
    label_names: Sequence[str],
    texts: Sequence[str],
    ids: Sequence[str],
    limit: int = 20,
) -> list[dict[str, Any]]:
    """The examples with the most wrong labels, the surest first among equals.

    Each: ``id``, ``text``, ``gold`` and ``predicted`` (label lists), ``missed``, ``spurious``,
    ``wrong`` (count), ``scores`` (label -> score for every label in gold or predicted).
    Examples with every label right are left out.
    """
    y, p = _arrays(y_true, y_pred)
    s = np.asarray(scores, dtype=np.float64)
    wrong = y != p
    count = wrong.sum(axis=1)
    distance = (np.abs(y - s) * wrong).sum(axis=1)  # how sure the wrong decisions were
    order = sorted(np.flatnonzero(count).tolist(), key=lambda i: (-count[i], -distance[i], i))
    out = []
    for i in order[:limit]:
        involved = np.flatnonzero(y[i] | p[i]).tolist()
        out.append(
            {
                "id": str(ids[i]),
                "text": str(texts[i]),
                "gold": _names(label_names, y[i]),
                "predicted": _names(label_names, p[i]),
                "missed": _names(label_names, y[i] & (1 - p[i])),
                "spurious": _names(label_names, (1 - y[i]) & p[i]),
                "wrong": int(count[i]),
                "scores": {label_names[j]: round(float(s[i, j]), 4) for j in involved},
            }
        )
    return out


def cooccurrence(labels: npt.ArrayLike, label_names: Sequence[str]) -> list[dict[str, Any]]:
    """Every pair of labels true together at least once: ``a``, ``b``, ``count`` and the
    shares ``p_b_given_a`` and ``p_a_given_b``; most frequent pairs first."""
    y = np.asarray(labels).astype(np.int64)
    together = y.T @ y  # (k, k); the diagonal holds each label's count
    pairs: list[dict[str, Any]] = []
    k = len(label_names)
    for a in range(k):
        for b in range(a + 1, k):
            if together[a, b]:
                pairs.append(
                    {
                        "a": label_names[a],
                        "b": label_names[b],
                        "count": int(together[a, b]),
                        "p_b_given_a": float(together[a, b] / together[a, a]),
                        "p_a_given_b": float(together[a, b] / together[b, b]),
                    }
                )
    pairs.sort(key=lambda d: (-int(d["count"]), str(d["a"]), str(d["b"])))
    return pairs


def error_summary(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    scores: npt.ArrayLike,
    label_names: Sequence[str],
    texts: Sequence[str],
    ids: Sequence[str],
    limit: int = 20,
) -> dict[str, Any]:
    """Everything above for one split, as plain values (for ``metrics/error_analysis.json``
    and the report)."""
    y, p = _arrays(y_true, y_pred)
    wrong_examples = int((y != p).any(axis=1).sum())
    return {
        "n": int(y.shape[0]),
        "examples_with_errors": wrong_examples,
        "missed": int((y & (1 - p)).sum()),
        "spurious": int(((1 - y) & p).sum()),
        "per_label": label_errors(y, p, label_names),
        "swaps": label_swaps(y, p, label_names),
        "cooccurrence": {
            "gold": cooccurrence(y, label_names),
            "predicted": cooccurrence(p, label_names),
        },
        "worst": worst_examples(y, p, scores, label_names, texts, ids, limit),
    }


def report_lines(summary: dict[str, Any], split: str) -> list[str]:
    """Markdown for one split's :func:`error_summary`."""
    n = summary["n"]
    lines = [
        f"## Multi-label errors on {split}",
        "",
        f"{summary['examples_with_errors']} of {n} examples have at least one wrong label: "
        f"{summary['missed']} labels missed, {summary['spurious']} spurious.",
        "",
        "### Per label",
        "",
    ]
    rows = [
        [name, e["support"], e["predicted"], e["missed"], e["spurious"]]
        for name, e in sorted(
            summary["per_label"].items(), key=lambda kv: -(kv[1]["missed"] + kv[1]["spurious"])
        )
    ]
    lines += table(["label", "support", "predicted", "missed", "spurious"], rows, "lrrrr")
    if summary["swaps"]:
        lines += ["", "### Labels predicted instead of the true one", ""]
        lines += table(
            ["missed", "predicted instead", "examples"],
            [[d["missed"], d["predicted_instead"], d["count"]] for d in summary["swaps"]],
            "llr",
        )
    gold = {(d["a"], d["b"]): d for d in summary["cooccurrence"]["gold"]}
    pred = {(d["a"], d["b"]): d for d in summary["cooccurrence"]["predicted"]}
    if gold or pred:
        lines += ["", "### Label co-occurrence (gold against predicted)", ""]
        keys = sorted(
            gold.keys() | pred.keys(), key=lambda k: (-gold.get(k, {}).get("count", 0), k)
        )
        lines += table(
            ["a", "b", "gold together", "predicted together", "gold P(b | a)"],
            [
                [
                    a,
                    b,
                    gold.get((a, b), {}).get("count", 0),
                    pred.get((a, b), {}).get("count", 0),
                    f"{gold[(a, b)]['p_b_given_a']:.3f}" if (a, b) in gold else "",
                ]
                for a, b in keys[:20]
            ],
            "llrrr",
        )
    if summary["worst"]:
        lines += ["", "### Worst examples", ""]
        lines += table(
            ["id", "text", "gold", "predicted", "scores"],
            [
                [
                    w["id"],
                    w["text"],
                    ", ".join(w["gold"]) or "(none)",
                    ", ".join(w["predicted"]) or "(none)",
                    ", ".join(f"{k} {v:.2f}" for k, v in w["scores"].items()),
                ]
                for w in summary["worst"]
            ],
        )
    return lines
