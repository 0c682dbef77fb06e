"""What to make of generated text: a label parsed back from it, the ways a generation fails,
and the baselines that need no model (copy the input, the most common target)."""

from __future__ import annotations

import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

EXACT, NORMALISED, UNPARSEABLE = "exact", "normalised", "unparseable"
FAILURE_KINDS = ("empty", "repetition", "truncated", "copied_input")

_STRIP = string.punctuation + string.whitespace


def normalise_label(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed, punctuation and quotes stripped from both
    ends: ``" Positive."`` -> ``positive``, ``'"Sci/Tech"'`` -> ``sci/tech``."""
    words = unicodedata.normalize("NFKC", text).casefold().split()
    return " ".join(words).strip(_STRIP + "«»“”‘’")


@dataclass
class LabelParser:
    """Reads a label name back from generated text: first the exact name (surrounding
    whitespace aside), then the name after :func:`normalise_label`, else ``unparseable``.

    Two label names that normalise alike (``Pos`` and ``pos``) are only read exactly; an
    output that normalises to both is unparseable (``ambiguous`` lists such names).
    """

    labels: Sequence[str]
    _normalised: dict[str, str] = field(init=False, repr=False)
    ambiguous: list[str] = field(init=False)

    def __post_init__(self) -> None:
        groups: dict[str, list[str]] = {}
        for label in self.labels:
            groups.setdefault(normalise_label(label), []).append(label)
        self._normalised = {key: names[0] for key, names in groups.items() if len(names) == 1}
        self.ambiguous = sorted(
            name for names in groups.values() if len(names) > 1 for name in names
        )

    def parse(self, output: str) -> tuple[str | None, str]:
        """(label or None, how: ``exact``, ``normalised`` or ``unparseable``)."""
        text = output.strip()
        if text in self.labels:
            return text, EXACT
        label = self._normalised.get(normalise_label(text))
        if label is not None:
            return label, NORMALISED
        return None, UNPARSEABLE

    def parse_all(self, outputs: Sequence[str]) -> tuple[list[str | None], dict[str, int]]:
        """Labels of every output (None: unparseable) and how many were read each way."""
        parsed = [self.parse(o) for o in outputs]
        counts = Counter(how for _, how in parsed)
        return [label for label, _ in parsed], {
            k: counts[k] for k in (EXACT, NORMALISED, UNPARSEABLE)
        }


# --------------------------------------------------------------------------- failure kinds


def longest_repeat(words: Sequence[str], max_n: int = 4) -> tuple[tuple[str, ...], int]:
    """The n-gram (n <= ``max_n``) repeated back to back the most times in ``words``, and how
    many times (1 when nothing repeats); the shortest n-gram wins a tie."""
    best: tuple[tuple[str, ...], int] = ((), 1)
    for n in range(1, max_n + 1):
        for start in range(len(words) - n + 1):
            gram = tuple(words[start : start + n])
            count = 1
            while tuple(words[start + count * n : start + (count + 1) * n]) == gram:
                count += 1
            if count > best[1]:
                best = (gram, count)
    return best


def _repeats_of(words: Sequence[str], gram: tuple[str, ...]) -> int:
    """The most back-to-back repeats of ``gram`` in ``words`` (0 when absent)."""
    n, most = len(gram), 0
    for start in range(len(words) - n + 1):
        count = 0
        while tuple(words[start + count * n : start + (count + 1) * n]) == gram:
            count += 1
        most = max(most, count)
    return most


def failure_kinds(
    output: str,
    source: str,
    target: str,
    generated_tokens: int,
    ended: bool,
    max_new_tokens: int,
    min_repeats: int = 3,
) -> list[str]:
    """The ways one generation failed, in :data:`FAILURE_KINDS` order (empty: none found).

    - ``empty``: nothing but whitespace was generated;
    - ``repetition``: an n-gram of up to 4 words repeats back to back at least
      ``min_repeats`` times, more often than it does in the target (``a a a`` is no loop when
      the target is ``a a a``);
    - ``truncated``: generation stopped at ``max_new_tokens`` without the end-of-text token
      (``generated_tokens``: tokens generated; ``ended``: whether the end-of-text token came);
    - ``copied_input``: the output is the input (whitespace and case aside) and the target is
      not.
    """
    kinds = []
    words = output.split()
    if not words:
        kinds.append("empty")
    gram, count = longest_repeat(words)
    if count >= min_repeats and count > _repeats_of(target.split(), gram):
        kinds.append("repetition")
    if not ended and generated_tokens >= max_new_tokens:
        kinds.append("truncated")

    def same(a: str) -> str:
        return " ".join(a.casefold().split())

    if words and same(output) == same(source) and same(target) != same(source):
        kinds.append("copied_input")
    return kinds


# --------------------------------------------------------------------------- baselines


def copy_input_baseline(inputs: Sequence[str]) -> list[str]:
    """Outputs of the baseline that writes the input back unchanged."""
    return list(inputs)


def most_common_target(train_targets: Sequence[str]) -> str:
    """The target most frequent in train (ties: the first in sorted order). Raises ValueError
    on an empty train split."""
    if not train_targets:
        raise ValueError("most_common_target: no train targets")
    counts = Counter(train_targets)
    return min(counts, key=lambda t: (-counts[t], t))


def most_common_target_baseline(train_targets: Sequence[str], n: int) -> list[str]:
    """``n`` outputs, each the most common train target."""
    return [most_common_target(train_targets)] * n
