"""The preprocess stage on text-to-text data: the built-in task and an input/target file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from datasets import load_from_disk

from stages import preprocess

T2T = {"text_fields": ["input"], "label_field": "target", "text2text": {"size": 200}}


def _run(params: Path, tmp_path: Path) -> tuple[Path, dict]:
    out, metrics = tmp_path / "processed", tmp_path / "metrics" / "preprocess.json"
    preprocess.main(
        [
            "--params",
            str(params),
            "--out",
            str(out),
            "--metrics",
            str(metrics),
            "--plots",
            str(tmp_path / "plots"),
            "--report",
            str(tmp_path / "data.md"),
        ]
    )
    return out, json.loads(metrics.read_text())


def test_builtin_text2text(tmp_path: Path, write_params: Callable[..., Path]) -> None:
    out, report = _run(write_params(data={"source": "builtin:text2text", **T2T}), tmp_path)
    ds = load_from_disk(str(out))
    assert sum(len(ds[s]) for s in ds) == 200
    assert ds["train"].column_names == ["id", "input", "label", "kind"]
    row = ds["train"][0]
    assert row["input"].split()[0] in ("sort", "spell") and isinstance(row["label"], str)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["task"] == "text2text" and meta["label_names"] == ["target"]
    assert sum(report["splits"][s]["rows"] for s in ds) == 200
    assert not set(ds["train"]["input"]) & set(ds["test"]["input"])


def test_input_target_file(tmp_path: Path, write_params: Callable[..., Path]) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"question": f"q {i}", "answer": f"a {i % 7}"}) + "\n" for i in range(60)
        )
    )
    params = write_params(
        data={
            "source": str(path),
            "task": "text2text",
            "text_fields": ["question"],
            "label_field": "answer",
        }
    )
    out, _ = _run(params, tmp_path)
    ds = load_from_disk(str(out))
    assert sum(len(ds[s]) for s in ds) == 60
    assert set(ds["test"]["label"]) <= {f"a {i}" for i in range(7)}


def test_bad_target_is_one_line(
    tmp_path: Path, write_params: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"input": "x", "target": "y"}\n{"input": "z", "target": [1]}\n')
    params = write_params(data={"source": str(path), "task": "text2text", **T2T})
    with pytest.raises(SystemExit) as exit_:
        _run(params, tmp_path)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "pairs.jsonl, line 2, column 'target': the target [1] is a list; it must be text"
    )
    assert "\n" not in err
