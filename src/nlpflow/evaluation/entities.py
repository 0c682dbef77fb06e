"""Entity-level scores for token classification, with seqeval's definitions.

Two ways to read entities from a tag sequence, as in seqeval:

- ``default`` (seqeval's default, the CoNLL ``conlleval`` rules): lenient about malformed
  sequences. An ``I-X`` after ``O`` or after another type starts an entity, so IOB1 data (where
  ``B-`` only separates two adjacent entities of one type) and IOB2 data (every entity starts
  with ``B-``) are both read right.
- ``strict`` (seqeval's ``mode="strict"`` with a scheme, IOB1 or IOB2): only entities that are
  well formed in that scheme count; a stray ``I-X`` in IOB2 is no entity at all.

An entity is ``(type, start, end)``, end inclusive, and matches only with the same type and the
same boundaries. Precision = correct / predicted, recall = correct / true, per type and summed
(micro); macro and weighted averages run over the types found in the true or the predicted tags.
Token accuracy is the share of words whose tag is right.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from nlpflow.errors import UserError

Entity = tuple[str, int, int]
SCHEMES = ("IOB1", "IOB2")
MODES = ("default", "strict")


def _split(tag: str) -> tuple[str, str]:
    """``B-PER`` -> (``B``, ``PER``); ``O`` -> (``O``, ``_``): seqeval's prefix and type."""
    prefix = tag[:1]
    kind = tag[1:].split("-", maxsplit=1)[-1] or "_"
    return prefix, kind


def _check_tag(tag: str, allowed: str = "OBIES") -> None:
    prefix = tag[:1]
    if tag in ("O", "B", "I", "E", "S"):
        if prefix in allowed:
            return
    elif prefix in allowed and prefix != "O" and tag[1:2] == "-":
        return
    raise UserError(
        f"invalid tag '{tag}': expected O or a prefix from {sorted(set(allowed) - {'O'})} "
        "followed by '-' and a type (B-PER)"
    )


# --------------------------------------------------------------------------- default mode


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


def entities_default(tags: Sequence[str]) -> list[Entity]:
    """Entities of one sentence by the conlleval rules (seqeval's default mode)."""
    chunks: list[Entity] = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, chunk in enumerate([*tags, "O"]):
        _check_tag(chunk)
        tag, type_ = _split(chunk)
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


# --------------------------------------------------------------------------- strict mode

# Transition patterns (previous prefix(es), current prefix(es), type condition) as seqeval's
# schemes define them; "same"/"diff" compare the types of the two tags, "any" does not.
_PATTERNS: dict[str, dict[str, set[tuple[str, str, str]]]] = {
    "IOB1": {
        "start": {("O", "I", "any"), ("I", "I", "diff"), ("B", "I", "any"),
                  ("I", "B", "same"), ("B", "B", "same")},
        "inside": {("B", "I", "same"), ("I", "I", "same")},
        "end": {("I", "I", "diff"), ("I", "O", "any"), ("I", "B", "any"), ("B", "O", "any"),
                ("B", "I", "diff"), ("B", "B", "same")},
    },
    "IOB2": {
        "start": {("OIB", "B", "any")},
        "inside": {("B", "I", "same"), ("I", "I", "same")},
        "end": {("I", "O", "any"), ("I", "I", "diff"), ("I", "B", "any"), ("B", "O", "any"),
                ("B", "I", "diff"), ("B", "B", "any")},
    },
}  # fmt: skip


def _matches(patterns: set[tuple[str, str, str]], prev: str, cur: str) -> bool:
    p_prefix, p_type = _split(prev)
    c_prefix, c_type = _split(cur)
    same = p_type == c_type
    return any(
        p_prefix in before and c_prefix in now and (cond == "any" or (cond == "same") == same)
        for before, now, cond in patterns
    )


def entities_strict(tags: Sequence[str], scheme: str) -> list[Entity]:
    """Entities of one sentence that are well formed in ``scheme`` (seqeval's strict mode)."""
    if scheme not in _PATTERNS:
        raise UserError(f"unknown tagging scheme '{scheme}'; use one of {list(SCHEMES)}")
    rules = _PATTERNS[scheme]
    tokens = [*tags, "O"]
    for tag in tokens:
        _check_tag(tag, allowed="OIB")
    entities: list[Entity] = []
    i, prev = 0, "O"
    while i < len(tokens):
        token = tokens[i]
        if _matches(rules["start"], prev, token):
            # Walk forward over the tokens that continue this entity.
            end, last = i + 1, token
            while end < len(tokens) and _matches(rules["inside"], last, tokens[end]):
                last = tokens[end]
                end += 1
            end = min(end, len(tokens) - 1)
            if _matches(rules["end"], tokens[end - 1], tokens[end]):
                entities.append((_split(token)[1], i, end - 1))
            i = end
        else:
            i += 1
        prev = tokens[i - 1]
    return entities


