"""Early stopping: patience, min_delta, mode, non-finite values, state round trip."""

from __future__ import annotations

import math

from nlpflow.training.early_stopping import EarlyStopping


def run(stopper: EarlyStopping, values: list[float]) -> list[tuple[bool, bool]]:
    """``(improved, should_stop)`` after each value."""
    out = []
    for epoch, value in enumerate(values, start=1):
        out.append((stopper.update(value, epoch), stopper.should_stop))
    return out


def test_patience_counts_evaluations_without_improvement() -> None:
    stopper = EarlyStopping("f1_macro", "max", patience=2)
    assert run(stopper, [0.5, 0.6, 0.6, 0.55]) == [
        (True, False),
        (True, False),
        (False, False),  # equal is no improvement
        (False, True),
    ]
    assert (stopper.best, stopper.best_epoch) == (0.6, 2)
    assert "patience 2" in stopper.reason() and "0.6 at epoch 2" in stopper.reason()


def test_an_improvement_resets_the_count() -> None:
    stopper = EarlyStopping("accuracy", "max", patience=2)
    run(stopper, [0.5, 0.4, 0.7, 0.6])
    assert stopper.bad_evaluations == 1 and not stopper.should_stop


def test_min_delta_ignores_tiny_gains() -> None:
    stopper = EarlyStopping("f1_macro", "max", patience=2, min_delta=0.01)
    assert [i for i, _ in run(stopper, [0.5, 0.505, 0.509, 0.52])] == [True, False, False, True]
    stopper = EarlyStopping("f1_macro", "max", patience=2, min_delta=0.01)
    assert run(stopper, [0.5, 0.505, 0.509])[-1] == (False, True)


def test_min_mode_for_loss() -> None:
    stopper = EarlyStopping("loss", "min", patience=1, min_delta=0.05)
    assert run(stopper, [1.0, 0.9, 0.88]) == [(True, False), (True, False), (False, True)]
    assert stopper.best == 0.9


def test_non_finite_values_never_improve() -> None:
    stopper = EarlyStopping("loss", "min", patience=3)
    assert not stopper.update(math.nan, 1)
    assert stopper.best is None
    assert stopper.update(1.0, 2)
    assert not stopper.update(-math.inf, 3)


def test_state_round_trip() -> None:
    a = EarlyStopping("f1_macro", "max", patience=3)
    run(a, [0.5, 0.4])
    b = EarlyStopping("f1_macro", "max", patience=3)
    b.load_state_dict(a.state_dict())
    assert b == a
