"""What the model gets wrong: errors, confusions, doubtful cases, possible label errors, slices.

Works on the prediction records the evaluate stage writes (one JSON object per example), so
everything here is plain Python, testable without a model, DVC or the datasets library.

Sequence tasks: one record is one example. Token tasks: one record is a sentence with a tag per
word; an example is "right" when every word is, slices count sentences, and confusions, doubtful
cases and possible label errors are counted per word.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlpflow.errors import UserError
from nlpflow.evaluation.metrics import wilson_interval

# Slices smaller than this are still shown, but not named "weakest" while a larger one
# exists: one wrong example out of two says little.
MIN_SLICE_SIZE = 5
# A metadata field with more distinct values (an id-like column) keeps only its largest slices.
MAX_SLICES_PER_FIELD = 20

REQUIRED_KEYS = ("id", "label", "prediction", "confidence", "probabilities")


@dataclass(frozen=True)
class SliceStats:
    n: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def errors(self) -> int:
        return self.n - self.correct

    def interval(self, level: float) -> tuple[float, float]:
        """The Wilson score interval of :attr:`accuracy` at confidence ``level`` (0.95 for
        95%), as (low, high) shares in [0, 1]."""
        from statistics import NormalDist

        return wilson_interval(self.correct, self.n, z=NormalDist().inv_cdf(0.5 + level / 2))


Slices = dict[str, dict[str, SliceStats]]


# --------------------------------------------------------------------------- reading


def load_predictions(
    path: str | Path, fields: Sequence[str], label_names: Sequence[str], task: str = "sequence"
) -> list[dict[str, Any]]:
    """Read a predictions JSONL file; check every row has the keys the analysis uses."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found; run the evaluate stage first (dvc repro evaluate)")
    rows: list[dict[str, Any]] = []
    known = set(label_names)
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}, line {lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}, line {lineno}: expected a JSON object")
            missing = [k for k in (*REQUIRED_KEYS, *fields) if k not in row]
            if missing:
                raise UserError(f"{path}, line {lineno}: missing key(s) {missing}")
            for key in ("label", "prediction"):
                values = row[key] if task == "token" else [row[key]]
                if not isinstance(values, list):
                    raise UserError(f"{path}, line {lineno}: {key} must be a list of tags")
                bad = [v for v in values if v not in known]
                if bad:
                    raise UserError(
                        f"{path}, line {lineno}: {key} '{bad[0]}' is not one of "
                        f"{list(label_names)}; rerun the evaluate stage"
                    )
            rows.append(row)
    if not rows:
        raise UserError(f"{path} holds no predictions")
    return rows


def is_correct(row: dict[str, Any]) -> bool:
    """An example is right when its label (every word's tag, for token tasks) is."""
    return bool(row["label"] == row["prediction"])


def error_confidence(row: dict[str, Any]) -> float:
    """How sure the model was of its mistake: p(predicted), or the most confident wrong word."""
    if not isinstance(row["label"], list):
        return float(row["confidence"])
    wrong = [
        c
        for t, p, c in zip(row["label"], row["prediction"], row["confidence"], strict=True)
        if t != p and c is not None
    ]
    return max(wrong, default=0.0)


def _margin(probs: dict[str, float]) -> float:
    top = sorted(probs.values(), reverse=True)
    return top[0] - top[1] if len(top) > 1 else 1.0


def doubt(row: dict[str, Any]) -> float:
    """The gap between the two most probable labels (the least, over words): small = unsure."""
    if not isinstance(row["label"], list):
        return _margin(row["probabilities"])
    gaps = [_margin(p) for p in row["probabilities"] if p is not None]
    return min(gaps, default=1.0)


# --------------------------------------------------------------------------- slicing


def input_length(row: dict[str, Any], text_fields: Sequence[str]) -> int:
    """Characters over all text fields (words, for a token task's list of words)."""
    total = 0
    for f in text_fields:
        value = row[f]
        total += len(value) if isinstance(value, list) else len(str(value))
    return total


