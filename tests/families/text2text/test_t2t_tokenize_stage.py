"""The preprocess and tokenize stages on text-to-text data, for both model kinds."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from datasets import load_from_disk
from transformers import AutoTokenizer

from stages import preprocess, tokenize

T2T = {"source": "builtin:text2text", "text_fields": ["input"], "label_field": "target"}


def _stages(tmp_path: Path, params: Path) -> tuple[Path, dict, str]:
    processed, tokenized = tmp_path / "processed", tmp_path / "tokenized"
    preprocess.main(
        [
            "--params",
            str(params),
            "--out",
            str(processed),
            "--metrics",
            str(tmp_path / "preprocess.json"),
            "--plots",
            str(tmp_path / "plots"),
            "--report",
            str(tmp_path / "data.md"),
        ]
    )
    tokenize.main(
        [
            "--params",
            str(params),
            "--data",
            str(processed),
            "--out",
            str(tokenized),
            "--tokenizer-out",
            str(tmp_path / "tokenizer"),
            "--metrics",
            str(tmp_path / "tokenize.json"),
            "--report",
            str(tmp_path / "tokenization.md"),
        ]
    )
    report = json.loads((tmp_path / "tokenize.json").read_text())
    return tokenized, report, (tmp_path / "tokenization.md").read_text()


@pytest.mark.parametrize("kind", ["seq2seq", "causal"])
def test_builtin_text2text_tokenized(
    kind: str, tmp_path: Path, write_params: Callable[..., Path]
) -> None:
    params = write_params(
        data={**T2T, "text2text": {"size": 120}},
        tokenizer={"vocab_size": 300},
        model={"text2text": {"kind": kind, "max_input_length": 4, "max_target_length": 5}},
    )
    tokenized, report, sample = _stages(tmp_path, params)
    ds = load_from_disk(str(tokenized))
    meta = json.loads((tokenized / "meta.json").read_text())
    assert meta["task"] == "text2text" and meta["max_length"] == 4
    tok = AutoTokenizer.from_pretrained(tmp_path / "tokenizer")
    row = ds["train"][0]
    prompt = tok.convert_ids_to_tokens(row["input_ids"])
    target = tok.convert_ids_to_tokens(row["labels"])
    assert target[-1] == "[EOS]" and len(target) <= 5
    assert prompt[-1 if kind == "causal" else -2] == "="  # the template's tail is never cut
    assert row["length"] == len(prompt) + (len(target) if kind == "causal" else 0)
    train = report["splits"]["train"]
    assert train["n"] == len(ds["train"])
    # sort/spell + up to 6 letters or 4 digits: inputs of 5-7 tokens are cut to 4
    assert 0 < train["inputs_truncated"] <= train["n"]
    assert train["input_tokens"]["max"] == 7.0
    assert report["kind"] == kind and any(
        "max_input_length (4 tokens)" in w for w in report["warnings"]
    )
    assert "# Tokenization sample" in sample and "prompt," in sample


def test_probe_stops_in_one_line_where_the_pipeline_ends(
    tmp_path: Path, write_params: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """text2text runs preprocess and tokenize; the next stage says so, without a traceback."""
    from stages import probe

    params = write_params(data={**T2T, "text2text": {"size": 60}}, tokenizer={"vocab_size": 300})
    tokenized, _, _ = _stages(tmp_path, params)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        probe.main(
            [
                "--params",
                str(params),
                "--data",
                str(tokenized),
                "--tokenizer",
                str(tmp_path / "tokenizer"),
                "--out",
                str(tmp_path / "probe.json"),
                "--plot",
                str(tmp_path / "probe_plot.json"),
            ]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the text2text task has no ")
    assert "side in the pipeline yet" in err and "\n" not in err
    assert not (tmp_path / "probe.json").exists()
