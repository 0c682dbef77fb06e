"""Multiple choice, training side: rows of N sequences as ``(B, N, T)`` batches.

The loss, accuracy and the validation metrics are classification's over the N options: the
model's logits are ``(B, N)`` and the label is the right option's index, so cross-entropy over
the options, ``ln(N)`` for a uniform first guess. The probe's worst case is ``(B, N, T)`` with
T the longest (context, option) sequence of the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.train import TrainFamily
from nlpflow.training.data import PaddedSplit

if TYPE_CHECKING:
    import torch
    from datasets import Dataset


@dataclass
class PaddedChoices(PaddedSplit):
    """A split of rows of N sequences, padded once to ``(n, N, T_max)``; a batch is cut down
    to its own longest sequence. ``lengths`` (n,) is each row's longest sequence (what the
    sampler groups by), ``pair_lengths`` (n, N) every sequence's length (the attention mask).
    """

    pair_lengths: Any = None  # torch.Tensor (n, N) int64

    @classmethod
    def from_dataset(
        cls, split: Dataset, pad_id: int, numeric_labels: bool = False
    ) -> PaddedChoices:
        import numpy as np
        import torch

        columns = split[:]
        rows = columns["input_ids"]
        n = len(rows)
        widths = {len(r) for r in rows}
        if len(widths) > 1:
            raise UserError(
                f"rows with different numbers of options {sorted(widths)} in the tokenized "
                "data; rerun the preprocess and tokenize stages"
            )
        width = widths.pop() if widths else 0
        pair_lengths = np.asarray([[len(ids) for ids in r] for r in rows], dtype=np.int64).reshape(
            n, width
        )
        t_max = int(pair_lengths.max(initial=1))
        mask = np.arange(t_max)[None, None, :] < pair_lengths[:, :, None]  # (n, N, T)

        def pad(values: Any, fill: int, dtype: Any) -> torch.Tensor:
            out = np.full((n, width, t_max), fill, dtype=dtype)
            if n and width:
                out[mask] = np.concatenate(
                    [np.asarray(ids, dtype=dtype) for r in values for ids in r]
                )
            return torch.from_numpy(out)

        types = columns.get("token_type_ids")
        return cls(
            input_ids=pad(rows, pad_id, np.int32),
            token_type_ids=None if types is None else pad(types, 0, np.int32),
            lengths=torch.from_numpy(pair_lengths.max(axis=1, initial=0)),
            labels=torch.as_tensor(np.asarray(columns["labels"], dtype=np.int64)),
            pair_lengths=torch.from_numpy(pair_lengths),
        )

    def subset(self, index: torch.Tensor) -> PaddedChoices:
        return PaddedChoices(
            self.input_ids[index],
            None if self.token_type_ids is None else self.token_type_ids[index],
            self.lengths[index],
            self.labels[index],
            self.pair_lengths[index],
        )

    def batch(self, index: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """Rows ``index`` as ``(B, N, T)`` inputs, T their own longest sequence, with the
        attention mask; ``labels`` (B,)."""
        import torch

        width = int(self.lengths[index].max())
        lengths = self.pair_lengths[index]  # (B, N)
        batch = {
            "input_ids": self.input_ids[index, :, :width].long(),
            "attention_mask": (torch.arange(width)[None, None, :] < lengths[:, :, None]).long(),
            "labels": self.labels[index],
        }
        if self.token_type_ids is not None:
            batch["token_type_ids"] = self.token_type_ids[index, :, :width].long()
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class ChoiceTrain(TrainFamily):
    name: ClassVar[str] = "choice"

    def padded_split(self, split: Dataset, pad_id: int) -> PaddedSplit:
        return PaddedChoices.from_dataset(split, pad_id)

    def probe_batch(
        self, row: torch.Tensor, size: int, num_labels: int, with_token_type_ids: bool
    ) -> dict[str, torch.Tensor]:
        """``size`` rows of N = ``num_labels`` options, each the longest sequence ``row``
        (1, T): ``(B, N, T)``, every position attended."""
        import torch

        ids = row.reshape(1, 1, -1).expand(size, num_labels, -1).contiguous()  # (B, N, T)
        batch = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "labels": torch.arange(size) % num_labels,
        }
        if with_token_type_ids:
            batch["token_type_ids"] = torch.zeros_like(ids)
        return batch
