"""params.yaml validation: one clear line naming the key, before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nlpflow.params import ParamsError, load_params, parse_params
from tests.conftest import suite_params

ROOT = Path(__file__).resolve().parents[1]


def test_project_params_load() -> None:
    params = load_params(ROOT / "params.yaml")
    assert params.data.source == "builtin:anagram"
    assert params.train.effective_batch_size >= 1


def _raw() -> dict:
    return suite_params()  # never the checkout's params.yaml, which `dvc exp run` rewrites


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["train"].update(lrr=0.1), "unknown key 'train.lrr'; did you mean 'lr'?"),
        (lambda r: r.update(trian={}), "unknown key 'trian'; did you mean 'train'?"),
        (lambda r: r["train"].update(lr=-0.1), "train.lr must be > 0 (got -0.1)"),
        (lambda r: r["train"].update(epochs="ten"), "train.epochs must be an integer (got 'ten')"),
        (
            lambda r: r["data"].update(splits={"train": 0.8, "validation": 0.1, "test": 0.2}),
            "data.splits must sum to 1 (they sum to 1.1)",
        ),
        (
            lambda r: r["train"]["early_stopping"].update(patiense=2),
            "unknown key 'train.early_stopping.patiense'; did you mean 'patience'?",
        ),
        (lambda r: r["train"].update(schedule="exp"), "train.schedule must be one of"),
        (
            lambda r: r["model"].update(num_heads=3),
            "model.hidden_size must be divisible by num_heads",
        ),
        (lambda r: r["data"].update(text_fields=[]), "data.text_fields must name 1 or 2 columns"),
        (
            lambda r: r["model"].update(initializer_range=0),
            "model.initializer_range must be in (0, 1]",
        ),
    ],
)
def test_bad_params_name_the_key(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    raw = _raw()
    edit(raw)
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_scientific_notation_string_is_a_number() -> None:
    raw = _raw()
    raw["train"]["lr"] = "1e-3"  # YAML 1.1 reads 1e-3 without a dot as a string
    assert parse_params(raw).train.lr == pytest.approx(1e-3)


def test_stage_exits_with_one_line(tmp_path: Path) -> None:
    raw = _raw()
    raw["train"]["lr"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.preprocess",
            "--params",
            str(tmp_path / "params.yaml"),
            "--out",
            str(tmp_path / "out"),
            "--metrics",
            str(tmp_path / "m.json"),
            # every output in tmp_path: run from the checkout, a regression must not write there
            "--plots",
            str(tmp_path / "plots"),
            "--report",
            str(tmp_path / "data.md"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: params.yaml: train.lr must be > 0 (got -1)"
    assert not (tmp_path / "out").exists()


def test_yes_and_no_stay_strings_as_dvc_writes_them(tmp_path: Path) -> None:
    from nlpflow.params import read_yaml

    # `dvc exp run -S key=yes` writes the value unquoted; YAML 1.1 would read it as True.
    assert read_yaml("a: yes\nb: no\nc: true\nd: on\ne: False\n") == {
        "a": "yes",
        "b": "no",
        "c": True,
        "d": "on",
        "e": False,
    }
