"""Text operations on whole Arrow columns that give exactly what the per-text Python
functions give (:func:`nlpflow.data.clean.clean_text`, ``normalise_for_match``,
``str.split``, ``str.lower``).

Rows of printable ASCII and ASCII whitespace (``\\t \\n \\v \\f \\r`` and space) go through
pyarrow compute: on them Python's definitions (``re``'s ``\\w`` and ``\\s``, NFKC,
``str.isspace``) and the ASCII ones agree. Every other row goes through the Python function
itself, so a result never depends on which path a row took; English text is almost all
ASCII, other languages take the Python path at Python's speed.

Texts are compared by 64-bit digests (polars' ``Series.hash`` of the UTF-8 bytes, seeded;
15x pandas' ``hash_array``, which needs a Python string per row), 8 bytes a row: a false
match is about as likely as 2**-64 per pair of texts, so about 7 in 10 million for all pairs
among 5,000,000 rows (n**2 / 2**65); nothing else is affected by one. Digests are compared
within one run only (polars keeps them stable within a version, not across versions).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nlpflow.data.clean import clean_steps, normalise_for_match
from nlpflow.params import CleaningParams

if TYPE_CHECKING:
    import pyarrow as pa

# printable ASCII and the ASCII whitespace that Python's str.isspace also counts
SIMPLE = r"^[\x20-\x7e\t\n\x0b\x0c\r]*$"
ASCII_SPACE = "\t\n\x0b\x0c\r "
SPACE_RUN = r"[\t\n\x0b\x0c\r ]+"
NON_SPACE_RUN = r"[^\t\n\x0b\x0c\r ]+"
NOT_SINGLE_SPACED = r"^ | $|  |[\t\n\x0b\x0c\r]"
URL_ASCII = r"(?i)(?:https?://|www\.)[^\t\n\x0b\x0c\r ]+"
NOT_WORD_OR_SPACE_ASCII = r"[^A-Za-z0-9_\t\n\x0b\x0c\r ]"
# the digests' seed (any fixed number)
HASH_SEED = 0x6E6C70666C6F77


def _np_bool(arr: Any) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)


def _word_or_space(data: np.ndarray) -> np.ndarray:
    """Per byte of lowercased ASCII: a word character (``[a-z0-9_]``) or whitespace."""
    out = (data >= 97) & (data <= 122)
    out |= (data >= 48) & (data <= 57)
    out |= data == 32
    out |= data == 95
    out |= (data >= 9) & (data <= 13)
    return out


def _buffers(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets ``(n + 1,)`` (from 0) and UTF-8 bytes of a string array without nulls."""
    import pyarrow as pa

    kind = np.int64 if pa.types.is_large_string(column.type) else np.int32
    bufs = column.buffers()
    offsets = np.frombuffer(bufs[1], dtype=kind)[column.offset : column.offset + len(column) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    data = data[int(offsets[0]) : int(offsets[-1])]
    return (offsets - offsets[0]).astype(np.int64), data


def _before(flags: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per offset, how many ``flags`` (one per byte) are set before it: a binary search
    per row over the set positions (cheaper than a running sum over every byte)."""
    return np.searchsorted(np.flatnonzero(flags), offsets)


def _per_row(offsets: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """How many ``flags`` (one per byte) fall in each row."""
    return np.diff(_before(flags, offsets))


def _from_buffers(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    import pyarrow as pa

    return pa.StringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)
    )


def simple_rows(*columns: pa.Array) -> np.ndarray:
    """``(n,)`` bool: every given column of the row is printable ASCII / ASCII whitespace."""
    out = np.ones(len(columns[0]), dtype=bool)
    for col in columns:
        offsets, data = _buffers(col)
        bad = data >= 127
        low = data < 32
        if low.any():
            bad |= low & ((data < 9) | (data > 13))
        if bad.any():
            out &= _per_row(offsets, bad) == 0
    return out


def spaced_rows(column: pa.Array) -> np.ndarray:
    """``(n,)`` bool: the text is not single-spaced (it holds \\t \\n \\v \\f \\r, two spaces
    in a row, or starts or ends with a space). Meaningful for simple rows."""
    import pyarrow.compute as pc

    return _np_bool(pc.match_substring_regex(column, NOT_SINGLE_SPACED))


def _patch(column: pa.Array, rows: np.ndarray, values: Any) -> pa.Array:
    """``column`` with ``rows`` (indices) replaced by ``values`` (a list or an array)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(rows):
        return column
    mask = np.zeros(len(column), dtype=bool)
    mask[rows] = True
    if not isinstance(values, pa.Array):
        values = pa.array(values, type=column.type)
    return pc.replace_with_mask(column, pa.array(mask), values)


def _collapse_spaces(column: pa.Array, rows: np.ndarray) -> pa.Array:
    """``SPACES.sub(" ", t).strip()`` on ``rows`` of a column of simple rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(rows):
        return column
    subset = column.take(pa.array(rows))
    fixed = pc.utf8_trim(pc.replace_substring_regex(subset, SPACE_RUN, " "), " ")
    return _patch(column, rows, fixed)


def clean_column(
    column: pa.Array, params: CleaningParams, simple: np.ndarray | None = None
) -> tuple[pa.Array, np.ndarray]:
    """Cleaned texts and, per row, a ``uint8`` bit mask of the steps that changed the text
    (bit ``i`` for ``clean.STEPS[i]``), as :func:`clean_steps` gives them one by one."""
    import pyarrow.compute as pc

    bits = np.zeros(len(column), dtype=np.uint8)
    simple = simple_rows(column) if simple is None else simple.copy()
    if params.replace_users:  # the @user rule needs a look-behind: the Python path
        simple &= ~_np_bool(pc.match_substring(column, "@"))
    out = column

    def whitespace(a: pa.Array) -> pa.Array:
        return _collapse_spaces(a, np.flatnonzero(spaced_rows(a)))

    vectorised: list[tuple[int, bool, Callable[[Any], Any]]] = [
        (1, params.replace_urls, lambda a: pc.replace_substring_regex(a, URL_ASCII, "<url>")),
        (3, params.whitespace, whitespace),
        (4, params.lowercase, pc.ascii_lower),
        (5, params.max_chars > 0, lambda a: pc.utf8_slice_codeunits(a, 0, params.max_chars)),
    ]
    # (unicode normalisation and @user replacement change no simple row)
    for bit, enabled, step in vectorised:
        if enabled:
            new = step(out)
            bits |= _np_bool(pc.not_equal(new, out)).astype(np.uint8) << bit
            out = new
    other = np.flatnonzero(~simple)
    if len(other):
        texts = column.take(other).to_pylist()
        cleaned = []
        for i, text in zip(other.tolist(), texts, strict=True):
            text, steps = clean_steps(text, params)
            cleaned.append(text)
            bits[i] = steps
        out = _patch(out, other, cleaned)
    return out, bits


def blank_rows(
    column: pa.Array, simple: np.ndarray | None = None, single_spaced: bool = False
) -> np.ndarray:
    """``(n,)`` bool: ``not text.strip()``. ``simple``: :func:`simple_rows` when known (a
    row marked not simple is only slower); ``single_spaced``: the simple rows are known to
    be stripped (cleaned by ``cleaning.whitespace``), so only an empty one is blank."""
    import pyarrow.compute as pc

    simple = simple_rows(column) if simple is None else simple
    stripped = column if single_spaced else pc.utf8_trim(column, ASCII_SPACE)
    out = _np_bool(pc.equal(pc.binary_length(stripped), 0))
    for i in np.flatnonzero(~simple).tolist():
        out[i] = not column[i].as_py().strip()
    return out


def joined(columns: Sequence[pa.Array], sep: str) -> pa.Array:
    """Per row, the text fields joined by ``sep``; a list-of-words field is first joined by
    spaces (token tasks), as ``" ".join(words)``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = [pc.binary_join(c, " ") if pa.types.is_list(c.type) else c for c in columns]
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, sep)


def digests(column: pa.Array) -> np.ndarray:
    """``(n,)`` ``uint64``: a 64-bit digest of each text's UTF-8 bytes (a string array
    without nulls; Arrow's buffers read in place)."""
    import polars as pl

    series = pl.Series(values=column) if len(column) else pl.Series(values=[], dtype=pl.String)
    return np.asarray(series.hash(seed=HASH_SEED).to_numpy(), dtype=np.uint64)


def match_keys(exact_keys: pa.Array, simple: np.ndarray | None = None) -> pa.Array:
    """``normalise_for_match`` of every key (texts joined by ``\\x1f``)."""
    import pyarrow.compute as pc

    # \x1f (the field separator) is whitespace to Python: normalise_for_match turns it into
    # a space like any other run, so the simple path may join the fields by a space.
    spaced = exact_keys
    if pc.any(pc.match_substring(exact_keys, "\x1f")).as_py():  # one text field: never
        spaced = pc.replace_substring(exact_keys, "\x1f", " ")
    simple = simple_rows(spaced) if simple is None else simple
    offsets, data = _buffers(spaced)
    # lowercase, then drop what is neither a word character nor a space (bytes: ASCII)
    offsets, data = _buffers(pc.ascii_lower(spaced))
    keep = _word_or_space(data)
    out = _from_buffers(offsets - _before(~keep, offsets), data[keep])
    out = _collapse_spaces(out, np.flatnonzero(spaced_rows(out) & simple))
    other = np.flatnonzero(~simple)
    if len(other):
        texts = exact_keys.take(other).to_pylist()
        out = _patch(out, other, [normalise_for_match(t) for t in texts])
    return out


def lengths(
    text: pa.Array, simple: np.ndarray | None = None, single_spaced: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per row ``len(text)`` and ``len(text.split())``, two ``(n,)`` int64 arrays.
    ``single_spaced``: the simple rows are known to be single-spaced and stripped (cleaned
    by ``cleaning.whitespace``): their words are their spaces + 1."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chars = np.asarray(pc.utf8_length(text).to_numpy(zero_copy_only=False), dtype=np.int64)
    offsets, data = _buffers(text)
    # single-spaced text: spaces + 1 words
    words = (_per_row(offsets, data == 32) + (offsets[1:] > offsets[:-1])).astype(np.int64)
    simple = simple_rows(text) if simple is None else simple
    uneven = (
        np.zeros(0, dtype=np.int64) if single_spaced else np.flatnonzero(spaced_rows(text) & simple)
    )
    if len(uneven):
        counted = pc.count_substring_regex(text.take(pa.array(uneven)), NON_SPACE_RUN)
        words[uneven] = np.asarray(counted.to_numpy(zero_copy_only=False), dtype=np.int64)
    for i in np.flatnonzero(~simple).tolist():
        words[i] = len(text[i].as_py().split())
    return chars, words


def lower_words(text: pa.Array, single_spaced: bool = False) -> pa.Array:
    """``{w.lower() for t in text for w in t.split()}`` as an Arrow string array of the
    distinct words (any order): no Python string per word for printable-ASCII rows.
    ``single_spaced``: the simple rows are known to be single-spaced (see :func:`lengths`),
    so a split at each space is enough."""
    import pyarrow as pa
    import pyarrow.compute as pc

    simple = simple_rows(text)
    found = []
    ascii_rows = text if simple.all() else text.filter(pa.array(simple))
    if len(ascii_rows):
        lowered = pc.ascii_lower(ascii_rows)
        split = (
            pc.split_pattern(lowered, " ") if single_spaced else pc.ascii_split_whitespace(lowered)
        )
        found.append(pc.unique(pc.list_flatten(split)))
    other = {w.lower() for t in text.filter(pa.array(~simple)).to_pylist() for w in t.split()}
    if other:
        found.append(pa.array(sorted(other), pa.string()))
    words = pc.unique(pa.concat_arrays(found)) if found else pa.array([], pa.string())
    return words.filter(pc.not_equal(words, ""))


def pa_mask(mask: np.ndarray) -> pa.Array:
    import pyarrow as pa

    return pa.array(mask, type=pa.bool_())


def step_counts(bits: np.ndarray, names: Sequence[str]) -> Counter[str]:
    """How many texts each step changed, from the bit masks of :func:`clean_column`."""
    counts: Counter[str] = Counter()
    for i, name in enumerate(names):
        n = int(np.count_nonzero(bits & (1 << i)))
        if n:
            counts[name] = n
    return counts
