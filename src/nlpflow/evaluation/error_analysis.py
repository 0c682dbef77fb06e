"""What the model gets wrong: the most confident errors and accuracy per slice of the data.

Works on the prediction records the evaluate stage writes (one JSON object per example), so
everything here is plain Python, testable without a model, DVC or the datasets library.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpflow.errors import UserError

# Slices smaller than this are still shown, but not named "weakest" while a larger one
# exists: one wrong example out of two says little.
MIN_SLICE_SIZE = 5
# A metadata field with more distinct values (an id-like column) keeps only its largest slices.
MAX_SLICES_PER_FIELD = 20
MAX_CELL_CHARS = 120

REQUIRED_KEYS = ("id", "label", "prediction", "confidence")


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


Slices = dict[str, dict[str, SliceStats]]


# --------------------------------------------------------------------------- reading


def load_predictions(
    path: str | Path, fields: Sequence[str], label_names: Sequence[str]
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
                if row[key] not in known:
                    raise UserError(
                        f"{path}, line {lineno}: {key} '{row[key]}' is not one of "
                        f"{list(label_names)}; rerun the evaluate stage"
                    )
            rows.append(row)
    if not rows:
        raise UserError(f"{path} holds no predictions")
    return rows


# --------------------------------------------------------------------------- slicing


def input_length(row: dict[str, Any], text_fields: Sequence[str]) -> int:
    """Total characters over all text fields: the length a person sees, tokenizer-independent."""
    return sum(len(str(row[f])) for f in text_fields)


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


def _slice_key(field: str) -> str:
    # Metadata columns share the namespace with the built-in "label" and "length" families.
    return f"meta_{field}" if field in ("label", "length") else field


def _value_name(value: Any) -> str:
    return "(missing)" if value is None else str(value)


def compute_slices(
    rows: Sequence[dict[str, Any]],
    text_fields: Sequence[str],
    metadata_fields: Sequence[str],
    label_names: Sequence[str],
    length_edges: Sequence[int],
) -> Slices:
    """Accuracy per metadata value, per true label and per input-length bucket.

    Families are ordered metadata fields, ``label``, ``length``; within a family the order is
    the value's name (metadata), the label order, and the bucket order. Empty slices are left out.
    """

    def tally(key_of: Any) -> dict[str, SliceStats]:
        counts: dict[str, list[int]] = {}
        for row in rows:
            c = counts.setdefault(key_of(row), [0, 0])
            c[0] += 1
            c[1] += int(row["label"] == row["prediction"])
        return {k: SliceStats(n, correct) for k, (n, correct) in counts.items()}

    slices: Slices = {}
    for field in metadata_fields:
        stats = tally(lambda r, f=field: _value_name(r.get(f)))
        if len(stats) > MAX_SLICES_PER_FIELD:
            largest = sorted(stats, key=lambda v: (-stats[v].n, v))[:MAX_SLICES_PER_FIELD]
            stats = {v: stats[v] for v in largest}
        slices[_slice_key(field)] = {v: stats[v] for v in sorted(stats)}
    by_label = tally(lambda r: r["label"])
    slices["label"] = {name: by_label[name] for name in label_names if name in by_label}
    by_length = tally(lambda r: length_bucket(input_length(r, text_fields), length_edges))
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
    slices: Slices, min_n: int = MIN_SLICE_SIZE
) -> tuple[str, str, SliceStats] | None:
    """The single weakest slice over all families (see :func:`weakest_in`), or None."""
    candidates = [
        (family, name, values[name])
        for family, values in slices.items()
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
    errors = [r for r in rows if r["label"] != r["prediction"]]
    # sorted() is stable, so equal confidences stay in row order: the table is reproducible.
    errors = sorted(errors, key=lambda r: -float(r["confidence"]))
    return errors[:max_examples]


# --------------------------------------------------------------------------- outputs


def error_metrics(rows: Sequence[dict[str, Any]], slices: Slices) -> dict[str, Any]:
    """The numbers of ``metrics/error_analysis.json`` for one split."""
    errors = sum(r["label"] != r["prediction"] for r in rows)
    return {
        "n": len(rows),
        "accuracy": round((len(rows) - errors) / len(rows), 6) if rows else 0.0,
        "errors": errors,
        "slices": {
            family: {k: {"n": s.n, "accuracy": round(s.accuracy, 6)} for k, s in values.items()}
            for family, values in slices.items()
        },
    }


def md_cell(value: Any, limit: int = MAX_CELL_CHARS) -> str:
    """Text safe inside a markdown table cell: one line, ``|`` escaped, long text shortened."""
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """Markdown table lines; ``align`` has one letter per column, ``l`` or ``r``."""
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


FAMILY_TITLES = {"label": "true label", "length": "input length (characters, all text fields)"}


def render_report(
    rows: Sequence[dict[str, Any]],
    slices: Slices,
    text_fields: Sequence[str],
    metadata_fields: Sequence[str],
    label_names: Sequence[str],
    max_examples: int,
    baseline_accuracy: float | None = None,
    split: str = "test",
) -> str:
    """The markdown report: summary, most confident errors, accuracy per slice, confusion."""
    n = len(rows)
    correct = sum(r["label"] == r["prediction"] for r in rows)
    accuracy = correct / n if n else 0.0
    errors = misclassified(rows, n)
    shown = errors[:max_examples]

    out = [f"# Error analysis ({split} split)", ""]
    out.append(f"- **Accuracy:** {accuracy:.4f} ({correct} of {n} correct)")
    if baseline_accuracy is not None:
        margin = accuracy - baseline_accuracy
        out.append(
            f"- **Majority baseline** (the train split's most frequent label): "
            f"{baseline_accuracy:.4f}; model margin {margin:+.4f}"
            + (" ⚠ no better than the baseline" if margin <= 0 else "")
        )
    out.append(f"- **Errors:** {len(errors)} of {n}")
    weakest = weakest_slice(slices)
    if weakest is None:
        out.append("- **Weakest slice:** none; every slice scores the same")
    else:
        family, value, stats = weakest
        out.append(
            f"- **Weakest slice:** {family} = {md_cell(value)}: accuracy {stats.accuracy:.4f} "
            f"on {stats.n} examples ({stats.errors} errors)"
        )
    out.append("")

    out.append("## Misclassified examples")
    out.append("")
    if not errors:
        out.append("None: every example is classified correctly.")
    else:
        out.append(
            f"Most confident errors first; {len(shown)} of {len(errors)} shown "
            f"(`error_analysis.max_examples` = {max_examples})."
        )
        out.append("")
        header = ["#", "id", *text_fields, *metadata_fields, "true", "predicted", "p(predicted)"]
        body = [
            [
                str(i),
                md_cell(r["id"]),
                *(md_cell(r[f]) for f in text_fields),
                *(md_cell(_value_name(r.get(f))) for f in metadata_fields),
                md_cell(r["label"]),
                md_cell(r["prediction"]),
                f"{float(r['confidence']):.4f}",
            ]
            for i, r in enumerate(shown, start=1)
        ]
        align = "rl" + "l" * (len(text_fields) + len(metadata_fields)) + "llr"
        out += _table(header, body, align)
    out.append("")

    out.append("## Accuracy by slice")
    out.append("")
    out.append(
        f"⚠ marks the lowest accuracy in each group, among slices of at least {MIN_SLICE_SIZE} "
        "examples where the group has any."
    )
    for family, values in slices.items():
        title = FAMILY_TITLES.get(family, family)
        out += ["", f"### {title}", ""]
        marked = weakest_in(values)
        body = [
            [
                f"**{md_cell(k)}**" if k in marked else md_cell(k),
                str(s.n),
                f"{s.accuracy:.4f}",
                str(s.errors),
                "⚠ weakest" if k in marked else "",
            ]
            for k, s in values.items()
        ]
        out += _table([family, "n", "accuracy", "errors", ""], body, "lrrrl")
    out.append("")

    out.append("## Confusion matrix")
    out.append("")
    out.append("Rows: true label; columns: predicted label.")
    out.append("")
    counts = {(a, p): 0 for a in label_names for p in label_names}
    for r in rows:
        counts[(r["label"], r["prediction"])] += 1
    body = [[md_cell(a), *(str(counts[(a, p)]) for p in label_names)] for a in label_names]
    out += _table(
        ["true \\ predicted", *map(md_cell, label_names)], body, "l" + "r" * len(label_names)
    )
    out.append("")
    return "\n".join(out)


def baseline_accuracy_from(path: str | Path, split: str = "test") -> float:
    """The majority-baseline accuracy of ``split`` from the evaluate stage's metrics file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found; run the evaluate stage first or leave the flag out")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        value = data[split]["baselines"]["majority"]["accuracy"]
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON at line {err.lineno}: {err.msg}") from None
    except (KeyError, TypeError):
        raise UserError(
            f"{path}: no {split}.baselines.majority.accuracy; rerun the evaluate stage"
        ) from None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise UserError(f"{path}: {split}.baselines.majority.accuracy is not a number")
    return float(value)
