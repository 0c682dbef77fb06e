"""``reports/errors.md``: the error analysis as markdown that reads well in a pull request.

A short summary first (overall metric with its interval, baseline margin, weakest slice, worst
confusion, behavioural failure rates), then linked figures and the tables behind each line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nlpflow.evaluation.behaviour import TestResult
from nlpflow.evaluation.error_analysis import (
    MIN_SLICE_SIZE,
    Decision,
    Slices,
    confusion_pairs,
    doubt,
    error_confidence,
    is_correct,
    least_sure,
    misclassified,
    possible_label_errors,
    weakest_in,
    weakest_slice,
)
from nlpflow.markdown import cell, interval, level_label, table, with_interval

# A majority baseline this accurate means accuracy says little: the summary says so.
IMBALANCED = 0.75
FAMILY_TITLES = {"label": "true label", "length": "input length"}
METRIC_NAMES = {
    "accuracy": "accuracy",
    "f1_macro": "macro-F1",
    "balanced_accuracy": "balanced accuracy",
    "pr_auc": "PR-AUC",
    "roc_auc": "ROC-AUC",
    "mcc": "MCC",
    "f1": "entity F1",
    "token_accuracy": "token accuracy",
}


@dataclass
class ReportInputs:
    """Everything the report shows, gathered by the stage."""

    rows: Sequence[dict[str, Any]]
    slices: Slices
    text_fields: Sequence[str]
    metadata_fields: Sequence[str]
    label_names: Sequence[str]
    max_examples: int
    task: str = "sequence"
    split: str = "test"
    evaluate: dict[str, Any] | None = None  # this split's block of metrics/evaluate.json
    threshold: dict[str, float] | None = None
    behaviour: list[TestResult] | None = None
    behaviour_note: str = ""
    figures: list[tuple[str, str]] = field(default_factory=list)  # (title, relative path)
    label_error_confidence: float = 0.9
    length_unit: str = "characters, all text fields"
    # evaluate.confidence_level: the level of metrics/evaluate.json's bootstrap intervals,
    # and the level the slices' Wilson intervals are computed at
    confidence_level: float = 0.95


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _value_name(value: Any) -> str:
    return "(missing)" if value is None else str(value)


def _main_metrics(task: str) -> list[str]:
    return ["f1", "token_accuracy"] if task == "token" else ["accuracy", "f1_macro", "pr_auc"]


def _number(value: Any) -> str:
    """A metric value, or ``n/a`` where it is undefined (null: PR-AUC without positives)."""
    return "n/a" if value is None else f"{value:.4f}"


def missing_classes(inp: ReportInputs) -> list[str]:
    """Labels of a sequence task absent from this split (from the evaluate metrics' per-class
    support, else from the rows): with one class left, ranking metrics are undefined."""
    if inp.task != "sequence":
        return []
    per_class = (inp.evaluate or {}).get("per_class")
    if isinstance(per_class, dict) and per_class:
        return [n for n in inp.label_names if not (per_class.get(n) or {}).get("support")]
    present = {r["label"] for r in inp.rows}
    return [n for n in inp.label_names if n not in present] if inp.rows else []


def _single_class(inp: ReportInputs, missing: list[str]) -> list[str]:
    present = [n for n in inp.label_names if n not in missing]
    if not missing or not present:
        return []
    only = "', '".join(present)
    absent = "', '".join(missing)
    return [
        f"- **⚠ Classes missing from {inp.split}:** no '{absent}' example, only '{only}': "
        "PR-AUC, ROC-AUC, MCC and macro-F1 are undefined or meaningless on this split and "
        "accuracy can be perfect without the model telling classes apart; read the recall of "
        f"'{only}' only, and give the split examples of every class (a larger or stratified "
        "split, data.splits)"
    ]


def _with_ci(m: dict[str, Any], key: str, level: float) -> str:
    ci = m.get("ci", {}).get(key)
    text = f"{METRIC_NAMES.get(key, key)} {_number(m[key])}"
    return with_interval(text, ci["low"], ci["high"], level) if ci else text


def _sentence(row: dict[str, Any], field_: str) -> str:
    """A token task's words, each wrong one marked ``word[gold→predicted]``."""
    out = []
    for w, t, p in zip(row[field_], row["label"], row["prediction"], strict=True):
        out.append(w if t == p else f"{w}[{t}→{p}]")
    return " ".join(out)


