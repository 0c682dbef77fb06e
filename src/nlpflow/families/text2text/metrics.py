"""Generation metrics with bootstrap intervals: exact match, token F1, ROUGE, BLEU, chrF,
perplexity, and the lengths of outputs against targets.

Every metric is computed from per-example numbers, so the point estimate (unit weights) and
each bootstrap resample (counts as weights, :mod:`nlpflow.evaluation.bootstrap`) are the same
function:

- ``exact_match``: the output equals the target after stripping both ends and collapsing runs
  of whitespace (case and punctuation count); mean over examples, in [0, 1];
- ``token_f1``: SQuAD's token-level F1 on a bag of whitespace tokens after lowercasing and
  removing punctuation, but without SQuAD's removal of the English articles a/an/the (it
  would drop the letter ``a`` of the built-in task and every article of another language's
  lookalike words); 1 when both are empty; mean over examples, in [0, 1];
- ``rouge1``, ``rouge2``, ``rougeL``: the F-measure of `rouge-score` (Google's reimplementation
  of ROUGE-1.5.5: lowercase, tokens of ``[a-z0-9]`` only, no stemming) per example, averaged
  (as Hugging Face's ``evaluate`` reports it), in [0, 1]. Its tokenizer drops every other
  character: text in a non-Latin script scores 0;
- ``bleu`` and ``chrf``: `sacrebleu`'s corpus BLEU (13a tokenizer, exponential smoothing) and
  chrF (character 6-grams, beta 2), 0 to 100 as sacrebleu reports them; corpus scores are
  computed from summed sentence statistics, as sacrebleu's own paired bootstrap does;
- ``perplexity``: exp(summed token loss / number of target tokens), the losses in nats (a
  corpus-level value: every token weighs the same, not every example);
- ``length_ratio``: words of all outputs / words of all targets (BLEU's sys_len / ref_len,
  with whitespace words); ``output_words`` and ``target_words``: means per example.
"""

from __future__ import annotations

import math
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nlpflow.evaluation.bootstrap import BatchMetrics, bootstrap_intervals
from nlpflow.evaluation.metrics import FloatArray

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
# Metrics where higher is better; perplexity and the lengths are the others.
HIGHER_IS_BETTER = ("exact_match", "token_f1", *ROUGE_TYPES, "bleu", "chrf")

