"""Multi-label baselines, fitted on the *train* split only, scored with the model's metrics.

Each returns scores ``(n, k)`` and 0/1 predictions ``(n, k)`` for a split:

- ``label_frequency``: every label's score is its train frequency; each label is predicted
  independently with that probability (seeded): the "random guess" that knows how common each
  label is.
- ``most_frequent_set``: the train split's most common label set (the empty set included)
  predicted for every example; its scores are 1 for its labels and the train frequencies,
  scaled below 1, for the others, so ranking metrics see the frequency order.
- ``tfidf_logreg``: TF-IDF n-grams (one vectorizer per text field, as the sequence baseline)
  and one logistic regression per label (scikit-learn's ``OneVsRestClassifier``); predictions
  use the same thresholds as the model (fixed or tuned on validation by the caller).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from nlpflow.errors import UserError
from nlpflow.evaluation.baselines import TfidfFeatures, TfidfSettings
from nlpflow.evaluation.metrics import FloatArray

MULTILABEL_BASELINES = ("label_frequency", "most_frequent_set", "tfidf_logreg")
Int8Array = npt.NDArray[np.int8]


def _train(train: npt.ArrayLike) -> npt.NDArray[np.int8]:
    y = np.asarray(train).astype(np.int8)
    if y.ndim != 2 or y.shape[0] == 0:
        raise UserError("the train split is empty: no multi-label baseline can be computed")
    return y


def label_frequencies(train: npt.ArrayLike) -> FloatArray:
    """The share of train examples that have each label, ``(k,)``."""
    return np.asarray(_train(train).mean(axis=0), dtype=np.float64)


def label_frequency(train: npt.ArrayLike, n: int, seed: int) -> tuple[FloatArray, Int8Array]:
    """Scores (train frequencies) and labels drawn with them, for ``n`` examples."""
    freq = label_frequencies(train)
    rng = np.random.default_rng(seed)
    predicted = (rng.random((n, freq.size)) < freq).astype(np.int8)
    return np.tile(freq, (n, 1)), predicted


def most_frequent_set(train: npt.ArrayLike, n: int) -> tuple[FloatArray, Int8Array]:
    """Scores and predictions of the most common train label set, for ``n`` examples.

    Ties go to the set that comes first in the train split.
    """
    y = _train(train)
    counts = Counter(map(bytes, y))
    best = max(counts.values())
    row = next(r for r in y if counts[bytes(r)] == best)
    freq = label_frequencies(y)
    scores = np.where(row == 1, 1.0, freq * 0.5)
    return np.tile(scores, (n, 1)), np.tile(row, (n, 1)).astype(np.int8)


def tfidf_logreg_scores(
    train_columns: Sequence[Sequence[str]],
    train: npt.ArrayLike,
    eval_columns: Mapping[str, Sequence[Sequence[str]]],
    settings: TfidfSettings,
    seed: int,
) -> dict[str, FloatArray]:
    """Per split, the probability of each label from TF-IDF + one-vs-rest logistic regression.

    ``train_columns`` / ``eval_columns[split]``: one sequence of texts per text field. A label
    that every train example has, or none has, gets that constant (1 or 0) as its score:
    there is nothing to fit. Returns ``{}`` when the train text has no usable token.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    y = _train(train)
    fitted = TfidfFeatures.fit(train_columns, settings)
    if fitted is None:
        return {}
    features, x_train = fitted
    varied = np.flatnonzero((y.min(axis=0) == 0) & (y.max(axis=0) == 1))
    clf = None
    if varied.size:
        clf = OneVsRestClassifier(
            LogisticRegression(C=settings.c, max_iter=2000, random_state=seed)
        )
        with warnings.catch_warnings():
            # A baseline stopping a few iterations short is still the baseline (see the
            # sequence baseline); the warning would be noise, and an error under pytest.
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x_train, y[:, varied])
    out: dict[str, FloatArray] = {}
    for split, columns in eval_columns.items():
        x = features.transform(columns)
        scores = np.tile(y[0].astype(np.float64), (x.shape[0], 1))  # constant labels
        if clf is not None:
            probs = np.asarray(clf.predict_proba(x), dtype=np.float64)
            # One fitted label is a binary problem to scikit-learn: (n, 2), classes 0 and 1.
            scores[:, varied] = probs[:, 1:] if varied.size == 1 else probs
        out[split] = scores
    return out
