"""Shared fixtures: tiny tokenized data built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.training.tiny import make_tiny_data, make_tiny_token_data, one_torch_thread


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(data/tokenized, tokenizer)`` of 96/32/32 tiny anagram pairs."""
    return make_tiny_data(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_token_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(data/tokenized, tokenizer)`` of 64/24/24 tiny BIO-tagged sentences."""
    return make_tiny_token_data(tmp_path_factory.mktemp("tiny-token"))
