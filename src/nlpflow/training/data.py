"""The tokenized data as the training code needs it: task, label names, lengths, batches.

``data/tokenized`` is a ``DatasetDict`` with columns ``input_ids`` (not padded),
``token_type_ids`` (optional), ``labels`` and ``length``, and a ``meta.json`` whose ``task``
is ``sequence`` (``labels`` a ``ClassLabel``) or ``token`` (``labels`` a list per example,
aligned to sub-tokens, ``-100`` where ignored; the names are ``meta.json``'s
``label_names``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nlpflow.data.saved import IGNORE_INDEX
from nlpflow.errors import UserError
from nlpflow.io import read_json

if TYPE_CHECKING:
    import torch
    from datasets import Dataset, DatasetDict

REQUIRED_COLUMNS = ("input_ids", "labels")
Task = Literal["sequence", "token"]


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


@dataclass
class DataInfo:
    """What the model needs to know about the data: the task and the label names."""

    task: Task
    label_names: list[str]

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def _meta(path: Path) -> dict[str, Any]:
    meta_path = path / "meta.json"
    if not meta_path.exists():
        return {}
    try:
        meta = read_json(meta_path)
    except ValueError as err:
        raise UserError(f"{meta_path} is not valid JSON: {err}") from None
    return meta if isinstance(meta, dict) else {}


def data_info(data: DatasetDict, path: str | Path) -> DataInfo:
    """The task and label names, from ``meta.json`` and the ``labels`` feature.

    Sequence tasks take the names from the ``ClassLabel`` (the order of the ids); token tasks
    from ``meta.json``'s ``label_names`` (the ``ClassLabel`` is on data/processed's ``label``
    feature, not on the aligned ``labels`` of data/tokenized).
    """
    from datasets import ClassLabel

    path = Path(path)
    meta = _meta(path)
    feature = data["train"].features["labels"]
    task = meta.get("task") or ("sequence" if isinstance(feature, ClassLabel) else "token")
    if task == "sequence":
        if not isinstance(feature, ClassLabel):
            raise UserError(
                f"{path}: the 'labels' column of a sequence task must be a ClassLabel "
                "(its names give id2label); rerun the tokenize stage"
            )
        return DataInfo("sequence", list(feature.names))
    if task != "token":
        raise UserError(f"{path}/meta.json: unknown task '{task}'; expected sequence or token")
    names = meta.get("label_names")
    inner = getattr(feature, "feature", None)
    if not names and isinstance(inner, ClassLabel):
        names = list(inner.names)
    if not names or not all(isinstance(n, str) for n in names):
        raise UserError(
            f"{path}/meta.json lacks the 'label_names' of this token task; rerun the "
            "preprocess and tokenize stages"
        )
    return DataInfo("token", list(names))


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
    labels: torch.Tensor  # (N,) int64, or (N, T_max) int64 padded with -100 (token task)

    @classmethod
    def from_dataset(cls, split: Dataset, pad_id: int) -> PaddedSplit:
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
