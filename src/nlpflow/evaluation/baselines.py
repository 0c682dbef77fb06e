"""Baselines scored on the same splits as the model, so every metric has something beside it.

Each baseline is fitted on the *train* split only and returns class probabilities for the split
being scored, so the evaluate stage scores it with exactly the model's metric code:

- ``majority``: always the train split's most frequent label (probabilities: the train priors).
- ``stratified``: a label drawn at random with the train priors (seeded), the "random guess"
  that accuracy on an imbalanced set has to beat.
- ``tfidf_logreg``: TF-IDF n-grams and a logistic regression (scikit-learn); the cheap model a
  neural one should beat by a margin worth its cost.

Token classification gets ``majority`` (every word the most frequent tag, usually ``O``) and
``word_majority`` (each word's most frequent train tag, ``majority`` for unseen words).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nlpflow.errors import UserError
from nlpflow.evaluation.metrics import FloatArray, IntArray

SEQUENCE_BASELINES = ("majority", "stratified", "tfidf_logreg")
TOKEN_BASELINES = ("majority", "word_majority")


def majority_label(train_labels: Sequence[int] | IntArray, num_labels: int) -> int:
    """The most frequent label id of the *train* split; a tie goes to the smallest id.

    The train split, not the split being scored: a baseline that peeks at the test labels
    would be a little better than anything a model could learn to do.
    """
    labels = np.asarray(train_labels, dtype=np.int64)
    if labels.size == 0:
        raise UserError("the train split is empty: no majority baseline can be computed")
    return int(np.bincount(labels, minlength=num_labels).argmax())


def train_priors(train_labels: Sequence[int] | IntArray, num_labels: int) -> FloatArray:
    labels = np.asarray(train_labels, dtype=np.int64)
    if labels.size == 0:
        raise UserError("the train split is empty: no baseline can be computed")
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    return counts / counts.sum()


def majority_probabilities(
    train_labels: Sequence[int] | IntArray, num_labels: int, n: int
) -> tuple[FloatArray, IntArray]:
    """Probabilities (the train priors, for every example) and predictions (the majority)."""
    priors = train_priors(train_labels, num_labels)
    majority = majority_label(train_labels, num_labels)
    return np.tile(priors, (n, 1)), np.full(n, majority, dtype=np.int64)


def stratified_probabilities(
    train_labels: Sequence[int] | IntArray, num_labels: int, n: int, seed: int
) -> tuple[FloatArray, IntArray]:
    """Probabilities (train priors) and labels drawn from them with ``seed``."""
    priors = train_priors(train_labels, num_labels)
    rng = np.random.default_rng(seed)
    return np.tile(priors, (n, 1)), rng.choice(num_labels, size=n, p=priors).astype(np.int64)


@dataclass(frozen=True)
class TfidfSettings:
    analyzer: str = "word"  # word or char_wb
    ngram_max: int = 2
    max_features: int = 50_000
    c: float = 1.0


def _join_fields(columns: Sequence[Sequence[str]]) -> list[list[str]]:
    return [[str(v) for v in col] for col in columns]


@dataclass
class TfidfFeatures:
    """One TF-IDF vectorizer per text field, their features hstacked: the features of every
    TF-IDF baseline (classification, regression, multi-label).

    One vectorizer per field keeps a pair task's two sides apart (a word in the question is not
    the same feature as that word in the passage). Single characters count as words (the
    built-in anagram task spells words letter by letter).
    """

    vectorizers: list[Any]  # fitted sklearn TfidfVectorizer, one per field

    @classmethod
    def fit(
        cls, train_columns: Sequence[Sequence[str]], settings: TfidfSettings
    ) -> tuple[TfidfFeatures, Any] | None:
        """The fitted features and the train split's ``(n, d)`` sparse float64 matrix; None
        when a field's train text has no usable token (an empty vocabulary)."""
        from scipy import sparse
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizers, parts = [], []
        for column in _join_fields(train_columns):
            vec = TfidfVectorizer(
                analyzer=settings.analyzer,
                ngram_range=(1, settings.ngram_max),
                max_features=settings.max_features,
                token_pattern=r"(?u)\b\w+\b",
                sublinear_tf=True,
                dtype=np.float64,
            )
            try:
                parts.append(vec.fit_transform(column))
            except ValueError:  # empty vocabulary
                return None
            vectorizers.append(vec)
        return cls(vectorizers), sparse.hstack(parts).tocsr()

    def transform(self, columns: Sequence[Sequence[str]]) -> Any:
        """``(n, d)`` sparse float64 features of one split (one sequence of texts per field)."""
        from scipy import sparse

        return sparse.hstack(
            [v.transform(c) for v, c in zip(self.vectorizers, _join_fields(columns), strict=True)]
        ).tocsr()


