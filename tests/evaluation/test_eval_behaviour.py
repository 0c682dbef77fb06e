"""Behavioural tests: perturbations, templates and the runners, with a fake model."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from nlpflow.errors import UserError
from nlpflow.evaluation import behaviour as bh
from nlpflow.params import BehaviourParams, DirectionalParams

NAMES = ["no", "yes"]
FIELDS = ["first", "second"]


def anagram_model(examples: Sequence[dict[str, str]]) -> np.ndarray:
    """A perfect anagram 'model': p(yes) 0.9 when the letters match, else 0.1."""
    out = []
    for ex in examples:
        same = sorted(ex["first"].lower().split()) == sorted(ex["second"].lower().split())
        out.append([0.1, 0.9] if same else [0.9, 0.1])
    return np.asarray(out)


def length_model(examples: Sequence[dict[str, str]]) -> np.ndarray:
    """A shortcut 'model' that compares lengths only (what the default pipeline learns)."""
    out = []
    for ex in examples:
        same = len(ex["first"].split()) == len(ex["second"].split())
        out.append([0.2, 0.8] if same else [0.8, 0.2])
    return np.asarray(out)


def rows() -> list[dict[str, str]]:
    return [
        {"id": "a", "first": "a b c d", "second": "d c b a", "label": "yes"},
        {"id": "b", "first": "a b c d", "second": "d c b", "label": "no"},
        {"id": "c", "first": "e f g", "second": "g e f", "label": "yes"},
    ]


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("case", "Hello there", "HELLO THERE"),
        ("case", "ABC", "abc"),
        ("lowercase", "abc", None),
        ("punctuation", "hello!", "hello"),
        ("punctuation", "hello", "hello."),
        ("typo", "a b c", None),
        ("append_text", "win", None),
    ],
)
def test_perturbations_by_example(kind: str, text: str, expected: str | None) -> None:
    assert bh.PERTURBATION_FUNCTIONS[kind](text, random.Random(0), "") == expected


def test_random_perturbations_change_what_they_say() -> None:
    rng = random.Random(1)
    spaced = "q a k r g"
    assert bh.whitespace(spaced, rng).split() == spaced.split()
    typo = bh.typo("the weather is lovely", rng)
    assert (
        typo is not None
        and sorted(typo) == sorted("the weather is lovely")
        and typo != "the weather is lovely"
    )
    sub = bh.substitute_char(spaced, rng)
    assert sub is not None and len(sub) == len(spaced) and sub != spaced
    assert len(bh.drop_char(spaced, rng).split()) == 4  # a spelled-out letter goes, with its space
    assert len(bh.add_char(spaced, rng).split()) == 6
    assert bh.drop_char("hello", rng) is not None and len(bh.drop_char("hello", rng)) == 4
    assert bh.append_text("hi", rng, "call now") == "hi call now"


def test_invariance_and_directional_with_a_perfect_and_a_shortcut_model() -> None:
    inv = bh.run_invariance("case", rows(), FIELDS, FIELDS, NAMES, anagram_model, 0)
    assert (inv.tested, inv.failed, inv.failure_rate) == (3, 0, 0.0)
    spec = DirectionalParams(
        name="sub", perturbation="substitute_char", fields=["second"], only_label="yes",
        target="yes", expect="decrease",
    )  # fmt: skip
    good = bh.run_directional(spec, rows(), FIELDS, NAMES, anagram_model, 0)
    assert (good.tested, good.failed) == (2, 0)
    # The length shortcut cannot see a substituted letter: every case fails, and is shown.
    bad = bh.run_directional(spec, rows(), FIELDS, NAMES, length_model, 0)
    assert (bad.tested, bad.failed) == (2, 2)
    assert bad.failures[0]["before"] == "p(yes) 0.800" and bad.failures[0]["id"] == "a"
    dropped = DirectionalParams(
        name="drop", perturbation="drop_char", fields=["second"], only_label="yes"
    )
    assert bh.run_directional(dropped, rows(), FIELDS, NAMES, length_model, 0).failed == 0


def test_tests_that_do_not_fit_the_data_are_skipped_with_a_reason() -> None:
    spec = DirectionalParams(name="x", perturbation="typo", fields=["text"])
    assert (
        "not in this data's text fields"
        in bh.run_directional(spec, rows(), FIELDS, NAMES, anagram_model, 0).skipped
    )
    spec = DirectionalParams(name="x", perturbation="typo", target="spam")
    assert (
        "label 'spam'" in bh.run_directional(spec, rows(), FIELDS, NAMES, anagram_model, 0).skipped
    )
    inv = bh.run_invariance("typo", rows(), FIELDS, FIELDS, NAMES, anagram_model, 0)
    assert inv.skipped == "the perturbation applies to no example"


def test_builtin_anagram_templates_pass_with_a_perfect_model() -> None:
    tests = bh.load_templates("builtin:anagram", FIELDS)
    assert len(tests) >= 6
    for t in tests:
        r = bh.run_template(t, FIELDS, NAMES, anagram_model, 50, seed=0)
        assert r.tested == 50 and r.failed == 0, r.name
    # ... and the substitution cases fail with the length shortcut.
    sub = next(t for t in tests if "substituted" in t.name)
    assert bh.run_template(sub, FIELDS, NAMES, length_model, 50, 0).failure_rate == 1.0
    single = bh.run_template(sub, ["text"], NAMES, anagram_model, 50, 0)
    assert "template fields" in single.skipped


def test_template_expansion_enumerates_or_samples_and_respects_distinct() -> None:
    t = bh.TemplateTest("t", "yes", {"text": "{a}{b}"}, {"a": ["x", "y"], "b": ["x", "y"]}, True)
    assert sorted(c["text"] for c in bh.expand_template(t, 10, 0)) == ["xy", "yx"]
    big = bh.TemplateTest(
        "t", "yes", {"text": "{a} {b} {c}"}, {k: list("abcdefghij") for k in "abc"}
    )
    cases = bh.expand_template(big, 20, seed=3)
    assert len(cases) == 20 and cases == bh.expand_template(big, 20, seed=3)


def test_bad_template_files_are_user_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("tests:\n  - name: x\n    label: true\n    template: {text: '{a}'}\n")
    with pytest.raises(UserError, match="'label' must be a string"):
        bh.load_templates(path, ["text"])
    # YAML 1.2, as params.yaml is read: an unquoted yes is the label "yes", not True
    path.write_text("tests:\n  - name: x\n    label: yes\n    template: {text: '{a}'}\n")
    with pytest.raises(UserError, match=r"no values for placeholder\(s\) \['a'\]"):
        bh.load_templates(path, ["text"])
    with pytest.raises(UserError, match="is not built in"):
        bh.load_templates("builtin:nope", ["text"])
    with pytest.raises(UserError, match="not found"):
        bh.load_templates(tmp_path / "missing.yaml", ["text"])


def test_run_behaviour_predicts_each_input_once() -> None:
    calls: list[int] = []

    def counting(examples: Sequence[dict[str, str]]) -> np.ndarray:
        calls.append(len(examples))
        return anagram_model(examples)

    params = BehaviourParams(invariance=["whitespace", "case"], templates="")
    results = bh.run_behaviour(params, rows(), FIELDS, NAMES, counting, seed=0)
    assert [r.name for r in results] == ["invariance: whitespace", "invariance: case"]
    # Originals once (3), then each test's perturbed inputs (3 + 3).
    assert sum(calls) == 9


def test_unquoted_yes_from_dvc_exp_run_still_names_the_label() -> None:
    # `dvc exp run -S` writes params.yaml back without quotes; YAML 1.1 would read yes as
    # true, load_params reads booleans as YAML 1.2 does (true/false only).
    from nlpflow.params import read_yaml

    raw = read_yaml(
        "error_analysis:\n  behaviour:\n    directional:\n"
        "    - name: sub\n      perturbation: substitute_char\n      fields:\n      - second\n"
        "      only_label: yes\n      target: yes\n      expect: decrease\n"
    )
    from nlpflow.params import parse_params

    spec = parse_params(raw).error_analysis.behaviour.directional[0]
    assert spec.only_label == "yes"
    result = bh.run_directional(spec, rows(), FIELDS, NAMES, length_model, 0)
    assert (result.tested, result.failed) == (2, 2)
    assert "of 'yes' examples should lower p(yes)" in result.description
