"""The tokenized data as the training code needs it: label names, lengths, padded batches.

``data/tokenized`` is a ``DatasetDict`` with columns ``input_ids`` (not padded),
``token_type_ids`` (optional), ``labels`` (a ``ClassLabel``) and ``length``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nlpflow.errors import UserError

if TYPE_CHECKING:
    import torch
    from datasets import Dataset, DatasetDict

REQUIRED_COLUMNS = ("input_ids", "labels")


def load_tokenized(path: str | Path) -> DatasetDict:
    """Load ``data/tokenized`` with a clear error when it is missing or has the wrong shape."""
    from datasets import DatasetDict, load_from_disk

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} not found; run the tokenize stage first (dvc repro tokenize)")
    try:
        data = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"{path} is not a saved DatasetDict: {str(err).splitlines()[0]}") from None
    if not isinstance(data, DatasetDict) or "train" not in data:
        raise UserError(f"{path} must be a DatasetDict with a 'train' split")
    for name, split in data.items():
        missing = [c for c in REQUIRED_COLUMNS if c not in split.column_names]
        if missing:
            raise UserError(f"{path}: split '{name}' lacks column(s) {missing}")
    return data


def label_names(data: DatasetDict) -> list[str]:
    """Label names in id order, from the ``ClassLabel`` feature of the train split."""
    from datasets import ClassLabel

    feature = data["train"].features["labels"]
    if not isinstance(feature, ClassLabel):
        raise UserError(
            "the 'labels' column of data/tokenized must be a ClassLabel (its names give id2label)"
        )
    return list(feature.names)


def _lengths(split: Dataset) -> list[int]:
    if "length" in split.column_names:
        return [int(n) for n in split["length"]]
    return [len(ids) for ids in split["input_ids"]]


def max_sequence_length(data: DatasetDict) -> int:
    """The longest sequence over all splits: the model's position table and the probe's batch."""
    return max((max(_lengths(split), default=0) for split in data.values()), default=0)


def fingerprint_split(split: Dataset) -> str:
    """A content hash of a split's Arrow files, so a checkpoint knows the data it was made on."""
    digest = hashlib.sha256()
    digest.update(str(split.num_rows).encode())
    digest.update(repr(sorted(split.features.to_dict().items())).encode())
    files = [f["filename"] for f in split.cache_files]
    if not files:  # an in-memory dataset: hash its rows
        digest.update(repr(split[:]).encode())
    for name in files:
        with open(name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


@dataclass
class PaddedSplit:
    """A split held as padded tensors; a batch is cut down to its own longest row.

    Padding once up front and slicing per batch gives dynamic padding without any
    per-example Python work in the training loop.
    """

    input_ids: torch.Tensor  # (N, T_max) int64, padded with pad_id
    token_type_ids: torch.Tensor | None  # (N, T_max) int64, padded with 0
    lengths: torch.Tensor  # (N,) int64
    labels: torch.Tensor  # (N,) int64

    @classmethod
    def from_dataset(cls, split: Dataset, pad_id: int) -> PaddedSplit:
        import numpy as np
        import torch

        columns = split[:]
        lengths = np.asarray([len(ids) for ids in columns["input_ids"]], dtype=np.int64)
        width = int(lengths.max(initial=1))
        mask = np.arange(width)[None, :] < lengths[:, None]  # (N, T_max)

        def pad(rows: list[list[int]], value: int) -> torch.Tensor:
            out = np.full((len(rows), width), value, dtype=np.int64)
            if len(rows):
                out[mask] = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows])
            return torch.from_numpy(out)

        types = columns.get("token_type_ids")
        return cls(
            input_ids=pad(columns["input_ids"], pad_id),
            token_type_ids=pad(types, 0) if types is not None else None,
            lengths=torch.from_numpy(lengths),
            labels=torch.as_tensor(columns["labels"], dtype=torch.int64),
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, index: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """Rows ``index`` padded to their own longest row, with the attention mask, on device."""
        import torch

        lengths = self.lengths[index]
        width = int(lengths.max())  # a CPU tensor: no device sync
        batch = {
            "input_ids": self.input_ids[index, :width],
            "attention_mask": (torch.arange(width)[None, :] < lengths[:, None]).long(),
            "labels": self.labels[index],
        }
        if self.token_type_ids is not None:
            batch["token_type_ids"] = self.token_type_ids[index, :width]
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
