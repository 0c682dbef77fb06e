"""Early stopping: patience, min_delta, mode, targets, divergence, non-finite values, state."""

from __future__ import annotations

import math

from nlpflow.training.early_stopping import EarlyStopping, StopReason


def run(stopper: EarlyStopping, values: list[float]) -> list[tuple[bool, StopReason | None]]:
    """``(improved, reason to stop or None)`` after each value."""
    out = []
    for epoch, value in enumerate(values, start=1):
        improved = stopper.update(value, epoch)
        stop = stopper.check()
        out.append((improved, None if stop is None else stop.reason))
    return out


PATIENCE = StopReason.EARLY_STOPPING


def test_patience_counts_evaluations_without_improvement() -> None:
    stopper = EarlyStopping("f1_macro", "max", patience=2)
    assert run(stopper, [0.5, 0.6, 0.6, 0.55]) == [
        (True, None),
        (True, None),
        (False, None),  # equal is no improvement
        (False, PATIENCE),
    ]
    assert (stopper.best, stopper.best_epoch) == (0.6, 2)
    stop = stopper.check()
    assert stop is not None
    assert "patience 2" in stop.detail and "0.6 at epoch 2" in stop.detail


def test_an_improvement_resets_the_count() -> None:
    stopper = EarlyStopping("accuracy", "max", patience=2)
    run(stopper, [0.5, 0.4, 0.7, 0.6])
    assert stopper.bad_evaluations == 1 and stopper.check() is None


def test_min_delta_ignores_tiny_gains() -> None:
    stopper = EarlyStopping("f1_macro", "max", patience=2, min_delta=0.01)
    assert [i for i, _ in run(stopper, [0.5, 0.505, 0.509, 0.52])] == [True, False, False, True]
    stopper = EarlyStopping("f1_macro", "max", patience=2, min_delta=0.01)
    assert run(stopper, [0.5, 0.505, 0.509])[-1] == (False, PATIENCE)


def test_min_mode_for_loss() -> None:
    stopper = EarlyStopping("loss", "min", patience=1, min_delta=0.05)
    assert run(stopper, [1.0, 0.9, 0.88]) == [(True, None), (True, None), (False, PATIENCE)]
    assert stopper.best == 0.9


def test_target_and_divergence_in_both_modes() -> None:
    high = EarlyStopping("accuracy", "max", 0, target=0.9, divergence=0.2)
    assert run(high, [0.5, 0.1]) == [(True, None), (False, StopReason.DIVERGED)]
    high = EarlyStopping("accuracy", "max", 0, target=0.9, divergence=0.2)
    assert run(high, [0.9])[-1] == (True, StopReason.TARGET_REACHED)  # reaching is enough
    low = EarlyStopping("loss", "min", 0, target=0.1, divergence=5.0)
    assert run(low, [1.0, 0.1]) == [(True, None), (True, StopReason.TARGET_REACHED)]
    low = EarlyStopping("loss", "min", 0, target=0.1, divergence=5.0)
    assert run(low, [5.5])[-1] == (True, StopReason.DIVERGED)
    stop = low.check()
    assert stop is not None and "above the divergence threshold 5" in stop.detail


def test_non_finite_values_never_improve_and_diverge() -> None:
    stopper = EarlyStopping("loss", "min", patience=3)
    assert not stopper.update(math.nan, 1)
    assert stopper.best is None
    stop = stopper.check()
    assert stop is not None and stop.reason is StopReason.DIVERGED and "not finite" in stop.detail
    assert stopper.update(1.0, 2)
    assert not stopper.update(-math.inf, 3)


def test_stop_reasons_keep_the_values_metrics_files_have_always_had() -> None:
    # metrics/train.json's stop_reason is read by tuning, review and people's scripts.
    assert [r.value for r in StopReason] == [
        "max_epochs", "max_steps", "early_stopping", "target_reached", "diverged",
        "non_finite_loss", "pruned",
    ]  # fmt: skip
    assert f"{StopReason.PRUNED}" == "pruned"


def test_state_round_trip() -> None:
    a = EarlyStopping("f1_macro", "max", patience=3)
    run(a, [0.5, 0.4])
    b = EarlyStopping("f1_macro", "max", patience=3)
    b.load_state_dict(a.state_dict())
    assert b == a
