"""``nlpflow review``: a markdown review of a change, for a pull request.

Compares a *target* (the workspace, a DVC experiment, or any git revision) against a *base*
revision (``main``, ``origin/main``, a commit) and writes one markdown file with:

- the params diff (every key of params.yaml that changed, added or removed);
- the metrics diff of every metrics file dvc.yaml declares: a headline table of the main
  validation and test metrics with the evaluate stage's bootstrap intervals of each side, the
  training outcome (epochs, stop reason), then every changed number in a collapsed section;
- the changed plots as images: each plot dvc.yaml declares whose data changed is drawn with
  base and target overlaid, and every changed PNG (plots/, reports/) is shown before/after.

Images go into ``<out dir>/images``, linked relatively, so the folder can be uploaded as a CI
artifact or posted by CML (``cml comment update --publish``), which uploads linked images.

Files are read from git (``git show REV:path``; metrics here are kept in git), falling back
to ``dvc.api`` for outputs kept in the DVC cache; the workspace is read from disk. Text
metrics DVC leaves out of ``dvc metrics diff`` (``stop_reason``) are compared too.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nlpflow.errors import UserError
from nlpflow.markdown import table, with_interval
from nlpflow.params import EvaluateParams, read_yaml
from nlpflow.revisions import WORKSPACE, Revision, files_at, read_at, resolve

IMAGE_DIRS = ("plots", "reports")
HEADLINE_SPLITS = ("validation", "test")
TRAIN_HEADLINE = ("epochs_run", "best_epoch", "stop_reason", "best.val_f1_macro", "best.val_loss")
LINE_TEMPLATES = ("linear", "simple", "scatter", "smooth")
LEVEL_KEY = "evaluate.confidence_level"
DEFAULT_LEVEL = EvaluateParams().confidence_level


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default="main", help="the base revision (default: %(default)s)")
    p.add_argument(
        "--target",
        default=WORKSPACE,
        help="what to review: 'workspace' (default), a DVC experiment name or a git revision",
    )
    p.add_argument("--repo", default=".", help="the DVC project (default: %(default)s)")
    p.add_argument("--out", default="review/review.md", help="markdown file; images go next to it")
    p.add_argument(
        "--max-metrics", type=int, default=60, help="changed metrics listed in full (default: 60)"
    )
    p.add_argument(
        "--rel-tol", type=float, default=1e-9, help="relative change below which a number is equal"
    )


def run(args: argparse.Namespace) -> int:
    """``nlpflow review``: write the review's markdown (and images beside it); exit code 0."""
    out = Path(args.out)
    if not out.is_absolute():
        out = Path.cwd() / out
    review = build_review(Path(args.repo).resolve(), args.base, args.target, out, args.rel_tol)
    text = render(review, args.max_metrics)
    out.parent.mkdir(parents=True, exist_ok=True)
    from nlpflow.io import write_text

    write_text(out, text)
    print(
        f"review: {review.target_label} vs {review.base_label}: {len(review.params)} params, "
        f"{sum(1 for m in review.metrics if m.changed)} metrics and {len(review.images)} "
        f"images changed -> {out}"
    )
    return 0


# --------------------------------------------------------------------------- reading


