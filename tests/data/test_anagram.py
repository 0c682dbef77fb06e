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


def test_near_miss_weights_set_the_share_of_each_kind() -> None:
    weights = {"dropped": 1.0, "added": 1.0, "substituted": 2.0}
    rows = generate_anagram(AnagramParams(size=2000, near_misses=weights), seed=3)
    negatives = Counter(r["kind"] for r in rows if r["label"] == "no")
    total = sum(negatives.values())
    assert 0.45 < negatives["substituted"] / total < 0.55
    assert 0.2 < negatives["dropped"] / total < 0.3 and 0.2 < negatives["added"] / total < 0.3
    only = generate_anagram(AnagramParams(size=300, near_misses={"substituted": 1.0}), seed=3)
    assert {r["kind"] for r in only} == {"anagram", "substituted"}
    for r in only:  # every negative keeps the length: the length cue is worth nothing
        assert len(r["first"].split()) == len(r["second"].split())


def test_bad_near_miss_weights_are_params_errors() -> None:
    import pytest

    from nlpflow.params import ParamsError, parse_params

    with pytest.raises(ParamsError) as unknown:
        parse_params({"data": {"anagram": {"near_misses": {"swapped": 1.0}}}})
    assert "data.anagram.near_misses has unknown kinds ['swapped']" in str(unknown.value)
    with pytest.raises(ParamsError) as zero:
        parse_params({"data": {"anagram": {"near_misses": {"dropped": 0.0}}}})
    assert "at least one > 0" in str(zero.value)
