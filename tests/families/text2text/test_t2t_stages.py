"""text2text through the stages that run it, in process: preprocess, tokenize, probe,
lr_range and train (teacher forcing), for both model kinds on a tiny model; evaluate stops
with one line (generation is a library there)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from datasets import load_from_disk
from transformers import AutoConfig, AutoTokenizer

from stages import evaluate, lr_range, preprocess, probe, tokenize, train
from tests.conftest import dump_params, tiny_params

T2T = {"source": "builtin:text2text", "text_fields": ["input"], "label_field": "target"}


def _params(root: Path, kind: str, **extra: Any) -> Path:
    params = tiny_params(
        data={**T2T, "text2text": {"size": 120}},
        tokenizer={"vocab_size": 300},
        model={"text2text": {"kind": kind, "max_input_length": 4, "max_target_length": 5}},
        train={"epochs": 2, "early_stopping": {"metric": "loss", "mode": "min"}},
        **extra,
    )
    path = root / "params.yaml"
    path.write_text(dump_params(params))
    return path


def _run(root: Path, params: Path) -> None:
    a = ["--params", str(params)]
    preprocess.main([*a, "--out", str(root / "processed"), "--metrics",
                     str(root / "preprocess.json"), "--plots", str(root / "plots-data"),
                     "--report", str(root / "data.md")])  # fmt: skip
    tokenize.main([*a, "--data", str(root / "processed"), "--out", str(root / "tokenized"),
                   "--tokenizer-out", str(root / "tokenizer"), "--metrics",
                   str(root / "tokenize.json"), "--report", str(root / "tokenization.md")])  # fmt: skip
    common = ["--data", str(root / "tokenized"), "--tokenizer", str(root / "tokenizer")]
    probe.main([*a, *common, "--out", str(root / "probe.json"), "--plot",
                str(root / "probe-plot.json"), "--plan", str(root / "plan.json")])  # fmt: skip
    lr_range.main([*a, *common, "--probe", str(root / "plan.json"), "--metrics",
                   str(root / "lr_range.json"), "--plot", str(root / "lr.tsv"), "--image",
                   str(root / "lr.png")])  # fmt: skip
    train.main([*a, *common, "--probe", str(root / "plan.json"), "--models",
                str(root / "models"), "--checkpoints", str(root / "checkpoints"), "--metrics",
                str(root / "train.json"), "--plots", str(root / "plots-train")])  # fmt: skip


@pytest.mark.parametrize("kind", ["seq2seq", "causal"])
def test_stages_through_train(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = _params(tmp_path, kind)
    _run(tmp_path, params)

    # tokenize: what training reads, with the template's tail never cut
    ds = load_from_disk(str(tmp_path / "tokenized"))
    meta = json.loads((tmp_path / "tokenized" / "meta.json").read_text())
    assert meta["task"] == "text2text" and meta["max_length"] == 4
    tok = AutoTokenizer.from_pretrained(tmp_path / "tokenizer")
    row = ds["train"][0]
    if kind == "causal":
        cut = row["prompt_length"]
        prompt, target = row["input_ids"][:cut], row["input_ids"][cut:]
        counted = [t for t in row["labels"] if t != -100]
        assert counted == target  # the shifted labels score exactly the target tokens
        assert row["labels"][cut - 1] == target[0] and row["labels"][-1] == -100
        assert tok.convert_ids_to_tokens(prompt)[-1] == "="
    else:
        prompt, target = row["input_ids"], row["labels"]
        assert row["decoder_input_ids"] == [tok.pad_token_id, *target[:-1]]
        assert tok.convert_ids_to_tokens(prompt)[-2:] == ["=", "[EOS]"]
    assert tok.convert_ids_to_tokens(target)[-1] == "[EOS]" and len(target) <= 5
    report = json.loads((tmp_path / "tokenize.json").read_text())
    train_stats = report["splits"]["train"]
    assert train_stats["n"] == len(ds["train"])
    # sort/spell + up to 6 letters or 4 digits: inputs of 5-7 tokens are cut to 4
    assert 0 < train_stats["inputs_truncated"] <= train_stats["n"]
    assert train_stats["input_tokens"]["max"] == 7.0
    assert any("max_input_length (4 tokens)" in w for w in report["warnings"])
    assert "prompt," in (tmp_path / "tokenization.md").read_text()

    # probe, lr_range and train ran on this architecture; the saved model is of the kind
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["batch_size"] >= 1
    metrics = json.loads((tmp_path / "train.json").read_text())
    assert metrics["epochs_run"] == 2
    config = AutoConfig.from_pretrained(tmp_path / "models" / "best")
    assert config.is_encoder_decoder == (kind == "seq2seq")
    epochs = (tmp_path / "plots-train" / "epochs.tsv").read_text().splitlines()
    header = epochs[0].split("\t")
    assert "val_accuracy" in header
    first, last = (
        dict(zip(header, line.split("\t"), strict=True)) for line in epochs[1 :: len(epochs) - 2]
    )
    assert float(last["val_loss"]) < float(first["train_loss"])

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        evaluate.main(["--params", str(params), "--model", str(tmp_path / "models" / "best"),
                       "--processed", str(tmp_path / "processed"), "--tokenized",
                       str(tmp_path / "tokenized"), "--predictions", str(tmp_path / "pred"),
                       "--metrics", str(tmp_path / "evaluate.json"), "--plots",
                       str(tmp_path / "plots-eval")])  # fmt: skip
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the text2text task has no evaluation side in the pipeline yet")
    assert "\n" not in err
    assert not (tmp_path / "evaluate.json").exists()
