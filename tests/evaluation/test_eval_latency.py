"""Inference latency and throughput of a saved model (the evaluate stage's latency section)."""

from __future__ import annotations

from typing import Any

import pytest

from nlpflow.evaluation.latency import _spread, measure_latency
from nlpflow.evaluation.predict import load_classifier
from tests.evaluation import tiny


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from datasets import load_from_disk

    paths = tiny.make_all(tmp_path_factory.mktemp("tiny"))
    model, pad_id = load_classifier(paths["model"], tiny.LABEL_NAMES)
    split = load_from_disk(str(paths["tokenized"]))["validation"]
    return {"model": model, "pad_id": pad_id, "split": split, "dir": paths["model"]}


def test_spread_takes_both_ends_and_never_repeats() -> None:
    assert _spread(10, 3) == [0, 4, 9]
    assert _spread(5, 64) == [0, 1, 2, 3, 4]
    assert len(_spread(1000, 64)) == 64


def test_figures_are_consistent_and_the_model_is_left_as_it_was(assets: dict[str, Any]) -> None:
    model, split = assets["model"], assets["split"]
    model.train()  # whatever mode it came in, it leaves in
    lat = measure_latency(model, split, assets["pad_id"], batch_size=4, examples=64)
    assert model.training
    assert lat["examples"] == min(64, len(split)) and lat["batch_size"] == 4
    assert 0 < lat["ms_per_example"] <= lat["p90_ms_per_example"]
    assert lat["examples_per_second"] > 0
    assert lat["device"] == next(model.parameters()).device.type and lat["threads"] >= 1
    few = measure_latency(model, split, assets["pad_id"], batch_size=4, examples=3)
    assert few["examples"] == 3
    assert measure_latency(model, split, assets["pad_id"], 4, examples=0) == {}


def test_a_much_larger_model_is_measured_as_slower(assets: dict[str, Any]) -> None:
    """Same inputs, a model with ~1000x the per-token work: the figure must see it.

    A wall-clock comparison, so the gap is made far larger than machine noise (measured here:
    tiny ~0.5 ms, large ~5 ms per example); the test only asks for 1.5x. One torch thread: with
    two threads and another job on the two cores, torch stalls 20-60x at random."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _compare_small_and_large(assets)
    finally:
        torch.set_num_threads(threads)


def _compare_small_and_large(assets: dict[str, Any]) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    small = assets["model"]
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=small.config.vocab_size, hidden_size=256, num_hidden_layers=6,
        num_attention_heads=4, intermediate_size=1024, max_position_embeddings=32,
        pad_token_id=assets["pad_id"], num_labels=2,
    )  # fmt: skip
    # on the small model's device (load_classifier puts it on a GPU where there is one)
    large = BertForSequenceClassification(config).eval().to(next(small.parameters()).device)
    args = (assets["split"], assets["pad_id"], 8, 32)
    fast = measure_latency(small.eval(), *args)
    slow = measure_latency(large, *args)
    assert slow["ms_per_example"] > 1.5 * fast["ms_per_example"], (fast, slow)
    assert slow["examples_per_second"] < fast["examples_per_second"] / 1.5, (fast, slow)