# --------------------------------------------------------------------------- sections


def _summary(inp: ReportInputs) -> list[str]:
    rows = inp.rows
    n = len(rows)
    correct = sum(is_correct(r) for r in rows)
    unit = "sentences" if inp.task == "token" else "examples"
    out = [f"# Error analysis ({inp.split} split)", ""]
    m = inp.evaluate
    main = _main_metrics(inp.task)
    if m and all(k in m for k in main[:1]):
        shown = [_with_ci(m, k, inp.confidence_level) for k in main if k in m]
        out.append(f"- **Model:** {'; '.join(shown)}; {n} {unit}")
    else:
        acc = correct / n if n else 0.0
        out.append(f"- **Accuracy:** {acc:.4f} ({correct} of {n} correct)")
    missing = missing_classes(inp)
    out += _single_class(inp, missing)
    if m and m.get("baselines"):
        keys = [k for k in main[:2] if m.get(k) is not None] or main[:1]
        names = " / ".join(METRIC_NAMES.get(k, k) for k in keys)
        parts, margins = [], []
        for b, values in m["baselines"].items():
            if not all(k in values for k in keys):
                continue
            shown = []
            for k in keys:
                margin = values.get("margin", {}).get(k)
                if margin is None and m.get(k) is not None and values[k] is not None:
                    margin = m[k] - values[k]
                margins.append(margin)
                shown.append(
                    _number(values[k]) + (f" ({margin:+.4f})" if margin is not None else "")
                )
            parts.append(f"{b} {' / '.join(shown)}")
        worst = min((x for x in margins if x is not None), default=None)
        warn = " ⚠ no better than a baseline" if worst is not None and worst <= 0 else ""
        if parts:
            out.append(f"- **Baselines ({names}; model margin):** {'; '.join(parts)}{warn}")
        majority = m["baselines"].get("majority", {})
        # Recommend only metrics defined on this split: never PR-AUC where it is null.
        judge = [k for k in ("f1_macro", "pr_auc") if m.get(k) is not None]
        imbalanced = (majority.get("accuracy") or 0.0) >= IMBALANCED
        if inp.task == "sequence" and imbalanced and judge and not missing:
            others = [
                f"{METRIC_NAMES[k]} {_number(majority[k])}"
                for k in ("f1_macro", "pr_auc")
                if k in majority
            ]
            out.append(
                "- **Imbalanced labels:** always predicting the majority label already scores "
                f"accuracy {majority['accuracy']:.4f} ({', '.join(others)}): judge the model by "
                f"{' and '.join(METRIC_NAMES[k] for k in judge)}, not accuracy"
            )
    errors = n - correct
    out.append(f"- **Errors:** {errors} of {n} {unit} ({_pct(errors / n if n else 0.0)})")
    weakest = weakest_slice(inp.slices)
    if weakest is None:
        out.append("- **Weakest slice:** none; every slice scores the same")
    else:
        out.append(f"- **Weakest slice:** {_slice_sentence(*weakest, inp.confidence_level)}")
    for family in inp.slices:
        if family in ("label", "length"):
            continue
        w = weakest_slice(inp.slices, families=[family])
        if w is not None and w != weakest:
            out.append(f"- **Weakest {family}:** {_slice_sentence(*w, inp.confidence_level)}")
    pairs = confusion_pairs(rows)
    if pairs:
        t, p, count, support = pairs[0]
        what = "words" if inp.task == "token" else "examples"
        out.append(
            f"- **Worst confusion:** {cell(t)} → {cell(p)}: {count} of {support} "
            f"'{cell(t)}' {what} ({_pct(count / support if support else 0.0)})"
        )
    if inp.behaviour:
        ran = [r for r in inp.behaviour if not r.skipped]
        if ran:
            parts = [f"{r.name} {_pct(r.failure_rate)} ({r.failed}/{r.tested})" for r in ran]
            out.append(f"- **Behavioural failure rates:** {'; '.join(parts)}")
    elif inp.behaviour_note:
        out.append(f"- **Behavioural tests:** {inp.behaviour_note}")
    out.append("")
    return out