def length_bucket_names(edges: Sequence[int]) -> list[str]:
    """Bucket labels for upper ``edges``: ``[20, 26]`` gives ``0-20``, ``21-26``, ``27+``."""
    names, low = [], 0
    for edge in edges:
        names.append(f"{low}-{edge}")
        low = edge + 1
    names.append(f"{low}+")
    return names


def length_bucket(length: int, edges: Sequence[int]) -> str:
    """The name of the bucket holding ``length`` (edges are inclusive upper bounds)."""
    names = length_bucket_names(edges)
    for edge, name in zip(edges, names, strict=False):
        if length <= edge:
            return name
    return names[-1]


def auto_length_edges(lengths: Sequence[int], buckets: int = 4) -> list[int]:
    """Upper edges at the quantiles of ``lengths``: about equal-sized buckets (distinct edges)."""
    if not lengths:
        return []
    values = np.asarray(lengths, dtype=np.float64)
    qs = np.quantile(values, [i / buckets for i in range(1, buckets)], method="lower")
    edges = sorted({int(q) for q in qs})
    return [e for e in edges if e < values.max()]


def _slice_key(field: str) -> str:
    # Metadata columns share the namespace with the built-in "label" and "length" families.
    return f"meta_{field}" if field in ("label", "length") else field


def _value_name(value: Any) -> str:
    return "(missing)" if value is None else str(value)


def _label_keys(row: dict[str, Any]) -> list[str]:
    """The "label" slices an example falls in: its label, or its entity types (token tasks)."""
    if not isinstance(row["label"], list):
        return [row["label"]]
    kinds = sorted({t.split("-", 1)[-1] for t in row["label"] if t != "O"})
    return kinds or ["(no entity)"]


def compute_slices(
    rows: Sequence[dict[str, Any]],
    text_fields: Sequence[str],
    metadata_fields: Sequence[str],
    label_names: Sequence[str],
    length_edges: Sequence[int],
) -> Slices:
    """Accuracy per metadata value, per true label and per input-length bucket.

    Families are ordered metadata fields, ``label``, ``length``; within a family the order is
    the value's name (metadata), the label order, and the bucket order. Empty slices are left
    out. For token tasks, ``label`` slices are entity types (a sentence counts in each type it
    holds) and accuracy is the share of sentences tagged entirely right.
    """

    def tally(keys_of: Any) -> dict[str, SliceStats]:
        counts: dict[str, list[int]] = {}
        for row in rows:
            for key in keys_of(row):
                c = counts.setdefault(key, [0, 0])
                c[0] += 1
                c[1] += int(is_correct(row))
        return {k: SliceStats(n, correct) for k, (n, correct) in counts.items()}

    slices: Slices = {}
    for field in metadata_fields:
        stats = tally(lambda r, f=field: [_value_name(r.get(f))])
        if len(stats) > MAX_SLICES_PER_FIELD:
            largest = sorted(stats, key=lambda v: (-stats[v].n, v))[:MAX_SLICES_PER_FIELD]
            stats = {v: stats[v] for v in largest}
        slices[_slice_key(field)] = {v: stats[v] for v in sorted(stats)}
    by_label = tally(_label_keys)
    order = [n for n in label_names if n in by_label] + sorted(set(by_label) - set(label_names))
    slices["label"] = {name: by_label[name] for name in order}
    by_length = tally(lambda r: [length_bucket(input_length(r, text_fields), length_edges)])
    slices["length"] = {
        name: by_length[name] for name in length_bucket_names(length_edges) if name in by_length
    }
    return slices


def weakest_in(family: dict[str, SliceStats], min_n: int = MIN_SLICE_SIZE) -> list[str]:
    """The lowest-accuracy slices of a family (all that tie), or [] when all score the same.

    Only slices of at least ``min_n`` examples compete while any exists, so one unlucky
    example in a tiny slice does not hide a real weakness in a large one.
    """
    if len({s.accuracy for s in family.values()}) < 2:
        return []
    pool = {k: s for k, s in family.items() if s.n >= min_n} or family
    low = min(s.accuracy for s in pool.values())
    return [k for k, s in pool.items() if s.accuracy == low]


