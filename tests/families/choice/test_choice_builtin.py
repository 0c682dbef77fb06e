"""The built-in multiple-choice task: seeded, and the known shortcuts do not solve it."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from nlpflow.errors import UserError
from nlpflow.families.choice.baselines import baseline_scores
from nlpflow.families.choice.builtin import CATEGORIES, generate_choice
from nlpflow.families.choice.config import ChoiceParams
from nlpflow.families.choice.metrics import credit

CATEGORY_OF = {w: c for c, words in CATEGORIES.items() for w in words}


def test_rows_follow_the_definition() -> None:
    rows = generate_choice(ChoiceParams(size=600, num_options=4), seed=1)
    assert len(rows) == 600
    assert len({(r["context"], tuple(r["options"])) for r in rows}) == 600
    for r in rows:
        options, gold = r["options"], r["label"]
        assert len(options) == 4 and len(set(options)) == 4
        assert CATEGORY_OF[options[gold]] == r["category"]
        assert f" {r['category']} " in r["context"]
        assert all(CATEGORY_OF[o] != r["category"] for j, o in enumerate(options) if j != gold)
        words = set(r["context"].split())
        assert options[gold] not in words
        assert sum(o in words for o in options) == r["mentioned"]
        # the context never names a word of the answer's category
        assert not any(CATEGORY_OF.get(w) == r["category"] for w in words)
    assert Counter(r["mentioned"] for r in rows).keys() == {0, 1, 2}


def test_deterministic_from_the_seed() -> None:
    p = ChoiceParams(size=100, num_options=3)
    assert generate_choice(p, 5) == generate_choice(p, 5)
    assert generate_choice(p, 5) != generate_choice(p, 6)


@pytest.mark.parametrize("num_options", [2, 4, 8])
def test_the_heuristic_baselines_score_chance_or_worse(num_options: int) -> None:
    rows = generate_choice(ChoiceParams(size=2000, num_options=num_options), seed=0)
    train, test = rows[:1500], rows[1500:]
    labels = np.array([r["label"] for r in test])
    chance = 1 / num_options
    got = {}
    for name in ("position", "longest", "overlap"):
        scores = baseline_scores(
            name,
            [r["label"] for r in train],
            [r["context"] for r in test],
            [r["options"] for r in test],
            num_options,
        )
        got[name] = float(credit(scores, labels).mean())
    assert got["longest"] == pytest.approx(chance)  # every option has five letters: all tie
    assert got["overlap"] < chance  # a mentioned option is never right
    # 500 rows: the position baseline stays within sampling noise of chance
    assert abs(got["position"] - chance) < 3 * np.sqrt(chance * (1 - chance) / 500)


def test_params_are_checked() -> None:
    with pytest.raises(UserError) as err:
        ChoiceParams(num_options=9).validate("data.choice")
    assert str(err.value) == "params.yaml: data.choice.num_options must be between 2 and 8"
    with pytest.raises(UserError) as err:
        ChoiceParams(options=["a", "a"]).validate("data.choice")
    assert str(err.value) == "params.yaml: data.choice.options names a column twice (['a', 'a'])"
    with pytest.raises(UserError) as err:
        ChoiceParams(label_base=2).validate("data.choice")
    assert str(err.value) == "params.yaml: data.choice.label_base must be 0 or 1"
