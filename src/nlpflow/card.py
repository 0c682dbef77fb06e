"""The model card: ``models/best/README.md`` in the Hugging Face format.

A YAML metadata block (``license``, ``library_name``, ``tags``, ``pipeline_tag``,
``datasets``, ``metrics`` and ``model-index`` with the test results, as the Hub reads them)
and a body with the test metrics and their bootstrap intervals beside the baselines, the
data card's summary (``metrics/preprocess.json``), the limits the error analysis found (the
weakest slice, the failed behavioural tests: ``metrics/error_analysis.json``) and the params
the model was trained with. Every number is copied from those files, never recomputed, so
the card says what ``dvc metrics show`` says.

The card holds no time or path of this machine: the same inputs give the same bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpflow.data.saved import DataMeta
from nlpflow.errors import UserError
from nlpflow.families.names import CLASSIFICATION_TASKS
from nlpflow.markdown import table

# Regression models load as text-classification pipelines too (one output, no softmax).
PIPELINE_TAGS = {
    "sequence": "text-classification", "token": "token-classification",
    "choice": "multiple-choice", "qa": "question-answering",
}  # fmt: skip
TASK_NAMES = {
    "sequence": "Text Classification", "token": "Token Classification",
    "regression": "Text Regression", "qa": "Extractive Question Answering",
    "multilabel": "Multi-label Text Classification", "choice": "Multiple Choice",
}  # fmt: skip
# The headline metrics, first the one compared with the baselines (as evaluate prints them).
MAIN_METRICS = {
    "sequence": ("accuracy", "f1_macro", "balanced_accuracy", "mcc", "roc_auc", "pr_auc"),
    "token": ("f1", "precision", "recall", "token_accuracy"),
    "regression": ("rmse", "mae", "r2", "pearson", "spearman"),
    "qa": ("f1", "exact", "HasAns_f1", "NoAns_f1"),
    "multilabel": (
        "f1_micro",
        "f1_macro",
        "f1_weighted",
        "subset_accuracy",
        "hamming_loss",
        "lrap",
    ),
    "choice": ("accuracy", "log_loss"),
}
NOT_METRICS = {"n", "classes_missing"}
MIN_SLICE_SIZE = 5  # as the error analysis: smaller slices are not called the weakest
SPLIT = "test"


@dataclass
class CardInputs:
    """What the card is made of: the model's ``nlpflow.json``, the stages' metrics files
    (``evaluate``/``error_analysis``/``data`` as read from JSON; the last two may be None)
    and the params sections that trained the model (plain dicts, by section name)."""

    meta: DataMeta
    evaluate: dict[str, Any]
    error_analysis: dict[str, Any] | None
    data: dict[str, Any] | None
    params: dict[str, Any]


def read_metrics(path: str | Path, stage: str) -> dict[str, Any]:
    """A stage's metrics file as a dict; a missing or malformed one is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found; run the {stage} stage first (dvc repro {stage})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON at line {err.lineno}: {err.msg}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def test_metrics(evaluate: dict[str, Any], task: str) -> dict[str, float]:
    """The test split's scalar metrics, headline ones first (the model-index entries)."""
    block = evaluate.get(SPLIT)
    if not isinstance(block, dict):
        raise UserError(f"metrics/evaluate.json has no '{SPLIT}' block; rerun evaluate")
    scalars = {
        k: v
        for k, v in block.items()
        if k not in NOT_METRICS and isinstance(v, int | float) and not isinstance(v, bool)
    }
    first = [k for k in MAIN_METRICS.get(task, ()) if k in scalars]
    return {k: float(scalars[k]) for k in [*first, *sorted(set(scalars) - set(first))]}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def _dataset_name(source: str) -> str:
    if source.startswith("hub:"):
        return source[len("hub:") :]
    return source.rsplit("/", 1)[-1] if source else "unknown"


