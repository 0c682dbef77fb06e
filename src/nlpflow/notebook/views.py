"""What the experiment notebook's cells call: read the pipeline's outputs, format them.

``ProjectFiles`` reads a file of the workspace or, with a revision (a commit, or the commit of
a DVC experiment), the file as that revision committed it (``git show``): metrics, plot data,
PNG images and reports are small and kept in git (``cache: false``), so nothing is retrained
or pulled. The other functions turn metrics dicts into markdown (tables a reader can scan, and
that a test can parse); they compute nothing the pipeline did not write, except the margin
over the best baseline and the weakest slice's Wilson interval, which they say they compute.
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlpflow.errors import UserError

# The metrics a summary leads with, in this order, where the evaluate stage wrote them.
LEADING = ("accuracy", "balanced_accuracy", "f1_macro", "mcc", "roc_auc", "pr_auc", "f1")


def find_project(start: str | Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: the current one) with a dvc.yaml.

    Raises UserError when there is none."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    raise UserError(f"no dvc.yaml in {here} or above: run this inside the nlpflow project")


class ProjectFiles:
    """The pipeline's files in the workspace (``rev=None``) or at a git commit.

    Paths are relative to the project root, e.g. ``metrics/evaluate.json``.
    """

    def __init__(self, rev: str | None = None, root: str | Path | None = None) -> None:
        self.rev = rev
        self.root = find_project(root)

    @property
    def where(self) -> str:
        return "the workspace" if self.rev is None else f"commit {self.rev[:12]}"

    def exists(self, path: str) -> bool:
        if self.rev is None:
            return (self.root / path).is_file()
        proc = subprocess.run(
            ["git", "cat-file", "-e", f"{self.rev}:{path}"], cwd=self.root, capture_output=True
        )
        return proc.returncode == 0

    def bytes(self, path: str) -> bytes:
        """The file's bytes; UserError naming the file and revision when it is missing."""
        if self.rev is None:
            file = self.root / path
            if not file.is_file():
                raise UserError(f"{path} not found in the workspace: run `dvc repro` first")
            return file.read_bytes()
        proc = subprocess.run(
            ["git", "show", f"{self.rev}:{path}"], cwd=self.root, capture_output=True
        )
        if proc.returncode != 0:
            raise UserError(f"{path} not found at {self.where} (is it an output of the pipeline?)")
        return proc.stdout

    def text(self, path: str) -> str:
        return self.bytes(path).decode("utf-8")

    def json(self, path: str) -> Any:
        return json.loads(self.text(path))

    def tsv(self, path: str) -> list[dict[str, float]]:
        """Rows of a TSV file of numbers (the training curves), empty cells as NaN."""
        reader = csv.DictReader(io.StringIO(self.text(path)), delimiter="\t")
        return [
            {k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
            for row in reader
        ]


# --------------------------------------------------------------------------- formatting


def fmt(value: Any, digits: int = 4) -> str:
    """A number as the notebook shows it: floats with ``digits`` decimals, ints as they are."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table through the project's one renderer (:func:`nlpflow.markdown.table`),
    cells formatted with :func:`fmt` and never cut."""
    from nlpflow import markdown

    return "\n".join(markdown.table(header, [[fmt(v) for v in row] for row in rows], limit=None))


def primary_metric(split: dict[str, Any]) -> str:
    """The headline metric of an evaluate split: macro-F1 for classification, else the first
    metric with an interval."""
    if "f1_macro" in split:
        return "f1_macro"
    return next(iter(split.get("ci", {})), "accuracy")


def metric_names(split: dict[str, Any]) -> list[str]:
    """Scalar metrics of an evaluate split, leading ones first."""
    scalars = [k for k, v in split.items() if isinstance(v, int | float) and k != "n"]
    return [k for k in LEADING if k in scalars] + [k for k in scalars if k not in LEADING]


def evaluation_table(evaluate: dict[str, Any], split: str, level: float = 0.95) -> str:
    """Each metric of the model with its bootstrap interval (at ``level``, as the evaluate
    stage computed it), beside every baseline's."""
    scores = evaluate[split]
    baselines = scores.get("baselines", {})
    ci = scores.get("ci", {})
    header = ["metric", "model", f"{level:.0%} interval", *baselines]
    rows = []
    for name in metric_names(scores):
        interval = ci.get(name)
        shown = f"{fmt(interval['low'])} – {fmt(interval['high'])}" if interval else ""
        rows.append([name, scores[name], shown, *(b.get(name, "") for b in baselines.values())])
    return f"**{split}** ({scores.get('n', '?')} examples)\n\n" + md_table(header, rows)


def best_baseline(scores: dict[str, Any], metric: str) -> tuple[str, float] | None:
    """The baseline with the highest ``metric`` on a split, or None without baselines."""
    found = [
        (name, float(b[metric]))
        for name, b in scores.get("baselines", {}).items()
        if isinstance(b.get(metric), int | float)
    ]
    return max(found, key=lambda item: item[1]) if found else None


def margin_summary(evaluate: dict[str, Any], split: str = "test") -> str:
    """The model's headline metric against the best baseline: margin, and whether the
    model's interval clears the baseline."""
    scores = evaluate[split]
    metric = primary_metric(scores)
    value = float(scores[metric])
    best = best_baseline(scores, metric)
    if best is None:
        return f"- {metric} on {split}: {fmt(value)} (no baselines were scored)"
    name, base = best
    ci = scores.get("ci", {}).get(metric)
    line = f"- {metric} on {split}: model {fmt(value)}, best baseline {name} {fmt(base)}, margin {value - base:+.4f}"
    if ci:
        clears = ci["low"] > base
        line += f"; the model's interval {fmt(ci['low'])} – {fmt(ci['high'])} " + (
            "lies above the baseline" if clears else "includes or falls below the baseline"
        )
    return line


def weakest_slice(error_analysis: dict[str, Any], split: str = "test", level: float = 0.95) -> str:
    """The error analysis's weakest slice (its own rule: the lowest accuracy among slices of
    at least ``MIN_SLICE_SIZE`` examples while any exists), with a Wilson interval at
    ``level`` (``evaluate.confidence_level``, as reports/errors.md)."""
    from nlpflow.evaluation.error_analysis import SliceStats, weakest_slice

    slices = {
        family: {
            value: SliceStats(int(s["n"]), round(float(s["accuracy"]) * int(s["n"])))
            for value, s in values.items()
        }
        for family, values in error_analysis.get(split, {}).get("slices", {}).items()
    }
    found = weakest_slice(slices)
    if found is None:
        return f"- no weakest slice on {split}: every slice scores the same"
    family, value, stats = found
    low, high = stats.interval(level)
    overall = error_analysis[split].get("accuracy")
    return (
        f"- weakest slice on {split}: {family} = {value}: accuracy {fmt(stats.accuracy)} "
        f"({100 * level:g}% Wilson interval {fmt(low)} – {fmt(high)}) on {stats.n} examples; "
        f"overall accuracy {fmt(overall)}"
    )


def slices_table(error_analysis: dict[str, Any], split: str = "test") -> str:
    """Accuracy per slice (family, value, n, accuracy), as the error analysis measured it."""
    slices = error_analysis.get(split, {}).get("slices", {})
    rows = [
        [family, value, s["n"], s["accuracy"]]
        for family, values in slices.items()
        for value, s in values.items()
    ]
    return md_table(["slice", "value", "n", "accuracy"], rows) if rows else "no slices"


def behaviour_table(error_analysis: dict[str, Any], split: str = "test") -> str:
    """The behavioural tests: how many inputs each tried and how many failed."""
    tests = error_analysis.get(split, {}).get("behaviour", {})
    rows = [
        [name.replace("_", " "), t.get("tested"), t.get("failed"), t.get("failure_rate")]
        for name, t in tests.items()
    ]
    if not rows:
        return "no behavioural tests for this task"
    return md_table(["test", "tested", "failed", "failure rate"], rows)


def markdown_section(text: str, heading: str) -> str:
    """The section of a markdown report under ``## heading`` (up to the next ``## ``),
    without its heading; empty when absent."""
    lines = text.splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("## "):
            if inside:
                break
            inside = line[3:].strip() == heading
            continue
        if inside:
            out.append(line)
    return "\n".join(out).strip()


def demote(markdown: str, levels: int = 2) -> str:
    """A report's headings moved ``levels`` down (``# Data card`` -> ``### Data card``), so
    that it nests under the notebook's own section headings."""
    out = []
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#"):
            line = "#" * levels + line
        out.append(line)
    return "\n".join(out)


def params_subset(params: dict[str, Any], keys: Sequence[str]) -> str:
    """The named params.yaml sections, as YAML."""
    import yaml

    return yaml.safe_dump({k: params[k] for k in keys if k in params}, sort_keys=False)