def detect_scheme(sentences: Sequence[Sequence[str]]) -> str:
    """``IOB1`` when some entity starts with ``I-`` (after ``O``, the start or another type),
    else ``IOB2``."""
    for tags in sentences:
        prev_type = None
        for tag in tags:
            prefix, kind = _split(tag)
            if prefix == "I" and kind != prev_type:
                return "IOB1"
            prev_type = kind if prefix in ("B", "I") else None
    return "IOB2"


def get_entities(tags: Sequence[str], mode: str = "default", scheme: str = "IOB2") -> list[Entity]:
    """Entities of one sentence in ``mode`` (``default`` or ``strict`` with ``scheme``)."""
    if mode == "default":
        return entities_default(tags)
    if mode == "strict":
        return entities_strict(tags, scheme)
    raise UserError(f"unknown entity mode '{mode}'; use one of {list(MODES)}")


# --------------------------------------------------------------------------- scores


def sentence_counts(
    true: Sequence[str], pred: Sequence[str], mode: str = "default", scheme: str = "IOB2"
) -> dict[str, Any]:
    """Per-type entity counts of one sentence and its word counts.

    ``{"types": {type: [correct, predicted, true]}, "words": n, "words_correct": m}``: sums of
    these over sentences give every corpus score, and resampling sentences gives the bootstrap.
    """
    if len(true) != len(pred):
        raise ValueError(f"{len(true)} true tags but {len(pred)} predicted")
    t = set(get_entities(true, mode, scheme))
    p = set(get_entities(pred, mode, scheme))
    types: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for kind, _, _ in p:
        types[kind][1] += 1
    for kind, _, _ in t:
        types[kind][2] += 1
    for kind, _, _ in t & p:
        types[kind][0] += 1
    words_correct = sum(a == b for a, b in zip(true, pred, strict=True))
    return {"types": dict(types), "words": len(true), "words_correct": words_correct}


def _prf(correct: float, predicted: float, true: float) -> tuple[float, float, float]:
    p = correct / predicted if predicted > 0 else 0.0
    r = correct / true if true > 0 else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f


def entity_metrics(
    true: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    mode: str = "default",
    scheme: str = "IOB2",
) -> dict[str, Any]:
    """seqeval's scores of a corpus: micro, macro, weighted, per type, and token accuracy."""
    if len(true) != len(pred):
        raise ValueError(f"{len(true)} true sentences but {len(pred)} predicted")
    counts = [sentence_counts(t, p, mode, scheme) for t, p in zip(true, pred, strict=True)]
    return metrics_from_counts(counts)


def metrics_from_counts(counts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The corpus scores from per-sentence :func:`sentence_counts`."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    words = words_correct = 0
    for c in counts:
        for kind, (a, b, d) in c["types"].items():
            totals[kind][0] += a
            totals[kind][1] += b
            totals[kind][2] += d
        words += c["words"]
        words_correct += c["words_correct"]
    per_type = {}
    for kind in sorted(totals):
        a, b, d = totals[kind]
        p, r, f = _prf(a, b, d)
        per_type[kind] = {"precision": p, "recall": r, "f1": f, "support": d}
    correct = sum(v[0] for v in totals.values())
    predicted = sum(v[1] for v in totals.values())
    support = sum(v[2] for v in totals.values())
    p, r, f = _prf(correct, predicted, support)
    out: dict[str, Any] = {
        "n": len(counts),
        "entities": support,
        "predicted_entities": predicted,
        "precision": p,
        "recall": r,
        "f1": f,
        "token_accuracy": words_correct / words if words else 0.0,
    }
    k = len(per_type)
    for score in ("precision", "recall", "f1"):
        values = [v[score] for v in per_type.values()]
        out[f"{score}_macro"] = sum(values) / k if k else 0.0
        out[f"{score}_weighted"] = (
            sum(v[score] * v["support"] for v in per_type.values()) / support if support else 0.0
        )
    out["per_type"] = per_type
    return out
