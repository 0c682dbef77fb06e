"""The tokenized data as the training code needs it: task, label names, lengths, batches.

``data/tokenized`` is read and written by :mod:`nlpflow.data.saved` (its layout is described
there); this module turns it into padded tensors and batches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.data.saved import IGNORE_INDEX, DataMeta, read_meta, read_tokenized
from nlpflow.errors import UserError

if TYPE_CHECKING:
    import torch
    from datasets import Dataset, DatasetDict


def load_tokenized(path: str | Path) -> DatasetDict:
    """Load ``data/tokenized`` (through :func:`nlpflow.data.saved.read_tokenized`) with a
    clear error when it is missing or has the wrong shape."""
    data, _ = read_tokenized(path)
    return data


def data_info(data: DatasetDict, path: str | Path) -> DataMeta:
    """The tokenized data's meta (task, label names), checked against its ``labels`` feature:
    a sequence task's ``ClassLabel`` names are the ids' order and must be meta's
    ``label_names``."""
    from datasets import ClassLabel

    path = Path(path)
    meta = read_meta(path, tokenized=True)
    feature = data["train"].features["labels"]
    if meta.task == "sequence":
        if not isinstance(feature, ClassLabel):
            raise UserError(
                f"{path}: the 'labels' column of a sequence task must be a ClassLabel "
                "(its names give id2label); rerun the tokenize stage"
            )
        if list(feature.names) != meta.label_names:
            raise UserError(
                f"{path}: the 'labels' ClassLabel names {list(feature.names)} differ from "
                f"meta.json's label_names {meta.label_names}; rerun the tokenize stage"
            )
    return meta


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
    per-example Python work in the training loop. Ids are stored as int32 (half the
    memory) and widened per batch.
    """

    input_ids: torch.Tensor  # (N, T_max) int32, padded with pad_id
    token_type_ids: torch.Tensor | None  # (N, T_max) int32, padded with 0
    lengths: torch.Tensor  # (N,) int64
    # (N,) int64, or (N, T_max) int64 padded with -100 (token task), or (N,) float32 targets
    labels: torch.Tensor

    @classmethod
    def from_dataset(cls, split: Dataset, pad_id: int, numeric_labels: bool = False) -> PaddedSplit:
        """``numeric_labels``: one number per row (regression), kept as float32."""
        import numpy as np
        import torch

        columns = split.with_format("numpy")[:] if len(split) else split[:]
        ids_rows = columns["input_ids"]
        lengths = np.asarray([len(ids) for ids in ids_rows], dtype=np.int64)
        width = int(lengths.max(initial=1))
        mask = np.arange(width)[None, :] < lengths[:, None]  # (N, T_max)

        def pad(rows: Any, value: int, dtype: Any) -> torch.Tensor:
            out = np.full((len(rows), width), value, dtype=dtype)
            if len(rows):
                out[mask] = np.concatenate([np.asarray(r, dtype=dtype) for r in rows])
            return torch.from_numpy(out)

        types = columns.get("token_type_ids")
        raw_labels = columns["labels"]
        token_task = len(raw_labels) > 0 and np.ndim(raw_labels[0]) == 1
        if token_task:
            label_lengths = np.asarray([len(r) for r in raw_labels])
            if not np.array_equal(label_lengths, lengths):
                row = int(np.flatnonzero(label_lengths != lengths)[0])
                raise UserError(
                    f"row {row}: {label_lengths[row]} labels for {lengths[row]} tokens; token "
                    "labels must be aligned to the sub-tokens (rerun the tokenize stage)"
                )
            labels = pad(raw_labels, IGNORE_INDEX, np.int64)
        elif numeric_labels:
            labels = torch.as_tensor(np.asarray(raw_labels, dtype=np.float32))
        else:
            labels = torch.as_tensor(np.asarray(raw_labels, dtype=np.int64))
        return cls(
            input_ids=pad(ids_rows, pad_id, np.int32),
            token_type_ids=pad(types, 0, np.int32) if types is not None else None,
            lengths=torch.from_numpy(lengths),
            labels=labels,
        )

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def token_task(self) -> bool:
        return self.labels.dim() == 2

    def subset(self, index: torch.Tensor) -> PaddedSplit:
        """The rows ``index`` as a split of their own (the overfit-batches check)."""
        return PaddedSplit(
            self.input_ids[index],
            None if self.token_type_ids is None else self.token_type_ids[index],
            self.lengths[index],
            self.labels[index],
        )

    def batch(self, index: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """Rows ``index`` padded to their own longest row, with the attention mask, on device."""
        import torch

        lengths = self.lengths[index]
        width = int(lengths.max())  # a CPU tensor: no device sync
        batch = {
            "input_ids": self.input_ids[index, :width].long(),
            "attention_mask": (torch.arange(width)[None, :] < lengths[:, None]).long(),
            "labels": self.labels[index, :width] if self.token_task else self.labels[index],
        }
        if self.token_type_ids is not None:
            batch["token_type_ids"] = self.token_type_ids[index, :width].long()
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    def targets(self, index: torch.Tensor) -> torch.Tensor:
        """The labels of rows ``index`` that the loss counts (flat; ``-100`` dropped)."""
        if not self.token_task:
            return self.labels[index]
        labels = self.labels[index]
        return labels[labels != IGNORE_INDEX]