def metadata(inputs: CardInputs) -> dict[str, Any]:
    """The card's YAML metadata (the Hub's model card fields)."""
    task = inputs.meta.task
    pipeline_tag = PIPELINE_TAGS.get(task, "text-classification")
    data_params = inputs.params.get("data", {})
    source = str((inputs.data or {}).get("source") or data_params.get("source"))
    files = data_params.get("files") or {}
    if source == "files" and files.get("train"):  # data.files: named by its train file
        source = str(files["train"])
    dataset = _dataset_name(source)
    metrics = test_metrics(inputs.evaluate, task)
    n = inputs.evaluate[SPLIT].get("n")
    lora = _lora(inputs.params)
    base = {"base_model": inputs.params["model"]["name_or_path"]} if lora is not None else {}
    return {
        "license": "unknown",
        "library_name": "transformers",
        **base,
        "tags": ["nlpflow", "dvc", pipeline_tag, f"{task}-task"],
        "pipeline_tag": pipeline_tag,
        "datasets": [dataset],
        "metrics": [k for k in MAIN_METRICS.get(task, ()) if k in metrics] or list(metrics),
        "model-index": [
            {
                "name": _slug(f"nlpflow-{task}-{dataset}"),
                "results": [
                    {
                        "task": {"type": pipeline_tag, "name": TASK_NAMES.get(task, task)},
                        "dataset": {
                            "name": dataset,
                            "type": dataset,
                            "split": f"{SPLIT} (n={n})",
                        },
                        "metrics": [
                            {"type": k, "name": f"test {k}", "value": v} for k, v in metrics.items()
                        ],
                    }
                ],
            }
        ],
    }


def _num(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.3g}"
    return str(value)


def _evaluation(inputs: CardInputs) -> list[str]:
    task = inputs.meta.task
    block = inputs.evaluate[SPLIT]
    level = inputs.params.get("evaluate", {}).get("confidence_level")
    ci = block.get("ci", {}) or {}
    baselines: dict[str, dict[str, Any]] = block.get("baselines", {}) or {}
    main = [k for k in MAIN_METRICS.get(task, ()) if k in block]
    others = [k for k in test_metrics(inputs.evaluate, task) if k not in main]
    level_text = f"{100 * level:g}%" if isinstance(level, int | float) else "bootstrap"
    lines = [
        f"## Evaluation ({SPLIT} split, n = {block.get('n')})",
        "",
        f"From `metrics/evaluate.json`; intervals are {level_text} percentile bootstrap "
        "intervals over the test examples. The baselines ran on the same split.",
        "",
    ]
    names = list(baselines)
    header = ["metric", "model", f"{level_text} interval", *names]
    rows = []
    for k in main:
        interval = ci.get(k)
        shown = f"[{_num(interval['low'])}, {_num(interval['high'])}]" if interval else ""
        rows.append([k, _num(block[k]), shown, *[_num(baselines[b].get(k)) for b in names]])
    lines += table(header, rows, "l" + "r" * (len(header) - 1))
    subset = [f"{b} on {baselines[b]['rows']}" for b in names if "rows" in baselines[b]]
    if subset:  # text2text's prompted base model runs on the first rows only
        lines += ["", "Rows of the split scored: " + "; ".join(subset) + "."]
    if others:
        lines += ["", "Other test metrics: " + ", ".join(f"{k} {_num(block[k])}" for k in others)]
    threshold = inputs.evaluate.get("threshold")
    if isinstance(threshold, dict) and "used" in threshold:
        lines += [
            "",
            f"Binary decisions at p(positive) >= {_num(threshold['used'])} (fixed "
            f"{_num(threshold.get('fixed'))}, tuned on validation {_num(threshold.get('tuned'))}).",
        ]
    return lines


