"""Text-to-text, training side: exact match of greedy generations on a fixed validation
sample (``train.generation_sample`` rows, the first ones of the split), measured at each
evaluation beside the teacher-forced loss, so early stopping and a tuning pruner can follow
what evaluate reports rather than token accuracy.

Prompts and targets are read back from the tokenized split the loop validates on, and both
the output and the target are decoded by the same tokenizer (special tokens dropped); exact
match is evaluate's (:func:`nlpflow.families.text2text.metrics.exact_match`: equal up to
surrounding and repeated whitespace). Nothing here draws random numbers: greedy decoding
leaves the training RNGs, and so a resumed run, untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from nlpflow.training.data import PaddedSplit

IGNORE = -100


def sample_pairs(split: PaddedSplit, rows: int) -> tuple[list[list[int]], list[list[int]]]:
    """Prompt ids and target ids (the end token included) of the first ``rows`` rows.

    An encoder-decoder split keeps them apart (``prompt_lengths``, ``target_lengths``); a
    decoder-only row is ``prompt target``, its labels ``-100`` over the prompt and shifted
    one left, so the first scored label sits at the prompt's last position.
    """
    n = min(rows, len(split))
    prompts, targets = [], []
    for i in range(n):
        prompt_lengths = getattr(split, "prompt_lengths", None)
        target_lengths = getattr(split, "target_lengths", None)
        if prompt_lengths is not None and target_lengths is not None:  # a Seq2SeqSplit
            p, t = int(prompt_lengths[i]), int(target_lengths[i])
            prompts.append(split.input_ids[i, :p].tolist())
            targets.append(split.labels[i, :t].tolist())
        else:
            labels = split.labels[i]
            scored = (labels != IGNORE).nonzero().flatten()
            cut = int(scored[0]) + 1 if len(scored) else int(split.lengths[i])
            prompts.append(split.input_ids[i, :cut].tolist())
            targets.append(labels[scored].tolist())
    return prompts, targets


def sample_exact_match(
    model: Any,
    tokenizer: Any,
    split: PaddedSplit,
    rows: int,
    device: torch.device,
    precision: torch.dtype | None,
) -> float:
    """The share of the first ``rows`` validation rows whose greedy generation equals the
    target, at most as many new tokens as the longest target of the sample (a longer output
    cannot match). The model's training mode is restored."""
    from nlpflow.families.text2text.modeling import generate
    from nlpflow.families.text2text.params import GenerationParams
    from nlpflow.training.device import autocast

    base = getattr(model, "_orig_mod", model)  # a torch.compile wrapper's model
    prompts, targets = sample_pairs(split, rows)
    if not prompts:
        return float("nan")
    params = GenerationParams(max_new_tokens=max(len(t) for t in targets), num_beams=1)
    was_training = base.training
    try:
        with autocast(device, precision):
            outputs = generate(base, tokenizer, prompts, params)
    finally:
        base.train(was_training)
    hits = 0
    for out, target in zip(outputs, targets, strict=True):
        text = str(tokenizer.decode(target, skip_special_tokens=True)).strip()
        hits += " ".join(out.text.split()) == " ".join(text.split())
    return hits / len(prompts)
