"""Reading saved splits: what ``datasets.load_from_disk`` gives, without the pages that reading
a memory-mapped Arrow stream leaves mapped; the tokenize figures from length counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from nlpflow.data.saved import read_processed
from nlpflow.data.tokenize import SplitStats, _figures

SMAPS = Path("/proc/self/smaps")


def _mapped_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path`` (Linux ``smaps``; 0 elsewhere)."""
    if not SMAPS.exists():
        return 0
    total, inside = 0, False
    for line in SMAPS.read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = len(fields) == 6 and fields[5] == str(path)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


def test_splits_load_as_load_from_disk_with_no_pages_left_mapped(tmp_path: Path) -> None:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_from_disk

    from nlpflow.data.saved import DataMeta, write_saved

    rng = np.random.default_rng(0)
    n = 16_000  # 16 record batches of 1,000 rows, about 1.3 MB
    texts = [f"text {i} " + "word " * (i % 17) for i in range(n)]
    features = Features(
        {"id": Value("string"), "text": Value("string"), "label": ClassLabel(names=["a", "b"])}
    )
    data = DatasetDict(
        {
            split: Dataset.from_dict(
                {"id": [f"{split}{i}" for i in range(rows)], "text": texts[:rows],
                 "label": rng.integers(0, 2, rows).tolist()},
                features=features,
            )
            for split, rows in (("train", n), ("validation", 2000))
        }
    )  # fmt: skip
    out = tmp_path / "processed"
    write_saved(out, data, DataMeta(text_fields=["text"], label_names=["a", "b"]))
    train_file = out / "train" / "data-00000-of-00001.arrow"

    ours, _ = read_processed(out, ["train", "validation"])
    ours_kb = _mapped_kb(train_file)
    theirs = load_from_disk(str(out))
    theirs_kb = _mapped_kb(train_file) - ours_kb

    for split in ("train", "validation"):
        a, b = ours[split], theirs[split]
        assert (a.split, a._fingerprint, a.format, a.info) == (
            b.split, b._fingerprint, b.format, b.info
        )  # fmt: skip
        assert a.data.table.equals(b.data.table, check_metadata=True)
        assert (a.data.path, a.data.replays) == (b.data.path, b.data.replays)
    assert ours["train"][n - 1] == theirs["train"][n - 1]
    if theirs_kb < 512:  # not Linux, or a kernel that maps no pages around a touched one
        pytest.skip(f"this kernel left {theirs_kb} kB of the file mapped: nothing to compare")
    assert ours_kb <= 64, (
        f"{ours_kb} kB of the train file mapped after reading (datasets: {theirs_kb})"
    )


@pytest.mark.parametrize("seed", range(6))
def test_figures_from_length_counts_equal_those_of_every_length(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 2, 5, 999, 4001]))
    longest = 200 if seed % 2 else 900  # counts turned back into uint8 or uint16 lengths
    full = np.minimum(rng.lognormal(3.5, 0.7, n).astype(np.int32) + 2, longest).astype(np.int32)
    max_length = int(rng.integers(8, 200))
    stats = SplitStats()
    for start in range(0, n, 1000):  # batch by batch, as encode_splits adds them
        part = pa.array(full[start : start + 1000])
        zeros = pa.array(np.zeros(len(part), dtype=np.int32))
        stats.add(
            pa.table(
                {"full_length": part, "tokens": part, "unknown": zeros,
                 "special_only": pa.array(np.zeros(len(part), dtype=bool)),
                 "empty_words": zeros, "truncated_words": zeros}
            )
        )  # fmt: skip
    sums = {"tokens": int(full.sum()), "unknown": 0, "special_only": 0, "empty_words": 0}
    expected = _figures(full.copy(), {**sums, "truncated_words": 0}, max_length)
    assert stats.figures(max_length) == expected
    assert expected["length_p95"] == int(np.percentile(full, 95))
    assert expected["truncated_fraction"] == round(float(np.mean(full > max_length)), 4)
