"""Is builtin:text2text learnable by a tiny model in about a minute on the CPU? One run.

    .venv/bin/python benchmarks/text2text_builtin.py [--kinds seq2seq causal] [--seconds 60]

For each model kind: the built-in data (defaults of ``data.text2text``, seed 0; 90% train,
10% test), a tokenizer trained on train, the tiny model of ``model`` defaults (a T5 or
GPT-2 of hidden size 64, 2 layers, 4 heads, no dropout), AdamW lr 3e-3, batches of 32 in a
seeded order, one torch thread, trained for ``--seconds`` of wall time (whole steps). Then greedy generation
on test, scored with the library's metrics (95% bootstrap intervals, 1,000 resamples) beside
the copy-input and most-common-target baselines and the untrained model prompted zero-shot.
Prints steps, train seconds, and exact match per kind of example.
"""

from __future__ import annotations

import argparse
import random
import time


def run(kind: str, seconds: float) -> None:
    import torch

    from nlpflow.families.text2text.data import generate_text2text
    from nlpflow.families.text2text.encoding import Text2TextEncoder, train_text2text_tokenizer
    from nlpflow.families.text2text.evaluation import evaluate_split
    from nlpflow.families.text2text.modeling import build_text2text_model, collate, generate
    from nlpflow.families.text2text.outputs import (
        copy_input_baseline,
        most_common_target_baseline,
    )
    from nlpflow.families.text2text.params import (
        GenerationParams,
        Text2TextDataParams,
        Text2TextModelParams,
    )
    from nlpflow.params import ModelParams

    torch.manual_seed(0)
    torch.set_num_threads(1)
    rows = generate_text2text(Text2TextDataParams(), 0)
    cut = int(len(rows) * 0.9)
    train, test = rows[:cut], rows[cut:]
    params = Text2TextModelParams(kind=kind)
    sizes = ModelParams(dropout=0.0)
    texts = [r["input"] for r in train] + [r["target"] for r in train]
    tok = train_text2text_tokenizer([*texts, params.prompt_template])
    model = build_text2text_model(sizes, params, tok)
    encoder = Text2TextEncoder(tok, params)
    examples = encoder.encode([r["input"] for r in train], [r["target"] for r in train])
    prompts = [encoder.prompt_ids(r["input"]) for r in test]
    gen = GenerationParams(max_new_tokens=16)
    untrained = [g.text for g in generate(model, tok, prompts, gen)]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = random.Random(0)
    steps, start = 0, time.perf_counter()
    model.train()
    while time.perf_counter() - start < seconds:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for i in range(0, len(order), 32):
            batch = collate([examples[j] for j in order[i : i + 32]], kind, tok.pad_token_id)
            loss = model(**batch).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if time.perf_counter() - start >= seconds:
                break
    train_s = time.perf_counter() - start
    out = generate(model, tok, prompts, gen)
    inputs, targets = [r["input"] for r in test], [r["target"] for r in test]
    baselines = {
        "copy_input": copy_input_baseline(inputs),
        "most_common_target": most_common_target_baseline([r["target"] for r in train], len(test)),
        "untrained_zero_shot": untrained,
    }
    result = evaluate_split(
        inputs,
        targets,
        [g.text for g in out],
        [g.tokens for g in out],
        [g.ended for g in out],
        gen.max_new_tokens,
        baselines,
        1000,
        0,
        0.95,
    )
    ci = result["ci"]["exact_match"]
    print(f"{kind}: {steps} steps in {train_s:.0f} s, final batch loss {loss.item():.3f}")
    print(
        f"  exact match {result['exact_match']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}], "
        f"token F1 {result['token_f1']:.3f}, BLEU {result['bleu']:.1f}, chrF {result['chrf']:.1f}"
    )
    for name, base in result["baselines"].items():
        print(f"  baseline {name}: exact match {base['exact_match']:.3f}")
    for k in ("sort", "spell"):
        idx = [i for i, r in enumerate(test) if r["kind"] == k]
        em = sum(out[i].text == targets[i] for i in idx) / max(len(idx), 1)
        print(f"  {k}: exact match {em:.3f} of {len(idx)}")
    failures = {k: v["count"] for k, v in result["failures"].items()}
    print(f"  failures: {failures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["seq2seq", "causal"])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    for kind in args.kinds:
        run(kind, args.seconds)


if __name__ == "__main__":
    main()
