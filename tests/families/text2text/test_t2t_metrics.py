"""Generation metrics against rouge-score, sacrebleu and values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nlpflow.families.text2text.metrics import (
    batch_metrics,
    exact_match,
    generation_metrics,
    perplexity,
    score_generations,
    token_f1,
)

PREDICTIONS = ["the cat sat on the mat", "a quick brown dog", "Hello, world!", "", "x y z"]
REFERENCES = [
    "the cat is on the mat",
    "the quick brown fox jumps",
    "hello world",
    "one two",
    "x y z",
]


def test_exact_match_and_token_f1_by_hand() -> None:
    assert exact_match("  a  b ", "a b") == 1.0
    assert exact_match("A b", "a b") == 0.0  # case counts
    # [a, quick, brown, dog] vs [the, quick, brown, fox, jumps]: 2 common
    assert token_f1("a quick brown dog", "the quick brown fox jumps") == pytest.approx(
        2 * (2 / 4) * (2 / 5) / (2 / 4 + 2 / 5)
    )
    # articles count (SQuAD would drop "a" and score this 1.0)
    assert token_f1("b c", "a b c") == pytest.approx(2 * (2 / 2) * (2 / 3) / (2 / 2 + 2 / 3))
    assert token_f1("Hello, world!", "hello world") == 1.0
    assert token_f1("", "") == 1.0
    assert token_f1("", "x") == 0.0


def test_rouge_matches_rouge_score_and_hand_values() -> None:
    from rouge_score import rouge_scorer

    scores = score_generations(PREDICTIONS, REFERENCES)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    for i, (p, r) in enumerate(zip(PREDICTIONS, REFERENCES, strict=True)):
        expected = scorer.score(r, p)
        for name in ("rouge1", "rouge2", "rougeL"):
            assert scores.rouge[name][i] == pytest.approx(expected[name].fmeasure)
    # by hand, example 0: 5 of 6 unigrams shared (the x2, cat, on, mat); bigrams: the cat,
    # on the, the mat of 5 each; LCS the cat _ on the mat = 5
    assert scores.rouge["rouge1"][0] == pytest.approx(5 / 6)
    assert scores.rouge["rouge2"][0] == pytest.approx(3 / 5)
    assert scores.rouge["rougeL"][0] == pytest.approx(5 / 6)
    metrics = generation_metrics(scores, resamples=0, seed=0, level=0.95)
    assert metrics["rouge1"] == pytest.approx(float(np.mean(scores.rouge["rouge1"])))
    assert metrics["exact_match"] == pytest.approx(1 / 5)


def test_bleu_and_chrf_match_sacrebleu_corpus_scores() -> None:
    import sacrebleu

    metrics = generation_metrics(score_generations(PREDICTIONS, REFERENCES), 0, 0, 0.95)
    assert metrics["bleu"] == pytest.approx(sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES]).score)
    assert metrics["chrf"] == pytest.approx(sacrebleu.corpus_chrf(PREDICTIONS, [REFERENCES]).score)


def test_a_resample_is_the_metric_of_the_resampled_corpus() -> None:
    """Counts (2, 0, 1, 0, 3) give the corpus scores of that multiset of examples."""
    import sacrebleu

    counts = [2, 0, 1, 0, 3]
    preds = [p for p, c in zip(PREDICTIONS, counts, strict=True) for _ in range(c)]
    refs = [r for r, c in zip(REFERENCES, counts, strict=True) for _ in range(c)]
    values = batch_metrics(score_generations(PREDICTIONS, REFERENCES))(np.array([counts], float))
    assert values["bleu"][0] == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    assert values["chrf"][0] == pytest.approx(sacrebleu.corpus_chrf(preds, [refs]).score)
    assert values["exact_match"][0] == pytest.approx(3 / 6)
    words = sum(len(p.split()) for p in preds) / sum(len(r.split()) for r in refs)
    assert values["length_ratio"][0] == pytest.approx(words)


def test_perplexity_is_exp_of_mean_token_loss() -> None:
    # token losses by hand: example 0 has tokens 0.5, 1.0; example 1 has 2.0
    assert perplexity([1.5, 2.0], [2, 1]) == pytest.approx(math.exp((0.5 + 1.0 + 2.0) / 3))
    scores = score_generations(["a", "b"], ["a", "c"], loss_sums=[1.5, 2.0], token_counts=[2, 1])
    metrics = generation_metrics(scores, 200, 0, 0.9)
    assert metrics["perplexity"] == pytest.approx(math.exp(3.5 / 3))
    # resamples of one example or the other: exp(0.75) and exp(2.0) bound the interval
    assert math.exp(0.75) - 1e-9 <= metrics["ci"]["perplexity"]["low"]
    assert metrics["ci"]["perplexity"]["high"] <= math.exp(2.0) + 1e-9
    assert "perplexity" not in generation_metrics(score_generations(["a"], ["a"]), 0, 0, 0.9)


def test_intervals_are_seeded_and_hold_the_estimate() -> None:
    rng = np.random.default_rng(0)
    words = ["a", "b", "c", "d"]
    refs = [" ".join(rng.choice(words, 4)) for _ in range(60)]
    preds = [r if i % 3 else " ".join(rng.choice(words, 3)) for i, r in enumerate(refs)]
    scores = score_generations(preds, refs)
    first = generation_metrics(scores, 300, 7, 0.95)
    assert first == generation_metrics(scores, 300, 7, 0.95)
    assert first["ci"] != generation_metrics(scores, 300, 8, 0.95)["ci"]
    for name in ("exact_match", "token_f1", "rouge1", "rougeL", "bleu", "chrf", "length_ratio"):
        low, high = first["ci"][name]["low"], first["ci"][name]["high"]
        assert low <= first[name] <= high
        assert low < high
    assert first["n"] == 60


def test_lengths_differ_is_an_error() -> None:
    with pytest.raises(ValueError) as err:
        score_generations(["a"], ["a", "b"])
    assert "1 predictions for 2 references" in str(err.value)
