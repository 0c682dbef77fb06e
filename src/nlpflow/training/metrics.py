"""Validation: loss and metrics of a model on a padded split.

Sequence tasks: ``loss``, ``accuracy``, ``f1_macro``. Token tasks: the same over the counted
sub-tokens (the first of each word), plus ``entity_f1`` when the labels are BIO tags: the
micro F1 of whole entities, read as CoNLL's ``conlleval`` reads them (an ``I-X`` after ``O``
or after another type starts an entity). The loss is the training criterion's (class weights
and label smoothing included), so training and validation curves are comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch

    from nlpflow.training.data import PaddedSplit
    from nlpflow.training.distributed import Distributed
    from nlpflow.training.loss import Criterion


def f1_macro(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> float:
    """Unweighted mean of per-class F1 over all ``num_labels`` classes (0/0 counts as 0).

    Matches ``sklearn.metrics.f1_score(average="macro", labels=range(num_labels),
    zero_division=0)`` and nlpflow.evaluation's macro F1. Kept here, with :func:`entities`
    (conlleval's reading, as evaluation.entities.entities_default), so that the train stage's
    DVC deps stay off the evaluation package: an edit there must not retrain the model.
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


def is_bio(label_names: Sequence[str]) -> bool:
    """True when the labels look like BIO tags (``B-PER``, ``I-LOC``, ``O``)."""
    return any(name[:2] in ("B-", "I-") for name in label_names)


def entities(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """``(type, start, end)`` (end inclusive) of the entities in one tag sequence, lenient."""
    found: set[tuple[str, int, int]] = set()
    kind: str | None = None
    start = 0
    for i, tag in enumerate([*tags, "O"]):
        if tag[:2] in ("B-", "I-"):
            prefix, name = tag[0], tag[2:]
        else:  # "O", or a tag without a BIO prefix
            prefix, name = "O", ""
        if kind is not None and (prefix != "I" or name != kind):
            found.add((kind, start, i - 1))
            kind = None
        if prefix == "B" or (prefix == "I" and kind is None):
            kind, start = name, i
    return found


def entity_f1(
    true_rows: Sequence[Sequence[int]], pred_rows: Sequence[Sequence[int]], names: Sequence[str]
) -> float:
    """Micro F1 of entities over all rows (tag ids mapped to ``names``)."""
    correct = n_true = n_pred = 0
    for t_ids, p_ids in zip(true_rows, pred_rows, strict=True):
        t = entities([names[i] for i in t_ids])
        p = entities([names[i] for i in p_ids])
        correct += len(t & p)
        n_true += len(t)
        n_pred += len(p)
    denom = n_true + n_pred
    return 2 * correct / denom if denom else 0.0


def evaluate(
    model: torch.nn.Module,
    split: PaddedSplit,
    batch_size: int,
    device: torch.device,
    criterion: Criterion | None = None,
    dist: Distributed | None = None,
    label_names: Sequence[str] | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Mean loss and metrics of ``model`` on ``split``.

    With ``dist`` active each process scores every ``world``-th row (of the rows sorted by
    length) and the results are gathered, so all processes return the same numbers.
    """
    import torch

    from nlpflow.families.train import validation_batches, validation_order
    from nlpflow.training.loss import IGNORE_INDEX, Criterion

    criterion = criterion or Criterion()
    # Rows sorted by length waste little on padding; the order does not change the metrics.
    order = validation_order(split, dist)
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    preds: list[torch.Tensor] = []
    for output, labels in validation_batches(
        model, split, order, batch_size, device, autocast_dtype
    ):
        logits = output.logits
        total_loss += criterion.sum(logits, labels).double()
        pred = logits.argmax(-1)
        if split.token_task:
            pred = torch.where(labels == IGNORE_INDEX, IGNORE_INDEX, pred)
            # Back to the split's full width, so rows of every batch stack.
            pred = torch.nn.functional.pad(
                pred, (0, split.labels.shape[1] - pred.shape[1]), value=IGNORE_INDEX
            )
        preds.append(pred.cpu())

    mine = (order, torch.cat(preds) if preds else split.labels[:0], float(total_loss.item()))
    parts = dist.gather(mine) if dist is not None else [mine]
    all_order = torch.cat([p[0] for p in parts])
    all_preds = torch.cat([p[1] for p in parts])
    loss_sum = sum(p[2] for p in parts)

    n = len(split)
    if n == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "f1_macro": float("nan")}
    y_pred_all = torch.empty_like(all_preds)
    y_pred_all[all_order] = all_preds
    num_labels = int(getattr(getattr(model, "config", None), "num_labels", 0))
    if split.token_task:
        true_full, pred_full = split.labels.numpy(), y_pred_all.numpy()
        counted = true_full != IGNORE_INDEX
        y_true, y_hat = true_full[counted], pred_full[counted]
    else:
        y_true, y_hat = split.labels.numpy(), y_pred_all.numpy()
    num_labels = num_labels or int(max(y_true.max(initial=0), y_hat.max(initial=0)) + 1)
    denominator = criterion.denominator(split.labels.reshape(-1))
    out = {
        "loss": loss_sum / denominator,
        "accuracy": float((y_hat == y_true).mean()) if y_true.size else float("nan"),
        "f1_macro": f1_macro(y_true, y_hat, num_labels),
    }
    if split.token_task and label_names is not None and is_bio(label_names):
        rows_true = [row[row != IGNORE_INDEX] for row in true_full]
        rows_pred = [p[t != IGNORE_INDEX] for t, p in zip(true_full, pred_full, strict=True)]
        out["entity_f1"] = entity_f1(
            [r.tolist() for r in rows_true], [r.tolist() for r in rows_pred], label_names
        )
    return out
