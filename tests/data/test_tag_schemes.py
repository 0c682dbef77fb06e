"""IOB1 (CoNLL-2003 as published) read as IOB2: detection and the lossless conversion."""

from __future__ import annotations

from nlpflow.data.entities import detect_scheme, iob1_to_iob2
from nlpflow.evaluation.entities import get_entities


def test_iob1_is_detected_and_converted_without_changing_the_entities() -> None:
    iob1 = [
        ["I-ORG", "O", "I-MISC", "O"],
        ["I-PER", "I-PER", "B-PER", "O"],  # two adjacent persons: B- separates them
        ["O", "I-LOC", "I-ORG", "I-ORG"],  # a new type starts with I- too
    ]
    assert detect_scheme(iob1) == "IOB1"
    iob2 = [iob1_to_iob2(s) for s in iob1]
    assert iob2 == [
        ["B-ORG", "O", "B-MISC", "O"],
        ["B-PER", "I-PER", "B-PER", "O"],
        ["O", "B-LOC", "B-ORG", "I-ORG"],
    ]
    assert detect_scheme(iob2) == "IOB2"
    for before, after in zip(iob1, iob2, strict=True):
        assert get_entities(before) == get_entities(after)
        assert get_entities(after, "strict", "IOB2") == get_entities(before, "strict", "IOB1")


def test_iob2_and_iob2_with_a_stray_i_are_left_as_written() -> None:
    assert detect_scheme([["B-PER", "I-PER", "O", "B-LOC"]]) == "IOB2"
    # B- after O only happens in IOB2: a stray I- there is an error of the file, not IOB1
    assert detect_scheme([["B-PER", "O", "I-LOC"]]) == "IOB2"
    assert detect_scheme([["O", "O"]]) == "IOB2"
