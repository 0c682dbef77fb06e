"""The readers and tables the notebook's cells call, on small hand-made inputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nlpflow.errors import UserError
from nlpflow.notebook import SECTIONS, anchor, build
from nlpflow.notebook.views import (
    ProjectFiles,
    demote,
    evaluation_table,
    find_project,
    margin_summary,
    markdown_section,
    weakest_slice,
)

EVALUATE = {
    "test": {
        "n": 100,
        "accuracy": 0.8,
        "f1_macro": 0.75,
        "ci": {"accuracy": {"low": 0.71, "high": 0.87}, "f1_macro": {"low": 0.66, "high": 0.83}},
        "baselines": {
            "majority": {"accuracy": 0.5, "f1_macro": 0.3333333},
            "tfidf": {"accuracy": 0.7, "f1_macro": 0.7},
        },
    }
}


def test_files_are_read_from_the_project_root_or_a_commit(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "a.json").write_text('{"x": 1}')
    assert find_project(tmp_path / "metrics") == tmp_path.resolve()
    files = ProjectFiles(None, tmp_path / "metrics")  # found from a subfolder: reports/
    assert files.json("metrics/a.json") == {"x": 1}
    with pytest.raises(UserError) as err:
        files.text("metrics/b.json")
    assert str(err.value) == "metrics/b.json not found in the workspace: run `dvc repro` first"

    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t",
                                                 "commit", "-qm", "x"]):  # fmt: skip
        subprocess.run(["git", *cmd], cwd=tmp_path, check=True)
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.strip()
    (tmp_path / "metrics" / "a.json").write_text('{"x": 2}')  # the workspace moves on
    at_commit = ProjectFiles(sha, tmp_path)
    assert at_commit.json("metrics/a.json") == {"x": 1}
    assert at_commit.exists("metrics/a.json") and not at_commit.exists("metrics/b.json")
    with pytest.raises(UserError) as err:
        at_commit.text("metrics/b.json")
    assert str(err.value).startswith(f"metrics/b.json not found at commit {sha[:12]}")


def test_no_project_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        find_project(tmp_path)
    assert "no dvc.yaml" in str(err.value)


def test_evaluation_table_puts_intervals_and_baselines_beside_the_model() -> None:
    lines = evaluation_table(EVALUATE, "test").splitlines()
    assert lines[0] == "**test** (100 examples)"
    assert lines[2] == "| metric | model | 95% interval | majority | tfidf |"
    assert lines[4] == "| accuracy | 0.8000 | 0.7100 – 0.8700 | 0.5000 | 0.7000 |"
    assert lines[5] == "| f1_macro | 0.7500 | 0.6600 – 0.8300 | 0.3333 | 0.7000 |"


def test_margin_is_over_the_best_baseline_and_says_whether_the_interval_clears_it() -> None:
    line = margin_summary(EVALUATE, "test")
    assert line == (
        "- f1_macro on test: model 0.7500, best baseline tfidf 0.7000, margin +0.0500; "
        "the model's interval 0.6600 – 0.8300 includes or falls below the baseline"
    )


def test_weakest_slice_skips_tiny_slices_while_a_large_one_exists() -> None:
    errors = {
        "test": {
            "accuracy": 0.8,
            "slices": {
                "kind": {"a": {"n": 2, "accuracy": 0.0}, "b": {"n": 40, "accuracy": 0.5}},
                "label": {"x": {"n": 50, "accuracy": 0.9}, "y": {"n": 50, "accuracy": 0.7}},
            },
        }
    }
    assert weakest_slice(errors).startswith("- weakest slice on test: kind = b: accuracy 0.5000")


def test_report_sections_and_headings_nest_under_the_notebook() -> None:
    report = "# R\n\n## A\none\n## B\n```\n# not a heading\n```\ntwo\n"
    assert markdown_section(report, "B") == "```\n# not a heading\n```\ntwo"
    assert markdown_section(report, "C") == ""
    assert demote(report, 2).splitlines()[0] == "### R"
    assert "# not a heading" in demote(report, 2).splitlines()


def test_the_cells_are_the_same_for_the_same_arguments() -> None:
    a, b = build("tuned", "ab" * 20, "main", "x"), build("tuned", "ab" * 20, "main", "x")
    assert [(c.id, c.source) for c in a.cells] == [(c.id, c.source) for c in b.cells]
    headings = [c.source.splitlines()[0] for c in a.cells if c.source.startswith("## ")]
    assert headings == [f"## {i}. {name}" for i, name in enumerate(SECTIONS, 1)]
    assert anchor(7) == "#7.-Error-analysis" and f"]({anchor(7)})" in a.cells[0].source
    assert "dvc exp apply tuned" in a.cells[4].source  # how to reproduce an experiment
