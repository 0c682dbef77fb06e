""":func:`nlpflow.data.prepare.load_splits` streamed, for the families that stream: sequence
classification (class labels), multi-label (label lists: families/multilabel/stream.py),
token classification (words and tags: families/token/stream.py, which reads CoNLL files in
blocks and uses the passes below) and the families whose label is a target
(:class:`~nlpflow.data.stream.Target`: regression's number, text-to-text's target text).

Each part of the source is read once in Arrow batches (a CSV/TSV file through
``pyarrow.csv`` when the strict Python reader would read it alike,
:mod:`nlpflow.data.fastcsv`; other files through the Python reader, as one table), cleaned
and hashed column by column (:mod:`nlpflow.data.columns`, exactly as the per-text
functions), and kept on disk between the passes (:mod:`nlpflow.data.stream`): splitting,
dropping, the duplicate and leakage checks work on per-row arrays (digests, label codes or
targets, lengths), so memory stays flat as rows grow. The results are those of the
in-memory path, figure for figure.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlpflow.data import columns, fastcsv
from nlpflow.data.checks import Leakage, find_leakage_digests, key_text
from nlpflow.data.files import BadRows, NotStreamed, Row, checked_row_chunks
from nlpflow.data.prepare import (
    EXAMPLES_PER_LABEL,
    FastFile,
    PreparedData,
    Raw,
    RowFile,
    SplitFigures,
    SplitRows,
    _rows,
)
from nlpflow.data.split import label_names_from, stratified_split_codes
from nlpflow.data.stream import (
    Codes,
    Deferred,
    EmptyLabel,
    Part,
    PartBuilder,
    Target,
    as_text,
    first_occurrences,
    gather,
    label_counts,
    rows_table,
    step_counts,
)
from nlpflow.errors import UserError
from nlpflow.families.sequence.data import class_warnings
from nlpflow.io import return_freed_memory
from nlpflow.params import SPLITS, DataParams
from nlpflow.threads import map_ahead, read_ahead


def _first_pass(
    raw: Raw,
    builder: PartBuilder,
    params: DataParams,
    bad: BadRows,
    target: Target | None = None,
    origin: str = "",
    deferred: BadRows | None = None,
    label_type: Any = None,
) -> Part:
    """Read one part into ``builder``: a streamed file, or Python rows as one table. A file
    the stream cannot take is read again by the Python reader (which names its problems).
    ``target``: the family's label handling (``origin``: the part's file or source;
    ``deferred``: where its bad rows wait, see :class:`~nlpflow.data.stream.Deferred`);
    ``label_type``: the Arrow type of Python rows' label column (default: strings)."""
    if isinstance(raw, FastFile):
        builder.checked = False
        mark = len(deferred.calls) if isinstance(deferred, Deferred) else 0
        try:
            builder.add_all(read_ahead(fastcsv.read_batches(raw.path, params)))
            return builder.finish()
        except (fastcsv.NotFast, EmptyLabel):
            builder.reset()
            if isinstance(deferred, Deferred):  # the Python reader reports them again
                deferred.rewind(mark)
            raw = _rows(raw, params, bad)
        finally:
            builder.checked = True
    if isinstance(raw, RowFile):
        try:
            # lines parsed and checked (Python) on a thread while the features of the
            # chunk before are computed (pyarrow, which releases the GIL)
            _add_row_chunks(builder, read_ahead(checked_row_chunks(raw.path, params, bad)))
            return builder.finish()
        except NotStreamed:
            builder.reset()
            raw = _rows(raw, params, bad)
    if not isinstance(raw, list):  # a CoNLL file: token classification reads it itself
        raw = _rows(raw, params, bad)
    if target is not None:
        import pyarrow as pa

        raw = target.rows(raw, builder.label_field, builder.name, origin, deferred or bad)
        label_type = pa.type_for_alias(target.label_type)
    table, present = rows_table(
        raw, builder.task, builder.text_fields, builder.label_field, label_type
    )
    builder.add(table, present)
    return builder.finish()