def _slice_sentence(family: str, value: str, stats: Any, level: float) -> str:
    low, high = stats.interval(level)
    accuracy = with_interval(f"accuracy {stats.accuracy:.4f}", low, high, level, digits=2)
    return f"{family} = {cell(value)}: {accuracy} on {stats.n} examples ({stats.errors} errors)"


def _figures(inp: ReportInputs) -> list[str]:
    if not inp.figures:
        return []
    out = ["## Figures", ""]
    out += [f"- [{title}]({path})" for title, path in inp.figures]
    first = inp.figures[0]
    out += ["", f"![{first[0]}]({first[1]})", ""]
    return out


def _baselines(inp: ReportInputs) -> list[str]:
    m = inp.evaluate
    if not m or not m.get("baselines"):
        return []
    keys = (
        ["f1", "precision", "recall", "token_accuracy"]
        if inp.task == "token"
        else ["accuracy", "balanced_accuracy", "f1_macro", "mcc", "pr_auc"]
    )
    keys = [k for k in keys if k in m]
    out = ["## Model and baselines", ""]
    out.append(
        "Baselines are fitted on the train split and scored on this split; the margin is the "
        "model's score minus the baseline's."
    )
    out.append("")
    header = ["", *(METRIC_NAMES.get(k, k) for k in keys)]
    body = [["**model**", *(f"**{_number(m[k])}**" for k in keys)]]
    for b, values in m["baselines"].items():
        cells = []
        for k in keys:
            if k in values:
                margin = values.get("margin", {}).get(k)
                cells.append(
                    _number(values[k]) + (f" ({margin:+.4f})" if margin is not None else "")
                )
            else:
                cells.append("–")
        body.append([b, *cells])
    out += table(header, body, "l" + "r" * len(keys))
    if inp.threshold:
        t = inp.threshold
        out += [
            "",
            f"Decision threshold on p(positive): fixed {t['fixed']:.4f}, tuned on validation "
            f"(best F1) {t['tuned']:.4f}; the predictions use {t['used']:.4f}.",
        ]
        at = m.get("at_threshold", {})
        if at:
            out.append("")
            rows = [
                [which, f"{v['threshold']:.4f}", f"{v['precision']:.4f}", f"{v['recall']:.4f}",
                 f"{v['f1']:.4f}", f"{v['accuracy']:.4f}"]
                for which, v in at.items()
            ]  # fmt: skip
            out += table(
                ["threshold", "value", "precision", "recall", "F1", "accuracy"], rows, "lrrrrr"
            )
    out.append("")
    return out


def _behaviour(inp: ReportInputs) -> list[str]:
    if inp.behaviour is None:
        if not inp.behaviour_note:
            return []
        return ["## Behavioural tests", "", inp.behaviour_note, ""]
    out = ["## Behavioural tests", ""]
    if not inp.behaviour:
        return [*out, "None configured (`error_analysis.behaviour`).", ""]
    body = []
    for r in inp.behaviour:
        if r.skipped:
            body.append([r.name, r.kind, "–", "–", "skipped", r.skipped])
        else:
            body.append(
                [r.name, r.kind, str(r.tested), str(r.failed), _pct(r.failure_rate),
                 r.description]
            )  # fmt: skip
    out += table(["test", "kind", "tested", "failed", "failure rate", "what"], body, "llrrrl")
    for r in inp.behaviour:
        if not r.failures:
            continue
        out += ["", f"### Failing: {cell(r.name)}", ""]
        if r.kind == "minimum functionality":
            rows = [
                [*(f["case"][k] for k in inp.text_fields), f["expected"],
                 f["got"]]
                for f in r.failures
            ]  # fmt: skip
            out += table(
                [*inp.text_fields, "expected", "got"], rows, "l" * (len(inp.text_fields) + 2)
            )
        else:
            rows = []
            for f in r.failures:
                changed = [k for k in inp.text_fields if f["original"][k] != f["perturbed"][k]]
                rows.append(
                    [f["id"],
                     " / ".join(f["original"][k] for k in changed),
                     " / ".join(repr(f["perturbed"][k]) for k in changed),
                     f["before"], f["after"]]
                )  # fmt: skip
            out += table(["id", "original", "perturbed", "before", "after"], rows, "lllll")
    out.append("")
    return out