def tfidf_logreg_probabilities(
    train_columns: Sequence[Sequence[str]],
    train_labels: Sequence[int] | IntArray,
    eval_columns: dict[str, Sequence[Sequence[str]]],
    num_labels: int,
    settings: TfidfSettings,
    seed: int,
) -> dict[str, FloatArray]:
    """TF-IDF per text field (:class:`TfidfFeatures`) and a logistic regression; ``(n, K)``
    probabilities per split. Returns ``{}`` when the train text has no usable token or one
    class only: the report then says the baseline could not be fitted.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(train_labels, dtype=np.int64)
    if len(np.unique(labels)) < 2:
        return {}
    fitted = TfidfFeatures.fit(train_columns, settings)
    if fitted is None:
        return {}
    features, x_train = fitted
    clf = LogisticRegression(C=settings.c, max_iter=2000, random_state=seed)
    with warnings.catch_warnings():
        # A baseline that stops a few iterations short is still the baseline; its warning
        # would only be noise in the stage log (and an error under the test suite's filter).
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train, labels)
    out: dict[str, FloatArray] = {}
    for split, columns in eval_columns.items():
        x = features.transform(columns)
        probs = np.zeros((x.shape[0], num_labels), dtype=np.float64)
        probs[:, clf.classes_] = clf.predict_proba(x)
        out[split] = probs
    return out


# --------------------------------------------------------------------------- token tasks


def tag_majority(train_tags: Sequence[Sequence[str]]) -> str:
    """The most frequent train tag (ties: the first in sorted order)."""
    counts = Counter(t for tags in train_tags for t in tags)
    if not counts:
        raise UserError("the train split has no tagged words: no baseline can be computed")
    return min(counts, key=lambda t: (-counts[t], t))


def word_majority_tagger(
    train_tokens: Sequence[Sequence[str]], train_tags: Sequence[Sequence[str]]
) -> tuple[dict[str, str], str]:
    """Each word's (lower-cased) most frequent train tag, and the fallback for unseen words."""
    by_word: dict[str, Counter[str]] = {}
    for tokens, tags in zip(train_tokens, train_tags, strict=True):
        for word, tag in zip(tokens, tags, strict=True):
            by_word.setdefault(word.lower(), Counter())[tag] += 1
    table = {w: min(c, key=lambda t: (-c[t], t)) for w, c in by_word.items()}
    return table, tag_majority(train_tags)


def tag_with(
    table: dict[str, str], fallback: str, sentences: Sequence[Sequence[str]]
) -> list[list[str]]:
    return [[table.get(w.lower(), fallback) for w in tokens] for tokens in sentences]


# --------------------------------------------------------------------------- regression


def tfidf_ridge_predictions(
    train_columns: Sequence[Sequence[str]],
    train_targets: Sequence[float] | FloatArray,
    eval_columns: dict[str, Sequence[Sequence[str]]],
    settings: TfidfSettings,
) -> dict[str, FloatArray]:
    """TF-IDF per text field (:class:`TfidfFeatures`) and a ridge regression
    (``alpha = 1 / settings.c``); ``(n,)`` predictions per split in the target's units. ``{}``
    when the train text has no usable token."""
    from sklearn.linear_model import Ridge

    fitted = TfidfFeatures.fit(train_columns, settings)
    if fitted is None:
        return {}
    features, x_train = fitted
    model = Ridge(alpha=1.0 / settings.c)
    model.fit(x_train, np.asarray(train_targets, dtype=np.float64))
    return {
        split: np.asarray(model.predict(features.transform(columns)), dtype=np.float64)
        for split, columns in eval_columns.items()
    }