@dataclass
class StreamInputs:
    """What :func:`~nlpflow.data.prepare.load_splits` hands a family's streamed build: the
    data settings, the seed, the parts to read (``raw``: handed over, see :func:`read_parts`),
    the source and each split's file for messages, the task, text and label fields, the bad
    rows, and a directory for the parts on disk."""

    params: DataParams
    seed: int
    raw: dict[str, Raw]
    source: str
    origin: dict[str, str]
    fields: tuple[str, list[str], str]
    bad: BadRows
    workdir: Path


def read_parts(inputs: StreamInputs, first_pass: Callable[[str, Raw], Part]) -> dict[str, Part]:
    """Each part of ``inputs.raw`` read by ``first_pass(name, raw)``, in order, taken out of
    ``inputs`` as it is read: rows held in memory (JSON arrays, built-in data) are freed
    then, not kept until the stage ends."""
    parts = {}
    while inputs.raw:
        name = next(iter(inputs.raw))
        parts[name] = first_pass(name, inputs.raw.pop(name))
    return parts


def _add_row_chunks(builder: PartBuilder, chunks: Iterable[list[Row]]) -> None:
    """Python rows a chunk at a time, each chunk a table with the first chunk's columns, as
    :func:`~nlpflow.data.stream.rows_table` makes of the whole list: a metadata key a chunk
    lacks is null there (and absent from its rows); a key the first chunk lacked raises
    :class:`NotStreamed` (the whole list orders its columns by first appearance)."""
    import pyarrow as pa

    names: list[str] | None = None
    for rows in chunks:
        table, present = rows_table(rows, builder.task, builder.text_fields, builder.label_field)
        if names is None:
            names, keys = table.column_names, list(present)
        elif not set(table.column_names) <= set(names):
            raise NotStreamed
        else:
            for name in names:
                if name not in table.column_names:
                    table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
            table = table.select(names)
            present = {k: present.get(k, np.zeros(table.num_rows, bool)) for k in keys}
        builder.add(table, present)


def _assign_splits(
    parts: dict[str, Part],
    strata: Callable[[Part], tuple[np.ndarray, list[str]]],
    params: DataParams,
    seed: int,
    source: str,
) -> dict[str, SplitRows]:
    """Rows per split: stratified from one collection, or as the files give them
    (validation carved from train when there is no validation file). ``strata(part)``:
    per row a stratum code and the strata's names."""
    if "all" in parts:
        part = parts["all"]
        fractions = {s: params.splits[s] for s in SPLITS}
        idx = stratified_split_codes(*strata(part), fractions, seed)
        return {s: SplitRows(part, idx[s]) for s in SPLITS}
    if "test" not in parts:
        raise UserError(f"{source}: no test split found; add a test file or set data.files.test")
    out = {s: SplitRows(p, np.arange(p.n, dtype=np.int64)) for s, p in parts.items()}
    if "validation" not in parts:
        part = parts["train"]
        share = params.splits["validation"] / (params.splits["train"] + params.splits["validation"])
        fractions = {"train": 1 - share, "validation": share}
        idx = stratified_split_codes(*strata(part), fractions, seed)
        out["train"] = SplitRows(part, idx["train"])
        out["validation"] = SplitRows(part, idx["validation"])
    return out


def _clean_splits(splits: dict[str, SplitRows], params: DataParams) -> dict[str, dict[str, int]]:
    """Drop empty texts and duplicates (texts and label) within each split, as
    ``data.cleaning`` says (``clean_rows``); the counts of what each step changed or dropped."""
    cleaning: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        part, rows = splits[split].part, splits[split].rows
        counts = step_counts(part, rows)
        keep = np.ones(len(rows), dtype=bool)
        if params.cleaning.drop_empty:
            blank = gather(part.blank, rows)
            if blank.any():
                counts["empty_dropped"] = int(blank.sum())
            keep &= ~blank
        if params.cleaning.drop_duplicates:
            # boolean masks, not index arrays (8 bytes a row)
            first = first_occurrences(part, rows if keep.all() else rows[keep])
            if not first.all():
                counts["duplicates_dropped"] = int((~first).sum())
            keep[keep] = first
        splits[split] = SplitRows(part, rows[keep])
        cleaning[split] = dict(sorted(counts.items()))
    return cleaning