def _slices(inp: ReportInputs) -> list[str]:
    out = ["## Accuracy by slice", ""]
    what = "sentences tagged entirely right" if inp.task == "token" else "examples right"
    out.append(
        f"Accuracy is the share of {what}, with a {100 * inp.confidence_level:.10g}% Wilson "
        "interval. ⚠ marks the lowest "
        f"accuracy in each group, among slices of at least {MIN_SLICE_SIZE} examples where the "
        "group has any."
    )
    for family, values in inp.slices.items():
        title = FAMILY_TITLES.get(family, family)
        if family == "length":
            title = f"{title} ({inp.length_unit})"
        if family == "label" and inp.task == "token":
            title = "entity type in the sentence"
        out += ["", f"### {title}", ""]
        marked = weakest_in(values)
        body = []
        for k, s in values.items():
            low, high = s.interval(inp.confidence_level)
            body.append(
                [
                    f"**{k}**" if k in marked else k,
                    str(s.n),
                    f"{s.accuracy:.4f}",
                    interval(low, high, digits=2),
                    str(s.errors),
                    "⚠ weakest" if k in marked else "",
                ]
            )
        header = [family, "n", "accuracy", level_label(inp.confidence_level), "errors", ""]
        out += table(header, body, "lrrrrl")
    out.append("")
    return out


def _confusions(inp: ReportInputs) -> list[str]:
    pairs = confusion_pairs(inp.rows)
    out = ["## Confusion pairs", ""]
    if not pairs:
        return [*out, "None: no prediction differs from its label.", ""]
    unit = "words" if inp.task == "token" else "examples"
    out.append(
        f"Wrong (true → predicted) pairs by count, with the share of the true label's {unit}."
    )
    out.append("")
    body = [[t, p, str(n), _pct(n / s if s else 0.0)] for t, p, n, s in pairs[: inp.max_examples]]
    out += table(["true", "predicted", "count", "share of true"], body, "llrr")
    out.append("")
    return out


def _example_table(inp: ReportInputs, rows: Sequence[dict[str, Any]], errors: bool) -> list[str]:
    if inp.task == "token":
        field_ = inp.text_fields[0]
        header = ["#", "id", "words (wrong ones as word[true→predicted])", *inp.metadata_fields,
                  "wrong words", "p(most confident error)" if errors else "smallest margin"]  # fmt: skip
        body = []
        for i, r in enumerate(rows, start=1):
            wrong = sum(t != p for t, p in zip(r["label"], r["prediction"], strict=True))
            score = error_confidence(r) if errors else doubt(r)
            body.append(
                [str(i), r["id"], _sentence(r, field_),
                 *(_value_name(r.get(f)) for f in inp.metadata_fields),
                 str(wrong), f"{score:.4f}"]
            )  # fmt: skip
        # the sentence column is the point of this table: cut later than other cells
        return table(header, body, "rll" + "l" * len(inp.metadata_fields) + "rr", limit=200)
    header = ["#", "id", *inp.text_fields, *inp.metadata_fields, "true", "predicted",
              "p(predicted)", "p(true)"]  # fmt: skip
    body = [
        [
            str(i),
            r["id"],
            *(r[f] for f in inp.text_fields),
            *(_value_name(r.get(f)) for f in inp.metadata_fields),
            r["label"],
            r["prediction"],
            f"{float(r['confidence']):.4f}",
            f"{float(r['probabilities'][r['label']]):.4f}",
        ]
        for i, r in enumerate(rows, start=1)
    ]
    align = "rl" + "l" * (len(inp.text_fields) + len(inp.metadata_fields)) + "llrr"
    return table(header, body, align)


