"""(context, option) pairs to model inputs: ``(N, T)`` ids per example, ``(B, N, T)`` per batch.

Each option is encoded as a pair with its context through the one encoder
(:class:`nlpflow.modeling.encoder.Encoder`, two text fields), so a multiple-choice row is N
pair encodings: ``[CLS] context [SEP] option_j [SEP]`` for BERT, the model's own template
otherwise. ``tokenizer.truncation`` applies per pair: ``only_first`` cuts the context and keeps
every option whole (what ``run_swag.py`` does), ``longest_first`` cuts the longer side.

The rows stay unpadded (ragged: each of the N sequences has its own length) until a batch is
built: :func:`pad_choices` pads a batch to its own longest sequence, ``(B, N, T)``, with an
attention mask. The probe's worst case is ``(B, N, max_length)``: every option of every example
as long as the longest sequence allowed (:func:`worst_case_batch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from nlpflow.modeling.encoder import Encoder

IntArray = npt.NDArray[np.int64]


@dataclass
class EncodedChoices:
    """Model inputs of ``n`` rows of N options each, unpadded.

    ``input_ids[i][j]``: the ids of row ``i``'s option ``j`` paired with its context;
    ``token_type_ids`` the same shape, or None when the model takes no segment ids;
    ``lengths``: ``(n, N)`` untruncated lengths in tokens (special tokens included), so
    ``lengths > max_length`` marks the pairs that were cut.
    """

    input_ids: list[list[list[int]]]
    token_type_ids: list[list[list[int]]] | None
    lengths: IntArray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))

    def __len__(self) -> int:
        return len(self.input_ids)

    def truncated(self, max_length: int) -> IntArray:
        """Per row, how many of its options were cut to ``max_length``: ``(n,)``."""
        return (self.lengths > max_length).sum(axis=1).astype(np.int64)


def encode_choices(
    encoder: Encoder,
    contexts: Sequence[str],
    options: Sequence[Sequence[str]],
    where: str = "",
    first_row: int = 0,
) -> EncodedChoices:
    """Encode ``n`` rows: ``contexts`` (n strings) and ``options`` (n lists of N strings).

    ``encoder`` must have two text fields (context, option). Each option position is encoded
    over all rows in one batch, so a row that cannot be encoded is named by its split
    (``where``), row number (``first_row`` + index) and option.

    Raises:
        ValueError: the rows do not all have the same number of options, or ``encoder`` is not
            a pair encoder (programming errors: the reader guarantees both).
        UserError: a pair cannot be fitted in ``max_length`` under ``only_first`` or
            ``only_second`` truncation (from the encoder, naming the row).
    """
    if len(encoder.text_fields) != 2 or encoder.task != "sequence":
        raise ValueError("multiple choice needs a pair encoder (context, option)")
    if len(contexts) != len(options):
        raise ValueError(f"{len(contexts)} contexts for {len(options)} rows of options")
    n = len(contexts)
    counts = {len(o) for o in options}
    if len(counts) > 1:
        raise ValueError(f"rows with different numbers of options: {sorted(counts)}")
    if n == 0:
        return EncodedChoices([], None)
    width = counts.pop()
    per_option = []
    lengths = np.zeros((n, width), dtype=np.int64)
    for j in range(width):
        columns = [list(contexts), [row[j] for row in options]]
        label = f"{where + ' ' if where else ''}option {j + 1},"
        per_option.append(encoder.encode(columns, where=label, first_row=first_row))
        lengths[:, j] = encoder.lengths(columns, where=label, first_row=first_row)
    ids = [[per_option[j].input_ids[i] for j in range(width)] for i in range(n)]
    types = None
    if encoder.segments:
        types = [
            [per_option[j].token_type_ids[i] for j in range(width)]  # type: ignore[index]
            for i in range(n)
        ]
    return EncodedChoices(ids, types, lengths)


def pad_choices(
    input_ids: Sequence[Sequence[Sequence[int]]],
    pad_id: int,
    token_type_ids: Sequence[Sequence[Sequence[int]]] | None = None,
) -> dict[str, IntArray]:
    """A batch of B rows of N sequences, padded to the batch's longest sequence T.

    Returns ``input_ids`` ``(B, N, T)`` (``pad_id`` after each sequence's end),
    ``attention_mask`` ``(B, N, T)`` (1 on real tokens) and, when given,
    ``token_type_ids`` ``(B, N, T)`` (0 on padding); int64 each.

    Raises:
        ValueError: the rows have different numbers of options, or a sequence is empty.
    """
    b = len(input_ids)
    counts = {len(row) for row in input_ids}
    if len(counts) > 1:
        raise ValueError(f"rows with different numbers of options: {sorted(counts)}")
    n = counts.pop() if counts else 0
    lengths = np.array([[len(s) for s in row] for row in input_ids], dtype=np.int64).reshape(b, n)
    if lengths.size and lengths.min() == 0:
        raise ValueError("an encoded option has no tokens at all")
    t = int(lengths.max(initial=1))
    mask = np.arange(t)[None, None, :] < lengths[:, :, None]  # (B, N, T)

    def pad(rows: Sequence[Sequence[Sequence[int]]], value: int) -> IntArray:
        out = np.full((b, n, t), value, dtype=np.int64)
        if lengths.size:
            out[mask] = np.concatenate([np.asarray(s, dtype=np.int64) for r in rows for s in r])
        return out

    batch = {"input_ids": pad(input_ids, pad_id), "attention_mask": mask.astype(np.int64)}
    if token_type_ids is not None:
        batch["token_type_ids"] = pad(token_type_ids, 0)
    return batch


def worst_case_batch(
    batch_size: int,
    num_options: int,
    max_length: int,
    vocab_size: int,
    segments: bool,
    seed: int,
) -> dict[str, IntArray]:
    """The probe's worst case: ``(batch_size, num_options, max_length)`` ids, every position
    attended (one random sequence repeated: memory and time depend on the shape, not the
    tokens), labels ``(batch_size,)`` cycling over the options."""
    rng = np.random.default_rng(seed)
    row = rng.integers(0, vocab_size, size=max_length, dtype=np.int64)
    ids = np.broadcast_to(row, (batch_size, num_options, max_length)).copy()
    batch = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "labels": np.arange(batch_size, dtype=np.int64) % num_options,
    }
    if segments:
        batch["token_type_ids"] = np.zeros_like(ids)
    return batch
