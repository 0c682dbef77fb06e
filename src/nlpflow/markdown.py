"""Markdown for every report (errors.md, tune.md, review, compare): table cells, tables, and
confidence intervals with the level they were computed at.

One renderer so that every table escapes the same way (a ``|`` in a label or an example text
must never split a cell) and every interval reads the same way with its real level: a report
that says "95% CI" over a 90% interval is a wrong number that looks right.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MAX_CELL_CHARS = 120


def cell(value: Any, limit: int | None = MAX_CELL_CHARS) -> str:
    """``value`` as text safe inside a table cell: one line, ``\\`` and ``|`` escaped, cut to
    ``limit`` characters with an ellipsis (None: never cut)."""
    text = " ".join(str(value).split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|")


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    align: str = "",
    limit: int | None = MAX_CELL_CHARS,
) -> list[str]:
    """A markdown table as lines (no trailing blank line).

    ``header`` and each row hold one entry per column, any values: each is made safe with
    :func:`cell` (rows cut to ``limit`` characters, None: never; headers never cut), so
    callers pass raw values and never escape them themselves. ``align``
    has one letter per column, ``l`` or ``r`` (default: all left).

    Raises:
        ValueError: a row or ``align`` has another number of columns than ``header``.
    """
    width = len(header)
    align = align or "l" * width
    if len(align) != width or any(len(r) != width for r in rows):
        raise ValueError(f"table of {width} columns given rows or alignment of another width")
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = [
        "| " + " | ".join(cell(h, None) for h in header) + " |",
        "| " + " | ".join(rule) + " |",
    ]
    lines += ["| " + " | ".join(cell(x, limit) for x in r) + " |" for r in rows]
    return lines


def level_label(level: float) -> str:
    """``0.95`` -> ``95% CI``; ``0.9`` -> ``90% CI``; ``0.975`` -> ``97.5% CI``."""
    return f"{100 * level:.10g}% CI"


def interval(low: float, high: float, digits: int = 4, signed: bool = False) -> str:
    """An interval's bounds: ``0.8123–0.9001``; ``signed`` (a difference, which may straddle
    zero) gives ``-0.0123 to +0.0456``."""
    if signed:
        return f"{low:+.{digits}f} to {high:+.{digits}f}"
    return f"{low:.{digits}f}–{high:.{digits}f}"


def with_interval(
    text: str, low: float, high: float, level: float, digits: int = 4, signed: bool = False
) -> str:
    """``text (95% CI 0.8123–0.9001)``: a value followed by its interval and level."""
    return f"{text} ({level_label(level)} {interval(low, high, digits, signed)})"