def _misclassified(inp: ReportInputs) -> list[str]:
    errors = misclassified(inp.rows, len(inp.rows))
    shown = errors[: inp.max_examples]
    out = ["## Misclassified examples", ""]
    if not errors:
        return [*out, "None: every example is classified correctly.", ""]
    out.append(
        f"Most confident errors first; {len(shown)} of {len(errors)} shown "
        f"(`error_analysis.max_examples` = {inp.max_examples})."
    )
    out.append("")
    out += _example_table(inp, shown, errors=True)
    out.append("")
    return out


def _least_sure(inp: ReportInputs) -> list[str]:
    rows = least_sure(inp.rows, inp.max_examples)
    out = ["## Least sure", ""]
    out.append(
        "The examples with the smallest gap between the two most probable labels, right or "
        "wrong: where a little more data or a better model would change the answer."
    )
    out.append("")
    out += _example_table(inp, rows, errors=False)
    out.append("")
    return out


def _label_errors(inp: ReportInputs) -> list[str]:
    found: list[Decision] = possible_label_errors(
        inp.rows, inp.label_error_confidence, inp.max_examples
    )
    out = ["## Possible label errors", ""]
    out.append(
        f"Wrong predictions made with probability ≥ {inp.label_error_confidence:g}: the model "
        "disagrees with the gold label and is sure of it. Check each by hand; some will be "
        "annotation mistakes, the rest the model's most serious errors."
    )
    out.append("")
    if not found:
        return [*out, "None at this confidence.", ""]
    if inp.task == "token":
        field_ = inp.text_fields[0]
        body = [
            [d.row["id"], d.row[field_][d.word or 0],
             " ".join(d.row[field_]), d.label, d.prediction,
             f"{d.confidence:.4f}"]
            for d in found
        ]  # fmt: skip
        out += table(
            ["id", "word", "sentence", "gold", "predicted", "p(predicted)"],
            body,
            "lllllr",
            limit=160,
        )
    else:
        body = [
            [d.row["id"], *(d.row[f] for f in inp.text_fields),
             d.label, d.prediction, f"{d.confidence:.4f}", f"{d.p_label:.4f}"]
            for d in found
        ]  # fmt: skip
        out += table(
            ["id", *inp.text_fields, "gold", "predicted", "p(predicted)", "p(gold)"],
            body,
            "l" + "l" * len(inp.text_fields) + "llrr",
        )
    out.append("")
    return out


def _confusion_matrix(inp: ReportInputs) -> list[str]:
    labels = list(inp.label_names)
    if len(labels) > 12:
        return []
    out = ["## Confusion matrix", ""]
    unit = "words" if inp.task == "token" else "examples"
    out += [f"Rows: true label; columns: predicted label ({unit}).", ""]
    counts = {(a, p): 0 for a in labels for p in labels}
    if inp.task == "token":
        for r in inp.rows:
            for a, p in zip(r["label"], r["prediction"], strict=True):
                counts[(a, p)] += 1
    else:
        for r in inp.rows:
            counts[(r["label"], r["prediction"])] += 1
    body = [[a, *(str(counts[(a, p)]) for p in labels)] for a in labels]
    out += table(["true \\ predicted", *labels], body, "l" + "r" * len(labels))
    out.append("")
    return out


def render_report(inp: ReportInputs) -> str:
    """The whole markdown report."""
    out: list[str] = []
    for section in (
        _summary, _figures, _baselines, _behaviour, _slices, _confusions, _misclassified,
        _least_sure, _label_errors, _confusion_matrix,
    ):  # fmt: skip
        out += section(inp)
    return "\n".join(out).rstrip("\n") + "\n"
