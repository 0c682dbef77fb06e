"""The training side of a task family: batches, loss, validation metrics, the probe's
worst-case batch. See :mod:`nlpflow.families` for the whole interface.

Imported by the probe, lr_range and train stages; a family's ``train.py`` must not import
evaluation code (an edit there would retrain the model).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.errors import UserError

if TYPE_CHECKING:
    import torch
    from datasets import Dataset

    from nlpflow.training.data import PaddedSplit
    from nlpflow.training.distributed import Distributed
    from nlpflow.training.loss import Criterion


def validation_order(split: PaddedSplit, dist: Distributed | None) -> torch.Tensor:
    """(M,) int64 row indices this process validates: the split sorted by length (stable),
    every ``world``-th row from ``rank``; the processes' rows together are each row once."""
    import torch

    rank, world = (dist.rank, dist.world) if dist is not None else (0, 1)
    return torch.argsort(split.lengths, stable=True)[rank::world]


def validation_batches(
    model: torch.nn.Module,
    split: PaddedSplit,
    order: torch.Tensor,
    batch_size: int,
    device: torch.device,
    precision: torch.dtype | None,
) -> Iterator[tuple[Any, torch.Tensor]]:
    """``(model output, labels)`` for each batch of ``order`` (batch_size rows), in eval mode
    without gradients, the forward under ``precision``'s autocast; the model's train/eval
    mode is restored afterwards. The validation loop every family's ``validate`` runs."""
    import torch

    from nlpflow.training.device import autocast

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for index in order.split(batch_size):
                batch = split.batch(index, device)
                labels = batch.pop("labels")
                with autocast(device, precision):
                    output = model(**batch)
                yield output, labels
    finally:
        model.train(was_training)


