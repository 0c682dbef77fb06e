"""The two real data sets in ../shared/data, when present: leakage and imbalance are found.

The project's tests must pass without that folder, so these skip when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpflow.data.prepare import load_splits
from nlpflow.data.report import describe
from nlpflow.params import DataParams

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
pytestmark = pytest.mark.skipif(not SHARED.exists(), reason=f"{SHARED} is not on this machine")


def test_agnews_cross_split_duplicates_are_found() -> None:
    params = DataParams(
        files={"train": str(SHARED / "agnews/dev.tsv"), "test": str(SHARED / "agnews/test.tsv")},
        column_names=["text", "label"],
        text_fields=["text"],
        label_field="label",
    )
    data = load_splits(params, seed=42)
    # dev.tsv shares 8 texts with test.tsv; validation is carved from dev, so together the
    # two pairs that involve test must hold all 8.
    shared = (
        data.leakage.counts["train/test"]["exact"] + data.leakage.counts["validation/test"]["exact"]
    )
    assert shared == 8
    assert sorted(data.label_names) == ["Business", "Sci/Tech", "Sports", "World"]


def test_sms_spam_imbalance_is_reported() -> None:
    params = DataParams(
        source=str(SHARED / "sms_spam/SMSSpamCollection"),
        format="tsv",
        quoting="none",
        text_fields=["SMS"],
        label_field="Label",
    )
    data = load_splits(params, seed=42)
    report = describe(data)
    assert sum(report["splits"][s]["rows"] for s in report["splits"]) > 5000
    assert report["imbalance_ratio"] > 6  # ham 4,827 / spam 747 before de-duplication
    assert data.label_names == ["ham", "spam"]
