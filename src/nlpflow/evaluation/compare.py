"""Compare two experiments on the same test set: paired differences, McNemar, flipped examples.

``nlpflow compare A B`` reads the two predictions files (``data/predictions/test.jsonl``) of
A (the reference: ``main``, a commit, a tag) and B (the candidate: an experiment name, a
branch, ``workspace``, or a path to a predictions file or a project directory), pairs them by
example id and reports:

- each metric of both, the difference B - A with a paired bootstrap interval (both scored on
  the same resampled test set) and the share of resamples where B is not better;
- McNemar's test on the examples exactly one of the two gets right (exact binomial below 25
  such examples, chi-square with continuity correction from there);
- the examples that flipped from right (A) to wrong (B): the regression check, "can the new
  model still solve what the previous one could?", and the count of the opposite flips.

A regression task (numeric labels) is compared on MSE, RMSE, MAE, R², Pearson and Spearman
with the same paired bootstrap (of the squared errors' mean and the rest; for the errors a
negative B - A is better), a sign test in McNemar's place (per example: is B closer to the
truth than A, or farther), and in place of the flips the examples whose absolute error grew.

A multi-label task (a list of labels and a score per label) is compared on micro/macro/weighted
F1, Hamming loss (a negative B - A is better), subset accuracy and LRAP; McNemar's test and the
flips count an example right when its predicted label set is exactly the true one.
An extractive QA task is compared on EM and F1 (overall, HasAns, NoAns) from the records'
per-question scores, McNemar's test on exact matches, the questions A got exactly right and
B does not.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nlpflow.errors import UserError
from nlpflow.evaluation.bootstrap import BatchMetrics, paired_differences
from nlpflow.evaluation.error_analysis import is_correct
from nlpflow.evaluation.scoring import (
    SEQUENCE_MAIN,
    TOKEN_MAIN,
    sequence_batch_metrics,
    token_batch_metrics,
    token_counts,
)
from nlpflow.markdown import interval, level_label, table
from nlpflow.revisions import WORKSPACE

PREDICTIONS = "data/predictions"
EXACT_BELOW = 25  # McNemar: exact binomial test when fewer discordant pairs than this


# --------------------------------------------------------------------------- reading


@dataclass
class Side:
    """One experiment's predictions on the split, as read."""

    name: str
    source: str
    rows: list[dict[str, Any]]


def _parse_jsonl(text: str, where: str) -> list[dict[str, Any]]:
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{where}, line {lineno}: not valid JSON ({err.msg})") from None
        keys = ["id", "label", "prediction"]
        if isinstance(row, dict) and "answers" in row and "label" not in row:
            keys = ["id", "answers", "prediction", "exact", "f1"]  # extractive QA
        elif not (isinstance(row, dict) and _numeric(row.get("label"))):
            keys.append("probabilities")  # classification; regression rows have none
        missing = [k for k in keys if not isinstance(row, dict) or k not in row]
        if missing:
            raise UserError(f"{where}, line {lineno}: missing key(s) {missing}")
        rows.append(row)
    if not rows:
        raise UserError(f"{where} holds no predictions")
    return rows


def read_side(spec: str, split: str, repo: str | Path = ".") -> Side:
    """Predictions of ``spec``: a file, a project directory, ``workspace`` or a revision.

    A revision (commit, branch, tag or DVC experiment name) is resolved and read with
    :mod:`nlpflow.revisions`: predictions are a DVC output, so the experiment's outputs must
    be in the local cache (they are after ``dvc exp run``) or pullable from a remote.

    Raises:
        UserError: the file is missing or not JSONL with id/label/prediction/probabilities,
            or ``spec`` is neither a path nor a revision.
    """
    rel = f"{PREDICTIONS}/{split}.jsonl"
    path = Path(spec)
    if spec == WORKSPACE:
        path = Path(repo) / rel
    elif path.is_dir():
        path = path / rel if (path / rel).is_file() else path / f"{split}.jsonl"
    if spec == WORKSPACE or path.exists():
        if not path.is_file():
            raise UserError(f"{path} not found; run the evaluate stage first")
        return Side(spec, str(path), _parse_jsonl(path.read_text(encoding="utf-8"), str(path)))
    return Side(
        spec, f"{rel} at {spec}", _parse_jsonl(_read_at_rev(rel, spec, repo), f"{rel}@{spec}")
    )


