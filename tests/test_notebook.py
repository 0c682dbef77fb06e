"""`nlpflow notebook` on a real tiny pipeline: executes, holds every section, shows the
metrics files' numbers (parsed from the saved cell outputs), reads revisions, compares."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import copy_project, run

pytestmark = pytest.mark.slow


@pytest.fixture
def reproduced(reproduced_project: Path) -> Path:
    """The tiny project after `dvc repro`, committed (shared with the browser test)."""
    return reproduced_project


def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def sections(nb: dict[str, Any]) -> dict[str, list[str]]:
    """Section title -> the markdown outputs of its code cells, in order."""
    out: dict[str, list[str]] = {"": []}
    current = ""
    for cell in nb["cells"]:
        source = _text(cell["source"])
        if cell["cell_type"] == "markdown" and source.startswith("## "):
            current = re.sub(r"^\d+\. ", "", source.splitlines()[0][3:])
            out[current] = []
        for output in cell.get("outputs", []):
            if "text/markdown" in output.get("data", {}):
                out[current].append(_text(output["data"]["text/markdown"]))
    return out


def table(markdown: str) -> dict[str, list[str]]:
    """First column -> the other cells, for each body row of the markdown table(s)."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not set(line) <= set("|-: "):  # not the rule line
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0]] = cells[1:]
    return rows


def f4(value: float) -> str:
    return f"{value:.4f}"


def test_the_notebook_executes_every_section_and_shows_the_metrics_files_numbers(
    reproduced: Path,
) -> None:
    from nlpflow.notebook import SECTIONS, build

    out = run(["nlpflow", "notebook"], reproduced)
    assert out.stdout.startswith("notebook: ")
    path = reproduced / "reports" / "notebook.ipynb"
    nb = json.loads(path.read_text())

    # Executed top to bottom, nothing failed, outputs saved.
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] == i for i, c in enumerate(code, 1))
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert any("image/png" in o.get("data", {}) for c in code for o in c["outputs"])
    # Every section, in the checklist's order, as a navigable heading.
    found = sections(nb)
    assert list(found)[1:] == list(SECTIONS)
    # No absolute path of this machine in the cells; generation is deterministic.
    assert str(reproduced) not in json.dumps([c["source"] for c in nb["cells"]])
    again = build("workspace", None, None, "nlpflow notebook")
    assert [(c["id"], _text(c["source"])) for c in nb["cells"]] == [
        (c["id"], c["source"]) for c in again.cells
    ]
    assert all("execution" not in c["metadata"] for c in code)  # no timestamps
    path.unlink()  # the shared project's workspace as it was

    evaluate = json.loads((reproduced / "metrics" / "evaluate.json").read_text())
    train = json.loads((reproduced / "metrics" / "train.json").read_text())
    errors = json.loads((reproduced / "metrics" / "error_analysis.json").read_text())

    # Evaluation: every metric with its interval and each baseline's, test then validation.
    tables = [t for t in found["Evaluation"] if t.startswith("**")]
    assert [t.split("**")[1] for t in tables] == ["test", "validation"]
    for split, shown in zip(("test", "validation"), tables, strict=True):
        scores, rows = evaluate[split], table(shown)
        baselines = list(scores["baselines"])
        assert rows["metric"] == ["model", "95% interval", *baselines]
        for name in ("accuracy", "f1_macro", "mcc", "roc_auc", "ece"):
            model, interval, *base = rows[name]
            assert model == f4(scores[name]), (split, name)
            ci = scores["ci"].get(name)
            assert interval == (f"{f4(ci['low'])} – {f4(ci['high'])}" if ci else "")
            for b, shown_b in zip(baselines, base, strict=True):
                expected = scores["baselines"][b].get(name)
                assert shown_b == ("" if expected is None else f4(expected)), (split, name, b)

    # Introduction and interpretation: the headline, the margin, the weakest slice.
    intro = found["Introduction"][0]
    test = evaluate["test"]
    best = max(test["baselines"].items(), key=lambda kv: kv[1]["f1_macro"])
    assert f"test f1_macro {f4(test['f1_macro'])}" in intro
    assert f"trained {train['epochs_run']} epochs ({train['steps']} steps)" in intro
    margin = f"margin {test['f1_macro'] - best[1]['f1_macro']:+.4f}"
    assert f"best baseline {best[0]} {f4(best[1]['f1_macro'])}, {margin}" in intro
    # The weakest slice is the one the error analysis's own report names.
    slices = errors["test"]["slices"]
    report = (reproduced / "reports" / "errors.md").read_text()
    family, value = re.search(r"\*\*Weakest slice:\*\* (.+?) = (.+?): accuracy", report).groups()  # type: ignore[union-attr]
    accuracy = slices[family][value]["accuracy"]
    assert f"{family} = {value}: accuracy {f4(accuracy)}" in intro
    assert "\n".join(found["Interpretation"]).count("weakest slice on test") == 1

    # Training and error analysis: the stop reason, each slice's accuracy, behaviour.
    assert f"**Stopped:** {train['stop_reason']}" in found["Training"][0]
    rows = [
        line.strip("|").split(" | ")
        for t in found["Error analysis"]
        if t.startswith("| slice")
        for line in t.splitlines()[2:]
    ]
    assert {(r[0].strip(), r[1], int(r[2]), r[3].strip()) for r in rows} == {
        (fam, val, s["n"], f4(s["accuracy"])) for fam, v in slices.items() for val, s in v.items()
    }
    behaviour = table(next(t for t in found["Error analysis"] if t.startswith("| test")))
    assert errors["test"]["behaviour"], "the tiny project runs behavioural tests"
    for name, t in errors["test"]["behaviour"].items():
        assert behaviour[name.replace("_", " ")] == [
            str(t["tested"]),
            str(t["failed"]),
            f4(t["failure_rate"]),
        ]


