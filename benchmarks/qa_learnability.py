"""How fast a tiny BERT learns the built-in QA data, beside its two baselines, in one run.

    .venv/bin/python benchmarks/qa_learnability.py [--steps 600] [--every 100] [--seed 0]

Everything but the training loop is the QA family's library (``nlpflow.families.qa``):
``builtin:qa`` rows (2,000 train, 400 validation questions), a WordPiece tokenizer trained on
the train split (vocabulary 200), windows of 64 tokens with a stride of 16, the span loss,
n-best post-processing over each question's windows, the no-answer threshold tuned on the
validation answers, and SQuAD EM/F1. The model: ``BertForQuestionAnswering`` from a config
(2 layers, hidden 64, 4 heads, no dropout), AdamW lr 3e-3, batch 32, one torch thread.

Prints, every ``--every`` steps: seconds so far, the last batch loss, the validation F1 at the
tuned threshold, the F1 of the best spans on answerable questions; and at the start the
validation scores of the two baselines ("always no answer", the sentence with the most
question words). The validation F1 is tuned on the split it is measured on (an optimistic
figure, as SQuAD's ``best_f1``); the pipeline applies the validation threshold to the test
split.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps (default 600)")
    parser.add_argument("--every", type=int, default=100, help="validate every N steps")
    parser.add_argument("--seed", type=int, default=0, help="data and model seed")
    args = parser.parse_args()

    import numpy as np
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    from nlpflow.families.qa.builtin import QaBuiltinParams, generate_qa
    from nlpflow.families.qa.metrics import question_scores
    from nlpflow.families.qa.model import span_loss
    from nlpflow.families.qa.postprocess import answer_all, apply_threshold
    from nlpflow.families.qa.scoring import split_metrics, tune_null_threshold
    from nlpflow.families.qa.windows import encode_windows
    from nlpflow.modeling.tokenizers import train_tokenizer

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    rows = generate_qa(QaBuiltinParams(size=2400), args.seed)
    train, val = rows[:2000], rows[2000:]
    tok = train_tokenizer([r["question"] + " " + r["context"] for r in train], vocab_size=200)

    def tensors(split: list[dict]) -> tuple[list, dict[str, torch.Tensor]]:
        windows, _ = encode_windows(tok, split, max_length=64, stride=16)
        width = max(len(w.input_ids) for w in windows)

        def pad(values: list[int]) -> list[int]:
            return values + [0] * (width - len(values))

        return windows, {
            "input_ids": torch.tensor([pad(w.input_ids) for w in windows]),
            "attention_mask": torch.tensor([pad(w.attention_mask) for w in windows]),
            "token_type_ids": torch.tensor([pad(w.token_type_ids) for w in windows]),
            "start": torch.tensor([w.start_position for w in windows]),
            "end": torch.tensor([w.end_position for w in windows]),
        }

    train_windows, t = tensors(train)
    val_windows, v = tensors(val)
    inputs = ("input_ids", "attention_mask", "token_type_ids")
    base = split_metrics(val, [""] * len(val), 0, 0, 0.95)["baselines"]
    for name, m in base.items():
        print(f"baseline {name}: EM {m['exact']:.3f} F1 {m['f1']:.3f}")

    config = BertConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=128,
                        max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)  # fmt: skip
    model = BertForQuestionAnswering(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def validate() -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            out = model(**{k: v[k] for k in inputs})
        model.train()
        answers = answer_all([r["context"] for r in val], val_windows,
                             out.start_logits.numpy(), out.end_logits.numpy())  # fmt: skip
        tuned = tune_null_threshold(val, answers)
        final = apply_threshold(answers, tuned["null_threshold"])
        f1 = split_metrics(val, [a.text for a in final], 0, 0, 0.95, baselines=())["f1"]
        spans = question_scores([r["answers"]["text"] for r in val],
                                [a.best.text if a.best else "" for a in answers])  # fmt: skip
        return f1, float(np.mean(spans.f1[spans.has_answer]))

    n, step, start = len(train_windows), 0, time.perf_counter()
    print(f"{n} train windows of {len(train)} questions; {len(val_windows)} validation windows")
    while step < args.steps:
        order = torch.randperm(n)
        for i in range(0, n - 31, 32):
            batch = order[i : i + 32]
            out = model(**{k: t[k][batch] for k in inputs})
            loss = span_loss(out.start_logits, out.end_logits, t["start"][batch], t["end"][batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % args.every == 0:
                f1, span_f1 = validate()
                print(f"step {step}: {time.perf_counter() - start:.1f}s loss {loss.item():.3f} "
                      f"validation F1 {f1:.3f} (answerable, best span: {span_f1:.3f})")  # fmt: skip
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