def _pick_examples(train: SplitRows, names: list[str], seed: int) -> dict[str, list[Row]]:
    """:meth:`PreparedData.examples_by_label` of streamed train rows (the same picks)."""
    rng = random.Random(f"card-{seed}")
    of_row = gather(train.part.label_codes, train.rows)
    out = {}
    for code in sorted(np.unique(of_row).tolist(), key=lambda c: names[c]):
        members = np.flatnonzero(of_row == code)
        picks = rng.sample(range(len(members)), min(EXAMPLES_PER_LABEL, len(members)))
        out[names[code]] = train.part.rows([int(train.rows[members[p]]) for p in picks])
    return out


def _drop_leaks(
    parts: dict[str, Part],
    splits: dict[str, SplitRows],
    text_fields: list[str],
    params: DataParams,
    origin: dict[str, str],
) -> Leakage:
    """The leakage check on digests (``data.leakage``: rows dropped from ``splits`` in
    place); a UserError when a split is left empty."""

    def examples(split: str, idx: list[int]) -> list[tuple[str, str]]:
        chosen = splits[split]
        rows = chosen.part.rows([int(chosen.rows[i]) for i in idx])
        return [
            (str(r.get("id", r.get("_line"))), key_text(r, text_fields).replace("\x1f", " / "))
            for r in rows
        ]

    def digests(kind: str, split: str) -> np.ndarray:
        chosen = splits[split]
        return gather(chosen.part.exact if kind == "exact" else chosen.part.loose, chosen.rows)

    sizes = {s: len(splits[s]) for s in SPLITS}
    drop, leakage = find_leakage_digests(sizes, digests, examples, params.leakage)
    for part in parts.values():  # checked: 18 bytes a row no longer needed
        part.forget("exact", "loose", "blank")
        part.bits = []
        if part.label_keys is not None:
            part.forget("label_keys")
    for split in SPLITS:
        splits[split] = SplitRows(splits[split].part, splits[split].rows[~drop[split]])
        if not len(splits[split]):
            raise UserError(
                f"{origin[split]}: the {split} split is empty; add data or change data.splits"
            )
    return leakage


def _metadata(train: SplitRows, text_fields: list[str], label_field: str) -> list[str]:
    """The metadata columns: those of train's rows but the text fields, label, id and line."""
    reserved = {"id", "_line", label_field, *text_fields}
    present = train.part.present
    return sorted(
        k
        for k in train.part.columns
        if k not in reserved and (k not in present or present[k][train.rows].any())
    )


def _vocabulary(train: SplitRows, text_fields: list[str]) -> int:
    """Distinct lowercased words of train's texts, kept in Arrow; two batches at a time."""
    import pyarrow as pa
    import pyarrow.compute as pc

    single_spaced = train.part.single_spaced

    def words(table: pa.Table) -> pa.Array:
        texts = [as_text(table.column(f).combine_chunks()) for f in text_fields]
        return columns.lower_words(columns.joined(texts, " / "), single_spaced)

    vocabulary = pa.array([], pa.string())
    for found in map_ahead(words, train.batches()):
        vocabulary = pc.unique(pa.concat_arrays([vocabulary, found]))
    return len(vocabulary)


