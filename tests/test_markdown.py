"""The one markdown renderer of every report: cells, tables, intervals with their level."""

from __future__ import annotations

import pytest

from nlpflow.markdown import cell, interval, level_label, table, with_interval


def test_cells_are_one_line_escaped_and_cut() -> None:
    assert cell("a|b\nc") == "a\\|b c"
    assert cell("C:\\x") == "C:\\\\x"
    assert cell("x" * 200, limit=10) == "x" * 9 + "…"
    assert cell("x" * 200, limit=None) == "x" * 200


def test_a_table_escapes_every_cell_and_aligns_columns() -> None:
    lines = table(["name", "n"], [["a|b", 3], ["long " * 40, None]], "lr", limit=12)
    assert lines == [
        "| name | n |",
        "| --- | ---: |",
        "| a\\|b | 3 |",
        "| long long l… | None |",
    ]


@pytest.mark.parametrize(("rows", "align"), [([["a"]], "ll"), ([["a", "b", "c"]], "")])
def test_a_row_or_alignment_of_another_width_is_refused(rows: list[list[str]], align: str) -> None:
    with pytest.raises(ValueError) as err:
        table(["x", "y"], rows, align)
    assert "table of 2 columns" in str(err.value)


def test_intervals_carry_their_level() -> None:
    assert level_label(0.95) == "95% CI"
    assert level_label(0.9) == "90% CI"
    assert level_label(0.975) == "97.5% CI"
    assert interval(0.81234, 0.9) == "0.8123–0.9000"
    assert interval(-0.0123, 0.0456, signed=True) == "-0.0123 to +0.0456"
    assert (
        with_interval("accuracy 0.8", 0.7, 0.9, 0.9, digits=2) == "accuracy 0.8 (90% CI 0.70–0.90)"
    )
