"""Full fine-tuning against LoRA on examples/text2text-causal, from a tiny saved base. One run.

    .venv/bin/python benchmarks/text2text_lora.py [--out DIR] [--base-epochs 3]

The example's params (seed 42, 2,000 built-in examples, a GPT-2 of hidden size 64 and 2
layers, 18 epochs of batch 32, lr 3e-3), run through the stages' library in process in
``--out`` (a temporary directory by default): preprocess and tokenize; then a base, the same
model fine-tuned whole for ``--base-epochs`` epochs and saved (a "pretrained" model that
knows the task's vocabulary and little else); then from that base, 18 epochs of whole
fine-tuning, of LoRA (rank 8, alpha 16, auto target modules: ``c_attn``) at the example's lr,
and of the same LoRA at lr 1e-2. Each is evaluated by the evaluate stage (greedy, test
split, 95% bootstrap intervals).

Prints per run: parameters trained (share), train seconds (optimizer steps only, this
machine as it is), best validation loss, test exact match with its interval, and exact match
per kind of example (sort, spell).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="work directory (default: a temporary one)")
    parser.add_argument("--base-epochs", type=int, default=3, help="epochs of the saved base")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="t2t-lora-"))
    out.mkdir(parents=True, exist_ok=True)

    import yaml

    from nlpflow.contracts import TrainInputs
    from nlpflow.data.saved import read_meta
    from nlpflow.modelinfo import write_model_info
    from nlpflow.params import parse_params, read_yaml
    from nlpflow.training.loop import train
    from nlpflow.training.probe import BatchPlan

    sys.path.insert(0, str(ROOT))  # the stages package lives beside src/, not installed
    from stages import evaluate, preprocess, tokenize

    raw = read_yaml((ROOT / "examples/text2text-causal/params.yaml").read_text())
    params_file = out / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    a = ["--params", str(params_file)]
    preprocess.main([*a, "--out", str(out / "processed"), "--metrics", str(out / "pre.json"),
                     "--plots", str(out / "plots"), "--report", str(out / "data.md")])  # fmt: skip
    tokenize.main([*a, "--data", str(out / "processed"), "--out", str(out / "tokenized"),
                   "--tokenizer-out", str(out / "tokenizer"), "--metrics", str(out / "tok.json"),
                   "--report", str(out / "tok.md")])  # fmt: skip
    meta = read_meta(out / "tokenized", tokenized=True)
    # The example's probe result on this machine kind: 32 rows a step, fp32 (a fixed plan, so
    # every run trains on the same batches).
    plan = BatchPlan(device="cpu", batch_size=32, accumulation_steps=1,
                     max_fitting_batch_size=64, precision="fp32")  # fmt: skip

    def run(name: str, model: dict[str, Any], train_over: dict[str, Any]) -> dict[str, Any]:
        params = copy.deepcopy(raw)
        params["model"].update(model)
        params["train"].update(train_over)
        where = out / name
        where.mkdir(exist_ok=True)
        (where / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        result = train(
            TrainInputs.from_params(parse_params(params)), out / "tokenized", out / "tokenizer",
            plan, where / "models", where / "checkpoints", log=lambda _: None,
        )  # fmt: skip
        write_model_info(where / "models" / "best", meta)
        evaluate.main(["--params", str(where / "params.yaml"), "--model",
                       str(where / "models" / "best"), "--processed", str(out / "processed"),
                       "--tokenized", str(out / "tokenized"), "--predictions",
                       str(where / "predictions"), "--metrics", str(where / "evaluate.json"),
                       "--plots", str(where / "plots"), "--latency", str(where / "lat.json")])  # fmt: skip
        test = json.loads((where / "evaluate.json").read_text())["test"]
        rows = [json.loads(x) for x in (where / "predictions/test.jsonl").read_text().splitlines()]
        kinds: dict[str, list[bool]] = {}
        for row in rows:
            same = row["prediction"].split() == row["label"].split()  # as exact_match
            kinds.setdefault(row["input"].split()[0], []).append(same)
        return {
            "run": name,
            "parameters": result.summary["parameters"],
            "train_seconds": result.summary["train_seconds"],
            "best_val_loss": round(result.summary["best"]["val_loss"], 4),
            "exact_match": test["exact_match"],
            "ci": [test["ci"]["exact_match"]["low"], test["ci"]["exact_match"]["high"]],
            "by_kind": {k: round(sum(v) / len(v), 3) for k, v in sorted(kinds.items())},
        }

    results = [run("base", {}, {"epochs": args.base_epochs})]
    base = str(out / "base" / "models" / "best")
    lora = {"name_or_path": base, "lora": {"enabled": True, "rank": 8, "alpha": 16}}
    results.append(run("full_from_base", {"name_or_path": base}, {}))
    results.append(run("lora_from_base", lora, {}))
    results.append(run("lora_from_base_lr0.01", lora, {"lr": 0.01}))
    print(f"{'run':24} {'trained':>18} {'train s':>8} {'val loss':>9} {'exact match':>22}  by kind")
    for r in results:
        p = r["parameters"]
        print(
            f"{r['run']:24} {p['trainable']:>8,} ({p['trainable_share']:6.2%}) "
            f"{r['train_seconds']:>8} {r['best_val_loss']:>9} "
            f"{r['exact_match']:>8.3f} ({r['ci'][0]:.3f}-{r['ci'][1]:.3f})  {r['by_kind']}"
        )
    (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