class TrainFamily:
    """Training hooks; the defaults are sequence classification's (one class id per row,
    cross-entropy, accuracy and macro-F1)."""

    name: ClassVar[str] = ""

    def padded_split(self, split: Dataset, pad_id: int) -> PaddedSplit:
        """A tokenized split as padded tensors with ``lengths`` (N,) int64 (what the batch
        sampler groups by and the padded-token counts use), ``batch(index, device)`` (the
        model's keyword arguments plus ``labels``), ``targets(index)`` (the labels the loss
        counts, flat, for the step's denominator), ``subset(index)`` and ``len``. A family
        with other inputs ((B, N, T) choices, QA windows) returns a subclass."""
        from nlpflow.training.data import PaddedSplit

        return PaddedSplit.from_dataset(split, pad_id)

    def criterion(
        self, train: Any, label_names: Sequence[str], train_set: PaddedSplit, overfit: bool
    ) -> Criterion:
        """The loss of a run: ``sum(output, labels)`` the summed loss terms of a micro-batch
        (``output``: the model's output or its logits), ``denominator(targets)`` what a
        step's sum is divided by, ``correct(output, labels)`` the counted targets predicted
        right, ``measures_accuracy`` whether that count means anything, ``to(device)``.
        ``train``: the train params (``class_weights``, ``label_smoothing``, ``loss``; the
        lr_range stage passes its subset); ``overfit``: the overfit check (no smoothing)."""
        from nlpflow.training.loss import Criterion, class_weights

        weights = class_weights(
            train.class_weights, list(label_names), train_set.labels.reshape(-1)
        )
        self.check_loss(getattr(train, "loss", "auto"))
        return Criterion(weights, 0.0 if overfit else train.label_smoothing)

    def check_loss(self, loss: str) -> None:
        """``train.loss`` must be one this family has (``auto``: its default)."""
        if loss not in ("auto", "cross_entropy"):
            raise UserError(
                f"params.yaml: train.loss '{loss}' does not apply to a {self.name} task; "
                "use auto or cross_entropy"
            )

    def prepare_model(self, model: Any, criterion: Criterion) -> None:
        """Called once on the freshly built model, before training (and before the first
        checkpoint): e.g. store in ``model.config`` what prediction needs to undo (a
        regression target's standardisation)."""

    def configure(self, train: Any, tokenizer: Any) -> None:
        """Called once per run before :meth:`check_monitor`, with the train params and the
        run's tokenizer (text2text: the validation rows it generates for exact match).
        Raises UserError for ``train.generation_sample`` on a task that generates nothing."""
        if getattr(train, "generation_sample", 0):
            raise UserError(
                f"params.yaml: train.generation_sample applies to text2text tasks (outputs "
                f"generated on validation rows); this is a {self.name} task: set it to 0"
            )

    def metric_names(self, label_names: Sequence[str]) -> tuple[str, ...]:
        """The validation metrics :meth:`validate` returns (without ``val_``), ``loss``
        first: what ``train.early_stopping.metric`` and the pruner may name."""
        return ("loss", "accuracy", "f1_macro")

    def check_monitor(self, metric: str, label_names: Sequence[str]) -> None:
        """A UserError when ``train.early_stopping.metric`` is not one of this task's."""
        names = self.metric_names(label_names)
        if metric == "entity_f1" and metric not in names:
            raise UserError(
                "params.yaml: train.early_stopping.metric entity_f1 needs a token task with BIO "
                f"tags; this is a {self.name} task with labels {list(label_names)[:6]}"
            )
        if metric not in names:
            close = difflib.get_close_matches(metric, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(
                f"params.yaml: train.early_stopping.metric {metric} is not measured on a "
                f"{self.name} task{hint}; use one of {list(names)}"
            )

    def eval_columns(self, label_names: Sequence[str]) -> tuple[str, ...]:
        """Columns of ``plots/train/epochs.tsv`` (and of each evaluation row)."""
        from nlpflow.training.tracking import eval_columns

        return eval_columns()

    def uniform_classes(self, label_names: Sequence[str]) -> int | None:
        """K for the initial-loss check against ln(K) (a uniform guess's cross-entropy), or
        None where the check does not apply (a regression loss)."""
        return len(label_names)

    def validate(
        self,
        model: torch.nn.Module,
        split: PaddedSplit,
        batch_size: int,
        device: torch.device,
        criterion: Criterion,
        dist: Distributed | None,
        label_names: Sequence[str],
        precision: torch.dtype | None,
    ) -> dict[str, float]:
        """Mean loss (the criterion's) and :meth:`metric_names` of ``model`` on ``split``;
        every process returns the same numbers (rows shared out and gathered)."""
        from nlpflow.training.metrics import evaluate

        return evaluate(model, split, batch_size, device, criterion, dist, label_names, precision)

    def probe_model(self, model: Any) -> None:
        """Called once with the probe's model before :meth:`probe_batch` (a family whose
        batch depends on the architecture, as an encoder-decoder's decoder inputs, reads it
        here)."""

    def probe_criterion(self) -> Criterion:
        """The loss the probe's step computes on :meth:`probe_batch` (no class weights)."""
        from nlpflow.training.loss import Criterion

        return Criterion()

    def probe_labels(self, size: int, sequence_length: int, num_labels: int) -> torch.Tensor:
        """Labels of the probe's worst-case batch of ``size`` rows of ``sequence_length``
        tokens (memory and time depend on the shapes, not the values)."""
        import torch

        return torch.arange(size) % num_labels

    def probe_batch(
        self, row: torch.Tensor, size: int, num_labels: int, with_token_type_ids: bool
    ) -> dict[str, torch.Tensor]:
        """The probe's worst-case batch: ``row`` (1, T) random token ids repeated ``size``
        times, all positions attended, plus ``labels``. A family with other input shapes
        ((B, N, T) for multiple choice) builds its own."""
        import torch

        ids = row.expand(size, -1).contiguous()  # (B, T)
        batch = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "labels": self.probe_labels(size, ids.shape[1], num_labels),
        }
        if with_token_type_ids:
            batch["token_type_ids"] = torch.zeros_like(ids)
        return batch


def train_family(task: str) -> TrainFamily:
    """The training side of the family ``task`` (``DataMeta.task``)."""
    from nlpflow.families.choice.train import ChoiceTrain
    from nlpflow.families.multilabel.train import MultilabelTrain
    from nlpflow.families.qa.train import QaTrain
    from nlpflow.families.regression.train import RegressionTrain
    from nlpflow.families.sequence.train import SequenceTrain
    from nlpflow.families.text2text.train import Text2TextTrain
    from nlpflow.families.token.train import TokenTrain

    known: list[type[TrainFamily]] = [
        SequenceTrain,
        TokenTrain,
        RegressionTrain,
        QaTrain,
        Text2TextTrain,
        MultilabelTrain,
        ChoiceTrain,
    ]
    for cls in known:
        if cls.name == task:
            return cls()
    from nlpflow.families.names import TASKS

    if task in TASKS:  # a family whose stages stop before this one
        raise UserError(
            f"the {task} task has no training side in the pipeline yet (only its earlier "
            f"stages run; its library is nlpflow.families.{task}); this stage handles "
            f"{[c.name for c in known]}"
        )
    raise UserError(
        f"unknown task '{task}' in the data's meta.json; known: {[c.name for c in known]}"
    )
