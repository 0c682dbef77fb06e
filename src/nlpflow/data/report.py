"""Describe the data before modelling: figures, plots and a data card a person reads."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from nlpflow.data.prepare import PreparedData
from nlpflow.io import atomic_file, write_json, write_text
from nlpflow.params import SPLITS

PERCENTILES = (5, 50, 95)
EXAMPLES_PER_LABEL = 3
HIST_BINS = 20


def _text(row: dict[str, Any], data: PreparedData) -> str:
    return data.text(row)


def _percentiles(values: np.ndarray) -> dict[str, int]:
    arr = np.asarray(values if len(values) else [0])
    out = {f"p{p}": int(np.percentile(arr, p)) for p in PERCENTILES}
    out["max"] = int(arr.max())
    return out


def _target_stats(values: np.ndarray) -> dict[str, float]:
    """A numeric target's distribution (regression): mean, std, min, percentiles, max."""
    arr = np.asarray(values, dtype=np.float64)
    if not arr.size:
        arr = np.zeros(1)
    out = {"mean": float(arr.mean()), "std": float(arr.std()), "min": float(arr.min())}
    out.update({f"p{p}": float(np.percentile(arr, p)) for p in PERCENTILES})
    out["max"] = float(arr.max())
    return {k: round(v, 6) for k, v in out.items()}


def class_names(data: PreparedData) -> list[str] | None:
    """The classes the card counts: the family's labels, or, for a classification source run
    as generation (``data.text2text.label_task``), the classes its targets are; None for a
    target that is a number or a free text."""
    if data.family.has_classes:
        return data.label_names
    names = data.meta_extra.get("target_labels")
    return list(names) if names is not None else None


def _class_counts(data: PreparedData, split: str, names: list[str]) -> dict[str, int]:
    """How often each class occurs in ``split``: the family's own count, or a label task's
    targets counted."""
    if data.family.has_classes:
        return data.label_counts(split)
    counts = dict.fromkeys(names, 0)
    for r in data.splits[split]:
        counts[str(r[data.label_field])] += 1
    return counts


def describe(data: PreparedData) -> dict[str, Any]:
    """The figures of ``metrics/preprocess.json``: per split rows, label counts (or a
    numeric target's distribution, ``target``), lengths; imbalance (None without classes),
    vocabulary, leakage, skipped rows, warnings. A label task counts its target classes."""
    names = class_names(data)
    classes = names is not None
    report: dict[str, Any] = {
        "source": data.source,
        "task": data.task,
        "label_names": data.label_names,
        "splits": {},
    }
    for split in SPLITS:
        rows = data.splits[split]
        chars, words = data.text_lengths(split)
        report["splits"][split] = {
            "rows": len(rows),
            "labels": _class_counts(data, split, names) if names is not None else {},
            "chars": _percentiles(chars),
            "words": _percentiles(words),
        }
        extra = data.family.split_figures(rows, data.label_field)
        if extra is not None:  # the family's own figures (QA: questions, answers)
            del report["splits"][split]["labels"]
            report["splits"][split].update(extra)
        elif not classes:
            del report["splits"][split]["labels"]
            report["splits"][split]["target"] = _target_stats(data.target_numbers(split))
        if data.cleaning.get(split):
            report["splits"][split]["cleaning"] = data.cleaning[split]
    if classes:
        train_counts = [c for c in report["splits"]["train"]["labels"].values() if c > 0]
        report["imbalance_ratio"] = round(max(train_counts) / min(train_counts), 3)
    else:
        report["imbalance_ratio"] = None
    report["vocabulary_size"] = data.vocabulary_size()
    report["leakage"] = data.leakage.as_dict()
    report["skipped_rows"] = len(data.bad_rows.rows)
    report["warnings"] = list(data.warnings)
    report["reading"] = list(data.bad_rows.notes)
    if data.task == "token":
        report["source_tag_scheme"] = data.source_tag_scheme or "IOB2"
    return report


def _histograms(data: PreparedData) -> tuple[list[dict[str, Any]], np.ndarray]:
    lengths = {s: data.text_lengths(s)[1] for s in SPLITS}
    top = max(int(v.max()) for v in lengths.values())
    edges = np.unique(np.linspace(0, top + 1, HIST_BINS + 1).astype(int))
    rows = []
    counts = {s: np.histogram(lengths[s], bins=edges)[0] for s in SPLITS}
    for i in range(len(edges) - 1):
        rows.append({"words": int(edges[i]), **{s: int(counts[s][i]) for s in SPLITS}})
    return rows, edges


