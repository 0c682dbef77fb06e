from __future__ import annotations

from collections import Counter

from nlpflow.data.anagram import generate_anagram
from nlpflow.params import AnagramParams


def _is_anagram(a: str, b: str) -> bool:
    return Counter(a.split()) == Counter(b.split())


def test_labels_match_the_definition_and_kinds_are_recorded() -> None:
    rows = generate_anagram(AnagramParams(size=600, min_word_length=3, max_word_length=6), seed=1)
    assert len(rows) == 600
    for r in rows:
        assert (r["label"] == "yes") == _is_anagram(r["first"], r["second"])
        assert (r["kind"] == "anagram") == (r["label"] == "yes")
        n1, n2 = len(r["first"].split()), len(r["second"].split())
        expected = {"anagram": 0, "substituted": 0, "dropped": -1, "added": 1}[r["kind"]]
        assert n2 - n1 == expected
        assert 3 <= n1 <= 6
    kinds = Counter(r["kind"] for r in rows)
    assert set(kinds) == {"anagram", "dropped", "added", "substituted"}
    assert 0.4 < kinds["anagram"] / 600 < 0.6


def test_deterministic_from_seed_and_distinct() -> None:
    p = AnagramParams(size=300, alphabet="abcdef")
    assert generate_anagram(p, 7) == generate_anagram(p, 7)
    assert generate_anagram(p, 7) != generate_anagram(p, 8)
    rows = generate_anagram(p, 7)
    assert len({(r["first"], r["second"]) for r in rows}) == 300
    assert {c for r in rows for c in r["first"].split()} <= set("abcdef")


def test_a_size_the_alphabet_cannot_give_is_a_params_error() -> None:
    import pytest

    from nlpflow.errors import UserError

    tight = AnagramParams(size=4000, min_word_length=2, max_word_length=2, alphabet="abc")
    with pytest.raises(UserError, match=r"^params.yaml: data.anagram.size 4000 is more distinct"):
        generate_anagram(tight, seed=0)
