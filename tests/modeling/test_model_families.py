"""The whole pipeline (preprocess -> tokenize -> probe -> train -> evaluate -> error_analysis)
through ``model.name_or_path`` pointing at a local model of each family, on the built-in data,
sequence pairs (anagram) and token classification (entities).

What a family needs is found from its model and tokenizer, not assumed from BERT: GPT-2 has no
padding token (its end-of-text token pads, and the config learns the id so the classifier
reads the last real token); RoBERTa's position table has two rows before the first position;
only models with a segment embedding (``type_vocab_size > 1``) get ``token_type_ids``;
byte-level BPE encodes pre-split words with a prefix space. Each run ends with a check that
padding changes nothing: the test split predicted one example at a time and in batches agrees.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from datasets import load_from_disk

from stages import error_analysis, evaluate, preprocess, probe, tokenize, train
from tests.conftest import tiny_params
from tests.modeling.families import FAMILIES, POSITIONS, make_family

TASKS = {
    "sequence": {"data": {"anagram": {"size": 160}}},
    "token": {
        "data": {
            "source": "builtin:entities",
            "text_fields": ["tokens"],
            "label_field": "tags",
            "entities": {"size": 160},
        }
    },
}
SEGMENTS = {"bert", "electra"}  # type_vocab_size 2; RoBERTa 1, the others none


@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every family's tiny model, its tokenizer trained on both built-in data sets' text."""
    from nlpflow.data.anagram import generate_anagram
    from nlpflow.data.entities import generate_entities
    from nlpflow.params import AnagramParams, EntitiesParams

    texts = [" ".join(r["tokens"]) for r in generate_entities(EntitiesParams(size=300), 0)]
    texts += [f"{r['first']} {r['second']}" for r in generate_anagram(AnagramParams(size=200), 0)]
    root = tmp_path_factory.mktemp("families")
    return {f: make_family(f, root, texts) for f in FAMILIES}


def _params(root: Path, task: str, model_dir: Path) -> Path:
    override = {
        **TASKS[task],
        "model": {"name_or_path": str(model_dir)},
        # Above every family's 64 positions: the model's own limit must cap it.
        "tokenizer": {"max_length": 100},
        # The cheapest run that still passes through every stage and every family-specific
        # path: two candidate batch sizes, one epoch, one baseline, one behavioural test.
        "probe": {"max_batch_size": 8, "max_candidates": 2},
        "train": {"epochs": 1, "effective_batch_size": 8},
        "evaluate": {"bootstrap_resamples": 10, "baselines": ["majority"]},
        "error_analysis": {
            "behaviour": {
                "max_examples": 8,
                "invariance": ["whitespace"],
                "directional": [],
                "templates": "",
            }
        },
    }
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params(**override), sort_keys=False))
    return path


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for task in TASKS:
        root = tmp_path_factory.mktemp(f"processed-{task}")
        params = _params(root, task, root)
        preprocess.main(["--params", str(params), "--out", str(root / "processed"),
                         "--metrics", str(root / "p.json"), "--plots", str(root / "plots"),
                         "--report", str(root / "data.md")])  # fmt: skip
        out[task] = root / "processed"
    return out


def run_pipeline(root: Path, params: Path, processed: Path) -> dict[str, Path]:
    """Every stage after preprocess, with the paths dvc.yaml gives them, under ``root``."""
    p = {name: root / name for name in ("tokenized", "tokenizer", "models", "predictions")}
    a = ["--params", str(params)]
    tokenize.main([*a, "--data", str(processed), "--out", str(p["tokenized"]),
                   "--tokenizer-out", str(p["tokenizer"]), "--metrics", str(root / "tokenize.json"),
                   "--report", str(root / "tokenization.md")])  # fmt: skip
    probe.main([*a, "--data", str(p["tokenized"]), "--tokenizer", str(p["tokenizer"]),
                "--out", str(root / "probe.json"), "--plot", str(root / "candidates.json"),
                "--plan", str(root / "plan.json")])  # fmt: skip
    train.main([*a, "--data", str(p["tokenized"]), "--tokenizer", str(p["tokenizer"]),
                "--probe", str(root / "plan.json"), "--models", str(p["models"]),
                "--checkpoints", str(root / "checkpoints"), "--metrics", str(root / "train.json"),
                "--plots", str(root / "plots-train")])  # fmt: skip
    evaluate.main([*a, "--model", str(p["models"] / "best"), "--processed", str(processed),
                   "--tokenized", str(p["tokenized"]), "--predictions", str(p["predictions"]),
                   "--metrics", str(root / "evaluate.json"), "--plots", str(root / "plots-eval")])  # fmt: skip
    error_analysis.main([*a, "--predictions", str(p["predictions"]), "--processed",
                         str(processed), "--evaluate-metrics", str(root / "evaluate.json"),
                         "--model", str(p["models"] / "best"), "--tokenized", str(p["tokenized"]),
                         "--report", str(root / "errors.md"), "--metrics",
                         str(root / "error_analysis.json")])  # fmt: skip
    return p


