"""The loss: exact means over a step however it is split; class weights; label smoothing."""

from __future__ import annotations

import pytest
import torch

from nlpflow.errors import UserError
from nlpflow.training.loss import Criterion, class_weights


def test_balanced_weights_follow_sklearn() -> None:
    from sklearn.utils.class_weight import compute_class_weight

    targets = torch.tensor([0] * 80 + [1] * 15 + [2] * 5 + [-100] * 7)
    weights = class_weights("balanced", ["a", "b", "c"], targets)
    assert weights is not None
    kept = targets[targets != -100].numpy()
    expected = compute_class_weight("balanced", classes=torch.arange(3).numpy(), y=kept)
    torch.testing.assert_close(weights, torch.tensor(expected, dtype=torch.float32))


def test_named_weights_and_unknown_names() -> None:
    weights = class_weights({"spam": 4.0}, ["ham", "spam"], torch.tensor([0, 1]))
    assert weights is not None and weights.tolist() == [1.0, 4.0]
    assert class_weights("none", ["a", "b"], torch.tensor([0])) is None
    with pytest.raises(UserError, match=r"unknown label\(s\) \['spma'\]"):
        class_weights({"spma": 2.0}, ["ham", "spam"], torch.tensor([0]))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_sums_over_micro_batches_equal_the_mean_of_the_step(
    smoothing: float, weighted: bool
) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 7, 3, generator=gen)  # a token task: (B, T, k)
    labels = torch.randint(0, 3, (12, 7), generator=gen)
    labels[torch.rand(12, 7, generator=gen) < 0.3] = -100
    weights = torch.tensor([0.5, 2.0, 1.0]) if weighted else None
    crit = Criterion(weights, smoothing)
    expected = torch.nn.functional.cross_entropy(
        logits.reshape(-1, 3), labels.reshape(-1), weight=weights,
        ignore_index=-100, label_smoothing=smoothing,
    )  # fmt: skip
    denominator = crit.denominator(labels.reshape(-1))
    split = sum(crit.sum(logits[i : i + 5], labels[i : i + 5]) for i in range(0, 12, 5))
    torch.testing.assert_close(split / denominator, expected)


def test_a_step_without_counted_targets_has_zero_loss() -> None:
    crit = Criterion()
    labels = torch.full((2, 3), -100)
    assert crit.denominator(labels) == 1.0
    assert crit.sum(torch.randn(2, 3, 4), labels).item() == 0.0
