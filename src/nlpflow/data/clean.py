"""Optional text cleaning; each step counts the texts it changed or rows it dropped."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from typing import Literal

from nlpflow.data.files import Row
from nlpflow.params import CleaningParams

URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
USER = re.compile(r"(?<![\w@])@\w{1,30}")
SPACES = re.compile(r"\s+")
NOT_WORD_OR_SPACE = re.compile(r"[^\w\s]")


# The cleaning steps in the order they run; bit i of a row's step mask is STEPS[i].
STEPS = (
    "unicode",
    "urls_replaced",
    "users_replaced",
    "whitespace",
    "lowercased",
    "truncated",
)


def clean_steps(text: str, params: CleaningParams) -> tuple[str, int]:
    """The cleaned text and a bit mask of the steps (``STEPS``) that changed it."""
    form: Literal["NFC", "NFKC"] = "NFC" if params.unicode == "NFC" else "NFKC"
    steps: list[tuple[bool, Callable[[str], str]]] = [
        (params.unicode != "none", lambda t: unicodedata.normalize(form, t)),
        (params.replace_urls, lambda t: URL.sub("<url>", t)),
        (params.replace_users, lambda t: USER.sub("@user", t)),
        (params.whitespace, lambda t: SPACES.sub(" ", t).strip()),
        (params.lowercase, str.lower),
        (params.max_chars > 0, lambda t: t[: params.max_chars]),
    ]
    bits = 0
    for i, (enabled, step) in enumerate(steps):
        if enabled:
            new = step(text)
            if new != text:
                bits |= 1 << i
                text = new
    return text, bits


def clean_text(text: str, params: CleaningParams, counts: Counter[str]) -> str:
    """Apply the enabled steps in a fixed order; count each step that changed the text."""
    text, bits = clean_steps(text, params)
    for i, name in enumerate(STEPS):
        if bits & (1 << i):
            counts[name] += 1
    return text


def clean_rows(
    rows: list[Row], text_fields: list[str], label_field: str, params: CleaningParams
) -> tuple[list[Row], dict[str, int]]:
    """Cleaned rows of one split and the counts of what changed (rows in memory; streamed
    sequence data does the same column-wise: nlpflow.data.prepare)."""
    counts: Counter[str] = Counter()
    out: list[Row] = []
    seen: set[tuple[str, ...]] = set()
    for row in rows:
        row = dict(row)
        for f in text_fields:
            row[f] = clean_text(row[f], params, counts)
        if params.drop_empty and any(not row[f].strip() for f in text_fields):
            counts["empty_dropped"] += 1
            continue
        key = (*(row[f] for f in text_fields), row[label_field])
        if params.drop_duplicates and key in seen:
            counts["duplicates_dropped"] += 1
            continue
        seen.add(key)
        out.append(row)
    return out, dict(sorted(counts.items()))


def normalise_for_match(text: str) -> str:
    """A loose form for finding near-identical texts: case, punctuation and spacing removed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = NOT_WORD_OR_SPACE.sub("", text)
    return SPACES.sub(" ", text).strip()
