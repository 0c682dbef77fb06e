"""Behavioural tests in the manner of CheckList (Ribeiro et al., 2020), run with the model.

- Invariance: a perturbation that should not change the prediction (extra whitespace, case,
  a typo, punctuation). A failure is an example whose predicted label changes.
- Directional expectation: a change that should move the probability of one label one way
  (a substituted letter in an anagram's second word should lower p(yes)). A failure is an
  example whose probability does not move that way by more than ``min_change``.
- Minimum functionality: templated examples, each with the label it must get, from a small
  YAML file. A failure is a case predicted otherwise.

Perturbations are plain functions of a string and a seeded ``random.Random``; they return None
when they do not apply (no word long enough for a typo), and such examples are not counted.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nlpflow.errors import UserError
from nlpflow.evaluation.metrics import FloatArray
from nlpflow.params import BehaviourParams, DirectionalParams, read_yaml

FAILING_EXAMPLES = 5  # failing examples kept per test for the report
PUNCTUATION_END = ".!?"

# --------------------------------------------------------------------------- perturbations

Perturbation = Callable[[str, random.Random, str], "str | None"]


def _letters(text: str) -> list[int]:
    return [i for i, c in enumerate(text) if c.isalpha()]


def _spelled_out(text: str) -> bool:
    """``g r k a q``: every whitespace-separated token one character (the anagram format)."""
    parts = text.split()
    return len(parts) > 1 and all(len(p) == 1 for p in parts)


def _other_letter(c: str, rng: random.Random) -> str:
    pool = [x for x in string.ascii_lowercase if x != c.lower()]
    new = rng.choice(pool)
    return new.upper() if c.isupper() else new


def whitespace(text: str, rng: random.Random, extra: str = "") -> str | None:
    """Extra spaces: one gap doubled (or a space added at the start) and a trailing space."""
    gaps = [m.start() for m in re.finditer(r" ", text)]
    if gaps:
        i = rng.choice(gaps)
        return text[:i] + "  " + text[i + 1 :] + " "
    return " " + text + " "


def case(text: str, rng: random.Random, extra: str = "") -> str | None:
    """Upper case (lower case when the text is already all upper case)."""
    new = text.lower() if text.isupper() else text.upper()
    return new if new != text else None


def lowercase(text: str, rng: random.Random, extra: str = "") -> str | None:
    new = text.lower()
    return new if new != text else None


def typo(text: str, rng: random.Random, extra: str = "") -> str | None:
    """Two neighbouring letters swapped inside a word of at least four letters."""
    words = [m for m in re.finditer(r"[^\W\d_]{4,}", text)]
    rng.shuffle(words)
    for m in words:
        w = m.group()
        spots = [i for i in range(1, len(w) - 2) if w[i] != w[i + 1]]
        if spots:
            i = rng.choice(spots)
            swapped = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
            return text[: m.start()] + swapped + text[m.end() :]
    return None


def punctuation(text: str, rng: random.Random, extra: str = "") -> str | None:
    """End punctuation removed where there is some, else a full stop added."""
    stripped = text.rstrip()
    if not stripped:
        return None
    if stripped[-1] in PUNCTUATION_END:
        return stripped.rstrip(PUNCTUATION_END)
    return stripped + "."


def substitute_char(text: str, rng: random.Random, extra: str = "") -> str | None:
    """One letter replaced by a different one."""
    spots = _letters(text)
    if not spots:
        return None
    i = rng.choice(spots)
    return text[:i] + _other_letter(text[i], rng) + text[i + 1 :]


def drop_char(text: str, rng: random.Random, extra: str = "") -> str | None:
    """One letter removed (with its space, for spelled-out words)."""
    if _spelled_out(text):
        parts = text.split()
        del parts[rng.randrange(len(parts))]
        return " ".join(parts)
    spots = _letters(text)
    if len(spots) < 2:
        return None
    i = rng.choice(spots)
    return text[:i] + text[i + 1 :]


def add_char(text: str, rng: random.Random, extra: str = "") -> str | None:
    """One letter inserted (as a new spelled-out letter where the text spells words out)."""
    new = rng.choice(string.ascii_lowercase)
    if _spelled_out(text):
        parts = text.split()
        parts.insert(rng.randrange(len(parts) + 1), new)
        return " ".join(parts)
    spots = _letters(text)
    if not spots:
        return None
    i = rng.choice(spots)
    return text[:i] + new + text[i:]


def append_text(text: str, rng: random.Random, extra: str = "") -> str | None:
    return f"{text.rstrip()} {extra}" if extra else None


def prepend_text(text: str, rng: random.Random, extra: str = "") -> str | None:
    return f"{extra} {text.lstrip()}" if extra else None


PERTURBATION_FUNCTIONS: dict[str, Perturbation] = {
    "whitespace": whitespace,
    "case": case,
    "lowercase": lowercase,
    "typo": typo,
    "punctuation": punctuation,
    "substitute_char": substitute_char,
    "drop_char": drop_char,
    "add_char": add_char,
    "append_text": append_text,
    "prepend_text": prepend_text,
}


def perturb_example(
    texts: dict[str, str], fields: Sequence[str], kind: str, rng: random.Random, extra: str = ""
) -> dict[str, str] | None:
    """``texts`` with ``kind`` applied to each of ``fields``; None if it applied to none."""
    fn = PERTURBATION_FUNCTIONS[kind]
    out = dict(texts)
    changed = False
    for f in fields:
        new = fn(texts[f], rng, extra)
        if new is not None and new != texts[f]:
            out[f] = new
            changed = True
    return out if changed else None


# --------------------------------------------------------------------------- templates


@dataclass
class TemplateTest:
    name: str
    label: str
    template: dict[str, str]
    values: dict[str, list[str]]
    distinct: bool = False


BUILTIN = "builtin:"
TEMPLATES_DIR = Path(__file__).parent / "templates"


def templates_path(spec: str | Path) -> Path:
    """``builtin:NAME`` -> the file shipped with nlpflow; anything else is a path."""
    text = str(spec)
    if text.startswith(BUILTIN):
        name = text[len(BUILTIN) :]
        path = TEMPLATES_DIR / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in TEMPLATES_DIR.glob("*.yaml"))
            raise UserError(
                f"params.yaml: error_analysis.behaviour.templates '{text}' is not built in; "
                f"use one of {[BUILTIN + k for k in known]} or a file path"
            )
        return path
    return Path(text)


def load_templates(spec: str | Path, text_fields: Sequence[str]) -> list[TemplateTest]:
    """Read a minimum-functionality file (``builtin:anagram`` or a path to one like it)."""
    path = templates_path(spec)
    if not path.is_file():
        raise UserError(f"{path} not found (error_analysis.behaviour.templates)")
    try:
        raw = read_yaml(path.read_text(encoding="utf-8")) or {}  # `label: yes` stays "yes"
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("tests"), list):
        raise UserError(f"{path}: expected a mapping with a 'tests' list")
    lists = raw.get("lists") or {}
    if not isinstance(lists, dict):
        raise UserError(f"{path}: 'lists' must map names to lists of strings")
    tests = []
    for i, t in enumerate(raw["tests"]):
        where = f"{path}: tests[{i}]"
        if not isinstance(t, dict):
            raise UserError(f"{where} must be a mapping")
        unknown = set(t) - {"name", "label", "template", "values", "distinct"}
        if unknown:
            raise UserError(f"{where}: unknown key(s) {sorted(unknown)}")
        name, label, template = t.get("name"), t.get("label"), t.get("template")
        if not isinstance(name, str) or not name:
            raise UserError(f"{where}: 'name' is required")
        if not isinstance(label, str):
            raise UserError(f"{where} ({name}): 'label' must be a string (quote yes/no in YAML)")
        if not isinstance(template, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in template.items()
        ):
            raise UserError(f"{where} ({name}): 'template' must map text fields to strings")
        values: dict[str, list[str]] = {}
        for key, spec in (t.get("values") or {}).items():
            items = lists.get(spec) if isinstance(spec, str) else spec
            if not isinstance(items, list) or not items:
                raise UserError(
                    f"{where} ({name}): values.{key} must be a list or the name of one in 'lists'"
                )
            values[str(key)] = [str(v) for v in items]
        used = {m for s in template.values() for m in re.findall(r"{(\w+)}", s)}
        missing = used - set(values)
        if missing:
            raise UserError(f"{where} ({name}): no values for placeholder(s) {sorted(missing)}")
        tests.append(TemplateTest(name, label, dict(template), values, bool(t.get("distinct"))))
    return tests


def expand_template(test: TemplateTest, max_cases: int, seed: int) -> list[dict[str, str]]:
    """The cases of a template: every combination when few, else ``max_cases`` drawn (seeded)."""
    keys = sorted(test.values)
    total = 1
    for k in keys:
        total *= len(test.values[k])

    def fill(choice: Sequence[str]) -> dict[str, str] | None:
        if test.distinct and len(set(choice)) < len(choice):
            return None
        mapping = dict(zip(keys, choice, strict=True))
        return {f: s.format(**mapping) for f, s in test.template.items()}

    if total <= max_cases * 4:
        cases = [
            c for combo in itertools.product(*(test.values[k] for k in keys)) if (c := fill(combo))
        ]
        if len(cases) > max_cases:
            cases = random.Random(seed).sample(cases, max_cases)
        return cases
    rng = random.Random(seed)
    seen: set[str] = set()
    cases = []
    for _ in range(max_cases * 20):
        c = fill([rng.choice(test.values[k]) for k in keys])
        if c is None:
            continue
        key = json.dumps(c, sort_keys=True)
        if key not in seen:
            seen.add(key)
            cases.append(c)
            if len(cases) == max_cases:
                break
    return cases


# --------------------------------------------------------------------------- running


Predict = Callable[[Sequence[dict[str, str]]], FloatArray]


@dataclass
class TestResult:
    """One behavioural test: how many cases ran, how many failed, and a few failures."""

    name: str
    kind: str  # invariance, directional, minimum functionality
    description: str
    tested: int = 0
    failed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped: str = ""

    @property
    def failure_rate(self) -> float:
        return self.failed / self.tested if self.tested else 0.0

    def metrics(self) -> dict[str, float | int]:
        return {"tested": self.tested, "failed": self.failed, "failure_rate": self.failure_rate}


def _texts(row: dict[str, Any], fields: Sequence[str]) -> dict[str, str]:
    return {f: str(row[f]) for f in fields}


def _top(probs: FloatArray) -> int:
    return int(np.argmax(probs))


def run_invariance(
    kind: str,
    rows: Sequence[dict[str, Any]],
    text_fields: Sequence[str],
    fields: Sequence[str],
    label_names: Sequence[str],
    predict: Predict,
    seed: int,
) -> TestResult:
    result = TestResult(
        f"invariance: {kind}",
        "invariance",
        f"{kind} applied to {', '.join(fields)}; the predicted label must not change",
    )
    rng = random.Random(f"{seed}-inv-{kind}")
    pairs = []
    for row in rows:
        texts = _texts(row, text_fields)
        new = perturb_example(texts, fields, kind, rng)
        if new is not None:
            pairs.append((row, texts, new))
    if not pairs:
        result.skipped = "the perturbation applies to no example"
        return result
    before = predict([p[1] for p in pairs])
    after = predict([p[2] for p in pairs])
    result.tested = len(pairs)
    for (row, texts, new), pb, pa in zip(pairs, before, after, strict=True):
        if _top(pb) != _top(pa):
            result.failed += 1
            if len(result.failures) < FAILING_EXAMPLES:
                result.failures.append(
                    {
                        "id": row["id"],
                        "original": texts,
                        "perturbed": new,
                        "before": f"{label_names[_top(pb)]} ({pb[_top(pb)]:.3f})",
                        "after": f"{label_names[_top(pa)]} ({pa[_top(pa)]:.3f})",
                    }
                )
    return result


def run_directional(
    spec: DirectionalParams,
    rows: Sequence[dict[str, Any]],
    text_fields: Sequence[str],
    label_names: Sequence[str],
    predict: Predict,
    seed: int,
) -> TestResult:
    fields = spec.fields or list(text_fields)
    target = spec.target or label_names[-1]
    only_label = spec.only_label
    arrow = "lower" if spec.expect == "decrease" else "raise"
    result = TestResult(
        spec.name,
        "directional",
        f"{spec.perturbation} on {', '.join(fields)}"
        + (f" of '{only_label}' examples" if only_label else "")
        + f" should {arrow} p({target})"
        + (f" by more than {spec.min_change:g}" if spec.min_change else ""),
    )
    missing = [f for f in fields if f not in text_fields]
    if missing:
        result.skipped = f"field(s) {missing} not in this data's text fields {list(text_fields)}"
        return result
    for label in filter(None, (target, only_label)):
        if label not in label_names:
            result.skipped = f"label '{label}' not in this data's labels {list(label_names)}"
            return result
    t = list(label_names).index(target)
    rng = random.Random(f"{seed}-dir-{spec.name}")
    pairs = []
    for row in rows:
        if only_label and row["label"] != only_label:
            continue
        texts = _texts(row, text_fields)
        new = perturb_example(texts, fields, spec.perturbation, rng, spec.text)
        if new is not None:
            pairs.append((row, texts, new))
    if not pairs:
        result.skipped = "no example to perturb"
        return result
    before = predict([p[1] for p in pairs])[:, t]
    after = predict([p[2] for p in pairs])[:, t]
    result.tested = len(pairs)
    for (row, texts, new), pb, pa in zip(pairs, before, after, strict=True):
        delta = pa - pb
        ok = delta < -spec.min_change if spec.expect == "decrease" else delta > spec.min_change
        if not ok:
            result.failed += 1
            if len(result.failures) < FAILING_EXAMPLES:
                result.failures.append(
                    {
                        "id": row["id"],
                        "original": texts,
                        "perturbed": new,
                        "before": f"p({target}) {pb:.3f}",
                        "after": f"p({target}) {pa:.3f}",
                    }
                )
    return result


def run_template(
    test: TemplateTest,
    text_fields: Sequence[str],
    label_names: Sequence[str],
    predict: Predict,
    max_cases: int,
    seed: int,
) -> TestResult:
    result = TestResult(
        test.name, "minimum functionality", f"templated cases that must be '{test.label}'"
    )
    if set(test.template) != set(text_fields):
        result.skipped = (
            f"template fields {sorted(test.template)} differ from the text fields "
            f"{list(text_fields)}"
        )
        return result
    if test.label not in label_names:
        result.skipped = f"label '{test.label}' not in this data's labels {list(label_names)}"
        return result
    cases = expand_template(test, max_cases, seed)
    if not cases:
        result.skipped = "the template yields no case"
        return result
    probs = predict(cases)
    result.tested = len(cases)
    for case_, p in zip(cases, probs, strict=True):
        got = label_names[_top(p)]
        if got != test.label:
            result.failed += 1
            if len(result.failures) < FAILING_EXAMPLES:
                result.failures.append(
                    {"case": case_, "expected": test.label, "got": f"{got} ({p[_top(p)]:.3f})"}
                )
    return result


def sample_rows(
    rows: Sequence[dict[str, Any]], max_examples: int, seed: int
) -> list[dict[str, Any]]:
    """At most ``max_examples`` rows, drawn with ``seed``, in file order."""
    if len(rows) <= max_examples:
        return list(rows)
    idx = sorted(random.Random(f"{seed}-sample").sample(range(len(rows)), max_examples))
    return [rows[i] for i in idx]


def _memoized(predict: Predict) -> Predict:
    """``predict`` with a cache per input: the originals are predicted once for all tests."""
    cache: dict[tuple[tuple[str, str], ...], FloatArray] = {}

    def cached(examples: Sequence[dict[str, str]]) -> FloatArray:
        keys = [tuple(sorted(ex.items())) for ex in examples]
        todo = list(dict.fromkeys(k for k in keys if k not in cache))
        if todo:
            for key, probs in zip(todo, predict([dict(k) for k in todo]), strict=True):
                cache[key] = probs
        if not keys:
            return predict([])
        return np.stack([cache[k] for k in keys])

    return cached


def run_behaviour(
    params: BehaviourParams,
    rows: Sequence[dict[str, Any]],
    text_fields: Sequence[str],
    label_names: Sequence[str],
    predict: Predict,
    seed: int,
    templates_path: str | Path | None = None,
) -> list[TestResult]:
    """Every configured behavioural test on (a seeded sample of) ``rows``."""
    sample = sample_rows(rows, params.max_examples, seed)
    predict = _memoized(predict)
    results = []
    inv_fields = params.invariance_fields or list(text_fields)
    missing = [f for f in inv_fields if f not in text_fields]
    for kind in params.invariance:
        if missing:
            r = TestResult(f"invariance: {kind}", "invariance", kind)
            r.skipped = f"field(s) {missing} not in this data's text fields {list(text_fields)}"
            results.append(r)
            continue
        results.append(
            run_invariance(kind, sample, text_fields, inv_fields, label_names, predict, seed)
        )
    for spec in params.directional:
        results.append(run_directional(spec, sample, text_fields, label_names, predict, seed))
    path = templates_path if templates_path is not None else params.templates
    if path:
        for test in load_templates(path, text_fields):
            results.append(
                run_template(
                    test, text_fields, label_names, predict, params.max_template_cases, seed
                )
            )
    return results


# --------------------------------------------------------------------------- the model


class ModelPredictor:
    """Probabilities for raw texts, encoded by the tokenize stage's :class:`Encoder`.

    ``max_length`` is the one the tokenize stage used (data/tokenized/meta.json); None takes the
    model's own limit. Segment ids are passed only to a model with a segment embedding.
    """

    def __init__(
        self,
        model_dir: str | Path,
        label_names: Sequence[str],
        text_fields: Sequence[str],
        max_length: int | None,
        truncation: str = "longest_first",
        batch_size: int = 64,
    ) -> None:
        from nlpflow.evaluation.predict import load_classifier
        from nlpflow.modeling.build import pretrained_limit
        from nlpflow.modeling.encoder import Encoder, takes_segments
        from nlpflow.modeling.tokenizers import load_tokenizer

        self.model, self.pad_id = load_classifier(model_dir, label_names)
        tokenizer = load_tokenizer(model_dir)
        limit = pretrained_limit(tokenizer, self.model.config)
        self.encoder = Encoder(
            tokenizer,
            text_fields,
            min(max_length, limit) if max_length else limit,
            truncation,
            "sequence",
            takes_segments(tokenizer, self.model.config),
        )
        self.batch_size = batch_size

    def __call__(self, examples: Sequence[dict[str, str]]) -> FloatArray:
        from nlpflow.evaluation.predict import predict_probabilities

        if not examples:
            return np.zeros((0, len(self.model.config.id2label)))
        enc = self.encoder.encode_rows(examples)
        return predict_probabilities(
            self.model, enc.input_ids, self.batch_size, self.pad_id, enc.token_type_ids
        )