def test_the_notebook_of_an_experiment_compares_it_with_main(
    reproduced_template: tuple[Path, str], tmp_path: Path
) -> None:
    # An experiment whose test numbers differ from main's (a lower decision threshold: only
    # evaluate and error_analysis rerun), in a private copy of the reproduced project.
    project = copy_project(reproduced_template[0], tmp_path)
    run(["dvc", "exp", "run", "-n", "nb-low-threshold", "-S", "evaluate.threshold=0.02"], project)
    out = tmp_path / "experiment.ipynb"
    run(
        ["nlpflow", "notebook", "nb-low-threshold", "--compare", "main", "--out", str(out)], project
    )
    nb = json.loads(out.read_text())
    setup = _text(nb["cells"][1]["source"])
    sha = re.search(r"REV = '([0-9a-f]{40})'", setup).group(1)  # type: ignore[union-attr]
    assert "LABEL = 'nb-low-threshold'" in setup
    assert "dvc exp apply nb-low-threshold" in _text(nb["cells"][4]["source"])
    found = sections(nb)
    comparison = "\n".join(found["Interpretation"])
    assert "McNemar" in comparison and "nb-low-threshold vs main" in comparison

    # The numbers are the experiment's, as its commit holds them, not main's.
    def test_scores(rev: str) -> dict[str, Any]:
        shown = run(["git", "show", f"{rev}:metrics/evaluate.json"], project).stdout
        return json.loads(shown)["test"]  # type: ignore[no-any-return]

    experiment, main = test_scores(sha), test_scores("main")
    assert f4(experiment["accuracy"]) != f4(main["accuracy"]), "the experiment must differ"
    rows = table(next(t for t in found["Evaluation"] if t.startswith("**test**")))
    assert rows["accuracy"][0] == f4(experiment["accuracy"])
    assert rows["f1_macro"][0] == f4(experiment["f1_macro"])


def test_the_notebook_stops_with_one_line_when_the_pipeline_has_not_run(project: Path) -> None:
    proc = run(["nlpflow", "notebook"], project, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: metrics/preprocess.json, metrics/train.json, metrics/evaluate.json, "
        "metrics/error_analysis.json not found at the workspace: run `dvc repro` first"
    ]
    assert not (project / "reports" / "notebook.ipynb").exists()
    proc = run(["nlpflow", "notebook", "no-such-experiment"], project, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: 'no-such-experiment' is neither a git revision nor a DVC experiment name"
    )
