"""The error_analysis stage end to end on a hand-made predictions file (no model needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nlpflow.io import write_jsonl
from stages import error_analysis as stage
from tests.evaluation import tiny

P = tiny.prediction
REPO = Path(__file__).parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory holding the inputs the stage reads."""
    tiny.write_meta(tmp_path / "data" / "processed")
    rows = [
        P("t0", "a b c d", "d c b a", "anagram", "yes", 0.9),  # right
        P("t1", "a b c d", "a b c", "dropped", "no", 0.7),  # wrong, 0.7
        P("t2", "a b c d e", "a b c d", "dropped", "no", 0.95),  # wrong, 0.95
        P("t3", "a b c d", "a b c d e", "added", "no", 0.2),  # right
        P("t4", "a b c d e f", "a b c d e z", "substituted", "no", 0.4),  # right
        P("t5", "a b c d e f g h", "h g f e d c b a", "anagram", "yes", 0.3),  # wrong, 0.7
    ]
    write_jsonl(tmp_path / "data" / "predictions" / "test.jsonl", rows)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "evaluate.json").write_text(
        json.dumps(
            {
                "test": {
                    "n": 6,
                    "accuracy": 0.5,
                    "ci": {"accuracy": {"low": 0.1667, "high": 0.8333}},
                    "baselines": {
                        "majority": {"accuracy": 0.6667, "margin": {"accuracy": -0.1667}}
                    },
                }
            }
        )
    )
    (tmp_path / "params.yaml").write_text(
        "error_analysis:\n  max_examples: 2\n  length_buckets: [14, 20]\n"
    )
    return tmp_path


def argv(project: Path, with_evaluate: bool = True) -> list[str]:
    args = [
        "--params", str(project / "params.yaml"),
        "--predictions", str(project / "data" / "predictions"),
        "--processed", str(project / "data" / "processed"),
        "--report", str(project / "reports" / "errors.md"),
        "--metrics", str(project / "metrics" / "error_analysis.json"),
    ]  # fmt: skip
    if with_evaluate:
        args += ["--evaluate-metrics", str(project / "metrics" / "evaluate.json")]
    return args


def test_writes_report_and_metrics(project: Path) -> None:
    assert stage.main(argv(project)) == 0
    metrics = json.loads((project / "metrics" / "error_analysis.json").read_text())
    assert metrics == {
        "test": {
            "n": 6,
            "accuracy": 0.5,
            "errors": 3,
            "slices": {
                "kind": {
                    "added": {"n": 1, "accuracy": 1.0},
                    "anagram": {"n": 2, "accuracy": 0.5},
                    "dropped": {"n": 2, "accuracy": 0.0},
                    "substituted": {"n": 1, "accuracy": 1.0},
                },
                "label": {"no": {"n": 4, "accuracy": 0.5}, "yes": {"n": 2, "accuracy": 0.5}},
                # Lengths (both fields): 14, 12, 16, 16, 22, 30 -> 0-14: t0,t1 / 15-20: t2,t3 / 21+.
                "length": {
                    "0-14": {"n": 2, "accuracy": 0.5},
                    "15-20": {"n": 2, "accuracy": 0.5},
                    "21+": {"n": 2, "accuracy": 0.5},
                },
            },
        }
    }
    report = (project / "reports" / "errors.md").read_text()
    assert "**Model:** accuracy 0.5000 (95% CI 0.1667–0.8333); 6 examples" in report
    assert "majority 0.6667 (-0.1667) ⚠ no better than a baseline" in report
    assert "Imbalanced labels" not in report
    assert "**Errors:** 3 of 6" in report
    assert "**Weakest slice:** kind = dropped: accuracy 0.0000 (95% CI 0.00–0.66) on 2" in report
    assert "**Behavioural tests:** not run: no --model given." in report
    # Capped at max_examples = 2, most confident first; t1 and t5 tie at 0.7, file order wins.
    assert "2 of 3 shown" in report
    assert report.index("| 1 | t2 |") < report.index("| 2 | t1 |")
    assert "| t5 |" not in report
    assert "| **dropped** | 2 | 0.0000 | 0.00–0.66 | 2 | ⚠ weakest |" in report


def test_evaluate_metrics_flag_is_optional(project: Path) -> None:
    assert stage.main(argv(project, with_evaluate=False)) == 0
    report = (project / "reports" / "errors.md").read_text()
    assert "Baselines" not in report and "**Accuracy:** 0.5000 (3 of 6 correct)" in report
    assert "**Errors:** 3 of 6" in report


def test_missing_predictions_exit_2_with_one_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "data" / "predictions" / "test.jsonl").unlink()
    with pytest.raises(SystemExit) as exc:
        stage.main(argv(project))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "run the evaluate stage first" in err
    assert not (project / "reports").exists()  # nothing half-written


def test_runs_as_a_module_like_dvc_calls_it(project: Path) -> None:
    # The one subprocess run: checks the `python -m stages.error_analysis` entry point.
    done = subprocess.run(
        [sys.executable, "-m", "stages.error_analysis", *argv(project)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "3 errors of 6 on test" in done.stdout
    assert (project / "reports" / "errors.md").is_file()


def test_bad_behaviour_params_exit_2_before_any_work(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "params.yaml").write_text("error_analysis:\n  behaviour:\n    invariance: [typos]\n")
    with pytest.raises(SystemExit) as exc:
        stage.main(argv(project))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error_analysis.behaviour.invariance[0] 'typos' is not one of" in err
    assert not (project / "reports").exists()
