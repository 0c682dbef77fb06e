"""Validation: loss, accuracy and macro F1 of a model on a padded split."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch

    from nlpflow.training.data import PaddedSplit


def f1_macro(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> float:
    """Unweighted mean of per-class F1 over all ``num_labels`` classes (0/0 counts as 0).

    Matches ``sklearn.metrics.f1_score(average="macro", labels=range(num_labels),
    zero_division=0)``; computed here to keep sklearn out of the training loop's imports.
    """
    import numpy as np

    scores = []
    for c in range(num_labels):
        tp = int(np.sum((y_pred == c) & (y_true == c)))
        fp = int(np.sum((y_pred == c) & (y_true != c)))
        fn = int(np.sum((y_pred != c) & (y_true == c)))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def evaluate(
    model: torch.nn.Module, split: PaddedSplit, batch_size: int, device: torch.device
) -> dict[str, float]:
    """``{"loss", "accuracy", "f1_macro"}`` of ``model`` on ``split`` (mean loss per example)."""
    import torch

    from nlpflow.training.device import autocast

    was_training = model.training
    model.eval()
    # Rows sorted by length waste little on padding; the order does not change the metrics.
    order = torch.argsort(split.lengths, stable=True)
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    preds = []
    with torch.no_grad():
        for index in order.split(batch_size):
            batch = split.batch(index, device)
            labels = batch.pop("labels")
            with autocast(device):
                logits = model(**batch).logits
            logits = logits.float()
            total_loss += torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
            preds.append(logits.argmax(-1))
    model.train(was_training)

    n = len(split)
    if n == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "f1_macro": float("nan")}
    y_pred_sorted = torch.cat(preds).cpu()
    y_pred = torch.empty_like(y_pred_sorted)
    y_pred[order] = y_pred_sorted
    y_true = split.labels.numpy()
    y_hat = y_pred.numpy()
    num_labels = int(getattr(getattr(model, "config", None), "num_labels", 0)) or int(
        max(y_true.max(initial=0), y_hat.max(initial=0)) + 1
    )
    return {
        "loss": float(total_loss.item()) / n,
        "accuracy": float((y_hat == y_true).mean()),
        "f1_macro": f1_macro(y_true, y_hat, num_labels),
    }
