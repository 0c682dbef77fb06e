"""Multiple choice, data side: files and the built-in task read into ``context``, ``options``
and ``label`` (the right option's index), and the encoding of each row as N pairs.

The processed data holds ``context`` (a string), ``options`` (a list of N strings) and
``label`` (a ``ClassLabel`` over the positions ``"0"`` .. ``"N-1"``, so the data card's label
counts are the answer positions and the split is stratified by them). The tokenized data holds
``input_ids`` (and ``token_type_ids``) as N id lists per row, one per (context, option) pair;
``length`` is the row's longest pair (what a batch pads to; the probe's worst case is N times
the longest pair), ``full_length`` the longest before truncation, so tokenize's
``truncated_fraction`` is the share of rows with at least one pair cut.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nlpflow.errors import UserError
from nlpflow.families.choice import CONTEXT, LABEL, OPTIONS
from nlpflow.families.data import Builtin, DataFamily, Row

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa

    from nlpflow.data.files import BadRows
    from nlpflow.families.choice.encoding import EncodedChoices
    from nlpflow.modeling.encoder import Encoder
    from nlpflow.params import CleaningParams, DataParams


class ChoiceData(DataFamily):
    name: ClassVar[str] = "choice"
    encoder_mode: ClassVar[str] = "sequence"  # each option is a (context, option) text pair

    def read_file(self, path: Path, params: DataParams, bad: BadRows) -> list[Row]:
        from nlpflow.families.choice.reader import read_choice_file

        rows, _ = read_choice_file(path, params, params.choice, bad)
        return rows

    def fields(self, params: DataParams) -> tuple[list[str], str]:
        return [CONTEXT, OPTIONS], LABEL

    def builtins(self) -> dict[str, Builtin]:
        from nlpflow.families.choice.builtin import generate_choice

        return {
            "builtin:choice": Builtin(
                lambda params, seed: generate_choice(params.choice, seed), (CONTEXT,), LABEL
            )
        }

    def normalise(
        self,
        raw: dict[str, list[Row]],
        label_field: str,
        origin: dict[str, str],
        bad: BadRows,
    ) -> dict[str, Any]:
        """Every part (file) must have the first part's number of options (within a file
        the reader has checked it already)."""
        for part, rows in raw.items():
            if rows and not all(isinstance(r.get(OPTIONS), list) for r in rows):
                raise UserError(
                    f"{origin.get(part, part)}: multiple choice reads local files (JSONL, JSON, "
                    "Parquet, CSV, TSV) and builtin:choice; save this data set with "
                    "to_json(path, lines=True) and point data.source or data.files at the file"
                )
        counts = {part: Counter(len(r[OPTIONS]) for r in rows) for part, rows in raw.items()}
        first = next(iter(raw))
        expected = counts[first].most_common(1)[0][0]
        for part, found in counts.items():
            other = sorted(n for n in found if n != expected)
            if other:
                raise UserError(
                    f"{origin.get(part, part)}: rows of {other[0]} options, but "
                    f"{origin.get(first, first)} has {expected}; a data set has one number of "
                    "options (the model scores N options per example): make every file's "
                    "rows have the same number"
                )
        return {}

    def strata(self, rows: Sequence[Row], label_field: str) -> list[str]:
        return [str(r[LABEL]) for r in rows]  # the answer positions stay balanced across splits

    def clean(
        self, rows: list[Row], text_fields: list[str], label_field: str, params: CleaningParams
    ) -> tuple[list[Row], dict[str, int]] | None:
        """``data.cleaning`` on the context and every option; a row whose context or an
        option is empty afterwards is dropped (``drop_empty``), and exact duplicates
        (context, options and label) within the split (``drop_duplicates``)."""
        from nlpflow.data.clean import clean_text

        counts: Counter[str] = Counter()
        out: list[Row] = []
        seen: set[tuple[Any, ...]] = set()
        for row in rows:
            row = dict(row)
            row[CONTEXT] = clean_text(row[CONTEXT], params, counts)
            row[OPTIONS] = [clean_text(o, params, counts) for o in row[OPTIONS]]
            texts = [row[CONTEXT], *row[OPTIONS]]
            if params.drop_empty and any(not t.strip() for t in texts):
                counts["empty_dropped"] += 1
                continue
            key = (row[CONTEXT], tuple(row[OPTIONS]), row[LABEL])
            if params.drop_duplicates and key in seen:
                counts["duplicates_dropped"] += 1
                continue
            seen.add(key)
            out.append(row)
        return out, dict(sorted(counts.items()))

    def labels_of(self, rows: Sequence[Row], label_field: str) -> list[str]:
        return [str(r[LABEL]) for r in rows]

    def label_names(
        self, splits: dict[str, list[Row]], label_field: str, origin: dict[str, str]
    ) -> list[str]:
        """The option positions ``"0"`` .. ``"N-1"`` (N from the rows, the same in every
        split: :meth:`normalise` checked it)."""
        width = len(splits["train"][0][OPTIONS])
        for split, rows in splits.items():
            for r in rows:
                if not 0 <= int(r[LABEL]) < width:  # the reader and the generator check it
                    raise UserError(
                        f"{origin[split]}, line {r.get('_line', '?')}: label {r[LABEL]} is "
                        f"out of range for {width} options"
                    )
        return [str(j) for j in range(width)]

    def warnings(
        self, names: list[str], splits: dict[str, list[Row]], label_field: str
    ) -> list[str]:
        """An answer position far more common than the others in train: a model can score
        that share by position alone (the ``position`` baseline shows how much)."""
        counts = Counter(int(r[LABEL]) for r in splits["train"])
        return position_warnings(counts, len(splits["train"]), len(names))

    def text_features(self, text_fields: Sequence[str]) -> dict[str, Any]:
        from datasets import Sequence as Seq
        from datasets import Value

        return {CONTEXT: Value("string"), OPTIONS: Seq(Value("string"))}

    def label_values(self, rows: Sequence[Row], label_field: str, label_names: list[str]) -> list:
        return [int(r[LABEL]) for r in rows]

    # ------------------------------------------------------------------ tokenize

    def lengths(self, encoder: Encoder, columns: list[list[Any]], where: str) -> Any:
        contexts, options = columns
        flat_contexts = [c for c, row in zip(contexts, options, strict=True) for _ in row]
        return encoder.lengths([flat_contexts, [o for row in options for o in row]], where)

    def encode(
        self, encoder: Encoder, columns: list[list[Any]], labels: pa.Array, where: str, first: int
    ) -> tuple[Any, Any]:
        from nlpflow.families.choice.encoding import encode_choices

        if len(columns) != 2:
            raise UserError("a multiple-choice task has two text fields: context and options")
        return encode_choices(encoder, columns[0], columns[1], where, first), labels

    def input_features(self, segments: bool) -> dict[str, Any] | None:
        from datasets import Sequence as Seq
        from datasets import Value

        out = {"input_ids": Seq(Seq(Value("int32")))}
        if segments:
            out["token_type_ids"] = Seq(Seq(Value("int8")))
        return out

    def input_columns(
        self, enc: EncodedChoices, specials: Any, unk_id: int | None
    ) -> dict[str, Any] | None:
        import pyarrow as pa

        n = len(enc)
        width = enc.lengths.shape[1] if n else 0
        pairs = [ids for row in enc.input_ids for ids in row]  # row-major: (n * N) lists
        pair_lengths = np.fromiter((len(p) for p in pairs), dtype=np.int64, count=len(pairs))
        flat = np.fromiter(
            chain.from_iterable(pairs), dtype=np.int64, count=int(pair_lengths.sum())
        )
        pair_of = np.repeat(np.arange(len(pairs)), pair_lengths)
        content = np.bincount(pair_of[~np.isin(flat, specials)], minlength=len(pairs))
        unknown = (
            np.bincount(pair_of[flat == unk_id], minlength=len(pairs))
            if unk_id is not None
            else np.zeros(len(pairs), dtype=np.int64)
        )
        by_row = pair_lengths.reshape(n, width)
        out: dict[str, Any] = {"input_ids": _nested(pairs, n, width, np.int32)}
        if enc.token_type_ids is not None:
            types = [t for row in enc.token_type_ids for t in row]
            out["token_type_ids"] = _nested(types, n, width, np.int8)
        out["length"] = pa.array(by_row.max(axis=1, initial=0).astype(np.int32))
        out["tokens"] = pa.array(by_row.sum(axis=1).astype(np.int32))
        out["full_length"] = pa.array(enc.lengths.max(axis=1, initial=0).astype(np.int32))
        out["unknown"] = pa.array(unknown.reshape(n, width).sum(axis=1).astype(np.int32))
        out["special_only"] = pa.array((content.reshape(n, width) == 0).any(axis=1))
        out["empty_words"] = pa.array(np.zeros(n, dtype=np.int32))
        out["truncated_words"] = pa.array(np.zeros(n, dtype=np.int32))
        return out


def position_warnings(counts: Counter[int], n: int, width: int) -> list[str]:
    """The warning of :meth:`ChoiceData.warnings` from the train rows' answer positions
    (``counts``: rows per position, ``n`` train rows, ``width`` options)."""
    top, count = max(counts.items(), key=lambda kv: (kv[1], -kv[0]))
    if n and count / n > 1.5 / width:
        return [
            f"the right option is option {top} in {count / n:.0%} of the train rows "
            f"(balanced: {1 / width:.0%}); a model can learn that position instead of the "
            "task: compare with the position baseline, or shuffle the options"
        ]
    return []


def _nested(pairs: list[list[int]], n: int, width: int, dtype: Any) -> pa.Array:
    """``n`` rows of ``width`` id lists as an Arrow list of lists."""
    import pyarrow as pa

    from nlpflow.data.tokenize import _list_array

    inner = _list_array(pairs, dtype)
    offsets = (
        pa.array(np.arange(0, n * width + 1, width, dtype=np.int32))
        if n
        else pa.array(np.zeros(1, dtype=np.int32))
    )
    return pa.ListArray.from_arrays(offsets, inner)
