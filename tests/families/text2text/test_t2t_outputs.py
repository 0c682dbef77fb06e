"""The label parser, the failure kinds of a generation and the model-free baselines."""

from __future__ import annotations

import pytest

from nlpflow.families.text2text.outputs import (
    LabelParser,
    copy_input_baseline,
    failure_kinds,
    longest_repeat,
    most_common_target,
    most_common_target_baseline,
)

LABELS = ["World", "Sports", "Sci/Tech", "no"]


@pytest.mark.parametrize(
    ("output", "label", "how"),
    [
        ("Sports", "Sports", "exact"),
        ("  Sci/Tech\n", "Sci/Tech", "exact"),
        ("sports", "Sports", "normalised"),
        ("SPORTS.", "Sports", "normalised"),
        ('"Sci/Tech"', "Sci/Tech", "normalised"),
        ("  world  !", "World", "normalised"),
        ("No", "no", "normalised"),
        ("ｗｏｒｌｄ", "World", "normalised"),  # full-width letters: NFKC
        ("Sport", None, "unparseable"),
        ("World Sports", None, "unparseable"),
        ("The answer is World", None, "unparseable"),
        ("", None, "unparseable"),
        ("Sci Tech", None, "unparseable"),
    ],
)
def test_label_parser_on_hand_made_outputs(output: str, label: str | None, how: str) -> None:
    assert LabelParser(LABELS).parse(output) == (label, how)


def test_parse_all_counts_each_way() -> None:
    labels, counts = LabelParser(LABELS).parse_all(["World", "world", "??", "Sports"])
    assert labels == ["World", "World", None, "Sports"]
    assert counts == {"exact": 2, "normalised": 1, "unparseable": 1}


def test_labels_that_normalise_alike_are_read_exactly_only() -> None:
    parser = LabelParser(["Pos", "pos", "neg"])
    assert parser.ambiguous == ["Pos", "pos"]
    assert parser.parse("pos") == ("pos", "exact")
    assert parser.parse("POS") == (None, "unparseable")
    assert parser.parse("Neg!") == ("neg", "normalised")


def test_longest_repeat() -> None:
    assert longest_repeat(["a", "b", "c"]) == ((), 1)
    assert longest_repeat(["x", "a", "b", "a", "b", "a", "b", "y"]) == (("a", "b"), 3)
    assert longest_repeat(["a", "a", "a", "a"]) == (("a",), 4)


@pytest.mark.parametrize(
    ("output", "target", "tokens", "ended", "kinds"),
    [
        ("b c d", "b c d", 4, True, []),
        ("", "b c d", 1, True, ["empty"]),
        ("   ", "b c d", 2, True, ["empty"]),
        ("one one one one", "one", 5, True, ["repetition"]),
        ("a a a", "a a a", 4, True, []),  # the target repeats as much: no loop
        ("a a a a", "a a a", 5, True, ["repetition"]),
        ("ten twenty ten twenty ten twenty ten", "ten", 8, False, ["repetition", "truncated"]),
        ("b c", "b c d", 8, False, ["truncated"]),
        ("b c", "b c d", 7, False, []),  # stopped early for another reason: not at the limit
        ("sort d c b", "b c d", 5, True, ["copied_input"]),
        ("SORT  d c b", "b c d", 5, True, ["copied_input"]),
    ],
)
def test_failure_kinds(
    output: str, target: str, tokens: int, ended: bool, kinds: list[str]
) -> None:
    assert failure_kinds(output, "sort d c b", target, tokens, ended, max_new_tokens=8) == kinds


def test_copy_is_no_failure_when_the_target_is_the_input() -> None:
    assert failure_kinds("a b", "a b", "a b", 3, True, 8) == []


def test_baselines() -> None:
    assert copy_input_baseline(["x y", "z"]) == ["x y", "z"]
    assert most_common_target(["b", "a", "b", "a", "c"]) == "a"  # a tie: sorted first
    assert most_common_target(["b", "b", "a"]) == "b"
    assert most_common_target_baseline(["q", "q", "r"], 3) == ["q", "q", "q"]
    with pytest.raises(ValueError) as err:
        most_common_target([])
    assert "no train targets" in str(err.value)