def weakest_slice(
    slices: Slices, min_n: int = MIN_SLICE_SIZE, families: Sequence[str] | None = None
) -> tuple[str, str, SliceStats] | None:
    """The single weakest slice over ``families`` (default all; see :func:`weakest_in`)."""
    candidates = [
        (family, name, values[name])
        for family, values in slices.items()
        if families is None or family in families
        for name in weakest_in(values, min_n)
    ]
    if not candidates:
        return None
    big = [c for c in candidates if c[2].n >= min_n] or candidates
    # Ties go to the larger slice (more evidence), then to the first family and value.
    return min(big, key=lambda c: (c[2].accuracy, -c[2].n))


# --------------------------------------------------------------------------- errors


def misclassified(rows: Sequence[dict[str, Any]], max_examples: int) -> list[dict[str, Any]]:
    """The wrong predictions, most confident first (ties keep file order), at most ``max_examples``.

    Confident errors come first because they are the surprising ones: a label mistake in the
    data, a shortcut the model learned, or a slice it has never seen.
    """
    errors = [r for r in rows if not is_correct(r)]
    # sorted() is stable, so equal confidences stay in row order: the table is reproducible.
    errors = sorted(errors, key=lambda r: -error_confidence(r))
    return errors[:max_examples]


def least_sure(rows: Sequence[dict[str, Any]], max_examples: int) -> list[dict[str, Any]]:
    """The examples with the smallest gap between the two most probable labels, right or wrong."""
    return sorted(rows, key=doubt)[:max_examples]


@dataclass(frozen=True)
class Decision:
    """One decision: an example (sequence tasks) or a word (token tasks)."""

    row: dict[str, Any]
    word: int | None
    label: str
    prediction: str
    confidence: float
    p_label: float


def decisions(rows: Sequence[dict[str, Any]]) -> list[Decision]:
    out = []
    for r in rows:
        if not isinstance(r["label"], list):
            out.append(
                Decision(
                    r,
                    None,
                    r["label"],
                    r["prediction"],
                    float(r["confidence"]),
                    float(r["probabilities"][r["label"]]),
                )
            )
            continue
        for w, (t, p, c, probs) in enumerate(
            zip(r["label"], r["prediction"], r["confidence"], r["probabilities"], strict=True)
        ):
            if probs is not None:
                out.append(Decision(r, w, t, p, float(c), float(probs[t])))
    return out


def confusion_pairs(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str, int, int]]:
    """``(true, predicted, count, support of true)`` for every wrong pair, most frequent first."""
    ds = decisions(rows)
    support = Counter(d.label for d in ds)
    pairs = Counter((d.label, d.prediction) for d in ds if d.label != d.prediction)
    ranked = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(t, p, n, support[t]) for (t, p), n in ranked]


def possible_label_errors(
    rows: Sequence[dict[str, Any]], min_confidence: float, max_examples: int
) -> list[Decision]:
    """Wrong decisions the model is at least ``min_confidence`` sure of, surest first.

    Confident disagreement with the gold label is where annotation mistakes hide (the idea of
    confident learning); a person should look at each before trusting either side.
    """
    wrong = [
        d for d in decisions(rows) if d.label != d.prediction and d.confidence >= min_confidence
    ]
    return sorted(wrong, key=lambda d: (-d.confidence, d.p_label))[:max_examples]


# --------------------------------------------------------------------------- outputs


def error_metrics(rows: Sequence[dict[str, Any]], slices: Slices) -> dict[str, Any]:
    """The numbers of ``metrics/error_analysis.json`` for one split."""
    errors = sum(not is_correct(r) for r in rows)
    return {
        "n": len(rows),
        "accuracy": round((len(rows) - errors) / len(rows), 6) if rows else 0.0,
        "errors": errors,
        "slices": {
            family: {k: {"n": s.n, "accuracy": round(s.accuracy, 6)} for k, s in values.items()}
            for family, values in slices.items()
        },
    }


def read_evaluate_metrics(path: str | Path) -> dict[str, Any]:
    """The evaluate stage's metrics file (for the summary's intervals and baselines)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found; run the evaluate stage first or leave the flag out")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON at line {err.lineno}: {err.msg}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data
