"""The multi-label loss as a step sum: equal to transformers' multi-label head's mean loss."""

from __future__ import annotations

import pytest

from nlpflow.families.multilabel.loss import BCECriterion


def test_split_step_sum_equals_the_heads_mean_loss() -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=3,
        problem_type="multi_label_classification",
    )  # fmt: skip
    model = BertForSequenceClassification(config).eval()
    ids = torch.randint(3, 30, (5, 7))
    labels = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0], [1, 0, 0]]).float()
    with torch.no_grad():
        out = model(input_ids=ids, labels=labels)
    criterion = BCECriterion()
    denominator = criterion.denominator(labels)
    assert denominator == 15
    # the step split in two micro-batches, each divided by the whole step's denominator
    split = sum(
        criterion.sum(out.logits[part], labels[part]) / denominator
        for part in (slice(0, 2), slice(2, 5))
    )
    assert float(split) == pytest.approx(float(out.loss), rel=1e-6)
    assert float(criterion.sum(out, labels)) == pytest.approx(float(out.loss) * 15, rel=1e-6)


def test_pos_weight_and_correct_decisions() -> None:
    import torch

    logits = torch.tensor([[2.0, -1.0], [-0.5, 0.0]])
    labels = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    weight = torch.tensor([1.0, 3.0])
    want = torch.nn.BCEWithLogitsLoss(pos_weight=weight)(logits, labels)
    got = BCECriterion(weight).sum(logits, labels) / BCECriterion(weight).denominator(labels)
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    # right: (0,0) yes, (0,1) no, (1,0) yes, (1,1) no (logit 0 counts as positive)
    assert int(BCECriterion().correct(logits, labels)) == 2