def _in_background(function: Callable[..., Any], *args: Any) -> Future[Any]:
    """``function(*args)`` started on a thread of its own; its result (or error) when asked."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlpflow-background")
    future = pool.submit(function, *args)
    pool.shutdown(wait=False)  # the thread ends with the function
    return future


def split_label_counts(splits: dict[str, SplitRows], labels: Codes) -> dict[str, dict[str, int]]:
    """Per split, how many rows have each label (``labels``: the parts' codes, every name
    listed, 0 where absent)."""
    n_codes = len(labels.names)
    return {
        s: dict(zip(labels.names, label_counts(sr.part, sr.rows, n_codes).tolist(), strict=True))
        for s, sr in splits.items()
    }


def _lengths(splits: dict[str, SplitRows], parts: dict[str, Part]) -> dict[str, tuple[Any, Any]]:
    """Per split the characters and words of each row's texts; the parts' copies freed."""
    out = {
        s: (gather(sr.part.chars, sr.rows), gather(sr.part.words, sr.rows))
        for s, sr in splits.items()
    }
    for part in parts.values():  # the figures hold them per split now
        part.forget("chars", "words")
    return out


def label_figures(
    splits: dict[str, SplitRows],
    parts: dict[str, Part],
    counts: Mapping[str, Mapping[str, int]],
    names: list[str],
) -> dict[str, SplitFigures]:
    """Per split its figures: the rows of each label of ``names`` (``counts``, 0 where
    absent) and the texts' lengths (:func:`_lengths`, which frees the parts' copies)."""
    lengths = _lengths(splits, parts)
    return {s: SplitFigures({n: counts[s].get(n, 0) for n in names}, *lengths[s]) for s in SPLITS}


def _targets(split: SplitRows) -> np.ndarray:
    """``(n,)`` float64: the targets of a split's rows."""
    assert split.part.targets is not None  # a Target's PartBuilder always keeps them
    return gather(split.part.targets, split.rows)


def _split_and_check(
    parts: dict[str, Part], strata: Any, inputs: StreamInputs, clean: bool = True
) -> tuple[dict[str, SplitRows], dict[str, dict[str, int]], Leakage]:
    """The passes every streamed family shares after its first pass: the splits (by
    ``strata``, see :func:`_assign_splits`), empty texts and duplicates dropped (unless
    ``clean`` is False: a family that does not clean, token classification), the leakage
    check; freed arrays go back to the system between the phases, so peaks do not stack."""
    params, text_fields = inputs.params, inputs.fields[1]
    return_freed_memory()
    splits = _assign_splits(parts, strata, params, inputs.seed, inputs.source)
    return_freed_memory()
    cleaning = _clean_splits(splits, params) if clean else {}
    return_freed_memory()
    leakage = _drop_leaks(parts, splits, text_fields, params, inputs.origin)
    return splits, cleaning, leakage


def _prepared(
    fields: tuple[str, list[str], str],
    splits: dict[str, SplitRows],
    names: list[str],
    source: str,
    checks: tuple[dict[str, dict[str, int]], Leakage, BadRows, list[str]],
    figures: dict[str, SplitFigures],
    examples: dict[str, list[Row]] | None = None,
) -> PreparedData:
    """The :class:`PreparedData` of streamed ``splits``: ``fields`` (task, text fields,
    label field), ``checks`` (cleaning counts, leakage, bad rows, warnings); the metadata
    columns and the vocabulary read from train's rows."""
    task, text_fields, label_field = fields
    train = splits["train"]
    cleaning, leakage, bad, warnings = checks
    return PreparedData(
        task,
        splits,
        text_fields,
        label_field,
        names,
        _metadata(train, text_fields, label_field),
        source,
        cleaning,
        leakage,
        bad,
        warnings,
        {},
        figures,
        _in_background(_vocabulary, train, text_fields),  # read while the stage writes
        examples,
    )


def streamed_classes(inputs: StreamInputs) -> PreparedData:
    """:func:`load_splits` for sequence classification, streamed (see the module doc)."""
    params, seed, source, origin, fields, bad = (
        inputs.params, inputs.seed, inputs.source, inputs.origin, inputs.fields, inputs.bad
    )  # fmt: skip
    task, text_fields, label_field = fields
    labels = Codes()

    def read(name: str, raw: Raw) -> Part:
        builder = PartBuilder(
            inputs.workdir, name, task, text_fields, label_field, params.cleaning, labels
        )
        return _first_pass(raw, builder, params, bad)

    parts = read_parts(inputs, read)
    splits, cleaning, leakage = _split_and_check(
        parts, lambda part: (part.label_codes, labels.names), inputs
    )
    counts = split_label_counts(splits, labels)
    present = {s: [n for n, c in counts[s].items() if c] for s in SPLITS}
    held = ("validation", "test")
    names = label_names_from(present["train"], {s: present[s] for s in held}, origin)
    warnings = class_warnings(
        names, {s: set(present[s]) for s in held}, {s: len(splits[s]) for s in held}
    )
    figures = label_figures(splits, parts, counts, names)
    return_freed_memory()
    return _prepared(
        fields, splits, names, source, (cleaning, leakage, bad, warnings), figures,
        _pick_examples(splits["train"], labels.names, seed),
    )  # fmt: skip