class Side:
    """One side of the comparison: a resolved revision (a commit or the workspace)."""

    def __init__(self, repo: Path, rev: Revision) -> None:
        self.repo, self.rev, self.label = repo, rev, rev.label

    def read(self, path: str) -> bytes | None:
        return read_at(self.repo, self.rev, path)

    def files(self, dirs: Sequence[str]) -> list[str]:
        return files_at(self.repo, self.rev, dirs)

    def yaml(self, path: str) -> Any:
        raw = self.read(path)
        if raw is None:
            return None
        try:
            return read_yaml(raw)  # YAML 1.2, as DVC writes it
        except yaml.YAMLError:
            return None

    def json(self, path: str) -> Any:
        raw = self.read(path)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return None


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists of scalars kept whole; lists of dicts indexed."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(data, list) and any(isinstance(v, dict | list) for v in data):
        for i, v in enumerate(data):
            out.update(flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = data
    return out


# --------------------------------------------------------------------------- the review


@dataclass
class ParamChange:
    key: str
    old: Any
    new: Any


@dataclass
class MetricChange:
    """One metric of one metrics file on both sides, with each side's evaluate-stage interval
    (``<split>.ci.<metric>.low/high``) when it has one."""

    file: str
    key: str
    old: Any
    new: Any
    old_ci: tuple[float, float] | None = None
    new_ci: tuple[float, float] | None = None
    changed: bool = True

    @property
    def diff(self) -> float | None:
        if _number(self.old) and _number(self.new):
            return float(self.new) - float(self.old)
        return None


@dataclass
class ImageChange:
    title: str
    base: str | None  # paths relative to the markdown file
    target: str | None
    overlay: str | None = None  # one image with both sides drawn


@dataclass
class Review:
    """Everything the review shows, before rendering."""

    base_label: str
    target_label: str
    params: list[ParamChange]
    metrics: list[MetricChange]  # changed ones, plus headline ones that did not change
    headline: list[MetricChange]
    images: list[ImageChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # evaluate.confidence_level of (base, target): the level of each side's intervals
    levels: tuple[float, float] = (DEFAULT_LEVEL, DEFAULT_LEVEL)


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _equal(a: Any, b: Any, rel_tol: float) -> bool:
    if _number(a) and _number(b):
        return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=1e-12)
    return bool(a == b)


def build_review(repo: Path, base: str, target: str, out: Path, rel_tol: float = 1e-9) -> Review:
    """Compare ``target`` (workspace, git revision or experiment name) with ``base`` (a revision).

    Reads params.yaml, dvc.yaml's metrics files and plots on both sides; draws changed line
    plots (both sides overlaid) and copies changed PNG files into ``out.parent / 'images'``.
    Numbers within ``rel_tol`` (relative) of each other count as unchanged.

    Raises:
        UserError: a revision cannot be resolved, or ``base`` is the workspace."""
    base_rev, target_rev = resolve(repo, base), resolve(repo, target)
    if base_rev.sha is None:
        raise UserError("--base must be a revision (the workspace can only be the target)")
    a, b = Side(repo, base_rev), Side(repo, target_rev)

    # params
    pa, pb = flatten(a.yaml("params.yaml") or {}), flatten(b.yaml("params.yaml") or {})
    params = [
        ParamChange(k, pa.get(k), pb.get(k))
        for k in sorted(set(pa) | set(pb))
        if not _equal(pa.get(k), pb.get(k), rel_tol)
    ]

    # metrics
    dvc_yaml = b.yaml("dvc.yaml") or a.yaml("dvc.yaml") or {}
    metric_files = [m for m in dvc_yaml.get("metrics", []) if isinstance(m, str)]
    metrics: list[MetricChange] = []
    headline: list[MetricChange] = []
    for file in metric_files:
        fa, fb = flatten(a.json(file) or {}), flatten(b.json(file) or {})
        for key in sorted(set(fa) | set(fb)):
            if ".ci." in f".{key}.":
                continue  # shown as the intervals of their metric
            old, new = fa.get(key), fb.get(key)
            if isinstance(old, list) or isinstance(new, list):
                continue
            change = MetricChange(file, key, old, new, changed=not _equal(old, new, rel_tol))
            change.old_ci, change.new_ci = _ci(fa, key), _ci(fb, key)
            if _is_headline(file, key, fa, fb):
                headline.append(change)
            if change.changed:
                metrics.append(change)

    review = Review(a.label, b.label, params, metrics, headline)
    review.levels = (_level(pa), _level(pb))
    review.images = _images(a, b, dvc_yaml, out)
    if not metric_files:
        review.notes.append("dvc.yaml declares no metrics files.")
    return review


def _level(flat_params: dict[str, Any]) -> float:
    """The confidence level a side's evaluate stage ran with (params.yaml, else the default)."""
    value = flat_params.get(LEVEL_KEY, DEFAULT_LEVEL)
    return float(value) if _number(value) and 0 < value < 1 else DEFAULT_LEVEL


def _ci(flat: dict[str, Any], key: str) -> tuple[float, float] | None:
    """The evaluate stage's interval of ``<split>.<metric>``: ``<split>.ci.<metric>.low/high``."""
    head, _, metric = key.rpartition(".")
    if not head:
        return None
    low, high = flat.get(f"{head}.ci.{metric}.low"), flat.get(f"{head}.ci.{metric}.high")
    if (
        isinstance(low, int | float)
        and isinstance(high, int | float)
        and _number(low)
        and _number(high)
    ):
        return float(low), float(high)
    return None


def _is_headline(file: str, key: str, fa: dict[str, Any], fb: dict[str, Any]) -> bool:
    name = Path(file).stem
    if name == "train":
        return key in TRAIN_HEADLINE
    split, _, metric = key.partition(".")
    if split in HEADLINE_SPLITS and "." not in metric:
        return _ci(fa, key) is not None or _ci(fb, key) is not None
    return False


# --------------------------------------------------------------------------- images


def _safe(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", path)


def _images(a: Side, b: Side, dvc_yaml: dict[str, Any], out: Path) -> list[ImageChange]:
    images_dir = out.parent / "images"
    changes: list[ImageChange] = []
    rel = Path("images")

    # 1. dvc.yaml plots whose data changed: both sides drawn in one figure
    for title, spec in _plot_defs(dvc_yaml):
        if spec.get("template", "linear") not in LINE_TEMPLATES:
            continue
        x = spec.get("x")
        ys = spec.get("y")
        if not isinstance(x, str) or not isinstance(ys, dict):
            continue
        files = list(ys)
        if all(a.read(f) == b.read(f) for f in files):
            continue
        name = f"plot_{_safe(title)}.png"
        if _overlay(title, x, ys, a, b, images_dir / name):
            changes.append(ImageChange(title, None, None, str(rel / name)))

    # 2. PNG files that changed: before and after
    pngs = sorted({p for p in a.files(IMAGE_DIRS) + b.files(IMAGE_DIRS) if p.endswith(".png")})
    for path in pngs:
        old, new = a.read(path), b.read(path)
        if old == new:
            continue
        entry = ImageChange(path, None, None)
        for side, data in (("base", old), ("target", new)):
            if data is None:
                continue
            name = f"{side}_{_safe(path)}"
            (images_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (images_dir / name).write_bytes(data)
            setattr(entry, side, str(rel / name))
        changes.append(entry)
    return changes


def _plot_defs(dvc_yaml: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for item in dvc_yaml.get("plots", []) or []:
        if isinstance(item, dict):
            for title, spec in item.items():
                if isinstance(spec, dict):
                    out.append((str(title), spec))
    return out


def _rows(raw: bytes | None, path: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    text = raw.decode("utf-8", "replace")
    if path.endswith(".json"):
        data = json.loads(text)
        if isinstance(data, dict):  # {"name": [rows]}
            data = next((v for v in data.values() if isinstance(v, list)), [])
        return [r for r in data if isinstance(r, dict)]
    delimiter = "\t" if path.endswith(".tsv") else ","
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


def _overlay(title: str, x: str, ys: dict[str, Any], a: Side, b: Side, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = 0
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    n = 0
    for file, cols in ys.items():
        for col in [cols] if isinstance(cols, str) else list(cols):
            color = colors[n % len(colors)]
            n += 1
            for side, style in ((a, "--"), (b, "-")):
                try:
                    rows = _rows(side.read(file), file)
                    pts = [
                        (float(r[x]), float(r[col]))
                        for r in rows
                        if r.get(x) not in (None, "") and r.get(col) not in (None, "")
                    ]
                except (ValueError, KeyError, json.JSONDecodeError):
                    continue
                if pts:
                    label = f"{col} ({'base' if side is a else 'this change'})"
                    ax.plot(*zip(*pts, strict=True), style, color=color, label=label)
                    drawn += 1
    if drawn:
        ax.set_xlabel(x)
        ax.set_title(f"{title}\n(dashed: base, solid: this change)", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90)
    plt.close(fig)
    return drawn > 0


# --------------------------------------------------------------------------- markdown


def _fmt(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, list):
        return "[" + ", ".join(_fmt(v) for v in x) + "]"
    return str(x)


def _with_ci(value: Any, ci: tuple[float, float] | None, level: float) -> str:
    text = _fmt(value)
    return with_interval(text, ci[0], ci[1], level) if ci else text


def _delta(m: MetricChange) -> str:
    d = m.diff
    if d is None:
        return "" if not m.changed else "changed"
    if not m.changed:
        return "="
    note = ""
    if m.old_ci and m.new_ci and _number(m.new):
        lo, hi = m.old_ci
        inside = lo <= float(m.new) <= hi
        note = " (inside base interval)" if inside else " (outside base interval)"
    return f"{d:+.4g}{note}"


def render(r: Review, max_metrics: int = 60) -> str:
    """The review as markdown: parameters, headline metrics with intervals, every changed
    metric (collapsed), changed plots."""
    lines = [f"## Review: {r.target_label} vs {r.base_label}", ""]

    lines += [f"### Parameters ({len(r.params)} changed)", ""]
    if r.params:
        rows = [[f"`{p.key}`", _fmt(p.old), _fmt(p.new)] for p in r.params]
        lines += table(["parameter", "base", "this change"], rows, limit=None)
    else:
        lines.append("No parameter changed.")
    lines.append("")

    lines += ["### Metrics", ""]
    if r.headline:
        base_level, target_level = r.levels
        rows = [
            [
                f"{Path(m.file).stem}: `{m.key}`",
                _with_ci(m.old, m.old_ci, base_level),
                _with_ci(m.new, m.new_ci, target_level),
                _delta(m),
            ]
            for m in sorted(r.headline, key=lambda m: (m.file, m.key))
        ]
        lines += table(["metric", "base", "this change", "change"], rows, "lrrr", limit=None)
        lines += [
            "",
            "In parentheses: the evaluate stage's bootstrap interval of each side, at the "
            "level of that side's `evaluate.confidence_level`. Intervals that overlap do not "
            "prove there is no difference: `nlpflow compare` gives a paired test on the same "
            "examples.",
            "",
        ]
    changed = [m for m in r.metrics if m.changed]
    if changed:
        rows = [
            [m.file, f"`{m.key}`", _fmt(m.old), _fmt(m.new), _delta(m)]
            for m in changed[:max_metrics]
        ]
        if len(changed) > max_metrics:
            rows.append(["…", f"{len(changed) - max_metrics} more", "", "", ""])
        lines += [f"<details><summary>All {len(changed)} changed metrics</summary>", ""]
        lines += table(["file", "metric", "base", "this change", "change"], rows, "llrrr")
        lines += ["", "</details>", ""]
    elif not r.headline:
        lines += ["No metric changed.", ""]
    for note in r.notes:
        lines += [f"> {note}", ""]

    lines += [f"### Plots ({len(r.images)} changed)", ""]
    if not r.images:
        lines += ["No plot changed.", ""]
    overlays = [i for i in r.images if i.overlay]
    pairs = [i for i in r.images if not i.overlay]
    for img in overlays:
        lines += [f"**{img.title}**", "", f"![{img.title}]({img.overlay})", ""]
    if pairs:
        rows = [
            [
                f"`{img.title}`",
                f"![base]({img.base})" if img.base else "(new)",
                f"![this change]({img.target})" if img.target else "(removed)",
            ]
            for img in pairs
        ]
        lines += [
            f"<details><summary>{len(pairs)} changed image file(s), before and after</summary>",
            "",
        ]
        lines += table(["file", "base", "this change"], rows, limit=None)
        lines += ["", "</details>", ""]
    return "\n".join(lines)
