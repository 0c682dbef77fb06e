"""Real `dvc repro` and `dvc exp run` on a copy of the project in a temporary git repo.

One module-scoped project is reproduced once, then each test edits params and checks that
exactly the dependent stages rerun (the promise the params lists in dvc.yaml make).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nlpflow.params import read_yaml
from tests.conftest import dump_params, run

pytestmark = pytest.mark.slow

STAGES = [
    "preprocess", "tokenize", "probe", "lr_range", "train", "evaluate", "error_analysis",
    "model_card",
]  # fmt: skip
# Fingerprints model.name_or_path on every repro (always_changed); not counted by ran().
ALWAYS = "model_source"
# Results: identical when the same params run again on the same machine kind. Wall times,
# speeds and memory peaks live in files of their own (metrics/*_timing.json, latency.json,
# the probe's plot data, the training log).
RESULTS = [
    "metrics/preprocess.json", "metrics/tokenize.json", "metrics/probe.json",
    "metrics/lr_range.json", "metrics/train.json", "metrics/evaluate.json",
    "metrics/error_analysis.json", "plots/lr_range/curve.tsv",
    "plots/train/epochs.tsv", "plots/train/steps.tsv", "data/probe/plan.json",
    "data/predictions/validation.jsonl", "data/predictions/test.jsonl",
    "reports/data.md", "reports/tokenization.md", "reports/errors.md", "models/best/README.md",
]  # fmt: skip
TIMINGS = [
    "metrics/train_timing.json", "metrics/probe_timing.json", "metrics/latency.json",
    "plots/probe/candidates.json", "plots/probe/candidates.png",
]  # fmt: skip


def ran(output: str) -> list[str]:
    """Stages that DVC actually ran, in order, from its console output (but model_source,
    which runs on every repro: it is checked to have run)."""
    stages = re.findall(r"Running stage '([\w]+)'", output)
    assert ALWAYS in stages, output
    return [s for s in stages if s != ALWAYS]


def set_param(repo: Path, section: str, key: str, value: object) -> None:
    path = repo / "params.yaml"
    params = read_yaml(path.read_text())  # as DVC reads it: `only_label: yes` stays "yes"
    params[section][key] = value
    path.write_text(dump_params(params))


@pytest.fixture(scope="module")
def reproduced(
    reproduced_template: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A copy of the suite's reproduced tiny project, after checking that its one `dvc repro`
    ran every stage."""
    from tests.conftest import copy_project

    template, stdout = reproduced_template
    assert ran(stdout) == STAGES
    return copy_project(template, tmp_path_factory.mktemp("pipeline"))


def test_repro_writes_every_output(reproduced: Path) -> None:
    repo = reproduced
    evaluate = json.loads((repo / "metrics/evaluate.json").read_text())
    for split in ("validation", "test"):
        assert {"accuracy", "f1_macro"} <= evaluate[split].keys()
        assert "accuracy" in evaluate[split]["baselines"]["majority"]
    line = (repo / "data/predictions/test.jsonl").read_text().splitlines()[0]
    pred = json.loads(line)
    assert {"id", "first", "second", "label", "prediction", "probabilities"} <= pred.keys()
    assert (repo / "models/best/config.json").exists()
    assert (repo / "reports/errors.md").read_text().startswith("#")
    assert (repo / "dvc.lock").exists()
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    latency = next(iter(shown.values()))["data"]["metrics/latency.json"]["data"]
    assert latency["ms_per_example"] > 0 and latency["examples"] > 0
    status = run(["git", "status", "--porcelain"], repo).stdout
    assert status == "", f"outputs not ignored or not committed: {status}"


