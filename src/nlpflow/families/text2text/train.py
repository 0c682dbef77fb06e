"""Text-to-text, training side: teacher forcing on the target tokens.

The tokenized rows are already what the model reads (:func:`~.encoding.training_row`), so
the loss is the shared token-level cross-entropy (:class:`~nlpflow.training.loss.Criterion`)
over the counted target positions, and ``accuracy`` is the share of target tokens predicted
right under teacher forcing (not exact match of generated outputs; with
``train.generation_sample`` N, ``exact_match`` of greedy generations on the first N
validation rows is measured too, :mod:`.validation`):

- decoder-only: the row as a token task's, ``(B, T)`` ids and shifted labels;
- encoder-decoder: :class:`Seq2SeqSplit`, the prompt ``(B, T_in)`` to the encoder and
  ``decoder_input_ids``/``labels`` ``(B, T_out)`` to the decoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.train import TrainFamily
from nlpflow.training.data import PaddedSplit

if TYPE_CHECKING:
    import torch
    from datasets import Dataset

    from nlpflow.training.distributed import Distributed
    from nlpflow.training.loss import Criterion

METRICS = ("loss", "accuracy")
IGNORE = -100


@dataclass
class Seq2SeqSplit(PaddedSplit):
    """An encoder-decoder split: ``input_ids`` (N, T_in) prompts with ``prompt_lengths``,
    ``decoder_input_ids`` (N, T_out) and ``labels`` (N, T_out, -100 padded) with
    ``target_lengths``. ``lengths`` (the longer of the two per row) groups batches."""

    decoder_input_ids: Any = None
    prompt_lengths: Any = None
    target_lengths: Any = None

    @classmethod
    def from_columns(cls, split: Dataset, pad_id: int) -> Seq2SeqSplit:
        import numpy as np
        import torch

        def pad(rows: Any, value: int) -> tuple[torch.Tensor, torch.Tensor]:
            lengths = np.asarray([len(r) for r in rows], dtype=np.int64)
            out = np.full((len(rows), int(lengths.max(initial=1))), value, dtype=np.int64)
            for i, row in enumerate(rows):
                out[i, : len(row)] = row
            return torch.from_numpy(out), torch.from_numpy(lengths)

        ids, prompt_lengths = pad(split["input_ids"], pad_id)
        labels, target_lengths = pad(split["labels"], IGNORE)
        decoder, _ = pad(split["decoder_input_ids"], pad_id)
        return cls(
            input_ids=ids,
            token_type_ids=None,
            lengths=torch.maximum(prompt_lengths, target_lengths),
            labels=labels,
            decoder_input_ids=decoder,
            prompt_lengths=prompt_lengths,
            target_lengths=target_lengths,
        )

    def subset(self, index: torch.Tensor) -> Seq2SeqSplit:
        return Seq2SeqSplit(
            self.input_ids[index],
            None,
            self.lengths[index],
            self.labels[index],
            self.decoder_input_ids[index],
            self.prompt_lengths[index],
            self.target_lengths[index],
        )

    @property
    def token_task(self) -> bool:
        return True

    def batch(self, index: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        import torch

        prompt, target = self.prompt_lengths[index], self.target_lengths[index]
        wp, wt = int(prompt.max()), int(target.max())
        batch = {
            "input_ids": self.input_ids[index, :wp],
            "attention_mask": (torch.arange(wp)[None, :] < prompt[:, None]).long(),
            "decoder_input_ids": self.decoder_input_ids[index, :wt],
            "labels": self.labels[index, :wt],
        }
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    def targets(self, index: torch.Tensor) -> torch.Tensor:
        labels = self.labels[index]
        return labels[labels != IGNORE]


class Text2TextTrain(TrainFamily):
    name: ClassVar[str] = "text2text"
    _generation_sample: int = 0  # train.generation_sample
    _tokenizer: Any = None

    def configure(self, train: Any, tokenizer: Any) -> None:
        self._generation_sample = int(getattr(train, "generation_sample", 0))
        self._tokenizer = tokenizer

    def check_monitor(self, metric: str, label_names: Sequence[str]) -> None:
        if metric == "exact_match" and not self._generation_sample:
            raise UserError(
                "params.yaml: train.early_stopping.metric exact_match needs generated outputs; "
                "set train.generation_sample to the validation rows generated at each "
                "evaluation (e.g. 64)"
            )
        super().check_monitor(metric, label_names)

    def padded_split(self, split: Dataset, pad_id: int) -> PaddedSplit:
        if "decoder_input_ids" in split.column_names:
            return Seq2SeqSplit.from_columns(split, pad_id)
        return PaddedSplit.from_dataset(split, pad_id)  # decoder-only: a token task's layout

    def criterion(
        self, train: Any, label_names: Sequence[str], train_set: PaddedSplit, overfit: bool
    ) -> Criterion:
        from nlpflow.training.loss import Criterion

        self.check_loss(getattr(train, "loss", "auto"))
        if train.class_weights != "none":
            raise UserError(
                "params.yaml: train.class_weights does not apply to a text2text task (its "
                "targets are tokens, not classes); set it to none"
            )
        return Criterion(None, 0.0 if overfit else train.label_smoothing)

    def metric_names(self, label_names: Sequence[str]) -> tuple[str, ...]:
        return (*METRICS, "exact_match") if self._generation_sample else METRICS

    def eval_columns(self, label_names: Sequence[str]) -> tuple[str, ...]:
        columns = ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
        return (*columns, "val_exact_match") if self._generation_sample else columns

    def uniform_classes(self, label_names: Sequence[str]) -> int | None:
        return None  # the classes are the vocabulary: no ln(K) check of a label set

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
        """Mean token loss and token accuracy over the split's target tokens, summed over
        processes."""
        import torch

        from nlpflow.families.train import validation_batches, validation_order

        order = validation_order(split, dist)
        sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, correct, counted
        for output, labels in validation_batches(
            model, split, order, batch_size, device, precision
        ):
            sums[0] += criterion.sum(output, labels).double()
            sums[1] += criterion.correct(output, labels).double()
            sums[2] += (labels != IGNORE).sum().double()
        if dist is not None:
            dist.sum_(sums)
        loss, correct, counted = sums.tolist()
        out = {"loss": float("nan"), "accuracy": float("nan")}
        if counted:
            out = {"loss": loss / counted, "accuracy": correct / counted}
        if self._generation_sample:
            from nlpflow.families.text2text.validation import sample_exact_match

            out["exact_match"] = sample_exact_match(
                model, self._tokenizer, split, self._generation_sample, device, precision
            )
        return out

    def probe_batch(
        self, row: torch.Tensor, size: int, num_labels: int, with_token_type_ids: bool
    ) -> dict[str, torch.Tensor]:
        """``row`` (1, T), T the longest of every row's tokens (prompt + target for a
        decoder, the longer of prompt and target for an encoder-decoder), as the inputs and
        every label of ``size`` rows; an encoder-decoder gets it as its decoder input too
        (an upper bound of the longest prompt plus the longest target)."""
        import torch

        ids = row.expand(size, -1).contiguous()  # (B, T)
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "labels": ids.clone(),
            **({"decoder_input_ids": ids.clone()} if self._seq2seq else {}),
        }

    def probe_model(self, model: Any) -> None:
        self._seq2seq = bool(model.config.is_encoder_decoder)

    _seq2seq: bool = False