def _data(inputs: CardInputs) -> list[str]:
    data = inputs.data
    lines = ["## Training data", ""]
    if not data:
        return [*lines, "No data card (metrics/preprocess.json) was given.", ""]
    meta = inputs.meta
    classes = meta.task in CLASSIFICATION_TASKS
    outputs = ", ".join(f"`{n}`" for n in meta.label_names[:20])
    outputs = f"{len(meta.label_names)} labels: {outputs}" if classes else f"target {outputs}"
    if meta.target_labels:  # a label task: the classes written out, counted in the data card
        classes = True
        names = ", ".join(f"`{n}`" for n in meta.target_labels[:20])
        outputs = f"target `{meta.label_field or 'target'}`: {len(meta.target_labels)} classes written out ({names})"
    lines += [
        f"Source `{data.get('source')}`; text field(s) {', '.join(f'`{f}`' for f in meta.text_fields)}"
        f"; {outputs}. From the data card (`metrics/preprocess.json`, `reports/data.md`).",
        "",
    ]
    splits = data.get("splits") or {}
    rows = []
    for split, info in splits.items():
        labels = info.get("labels") or {}
        shown = ", ".join(f"{k} {v}" for k, v in list(labels.items())[:8])
        if len(labels) > 8:
            shown += f", ... ({len(labels)} labels)"
        words = info.get("words") or {}
        row = [split, info.get("rows"), shown, words.get("p50"), words.get("max")]
        rows.append(row if classes else row[:2] + row[3:])
    if rows:
        header = ["split", "rows", "labels", "median words", "max words"]
        if not classes:
            header.remove("labels")
        lines += table(header, rows, "lrlrr" if classes else "lrrr")
        lines.append("")
    facts = []
    for key, name in (
        ("imbalance_ratio", "imbalance ratio (largest / smallest class)"),
        ("vocabulary_size", "vocabulary size"),
        ("skipped_rows", "rows skipped as bad"),
    ):
        if data.get(key) is not None:
            facts.append(f"{name} {_num(data[key])}")
    leakage = data.get("leakage")
    if isinstance(leakage, dict) and "total" in leakage:
        facts.append(f"texts shared between splits {leakage['total']}")
    if facts:
        lines += ["- " + "; ".join(facts)]
    cleaning = meta.cleaning
    if cleaning:
        on = [
            k if v is True else f"{k} {v}"
            for k, v in cleaning.items()
            if v not in (False, 0, "none")
        ]
        lines.append(f"- cleaning (repeated by `nlpflow predict`): {', '.join(on) or 'none'}")
    for warning in data.get("warnings") or []:
        lines.append(f"- warning: {warning}")
    return [*lines, ""]


def weakest_slice(error_analysis: dict[str, Any]) -> tuple[str, str, str, dict[str, Any]] | None:
    """``(slicing, value, metric, stats)`` of the test split's weakest slice of at least
    :data:`MIN_SLICE_SIZE` examples (else of any size): the least accurate, or for a family
    without accuracy the lowest F1 (QA) or the largest RMSE (regression); ties go to the
    larger slice; text2text's slices (a list per slicing, each naming its range) by exact
    match."""
    slices = (error_analysis.get(SPLIT) or {}).get("slices") or {}

    def named(values: Any) -> list[tuple[str, Any]]:
        if isinstance(values, dict):
            return list(values.items())
        if not isinstance(values, list):
            return []
        # [{"input_words": "3-4", "n": ..., "exact_match": ...}, ...]: named by the first text
        return [
            (next((v for v in s.values() if isinstance(v, str)), str(i)), s)
            for i, s in enumerate(values)
            if isinstance(s, dict)
        ]

    found = [
        (family, value, stats)
        for family, values in slices.items()
        for value, stats in named(values)
        if isinstance(stats, dict)
    ]
    metrics = (("accuracy", 1.0), ("f1", 1.0), ("rmse", -1.0), ("exact_match", 1.0))
    for metric, sign in metrics:
        scored = [c for c in found if isinstance(c[2].get(metric), int | float)]
        if scored:
            big = [c for c in scored if c[2].get("n", 0) >= MIN_SLICE_SIZE] or scored
            family, value, stats = min(big, key=lambda c: (sign * c[2][metric], -c[2].get("n", 0)))
            return family, value, metric, stats
    return None