def _read_at_rev(rel: str, spec: str, repo: str | Path) -> str:
    from nlpflow.revisions import read_at, resolve

    try:
        rev = resolve(repo, spec)
    except UserError:
        raise UserError(
            f"'{spec}' is neither a file nor a git revision or DVC experiment name in {repo}"
        ) from None
    raw = read_at(repo, rev, rel)
    if raw is None:
        raise UserError(
            f"cannot read {rel} at {rev.label}: it is neither in git nor in the DVC cache "
            "(were its outputs pushed, or is the experiment's cache local?)"
        )
    return raw.decode("utf-8")


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_regression(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether the records are a regression task's (a number as label and prediction)."""
    return bool(rows) and _numeric(rows[0].get("label")) and _numeric(rows[0]["prediction"])


def is_qa(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether the records are an extractive QA task's (gold ``answers``, per-question
    ``exact`` and ``f1``)."""
    return bool(rows) and "answers" in rows[0] and "label" not in rows[0]


def _gold(row: dict[str, Any]) -> Any:
    return row["answers"] if "answers" in row and "label" not in row else row["label"]


def is_multilabel(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether the records are a multi-label task's (a label list, one score per label; a
    token task's records hold a list of per-word scores instead)."""
    return (
        bool(rows)
        and isinstance(rows[0].get("label"), list)
        and isinstance(rows[0].get("probabilities"), dict)
    )


def label_names_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The label order, from the first record's probabilities (written in label-id order).

    Raises:
        UserError: no record holds probabilities.
    """
    for r in rows:
        p = r["probabilities"]
        if isinstance(p, dict):
            return list(p)
        for word in p:
            if word is not None:
                return list(word)
    raise UserError("the predictions hold no probabilities")


def pair_up(a: Side, b: Side) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The two sides' records in one order (A's), checked to be the same examples and labels.

    Raises:
        UserError: the ids differ or repeat, an example's gold label differs, or the label
            sets differ (the two were not scored on the same test set).
    """
    ids_a = [str(r["id"]) for r in a.rows]
    by_b = {str(r["id"]): r for r in b.rows}
    only_a = sorted(set(ids_a) - set(by_b))
    only_b = sorted(set(by_b) - set(ids_a))
    if only_a or only_b or len(by_b) != len(b.rows) or len(set(ids_a)) != len(ids_a):
        raise UserError(
            f"{a.name} and {b.name} were not scored on the same test set: "
            f"{len(only_a)} ids only in {a.name} ({only_a[:3]}), "
            f"{len(only_b)} only in {b.name} ({only_b[:3]}); compare runs on the same data"
        )
    rows_b = [by_b[i] for i in ids_a]
    for ra, rb in zip(a.rows, rows_b, strict=True):
        if _gold(ra) != _gold(rb):
            raise UserError(
                f"example '{ra['id']}' has label {_gold(ra)!r} in {a.name} but "
                f"{_gold(rb)!r} in {b.name}: the test sets differ"
            )
    if (
        is_regression(a.rows) != is_regression(rows_b)
        or is_multilabel(a.rows) != is_multilabel(rows_b)
        or is_qa(a.rows) != is_qa(rows_b)
    ):
        raise UserError(f"{a.name} and {b.name} are not the same kind of task")
    if is_qa(a.rows):
        return list(a.rows), rows_b
    if not is_regression(a.rows) and label_names_of(a.rows) != label_names_of(rows_b):
        raise UserError(f"{a.name} and {b.name} have different label sets")
    return list(a.rows), rows_b


# --------------------------------------------------------------------------- statistics


def mcnemar(b: int, c: int) -> dict[str, Any]:
    """McNemar's test on ``b`` (A right, B wrong) and ``c`` (A wrong, B right).

    Exact two-sided binomial test when ``b + c < 25``, else the chi-square statistic with
    Edwards' continuity correction (1 degree of freedom).
    """
    n = b + c
    if n == 0:
        return {"b": b, "c": c, "method": "none (no discordant pairs)", "p_value": 1.0}
    if n < EXACT_BELOW:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        return {"b": b, "c": c, "method": "exact binomial", "p_value": min(1.0, 2 * tail)}
    stat = (abs(b - c) - 1) ** 2 / n
    return {
        "b": b,
        "c": c,
        "method": "chi-square, continuity-corrected",
        "statistic": stat,
        "p_value": math.erfc(math.sqrt(stat / 2)),
    }


@dataclass
class Comparison:
    """The result of :func:`compare`: per metric A, B and B - A; the paired bootstrap intervals
    of B - A at ``level``; McNemar's test; the right-to-wrong flips."""

    a: Side
    b: Side
    task: str
    n: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> a, b, diff
    intervals: dict[str, dict[str, float]] = field(default_factory=dict)
    mcnemar: dict[str, Any] = field(default_factory=dict)
    regressions: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    fixes: int = 0
    level: float = 0.95
    resamples: int = 0

    def as_json(self) -> dict[str, Any]:
        """The comparison as written to ``--json``: plain numbers, ids of the regressions."""
        return {
            "a": {"name": self.a.name, "source": self.a.source},
            "b": {"name": self.b.name, "source": self.b.source},
            "task": self.task,
            "n": self.n,
            "confidence_level": self.level,
            "resamples": self.resamples,
            "metrics": {
                k: {**v, **({"ci": self.intervals[k]} if k in self.intervals else {})}
                for k, v in self.metrics.items()
            },
            "mcnemar": self.mcnemar,
            "right_to_wrong": len(self.regressions),
            "wrong_to_right": self.fixes,
            "regressions": [rb["id"] for _, rb in self.regressions],
        }


def _sequence_arrays(
    rows: Sequence[dict[str, Any]], names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index = {n: i for i, n in enumerate(names)}
    y = np.asarray([index[r["label"]] for r in rows], dtype=np.int64)
    pred = np.asarray([index[r["prediction"]] for r in rows], dtype=np.int64)
    probs = np.asarray([[float(r["probabilities"][n]) for n in names] for r in rows])
    return y, pred, probs


def compare(
    a: Side,
    b: Side,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    positive_label: str = "",
    entity_mode: str = "default",
    entity_scheme: str = "IOB2",
) -> Comparison:
    """Everything :func:`render` shows, computed from the two sides' records. Token tasks read
    entities as the evaluate stage does with ``evaluate.entity_mode`` (and, strict, its
    scheme): the same settings give the same entity F1 as metrics/evaluate.json."""
    rows_a, rows_b = pair_up(a, b)
    if is_qa(rows_a):
        return _compare_qa(a, b, rows_a, rows_b, resamples, seed, level)
    if is_regression(rows_a):
        return _compare_regression(a, b, rows_a, rows_b, resamples, seed, level)
    names = label_names_of(rows_a)
    if is_multilabel(rows_a):
        return _compare_multilabel(a, b, rows_a, rows_b, names, resamples, seed, level)
    task = "token" if isinstance(rows_a[0]["label"], list) else "sequence"
    metric_fns: list[BatchMetrics] = []
    if task == "token":
        keys: Sequence[str] = TOKEN_MAIN
        for rows in (rows_a, rows_b):
            counts = token_counts(
                [r["label"] for r in rows], [r["prediction"] for r in rows], entity_mode,
                entity_scheme,
            )  # fmt: skip
            metric_fns.append(token_batch_metrics(counts))
    else:
        keys = SEQUENCE_MAIN
        positive = None
        if len(names) == 2:
            if positive_label and positive_label not in names:
                raise UserError(f"--positive '{positive_label}' is not one of {names}")
            positive = names.index(positive_label) if positive_label else 1
        for rows in (rows_a, rows_b):
            y, pred, probs = _sequence_arrays(rows, names)
            metric_fns.append(sequence_batch_metrics(y, probs, pred, len(names), positive, keys))
    n = len(rows_a)
    unit = np.ones((1, n))
    point_a, point_b = metric_fns[0](unit), metric_fns[1](unit)
    result = Comparison(a, b, task, n, level=level, resamples=resamples)
    for k in keys:
        va, vb = float(point_a[k][0]), float(point_b[k][0])
        if not (math.isnan(va) or math.isnan(vb)):
            result.metrics[k] = {"a": va, "b": vb, "diff": vb - va}
    result.intervals = {
        k: v
        for k, v in paired_differences(
            metric_fns[0], metric_fns[1], n, resamples, seed, level
        ).items()
        if k in result.metrics
    }
    _paired_outcomes(result, rows_a, rows_b, is_correct)
    return result


def _paired_outcomes(
    result: Comparison,
    rows_a: list[dict[str, Any]],
    rows_b: list[dict[str, Any]],
    correct: Callable[[dict[str, Any]], bool],
) -> None:
    """Sets ``result``'s regressions (right in A, wrong in B: the row pairs), fixes (wrong in
    A, right in B: a count) and McNemar's test on the two, by ``correct`` of each record."""
    right_a = [correct(r) for r in rows_a]
    right_b = [correct(r) for r in rows_b]
    result.regressions = [
        (ra, rb)
        for ra, rb, x, y in zip(rows_a, rows_b, right_a, right_b, strict=True)
        if x and not y
    ]
    result.fixes = sum((not x) and y for x, y in zip(right_a, right_b, strict=True))
    result.mcnemar = mcnemar(len(result.regressions), result.fixes)


def _compare_multilabel(
    a: Side,
    b: Side,
    rows_a: list[dict[str, Any]],
    rows_b: list[dict[str, Any]],
    names: list[str],
    resamples: int,
    seed: int,
    level: float,
) -> Comparison:
    """Multi-label: paired bootstrap of the main metrics, McNemar on exact label sets."""
    from nlpflow.families.multilabel.metrics import LOWER_IS_BETTER, MAIN, batch_metrics
    from nlpflow.families.multilabel.predictions import records_to_arrays

    fns = []
    for side, rows in ((a, rows_a), (b, rows_b)):
        y, pred, scores = records_to_arrays(rows, names, side.source)
        fns.append(batch_metrics(y, pred, scores))
    n = len(rows_a)
    result = Comparison(a, b, "multilabel", n, level=level, resamples=resamples)
    point_a, point_b = fns[0](np.ones((1, n))), fns[1](np.ones((1, n)))
    for k in MAIN:
        va, vb = float(point_a[k][0]), float(point_b[k][0])
        result.metrics[k] = {"a": va, "b": vb, "diff": vb - va}
    result.intervals = paired_differences(
        fns[0], fns[1], n, resamples, seed, level, tuple(LOWER_IS_BETTER)
    )
    _paired_outcomes(result, rows_a, rows_b, is_correct)
    return result


def _compare_regression(
    a: Side,
    b: Side,
    rows_a: list[dict[str, Any]],
    rows_b: list[dict[str, Any]],
    resamples: int,
    seed: int,
    level: float,
) -> Comparison:
    """Regression: paired bootstrap of every metric (MSE: of the squared errors' mean), the
    sign test of which side is closer per example, the examples whose error grew most."""
    from nlpflow.families.regression.metrics import METRICS, batch_regression_metrics

    y = np.asarray([float(r["label"]) for r in rows_a])
    pa = np.asarray([float(r["prediction"]) for r in rows_a])
    pb = np.asarray([float(r["prediction"]) for r in rows_b])
    fa, fb = batch_regression_metrics(y, pa), batch_regression_metrics(y, pb)
    n = len(y)
    result = Comparison(a, b, "regression", n, level=level, resamples=resamples)
    point_a, point_b = fa(np.ones((1, n))), fb(np.ones((1, n)))
    for k in METRICS:
        va, vb = float(point_a[k][0]), float(point_b[k][0])
        if not (math.isnan(va) or math.isnan(vb)):
            result.metrics[k] = {"a": va, "b": vb, "diff": vb - va}
    lower = ("mse", "rmse", "mae")
    result.intervals = {
        k: v
        for k, v in paired_differences(fa, fb, n, resamples, seed, level, lower).items()
        if k in result.metrics
    }
    err_a, err_b = np.abs(pa - y), np.abs(pb - y)
    grew = np.flatnonzero(err_b > err_a)
    grew = grew[np.argsort(-(err_b - err_a)[grew], kind="stable")]
    result.regressions = [(rows_a[i], rows_b[i]) for i in grew]
    result.fixes = int((err_b < err_a).sum())
    result.mcnemar = {**mcnemar(len(grew), result.fixes), "test": "sign"}
    return result


def _compare_qa(
    a: Side,
    b: Side,
    rows_a: list[dict[str, Any]],
    rows_b: list[dict[str, Any]],
    resamples: int,
    seed: int,
    level: float,
) -> Comparison:
    """Extractive QA: paired bootstrap (questions resampled) of EM and F1 overall, HasAns
    and NoAns from the records' per-question scores; McNemar's test on exact matches; the
    questions exactly right in A and not in B."""
    from nlpflow.families.qa.metrics import MAIN, QuestionScores, batch_metrics

    has = np.asarray([len(r["answers"]) > 0 for r in rows_a], dtype=bool)

    def scores(rows: list[dict[str, Any]]) -> QuestionScores:
        return QuestionScores(
            exact=np.asarray([float(r["exact"]) for r in rows], dtype=np.float64),
            f1=np.asarray([float(r["f1"]) for r in rows], dtype=np.float64),
            has_answer=has,
        )

    fa, fb = batch_metrics(scores(rows_a)), batch_metrics(scores(rows_b))
    n = len(rows_a)
    result = Comparison(a, b, "qa", n, level=level, resamples=resamples)
    point_a, point_b = fa(np.ones((1, n))), fb(np.ones((1, n)))
    for k in MAIN:
        va, vb = float(point_a[k][0]), float(point_b[k][0])
        if not (math.isnan(va) or math.isnan(vb)):
            result.metrics[k] = {"a": va, "b": vb, "diff": vb - va}
    result.intervals = {
        k: v
        for k, v in paired_differences(fa, fb, n, resamples, seed, level).items()
        if k in result.metrics
    }
    _paired_outcomes(result, rows_a, rows_b, lambda r: float(r["exact"]) == 1.0)
    return result


# --------------------------------------------------------------------------- output


def _inputs(row: dict[str, Any]) -> str:
    if "answers" in row and "question" in row:  # extractive QA: the question
        return str(row["question"])
    skip = {"id", "label", "prediction", "confidence", "probabilities", "truncated", "empty_words",
            "residual"}  # fmt: skip
    return " / ".join(
        " ".join(v) if isinstance(v, list) else str(v) for k, v in row.items() if k not in skip
    )


def _truth(row: dict[str, Any]) -> str:
    if "answers" in row and "label" not in row:  # extractive QA: every gold answer
        return " | ".join(dict.fromkeys(row["answers"])) or "(no answer)"
    if isinstance(row["label"], list):
        if isinstance(row.get("probabilities"), dict):  # a multi-label set
            return ", ".join(row["label"]) or "(no label)"
        return "(tags)"
    return str(row["label"])


def _prob(row: dict[str, Any]) -> str:
    if "answers" in row and "label" not in row:  # extractive QA
        return f"{row['prediction'] or '(no answer)'} (F1 {float(row['f1']):.2f})"
    if _numeric(row["label"]) and _numeric(row["prediction"]):
        error = float(row["prediction"]) - float(row["label"])
        return f"{float(row['prediction']):.4g} (error {error:+.4g})"
    if isinstance(row["label"], list) and isinstance(row.get("probabilities"), dict):
        return ", ".join(row["prediction"]) or "(no label)"  # a multi-label set
    if isinstance(row["label"], list):
        wrong = sum(t != p for t, p in zip(row["label"], row["prediction"], strict=True))
        return f"{wrong} wrong words"
    return f"{row['prediction']} ({float(row['probabilities'][row['prediction']]):.3f})"


def render(c: Comparison, max_flips: int = 20) -> str:
    """The comparison as markdown."""
    out = [f"# {c.b.name} vs {c.a.name}", ""]
    out.append(f"- A (reference): `{c.a.source}`")
    out.append(f"- B (candidate): `{c.b.source}`")
    unit = {"token": "sentences", "qa": "questions"}.get(c.task, "examples")
    out.append(f"- {c.n} test {unit}, paired by id; {c.resamples} paired bootstrap resamples")
    out.append("")
    rows = []
    for k, v in c.metrics.items():
        ci = c.intervals.get(k)
        rows.append(
            [k, f"{v['a']:.4f}", f"{v['b']:.4f}", f"{v['diff']:+.4f}",
             interval(ci["low"], ci["high"], signed=True) if ci else "–",
             f"{ci['p_not_better']:.3f}" if ci else "–"]
        )  # fmt: skip
    header = ["metric", "A", "B", "B - A", f"{level_label(c.level)} of B - A",
              "share of resamples B not better"]  # fmt: skip
    out += table(header, rows, "lrrrrr")
    m = c.mcnemar
    verdict = " (the two differ)" if m["p_value"] < 1 - c.level else " (no significant difference)"
    if c.task == "regression":
        out += ["", "## Sign test (which model is closer to the truth, per example)", ""]
        out.append(
            f"{m['b']} {unit} farther from the truth in B than in A, {m['c']} closer; "
            f"{m['method']}: p = {m['p_value']:.4g}{verdict}. MSE, RMSE and MAE: a negative "
            "B - A is better."
        )
        out += ["", f"## Absolute error grew ({len(c.regressions)})", ""]
    else:
        out += ["", "## McNemar's test", ""]
        out.append(
            f"{m['b']} {unit} right in A and wrong in B, {m['c']} wrong in A and right in B; "
            f"{m['method']}: p = {m['p_value']:.4g}{verdict}"
        )
        out += ["", f"## Flipped from right to wrong ({len(c.regressions)})", ""]
    if c.task == "regression" and c.regressions:
        out.append(
            f"Examples whose absolute error grew from A to B, largest growth first; "
            f"{min(max_flips, len(c.regressions))} of {len(c.regressions)} shown. {c.fixes} "
            "got closer."
        )
        rows = [
            [ra["id"], _inputs(ra), f"{float(ra['label']):.4g}", _prob(ra), _prob(rb)]
            for ra, rb in c.regressions[:max_flips]
        ]
        out += ["", *table(["id", "inputs", "true", "A", "B"], rows, limit=80)]
    elif c.task == "regression":
        out.append("None: B is at least as close as A on every example.")
    elif not c.regressions:
        out.append(f"None: B still gets right every {unit[:-1]} A got right.")
    else:
        out.append(
            f"{unit.capitalize()} A got right and B gets wrong (the regression check); "
            f"{min(max_flips, len(c.regressions))} of {len(c.regressions)} shown. "
            f"{c.fixes} flipped the other way."
        )
        rows = [
            [ra["id"], _inputs(ra), _truth(ra), _prob(ra), _prob(rb)]
            for ra, rb in c.regressions[:max_flips]
        ]  # fmt: skip
        out += ["", *table(["id", "inputs", "true", "A", "B"], rows, limit=80)]
    out.append("")
    return "\n".join(out)