def _padding_changes_nothing(model_dir: Path, tokenized: Any, task: str) -> None:
    from nlpflow.evaluation.predict import forward_batches, load_classifier

    names = json.loads((model_dir / "config.json").read_text())["id2label"]
    model, pad_id = load_classifier(model_dir, [names[str(i)] for i in range(len(names))], task)
    ids = [list(x) for x in tokenized["input_ids"]]
    types = (
        list(tokenized["token_type_ids"]) if "token_type_ids" in tokenized.column_names else None
    )

    def run(batch: int) -> list[np.ndarray]:
        out: list[np.ndarray] = [np.zeros(0)] * len(ids)
        for idx, probs in forward_batches(model, ids, batch, pad_id, types, progress=False):
            for row, i in enumerate(idx):
                out[int(i)] = probs[row][: len(ids[int(i)])] if task == "token" else probs[row]
        return out

    for one, many in zip(run(1), run(16), strict=True):
        np.testing.assert_allclose(one, many, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("family", FAMILIES)
def test_the_pipeline_runs_on_each_model_family(
    family: str,
    task: str,
    families: dict[str, Path],
    processed: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The PNG images do not depend on the model family (tests/stages/test_evaluate_stage.py
    # checks them) and drawing them was half of each run here: left out of this matrix.
    monkeypatch.setattr("nlpflow.evaluation.plots.save_split_pngs", lambda *a, **k: None)
    params = _params(tmp_path, task, families[family])
    paths = run_pipeline(tmp_path, params, processed[task])

    tokenized = load_from_disk(str(paths["tokenized"]))
    tokenize_metrics = json.loads((tmp_path / "tokenize.json").read_text())
    assert tokenize_metrics["max_length"] == POSITIONS  # capped by the position table
    assert ("token_type_ids" in tokenized["train"].column_names) == (family in SEGMENTS)
    assert tokenize_metrics["warnings"] == [], tokenize_metrics["warnings"]
    assert tokenize_metrics["model"] == {
        "position_limit": POSITIONS,
        "segment_ids": family in SEGMENTS,
        "pad_token_added": family == "gpt2",
        "prefix_space_added": task == "token" and family in ("roberta", "gpt2"),
    }
    best = paths["models"] / "best"
    config = json.loads((best / "config.json").read_text())
    tokenizer_config = json.loads((best / "tokenizer_config.json").read_text())
    if family == "gpt2":  # no pad token of its own: the end-of-text token pads
        assert tokenizer_config["pad_token"] == "<|endoftext|>"
        assert config["pad_token_id"] == config["eos_token_id"]
    if task == "token" and family in ("roberta", "gpt2"):
        assert tokenizer_config.get("add_prefix_space") is True

    metrics = json.loads((tmp_path / "evaluate.json").read_text())["test"]
    main = "f1" if task == "token" else "accuracy"
    assert 0.0 <= metrics[main] <= 1.0 and metrics["n"] == len(tokenized["test"])
    if task == "token":
        assert metrics["empty_words"] == 0 and metrics["truncated_words"] == 0
    errors = json.loads((tmp_path / "error_analysis.json").read_text())["test"]
    assert errors["n"] == len(tokenized["test"])
    if task == "sequence":
        assert errors["behaviour"], "behavioural tests ran through the family's encoder"
    _padding_changes_nothing(best, tokenized["test"], task)
    print(f"{family} {task}: test {main} {metrics[main]:.4f}")