_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalise_text(text: str) -> str:
    """Lowercase, no punctuation, single spaces (SQuAD's normalisation less its articles)."""
    return " ".join(text.lower().translate(_PUNCTUATION).split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the two texts are equal up to surrounding and repeated whitespace, else 0.0."""
    return float(" ".join(prediction.split()) == " ".join(reference.split()))


def token_f1(prediction: str, reference: str) -> float:
    """Token F1 of two texts after :func:`normalise_text`; 1.0 when both are empty."""
    pred, ref = normalise_text(prediction).split(), normalise_text(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def perplexity(loss_sums: Sequence[float], token_counts: Sequence[int]) -> float:
    """exp(sum of token losses / number of tokens): ``loss_sums`` per example in nats."""
    tokens = float(np.sum(token_counts))
    if tokens <= 0:
        return math.nan
    return math.exp(float(np.sum(loss_sums)) / tokens)


@dataclass
class GenerationScores:
    """Per-example scores of ``n`` generations, from which every metric is computed.

    Arrays are ``(n,)`` except the sentence statistics of BLEU ``(n, 2 + 2 * 4)`` and chrF
    ``(n, 3 * 6)``, in sacrebleu's layout. ``loss_sums``/``token_counts`` (``(n,)``, nats
    and tokens) are set when target-token losses were measured, for perplexity.
    """

    exact_match: FloatArray
    token_f1: FloatArray
    rouge: dict[str, FloatArray]
    bleu_stats: FloatArray
    chrf_stats: FloatArray
    output_words: FloatArray
    target_words: FloatArray
    loss_sums: FloatArray | None = None
    token_counts: FloatArray | None = None

    @property
    def n(self) -> int:
        return int(self.exact_match.shape[0])


def _bleu() -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU()


def _chrf() -> Any:
    from sacrebleu.metrics import CHRF

    return CHRF()


def score_generations(
    predictions: Sequence[str],
    references: Sequence[str],
    loss_sums: Sequence[float] | None = None,
    token_counts: Sequence[int] | None = None,
) -> GenerationScores:
    """Per-example scores of ``predictions`` against ``references`` (same length, one reference
    each). Raises ValueError when the lengths differ."""
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if (loss_sums is None) != (token_counts is None) or (
        loss_sums is not None and not len(loss_sums) == len(token_counts or ()) == len(predictions)
    ):
        raise ValueError("loss_sums and token_counts must both be given, one per prediction")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)
    rouge: dict[str, list[float]] = {name: [] for name in ROUGE_TYPES}
    for pred, ref in zip(predictions, references, strict=True):
        scores = scorer.score(ref, pred)  # rouge-score takes (target, prediction)
        for name in ROUGE_TYPES:
            rouge[name].append(scores[name].fmeasure)
    refs = [list(references)]
    n = len(predictions)

    def stats(metric: Any, width: int) -> FloatArray:
        if n == 0:
            return np.zeros((0, width))
        return np.asarray(metric._extract_corpus_statistics(list(predictions), refs), float)

    bleu, chrf = _bleu(), _chrf()
    return GenerationScores(
        exact_match=np.array(
            [exact_match(p, r) for p, r in zip(predictions, references, strict=True)], float
        ),
        token_f1=np.array(
            [token_f1(p, r) for p, r in zip(predictions, references, strict=True)], float
        ),
        rouge={name: np.array(values, float) for name, values in rouge.items()},
        bleu_stats=stats(bleu, 2 + 2 * bleu.max_ngram_order),
        chrf_stats=stats(chrf, 3 * (chrf.char_order + chrf.word_order)),
        output_words=np.array([len(p.split()) for p in predictions], float),
        target_words=np.array([len(r.split()) for r in references], float),
        loss_sums=None if loss_sums is None else np.asarray(loss_sums, float),
        token_counts=None if token_counts is None else np.asarray(token_counts, float),
    )


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def batch_metrics(scores: GenerationScores) -> BatchMetrics:
    """The metrics as a function of a batch of example weights ``(B, n)``: one value per row
    (NaN where undefined: no words in the targets, no tokens for perplexity)."""
    bleu, chrf = _bleu(), _chrf()

    def compute(weights: FloatArray) -> dict[str, FloatArray]:
        total = weights.sum(axis=1)
        out: dict[str, FloatArray] = {
            "exact_match": _ratio(weights @ scores.exact_match, total),
            "token_f1": _ratio(weights @ scores.token_f1, total),
        }
        for name in ROUGE_TYPES:
            out[name] = _ratio(weights @ scores.rouge[name], total)
        bleu_sums, chrf_sums = weights @ scores.bleu_stats, weights @ scores.chrf_stats
        out["bleu"] = np.array([bleu._compute_score_from_stats(list(s)).score for s in bleu_sums])
        out["chrf"] = np.array([chrf._compute_score_from_stats(list(s)).score for s in chrf_sums])
        out["length_ratio"] = _ratio(weights @ scores.output_words, weights @ scores.target_words)
        out["output_words"] = _ratio(weights @ scores.output_words, total)
        out["target_words"] = _ratio(weights @ scores.target_words, total)
        if scores.loss_sums is not None and scores.token_counts is not None:
            out["perplexity"] = np.exp(
                _ratio(weights @ scores.loss_sums, weights @ scores.token_counts)
            )
        return out

    return compute


def generation_metrics(
    scores: GenerationScores, resamples: int, seed: int, level: float
) -> dict[str, Any]:
    """Every metric's value, ``n``, and ``ci``: its seeded percentile bootstrap interval at
    ``level`` (``{"low", "high"}`` per metric; none with ``resamples`` 0 or no examples)."""
    compute = batch_metrics(scores)
    out: dict[str, Any] = {"n": scores.n}
    if scores.n:
        for name, values in compute(np.ones((1, scores.n))).items():
            value = float(values[0])
            out[name] = None if math.isnan(value) else value
    out["ci"] = bootstrap_intervals(compute, scores.n, resamples, seed, level)
    return out