def test_model_card_numbers_are_evaluate_json_and_predict_matches_evaluate(
    reproduced: Path,
) -> None:
    """models/best/README.md holds metrics/evaluate.json's test metrics; `nlpflow predict`
    on evaluate's own predictions file (it has the text fields) gives the same probabilities."""
    from nlpflow.card import card_values, test_metrics

    repo = reproduced
    evaluate = json.loads((repo / "metrics/evaluate.json").read_text())
    card = (repo / "models/best/README.md").read_text()
    assert card_values(card) == test_metrics(evaluate, "sequence")
    assert card_values(card)["accuracy"] == evaluate["test"]["accuracy"]
    run(["nlpflow", "predict", "data/predictions/test.jsonl", "new.jsonl", "--top-k", "2"], repo)
    try:
        theirs = [
            json.loads(x) for x in (repo / "data/predictions/test.jsonl").read_text().splitlines()
        ]
        ours = [json.loads(x) for x in (repo / "new.jsonl").read_text().splitlines()]
        assert len(ours) == len(theirs) == evaluate["test"]["n"]
        for a, b in zip(ours, theirs, strict=True):
            assert a["prediction_in_file"] == b["prediction"] == a["prediction"]
            got = {t["label"]: t["score"] for t in a["top_k"]}
            assert got == pytest.approx(b["probabilities"], abs=1e-6)
    finally:
        (repo / "new.jsonl").unlink()


def test_second_repro_runs_nothing(reproduced: Path) -> None:
    proc = run(["dvc", "repro"], reproduced)
    assert ran(proc.stdout) == []


def test_a_rerun_from_scratch_gives_bit_identical_results(reproduced: Path) -> None:
    repo = reproduced
    first = {name: (repo / name).read_bytes() for name in RESULTS}
    timings = {name: (repo / name).read_bytes() for name in TIMINGS}
    # From scratch: no checkpoint to resume, no kept probe measurement, no run cache.
    for name in ("checkpoints", "data/probe/measurements.json"):
        run(["rm", "-rf", name], repo)
    proc = run(["dvc", "repro", "--force", "--no-run-cache"], repo)
    assert ran(proc.stdout) == STAGES
    changed = [name for name in RESULTS if (repo / name).read_bytes() != first[name]]
    assert changed == [], "results differ between two runs of the same params"
    # The timings did change (they are measured), which is why they live apart.
    assert any((repo / name).read_bytes() != timings[name] for name in TIMINGS)
    status = run(["git", "status", "--porcelain"], repo).stdout
    assert status == "" or set(status.split()) <= {"M", "dvc.lock", *TIMINGS}, status
    run(["git", "checkout", "--", *TIMINGS], repo)
    run(["dvc", "commit", "-f", "-q"], repo)


def test_evaluate_param_reruns_only_evaluate_and_error_analysis(reproduced: Path) -> None:
    repo = reproduced
    set_param(repo, "evaluate", "batch_size", 7)
    try:
        proc = run(["dvc", "repro"], repo)
        assert ran(proc.stdout) == ["evaluate", "error_analysis", "model_card"]
    finally:
        run(["git", "checkout", "--", "params.yaml"], repo)
        run(["dvc", "checkout", "-q"], repo, check=False)


def test_lr_range_param_reruns_only_the_range_test(reproduced: Path) -> None:
    repo = reproduced
    # the baseline as committed (an earlier test may leave dvc.lock with its own params)
    run(["git", "checkout", "--", "."], repo)
    run(["dvc", "checkout", "-q"], repo, check=False)
    set_param(repo, "lr_range", "steps", 12)
    try:
        proc = run(["dvc", "repro"], repo)
        assert ran(proc.stdout) == ["lr_range"]
        summary = json.loads((repo / "metrics/lr_range.json").read_text())
        assert summary["steps"] == 12 and 0 < summary["steps_run"] <= 12
    finally:  # params, dvc.lock and the git-kept outputs as committed: later tests start clean
        run(["git", "checkout", "--", "."], repo)


def test_exp_run_lr_reruns_from_train_and_is_listed(reproduced: Path) -> None:
    repo = reproduced
    proc = run(["dvc", "exp", "run", "-n", "lr-small", "-S", "train.lr=0.0005"], repo)
    assert ran(proc.stdout) == ["train", "evaluate", "error_analysis", "model_card"]

    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    exps = [e for rev in shown for e in (rev.get("experiments") or [])]
    names = {run_.get("name") for e in exps for run_ in e.get("revs", [])}
    assert "lr-small" in names
    table = run(["dvc", "exp", "show", "--no-pager", "--md"], repo).stdout
    assert "lr-small" in table and "train.lr" in table and "0.0005" in table

    diff = run(["dvc", "metrics", "diff", "main", "lr-small", "--json"], repo).stdout
    assert "metrics/evaluate.json" in json.loads(diff)
    plots = run(["dvc", "plots", "diff", "main", "lr-small", "--json"], repo).stdout
    assert json.loads(plots), "dvc plots diff produced no plots"