def write_plots(data: PreparedData, report: dict[str, Any], out_dir: Path) -> None:
    """Length histogram per split and label distribution, as DVC plot data and PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    hist, _ = _histograms(data)
    with atomic_file(out_dir / "lengths.tsv") as fh:
        fh.write("words\t" + "\t".join(SPLITS) + "\n")
        for row in hist:
            fh.write("\t".join(str(row[k]) for k in ("words", *SPLITS)) + "\n")
    names = class_names(data)
    if names is not None:
        labels = [
            {"label": name, "split": s, "count": report["splits"][s]["labels"][name]}
            for s in SPLITS
            for name in names
        ]
        write_json(out_dir / "labels.json", labels)
    elif "target" in report["splits"]["train"]:
        targets = {s: data.target_numbers(s) for s in SPLITS}
        edges = np.histogram_bin_edges(np.concatenate(list(targets.values())), bins=HIST_BINS)
        counts = {s: np.histogram(targets[s], bins=edges)[0] for s in SPLITS}
        write_json(
            out_dir / "targets.json",
            [
                {"target": round(float(edges[i]), 6), "split": s, "count": int(counts[s][i])}
                for s in SPLITS
                for i in range(len(edges) - 1)
            ],
        )

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    width = max(1.0, (hist[1]["words"] - hist[0]["words"]) if len(hist) > 1 else 1.0)
    for s, offset in zip(SPLITS, (-0.3, 0, 0.3), strict=True):
        total = max(1, sum(r[s] for r in hist))
        axes[0].bar(
            [r["words"] + offset * width for r in hist],
            [r[s] / total for r in hist],
            width=width * 0.3,
            label=s,
        )
    axes[0].set(title="Input length (words)", xlabel="words", ylabel="share of split")
    axes[0].legend()
    if names is not None:
        y = np.arange(len(names))
        for s, offset in zip(SPLITS, (-0.25, 0, 0.25), strict=True):
            total = max(1, report["splits"][s]["rows"])
            shares = [report["splits"][s]["labels"][n] / total for n in names]
            axes[1].barh(y + offset, shares, height=0.25, label=s)
        # label names come from the file: "$" in one must not be read as mathtext
        axes[1].set_yticks(y, names, parse_math=False)
        axes[1].set(title="Label distribution", xlabel="share of split")
    elif "target" in report["splits"]["train"]:
        for s in SPLITS:
            axes[1].hist(targets[s], bins=edges, density=True, histtype="step", label=s)
        axes[1].set(title=f"Target ({data.label_field})", xlabel="value", ylabel="density")
    else:  # a family's own figures (QA): in the data card's tables, no second plot
        axes[1].set_axis_off()
    if axes[1].has_data():
        axes[1].legend()
    fig.tight_layout()
    for name in ("lengths.png",):
        with atomic_file(out_dir / name, "wb") as fh:
            fig.savefig(fh, format="png", dpi=90)
    plt.close(fig)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    from nlpflow.markdown import table

    return table(header, rows, limit=None)


def data_card(data: PreparedData, report: dict[str, Any], seed: int, plots_rel: str) -> str:
    """``reports/data.md``: the first look at the data, without a notebook."""
    names = class_names(data)
    classes = data.family.has_classes
    kind = f"{data.task} classification" if classes else data.task
    labels = f"{len(data.label_names)} labels" if classes else data.family.target_description
    if names is not None and not classes:  # a classification source run as generation
        kind = f"{data.task}, a label task: the class written out as the target"
        labels = f"{len(names)} classes"
    lines = [
        "# Data card",
        "",
        f"Source: `{data.source}` ({kind}). "
        f"Text field(s): {', '.join(f'`{f}`' for f in data.text_fields)}; "
        f"label field: `{data.label_field}`; {labels}.",
        "",
    ]
    if data.warnings:
        lines += ["## Warnings", ""]
        lines += [f"- **{w}**" for w in data.warnings]
        lines.append("")
    if data.bad_rows.notes:
        lines += ["## How the files were read", ""]
        lines += [f"- {n}" for n in data.bad_rows.notes]
        lines.append("")
    lines += ["## Splits", ""]
    rows = []
    for s in SPLITS:
        r = report["splits"][s]
        rows.append(
            [
                s,
                r["rows"],
                r["words"]["p50"],
                r["words"]["p95"],
                r["words"]["max"],
                r["chars"]["p50"],
                r["chars"]["p95"],
            ]
        )
    lines += _table(
        ["split", "rows", "words p50", "words p95", "words max", "chars p50", "chars p95"], rows
    )
    if names is not None:
        lines += _label_section(report, names)
    elif "target" not in report["splits"]["train"]:
        lines += ["", *data.family.card_lines(report)]
    else:
        keys = ["mean", "std", "min", "p5", "p50", "p95", "max"]
        lines += ["", f"## Target (`{data.label_field}`): {data.family.target_description}", ""]
        lines += _table(
            ["split", *keys],
            [[s, *(f"{report['splits'][s]['target'][k]:.4g}" for k in keys)] for s in SPLITS],
        )
    lines += [
        "",
        f"Vocabulary (distinct lowercased words in train): {report['vocabulary_size']}",
        "",
    ]
    lines += [f"![lengths and labels]({plots_rel}/lengths.png)", ""]
    lines += _cleaning_and_checks(data, report)
    if classes:
        lines += _examples_by_label(data, seed)
    elif names is not None:
        lines += _examples_by_class(data, seed)
    elif "target" in report["splits"]["train"]:
        rng = random.Random(f"card-{seed}")
        train = data.splits["train"]
        picks = sorted(
            rng.sample(train, min(3 * EXAMPLES_PER_LABEL, len(train))),
            key=lambda r: data.family.target_numbers([r], data.label_field)[0],
        )
        lines += ["", "## Examples (train, random, by target)", ""]
        lines += [
            f"- {data.family.example_line(r, _text(r, data), data.label_field)}" for r in picks
        ]
        lines.append("")
    return "\n".join(lines)


def _label_section(report: dict[str, Any], names: list[str]) -> list[str]:
    lines = ["", "## Labels", ""]
    label_rows = []
    for name in names:
        cells: list[Any] = [name]
        for s in SPLITS:
            n, total = (
                report["splits"][s]["labels"][name],
                sum(report["splits"][s]["labels"].values()),
            )
            cells.append(f"{n} ({100 * n / max(1, total):.1f}%)")
        label_rows.append(cells)
    lines += _table(["label", *SPLITS], label_rows)
    ratio = report["imbalance_ratio"]
    lines += ["", f"Imbalance ratio (largest / smallest class in train): **{ratio}**"]
    if ratio >= 3:
        lines.append(
            "> The classes are imbalanced: accuracy alone misleads here. Compare macro-F1 "
            "and the majority baseline, and consider class weights."
        )
    return lines


def _cleaning_and_checks(data: PreparedData, report: dict[str, Any]) -> list[str]:
    lines = ["## Cleaning", ""]
    cleaning = {s: data.cleaning.get(s, {}) for s in SPLITS}
    steps = sorted({k for c in cleaning.values() for k in c})
    if steps:
        lines += _table(
            ["step", *SPLITS], [[k, *(cleaning[s].get(k, 0) for s in SPLITS)] for k in steps]
        )
    else:
        lines.append("No text was changed or dropped by cleaning.")
    leak = report["leakage"]
    lines += ["", "## Leakage between splits", ""]
    lines += _table(
        ["splits", "exact", "normalised"],
        [[p, c["exact"], c["normalised"]] for p, c in leak["pairs"].items()],
    )
    if leak["total"]:
        lines += ["", f"**{leak['total']} text(s) occur in more than one split.** Examples:", ""]
        lines += _table(
            ["splits", "id", "text"], [[e["splits"], e["id"], e["text"]] for e in leak["examples"]]
        )
        if leak["dropped"]:
            lines += ["", f"Dropped from the later split: {leak['dropped']}"]
    lines += ["", "## Skipped rows", ""]
    if data.bad_rows.rows:
        lines.append(f"{len(data.bad_rows.rows)} bad row(s) skipped (`on_bad_rows: skip`):")
        lines.append("")
        lines += _table(
            ["file", "line", "column", "reason", "excerpt"],
            [
                [Path(b.file).name, b.line, b.column, b.reason, b.excerpt]
                for b in data.bad_rows.rows[:20]
            ],
        )
    else:
        lines.append("None.")
    return lines


def _examples_by_label(data: PreparedData, seed: int) -> list[str]:
    lines = ["", "## Examples (train, random per label)", ""]
    for label, picks in data.examples_by_label(seed).items():
        lines += [f"**{label}**", ""]
        for r in picks:
            text = _text(r, data)
            if data.task == "token":
                text = " ".join(
                    w if t == "O" else f"[{w}]{t}"
                    for w, t in zip(r[data.text_fields[0]], r[data.label_field], strict=True)
                )
            lines.append(f"- {text[:200]}")
        lines.append("")
    return lines


def _examples_by_class(data: PreparedData, seed: int) -> list[str]:
    """A label task's examples: up to EXAMPLES_PER_LABEL train inputs per target class,
    picked at random (``card-<seed>``)."""
    rng = random.Random(f"card-{seed}")
    by_class: dict[str, list[dict[str, Any]]] = {}
    for r in data.splits["train"]:
        by_class.setdefault(str(r[data.label_field]), []).append(r)
    lines = ["", "## Examples (train, random per class)", ""]
    for label in sorted(by_class):
        rows = by_class[label]
        lines += [f"**{label}**", ""]
        lines += [
            f"- {_text(r, data)[:200]}"
            for r in rng.sample(rows, min(EXAMPLES_PER_LABEL, len(rows)))
        ]
        lines.append("")
    return lines


def write_report(
    data: PreparedData, report: dict[str, Any], seed: int, plots_dir: Path, card: Path
) -> None:
    """Plots under ``plots_dir`` and the data card at ``card``, linking the plots relatively."""
    write_plots(data, report, plots_dir)
    rel = os.path.relpath(plots_dir.resolve(), card.parent.resolve())
    write_text(card, data_card(data, report, seed, rel))