def streamed_target(inputs: StreamInputs, target: Target) -> PreparedData:
    """:func:`load_splits` for a family whose label is a target (``target``), streamed as
    sequence classification is; its label problems are reported after every part is read,
    in part order, as the in-memory path's ``normalise`` does."""
    params, source, origin, fields, bad = (
        inputs.params, inputs.source, inputs.origin, inputs.fields, inputs.bad
    )  # fmt: skip
    task, text_fields, label_field = fields
    deferred = Deferred()

    def read(name: str, raw: Raw) -> Part:
        where = source if name == "all" else origin[name]

        def column(b: PartBuilder, table: Any) -> Any:
            return target.column(b, table, Path(where), deferred)

        builder = PartBuilder(
            inputs.workdir, name, task, text_fields, label_field, params.cleaning, Codes(), column
        )
        return _first_pass(raw, builder, params, bad, target, where, deferred)

    parts = read_parts(inputs, read)
    deferred.replay(bad)
    splits, cleaning, leakage = _split_and_check(parts, target.strata, inputs)
    targets = {s: _targets(sr) for s, sr in splits.items()}
    names = target.names(label_field, targets["train"], origin)
    warnings = target.warnings(targets)
    lengths = _lengths(splits, parts)
    figures = {s: SplitFigures({}, *lengths[s], targets[s]) for s in SPLITS}
    for part in parts.values():
        part.forget("targets")
    return_freed_memory()
    return _prepared(fields, splits, names, source, (cleaning, leakage, bad, warnings), figures)


def streamed_multilabel(inputs: StreamInputs) -> PreparedData:
    """:func:`load_splits` for multi-label classification, streamed: label lists kept as
    codes per row (:mod:`nlpflow.families.multilabel.stream`), the passes as above."""
    import pyarrow as pa

    from nlpflow.families.multilabel import stream as ml
    from nlpflow.families.multilabel.data import label_format, label_warnings

    params, seed, source, origin, fields, bad = (
        inputs.params, inputs.seed, inputs.source, inputs.origin, inputs.fields, inputs.bad
    )  # fmt: skip
    task, text_fields, label_field = fields
    codes = Codes()
    hook = ml.LabelLists(label_format(params), codes)
    order = [*inputs.raw, *(s for s in SPLITS if s not in inputs.raw)]  # the in-memory order

    def read(name: str, raw: Raw) -> Part:
        builder = PartBuilder(
            inputs.workdir, name, task, text_fields, label_field, params.cleaning, Codes(), hook
        )
        return _first_pass(raw, builder, params, bad, label_type=pa.list_(pa.string()))

    parts = read_parts(inputs, read)
    splits, cleaning, leakage = _split_and_check(
        parts, lambda part: ml.strata(part, codes.names), inputs
    )
    k = len(codes.names)
    counts = {s: ml.label_counts(sr.part, sr.rows, k) for s, sr in splits.items()}
    present = {s: {codes.names[c] for c in np.flatnonzero(counts[s]).tolist()} for s in SPLITS}
    if len({origin.get(s, "") for s in SPLITS}) == 1:
        names = sorted(set().union(*present.values()))
    else:
        names = sorted(present["train"])
        files = {s: Path(origin.get(s, s)) for s in order}
        ml.check_known(splits, names, codes.names, files, label_field)
    if not present["train"]:
        raise UserError(
            f"{origin.get('train', '')}: no train example has a label; a multi-label task "
            "needs labels to learn"
        )
    lengths = _lengths(splits, parts)
    index = {n: i for i, n in enumerate(codes.names)}
    figures = {
        s: SplitFigures({n: int(counts[s][index[n]]) for n in names}, *lengths[s]) for s in SPLITS
    }
    return_freed_memory()
    checks = (cleaning, leakage, bad, label_warnings(names, present))
    return _prepared(
        fields, splits, names, source, checks, figures,
        ml.pick_examples(splits["train"], codes.names, seed, EXAMPLES_PER_LABEL),
    )  # fmt: skip