def failed_behaviour(error_analysis: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The behavioural tests with failures, most failing first."""
    tests = (error_analysis.get(SPLIT) or {}).get("behaviour") or {}
    failed = [(name, r) for name, r in tests.items() if isinstance(r, dict) and r.get("failed")]
    return sorted(failed, key=lambda t: (-float(t[1].get("failure_rate", 0)), t[0]))


def _limits(inputs: CardInputs) -> list[str]:
    lines = ["## Limitations", ""]
    ea = inputs.error_analysis
    if not ea:
        return [*lines, "No error analysis (metrics/error_analysis.json) was given.", ""]
    block = ea.get(SPLIT) or {}
    errors = f"{block['errors']} errors of " if "errors" in block else ""
    lines.append(
        f"From the error analysis (`metrics/error_analysis.json`, `reports/errors.md`): "
        f"{errors}{block.get('n')} test examples."
    )
    lines.append("")
    weakest = weakest_slice(ea)
    if weakest is not None:
        family, value, metric, stats = weakest
        lines.append(
            f"- Weakest slice: `{family}` = `{value}`, {metric} {_num(stats[metric])} "
            f"on {stats.get('n')} examples (overall {_num(block.get(metric))})."
        )
    tests = (block.get("behaviour") or {}) if isinstance(block, dict) else {}
    failed = failed_behaviour(ea)
    if failed:
        lines.append(f"- Behavioural tests failed: {len(failed)} of {len(tests)}:")
        lines += [
            f"  - `{name}`: {r.get('failed')} of {r.get('tested')} cases failed "
            f"({_num(r.get('failure_rate'))})"
            for name, r in failed
        ]
    elif tests:
        lines.append(f"- All {len(tests)} behavioural tests passed.")
    lines.append(
        "- Measured on held-out data from the same source as the training data; "
        "other text may behave differently."
    )
    return [*lines, ""]


def _usage(inputs: CardInputs) -> list[str]:
    task = inputs.meta.task
    pipeline_tag = PIPELINE_TAGS.get(task, "text-classification")
    fields = inputs.meta.text_fields
    call = ['model("...")']
    if len(fields) == 2:
        call = [f"# text: the {fields[0]} field, text_pair: the {fields[1]} field",
                'model({"text": "...", "text_pair": "..."})']  # fmt: skip
    elif task == "token":
        call = ['model("words of a sentence")  # grouped entities: aggregation_strategy="first"']
    if task == "choice":  # transformers has no multiple-choice pipeline
        return [
            "## How to use",
            "",
            "```python",
            "import torch",
            "from transformers import AutoModelForMultipleChoice, AutoTokenizer",
            "",
            'tok = AutoTokenizer.from_pretrained("models/best")',
            'model = AutoModelForMultipleChoice.from_pretrained("models/best")',
            'context, options = "...", ["...", "...", "..."]',
            'enc = tok([context] * len(options), options, padding=True, return_tensors="pt")',
            "probs = model(**{k: v[None] for k, v in enc.items()}).logits.softmax(-1)  # (1, N)",
            "```",
            "",
        ]
    if task == "qa":  # a no-answer threshold is nlpflow's own (metrics/evaluate.json)
        threshold = (inputs.evaluate.get("threshold") or {}).get("used")
        return [
            "## How to use",
            "",
            "```python",
            "from transformers import pipeline",
            "",
            f'model = pipeline("{pipeline_tag}", model="models/best")',
            'model(question="...", context="...", handle_impossible_answer=True)',
            "```",
            "",
            "Long contexts are split into windows as in training (the pipeline's `max_seq_len`"
            " and `doc_stride`). The evaluation answered nothing when the no-answer score beat"
            f" the best span's by more than {_num(threshold)} (tuned on validation); the"
            " pipeline's `handle_impossible_answer` compares them without that margin;"
            " `nlpflow predict` applies it:",
            "",
            "```bash",
            f"nlpflow predict --model models/best --threshold {_num(threshold)} new.jsonl "
            "answers.jsonl",
            "```",
            "",
        ]
    if task == "regression":  # the pipeline returns the model's standardised output as is
        call[-1] = call[-1].replace("model(", "out = model(", 1)
        call += [
            "# out's score is standardised: value = score * config.target_std + config.target_mean",
            "# (config.json); nlpflow predict gives the value itself",
        ]
    return [
        "## How to use",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'model = pipeline("{pipeline_tag}", model="models/best")',
        *call,
        "```",
        "",
        "Or on a file (CSV/TSV, JSONL, Parquet), with the training's cleaning and encoding, "
        "rejected rows listed and truncated inputs counted:",
        "",
        "```bash",
        f"nlpflow predict --model models/best{_decision_flags(inputs)} new.csv predictions.jsonl",
        "```",
        "",
    ]


def _decision_flags(inputs: CardInputs) -> str:
    """Binary tasks: the ``nlpflow predict`` options that decide as evaluate did (its
    threshold, fixed or tuned on validation, and the positive label), so the predictions
    follow the rule the card's metrics were measured with."""
    scoped = inputs.evaluate.get("thresholds")  # multi-label: one threshold for every label
    if isinstance(scoped, dict) and isinstance(scoped.get("threshold"), int | float):
        return f" --threshold {scoped['threshold']}"
    threshold = inputs.evaluate.get("threshold")
    if not isinstance(threshold, dict) or not isinstance(threshold.get("used"), int | float):
        return ""
    flags = f" --threshold {threshold['used']}"
    positive = inputs.params.get("evaluate", {}).get("positive_label")
    return flags + (f" --positive {positive}" if positive else "")


def _lora(params: dict[str, Any]) -> dict[str, Any] | None:
    """``model.lora`` of the params when LoRA was on, else None."""
    lora = params.get("model", {}).get("lora") or {}
    return lora if lora.get("enabled") else None


def _params(params: dict[str, Any]) -> list[str]:
    import yaml

    lora = _lora(params)
    adapted: list[str] = []
    if lora is not None:
        modules = lora.get("target_modules")
        where = "this directory holds the base with the adapter merged in" + (
            "" if lora.get("merge") else "; the adapter alone is in `models/adapter`"
        )
        adapted = [
            f"LoRA (peft) on the base model `{params['model'].get('name_or_path')}`: rank "
            f"{lora.get('rank')}, alpha {lora.get('alpha')}, dropout {lora.get('dropout')}, "
            f"target modules {modules if modules != 'auto' else 'auto (peft choice for the architecture)'}"
            f"; only the adapters trained (counts in `metrics/train.json`); {where}.",
            "",
        ]
    return [
        "## Training procedure",
        "",
        *adapted,
        "Trained by the nlpflow pipeline (`dvc repro`) with these params (`params.yaml`):",
        "",
        "```yaml",
        yaml.safe_dump(params, sort_keys=False, allow_unicode=True).rstrip(),
        "```",
        "",
    ]


def render_card(inputs: CardInputs) -> str:
    """The card's text: ``---`` YAML metadata ``---``, then markdown."""
    import yaml

    meta = inputs.meta
    task = meta.task
    head = yaml.safe_dump(metadata(inputs), sort_keys=False, allow_unicode=True)
    labels = ", ".join(f"`{n}`" for n in meta.label_names[:20])
    unit = "label" if task in CLASSIFICATION_TASKS else "value"
    what = f"one {unit} per text" if task != "token" else "one tag per word"
    if task != "token" and len(meta.text_fields) == 2:
        what = f"one {unit} per pair of texts"
    if task == "choice":
        what = f"the right one of {len(meta.label_names)} options per context; labels: positions"
    if task == "qa":
        what = "a span of the context per question, or no answer"
    body: list[str] = [
        f"# {metadata(inputs)['model-index'][0]['name']}",
        "",
        f"A {TASK_NAMES.get(task, task).lower()} model ({what}) trained and evaluated by the "
        f"nlpflow DVC pipeline. {'Labels' if unit == 'label' else 'Outputs' if task == 'qa' else 'Target'}: {labels}"
        f"{' ...' if len(meta.label_names) > 20 else ''}. Inputs are cut to "
        f"{meta.max_length} tokens ({meta.truncation}).",
        "",
    ]
    body += _usage(inputs)
    body += _evaluation(inputs)
    body.append("")
    body += _limits(inputs)
    body += _data(inputs)
    body += _params(inputs.params)
    return "---\n" + head + "---\n\n" + "\n".join(body).rstrip() + "\n"


def card_values(text: str) -> dict[str, float]:
    """The model-index test metrics of a card's metadata (the inverse of :func:`render_card`
    for the numbers; what the tests compare with metrics/evaluate.json)."""
    import yaml

    if not text.startswith("---\n"):
        raise ValueError("the card has no YAML metadata block")
    head = text[4 : text.index("\n---\n", 4)]
    meta = yaml.safe_load(head)
    results = meta["model-index"][0]["results"][0]["metrics"]
    return {m["type"]: float(m["value"]) for m in results}


def section_names(text: str) -> Sequence[str]:
    """The ``## `` headings of a card, in order."""
    return [line[3:] for line in text.splitlines() if line.startswith("## ")]
