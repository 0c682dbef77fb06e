"""The text2text additions that run inside the stages: the base model evaluate prompts (the
weights training started from), the validation sample train generates for exact match,
and a classification source turned into a label task."""

from __future__ import annotations

from typing import Any

import pytest

from nlpflow.errors import UserError
from nlpflow.families.text2text.data import generate_text2text
from nlpflow.families.text2text.encoding import (
    Text2TextEncoder,
    train_text2text_tokenizer,
    training_row,
)
from nlpflow.families.text2text.modeling import build_text2text_model
from nlpflow.families.text2text.params import Text2TextDataParams, Text2TextModelParams
from nlpflow.params import ModelParams

KINDS = ("seq2seq", "causal")
ROWS = generate_text2text(Text2TextDataParams(size=40, kinds={"sort": 1.0}, max_letters=4), 0)
INPUTS = [r["input"] for r in ROWS]
TARGETS = [r["target"] for r in ROWS]
SIZES = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32}


def _tiny(kind: str) -> tuple[Any, Text2TextModelParams, ModelParams]:
    t2t = Text2TextModelParams(kind=kind)  # type: ignore[arg-type]
    tok = train_text2text_tokenizer([*INPUTS, *TARGETS, t2t.prompt_template])
    return tok, t2t, ModelParams(**SIZES, dropout=0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_base_model_is_the_model_training_started_from(kind: str) -> None:
    """Rebuilt from the fine-tuned model's config right after seeding, as the train stage
    builds it: the very weights training started from, not those it ended with."""
    import torch

    from nlpflow.families.text2text.evaluate import base_model
    from nlpflow.seeding import seed_everything

    tok, t2t, params = _tiny(kind)
    seed_everything(7)
    model = build_text2text_model(params, t2t, tok)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():  # "fine-tuning"
        for p in model.parameters():
            p.add_(0.1)
    base, what = base_model(model, tok, None, 7)
    assert what.startswith("untrained") and "seed 7" in what
    state = base.state_dict()
    assert state.keys() == initial.keys()
    assert all(torch.equal(state[k], initial[k]) for k in initial)
    assert not base.training
    other, _ = base_model(model, tok, None, 8)  # another seed, other weights
    assert not all(torch.equal(other.state_dict()[k], initial[k]) for k in initial)


@pytest.mark.parametrize("kind", KINDS)
def test_validation_sample_reads_back_prompts_and_targets(kind: str) -> None:
    """The first N rows of a tokenized split as train pads them: the prompt and target ids
    the encoder wrote, for an encoder-decoder and a decoder-only layout alike."""
    from datasets import Dataset

    from nlpflow.families.text2text.train import Text2TextTrain
    from nlpflow.families.text2text.validation import sample_pairs

    tok, t2t, _ = _tiny(kind)
    examples = Text2TextEncoder(tok, t2t).encode(INPUTS[:10], TARGETS[:10])
    rows = [training_row(e, kind, tok.pad_token_id) for e in examples]
    split = Text2TextTrain().padded_split(Dataset.from_list(rows), tok.pad_token_id)
    prompts, targets = sample_pairs(split, 6)
    assert prompts == [e.prompt_ids for e in examples[:6]]
    assert targets == [e.target_ids for e in examples[:6]]
    assert len(sample_pairs(split, 50)[0]) == 10


@pytest.mark.parametrize("kind", KINDS)
def test_validate_adds_exact_match_of_greedy_generations(kind: str) -> None:
    """With train.generation_sample, validation also reports exact_match: the share of the
    sample whose greedy output (decoded) is the decoded target; without it, exact_match is
    refused as an early-stopping metric in one line."""
    import torch
    from datasets import Dataset

    from nlpflow.families.text2text.modeling import GenerationParams, generate
    from nlpflow.families.text2text.train import Text2TextTrain
    from nlpflow.params import TrainParams
    from nlpflow.training.loss import Criterion

    tok, t2t, params = _tiny(kind)
    torch.manual_seed(0)
    model = build_text2text_model(params, t2t, tok)
    encoder = Text2TextEncoder(tok, t2t)
    examples = encoder.encode(INPUTS[:8], TARGETS[:8])
    rows = [training_row(e, kind, tok.pad_token_id) for e in examples]
    family = Text2TextTrain()
    split = family.padded_split(Dataset.from_list(rows), tok.pad_token_id)
    cpu = torch.device("cpu")

    with pytest.raises(UserError) as err:
        family.check_monitor("exact_match", ["target"])
    assert "train.generation_sample" in str(err.value)

    from nlpflow.families.train import train_family

    with pytest.raises(UserError) as other:
        train_family("sequence").configure(TrainParams(generation_sample=8), tok)
    assert "train.generation_sample applies to text2text" in str(other.value)

    family.configure(TrainParams(generation_sample=8), tok)
    family.check_monitor("exact_match", ["target"])
    assert family.metric_names(["target"]) == ("loss", "accuracy", "exact_match")
    assert "val_exact_match" in family.eval_columns(["target"])
    model.train()
    val = family.validate(model, split, 4, cpu, Criterion(), None, ["target"], None)
    assert model.training  # restored
    longest = max(len(e.target_ids) for e in examples)
    out = generate(
        model, tok, [e.prompt_ids for e in examples], GenerationParams(max_new_tokens=longest)
    )
    expected = sum(
        " ".join(g.text.split())
        == " ".join(tok.decode(e.target_ids, skip_special_tokens=True).split())
        for g, e in zip(out, examples, strict=True)
    ) / len(examples)
    assert val["exact_match"] == expected
    assert set(val) == {"loss", "accuracy", "exact_match"}


def test_classification_source_becomes_a_label_task() -> None:
    from nlpflow.data.prepare import load_splits
    from nlpflow.params import AnagramParams, DataParams

    base: dict[str, Any] = {"source": "builtin:anagram", "anagram": AnagramParams(size=80)}
    data = load_splits(
        DataParams(**base, task="text2text", text2text=Text2TextDataParams(label_task=True)), 0
    )
    assert data.task == "text2text"
    assert (data.text_fields, data.label_field) == (["input"], "target")
    assert data.meta()["target_labels"] == ["no", "yes"]
    row = data.splits["train"][0]
    assert row["input"].count(" | ") == 1 and row["target"] in ("no", "yes")
    assert "kind" in data.metadata_fields
    # the built-in rows, as the classifier reads them
    from nlpflow.data.anagram import generate_anagram

    first = {r["id"]: r for r in generate_anagram(AnagramParams(size=80), 0)}[row["id"]]
    assert row["input"] == f"{first['first']} | {first['second']}"
    assert row["target"] == first["label"]

    from nlpflow.params import ParamsError, parse_params

    with pytest.raises(ParamsError) as bad:
        parse_params({"data": {"text2text": {"label_task": True}}})
    assert "data.text2text.label_task" in str(bad.value) and "data.task: text2text" in str(
        bad.value
    )

    with pytest.raises(UserError) as err:
        load_splits(
            DataParams(
                source="builtin:text2text",
                text_fields=["input"],
                label_field="target",
                task="text2text",
                text2text=Text2TextDataParams(size=40, label_task=True),
            ),
            0,
        )
    assert "label_task needs a classification source" in str(err.value)


def test_pruner_follows_exact_match() -> None:
    """``tune.pruner.metric: exact_match`` is accepted (a metric to maximise) and the train
    loop's pruning check reports the validation's exact_match, not the monitored loss."""
    from nlpflow.params import parse_params
    from nlpflow.training.distributed import Distributed
    from nlpflow.training.validation import PruningCheck

    tune = parse_params(
        {"tune": {"pruner": {"metric": "exact_match"}, "objectives": [
            {"metric": "metrics/evaluate.json:validation.exact_match", "direction": "maximize"}]}}
    ).tune  # fmt: skip
    assert tune.pruner.metric == "exact_match"

    class Trial:  # what the loop needs of a tuning trial (validation.Pruning)
        def __init__(self) -> None:
            self.metric, self.detail = "exact_match", ""
            self.reported: list[tuple[int, float]] = []

        def report(self, epoch: int, value: float, ask: bool = True) -> bool:
            self.reported.append((epoch, value))
            return False

    trial = Trial()
    said: list[str] = []
    check = PruningCheck(trial, Distributed(), said.append)
    assert check(1, {"loss": 0.7, "accuracy": 0.5, "exact_match": 0.25}, 0.7, True) is None
    assert trial.reported == [(1, 0.25)] and said == []
    # a run without it (train.generation_sample 0 in a trial's params): said once, not silent
    for epoch in (2, 3):
        assert check(epoch, {"loss": 0.6, "accuracy": 0.5}, 0.6, True) is None
    assert trial.reported[1:] == [(2, 0.6), (3, 0.6)]
    assert len(said) == 1 and "does not measure val exact_match" in said[0]


@pytest.mark.parametrize("kind", KINDS)
def test_base_model_of_a_pretrained_model_is_it_before_fine_tuning(
    kind: str, tmp_path: Any
) -> None:
    """With model.name_or_path the base model is that directory's model, loaded as the
    fine-tuned model's kind, not the fine-tuned weights."""
    import torch

    from nlpflow.contracts import EvaluateModel
    from nlpflow.families.text2text.encoding import prepare_tokenizer
    from nlpflow.families.text2text.evaluate import base_model
    from nlpflow.modeling.tokenizers import load_tokenizer
    from tests.families.text2text.test_t2t_pretrained import _save

    path = _save(kind, tmp_path)
    tok = load_tokenizer(path)
    prepare_tokenizer(tok, kind)
    t2t = Text2TextModelParams(kind=kind)  # type: ignore[arg-type]
    fine = build_text2text_model(ModelParams(name_or_path=str(path)), t2t, tok)
    saved = {k: v.clone() for k, v in fine.state_dict().items()}
    with torch.no_grad():  # "fine-tuning"
        for p in fine.parameters():
            p.add_(0.1)
    base, what = base_model(fine, tok, EvaluateModel(str(path), False), 0)
    assert what == f"pretrained {path}, before fine-tuning"
    assert base.config.is_encoder_decoder == (kind == "seq2seq")
    assert all(torch.equal(v, saved[k]) for k, v in base.state_dict().items())
    assert not base.training
