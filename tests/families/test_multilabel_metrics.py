"""Multi-label metrics: hand-worked values, scikit-learn on random data, bootstrap weights."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nlpflow.families.multilabel.metrics import (
    MAIN,
    batch_metrics,
    lrap_per_example,
    margins,
    metrics_with_intervals,
    multilabel_metrics,
    weighted_scores,
)

NAMES = ["a", "b", "c"]
# Worked by hand below.
Y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
P = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [1, 0, 0]])
S = np.array([[0.9, 0.2, 0.4], [0.1, 0.8, 0.6], [0.7, 0.6, 0.3], [0.5, 0.1, 0.2]])

PROPS = settings(max_examples=25, deadline=None, derandomize=True, database=None)


def test_hand_worked_values() -> None:
    m = multilabel_metrics(Y, P, S, NAMES)
    # a: tp 2 (rows 0, 2), fp 1 (row 3), fn 0; b: tp 2, fp 0, fn 0; c: tp 0, fp 1, fn 1.
    assert m["per_class"]["a"] == {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    assert m["per_class"]["b"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # micro: tp 4, fp 2, fn 1 -> P 4/6, R 4/5, F1 8/11
    assert m["precision_micro"] == pytest.approx(4 / 6)
    assert m["recall_micro"] == pytest.approx(4 / 5)
    assert m["f1_micro"] == pytest.approx(8 / 11)
    assert m["f1_macro"] == pytest.approx((0.8 + 1.0 + 0.0) / 3)
    assert m["f1_weighted"] == pytest.approx((2 * 0.8 + 2 * 1.0 + 1 * 0.0) / 5)
    # wrong decisions: row 0 one (c), row 1 one (c), row 2 none, row 3 one (a) -> 3 of 12
    assert m["hamming_loss"] == pytest.approx(3 / 12)
    assert m["subset_accuracy"] == pytest.approx(1 / 4)
    # LRAP: row 0: a ranks 1st (1/1), c ranks 2nd (2/2) -> 1; row 1: b 1st -> 1;
    # row 2: a 1st (1/1), b 2nd (2/2) -> 1; row 3: no true label -> 1.
    assert m["lrap"] == pytest.approx(1.0)
    assert m["n"] == 4
    # a true label ranked last: a 1st (1/1), c 3rd with 2 true labels at or above (2/3)
    assert lrap_per_example([[1, 0, 1]], [[0.9, 0.5, 0.1]])[0] == pytest.approx((1 + 2 / 3) / 2)
    # ties count as ranked above: a and b tie, only a is true -> 1/2
    assert lrap_per_example([[1, 0, 0]], [[0.5, 0.5, 0.1]])[0] == pytest.approx(0.5)


def test_agrees_with_sklearn_on_a_fixed_case() -> None:
    _check_sklearn(Y, P, S)


def _check_sklearn(y: np.ndarray, p: np.ndarray, s: np.ndarray) -> None:
    from sklearn import metrics as skm

    names = [f"l{j}" for j in range(y.shape[1])]
    m = multilabel_metrics(y, p, s, names)
    for avg in ("micro", "macro", "weighted"):
        for name, fn in (
            ("precision", skm.precision_score),
            ("recall", skm.recall_score),
            ("f1", skm.f1_score),
        ):
            want = fn(y, p, average=avg, zero_division=0)
            assert m[f"{name}_{avg}"] == pytest.approx(want, abs=1e-12), (name, avg)
    per = skm.f1_score(y, p, average=None, zero_division=0)
    assert [m["per_class"][n]["f1"] for n in names] == pytest.approx(per, abs=1e-12)
    assert m["hamming_loss"] == pytest.approx(skm.hamming_loss(y, p), abs=1e-12)
    assert m["subset_accuracy"] == pytest.approx(skm.accuracy_score(y, p), abs=1e-12)
    assert m["lrap"] == pytest.approx(skm.label_ranking_average_precision_score(y, s), abs=1e-12)


@st.composite
def _case(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 12))
    k = draw(st.integers(2, 5))
    y = draw(arrays(np.int64, (n, k), elements=st.integers(0, 1)))
    p = draw(arrays(np.int64, (n, k), elements=st.integers(0, 1)))
    # few distinct values, so ties in the ranking are common
    s = draw(arrays(np.float64, (n, k), elements=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])))
    return y, p, s


@PROPS
@given(case=_case())
def test_agrees_with_sklearn_on_random_cases(case: tuple[np.ndarray, ...]) -> None:
    _check_sklearn(*case)


@PROPS
@given(case=_case(), data=st.data())
def test_weights_are_repeated_examples(case: tuple[np.ndarray, ...], data: st.DataObject) -> None:
    """A bootstrap weight row scores exactly as the examples repeated that many times."""
    y, p, s = case
    counts = data.draw(arrays(np.int64, y.shape[0], elements=st.integers(0, 3)))
    if counts.sum() == 0:
        counts[0] = 1
    repeated = multilabel_metrics(
        np.repeat(y, counts, axis=0),
        np.repeat(p, counts, axis=0),
        np.repeat(s, counts, axis=0),
        [f"l{j}" for j in range(y.shape[1])],
    )
    batch = batch_metrics(y, p, s)(counts[None, :].astype(np.float64))
    for name in MAIN:
        assert batch[name][0] == pytest.approx(repeated[name], abs=1e-12), name


def test_intervals_seeded_and_around_the_estimate() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((300, 4)) < 0.4).astype(int)
    flip = rng.random((300, 4)) < 0.15
    p = np.where(flip, 1 - y, y)
    s = np.clip(p * 0.6 + rng.random((300, 4)) * 0.4, 0, 1)
    names = list("abcd")
    a = metrics_with_intervals(y, p, s, names, 200, seed=7, level=0.9)
    b = metrics_with_intervals(y, p, s, names, 200, seed=7, level=0.9)
    assert a == b
    assert set(a["ci"]) == set(MAIN)
    for name in MAIN:
        assert a["ci"][name]["low"] < a[name] < a["ci"][name]["high"], name
    assert metrics_with_intervals(y, p, s, names, 0, seed=7, level=0.9)["ci"] == {}


def test_margins_turn_hamming_loss_round() -> None:
    model = {"f1_micro": 0.9, "hamming_loss": 0.05}
    base = {"f1_micro": 0.6, "hamming_loss": 0.2}
    assert margins(model, base) == pytest.approx({"f1_micro": 0.3, "hamming_loss": 0.15})


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError) as err:
        multilabel_metrics(Y, P[:, :2], S, NAMES)
    assert "one shape" in str(err.value)
    with pytest.raises(ValueError) as err:
        multilabel_metrics(Y, P, S, ["a", "b"])
    assert "3 label columns but 2 label names" in str(err.value)


def test_unit_weights_give_the_point_estimate() -> None:
    lrap = lrap_per_example(Y, S)
    batch = weighted_scores(Y, P, lrap, np.ones((2, 4)))
    m = multilabel_metrics(Y, P, S, NAMES)
    for name in MAIN:
        assert batch[name].tolist() == pytest.approx([m[name], m[name]])
