"""Real DVC on a copy of the project whose dvc.lock is written without running the pipeline
(placeholder outputs, `dvc commit`): what `dvc status` says after an edit.

- A project module edited: `dvc status` names exactly the stages that import it (and the
  always-changed model_source), no other. One module is edited per distinct set of importing
  stages (and two modules no stage imports): that every module is listed where it is
  imported is the gate in test_contracts.py; this shows DVC acting on the lists.
- A local model directory (model.name_or_path) changed in place: the stages that load the
  model (tokenize, probe, lr_range, train, and evaluate, which prompts it as text2text's base
  model) are out of date; unchanged, or changed back, none is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from nlpflow.contracts import STAGE_INPUTS
from nlpflow.dvcdeps import expected_contracts
from tests.conftest import ROOT, dump_params, make_project, run, tiny_params

pytestmark = pytest.mark.slow

ALWAYS = "model_source"  # always_changed: reported by every `dvc status`

# Edits each file in turn and asks DVC (in one process: one `dvc status` each would cost a
# second of start-up per file) which stages it reports; the file is restored after each.
STATUS_PER_EDIT = """
import json, sys
from pathlib import Path
from dvc.repo import Repo

out = {}
for name in json.loads(sys.argv[1]):
    path = Path(name)
    if path.is_dir():  # a data folder a module reads (the behavioural templates)
        added = path / "_edited.yaml"
        added.write_text("edited: true\\n")
        undo = added.unlink
    else:
        before = path.read_bytes()
        path.write_bytes(before + b"\\n# edited\\n")
        undo = lambda path=path, before=before: path.write_bytes(before)
    try:
        with Repo(".") as repo:
            out[name] = sorted(key.rpartition(":")[2] for key in repo.status())
    finally:
        undo()
print(json.dumps(out))
"""


def placeholder_outputs(repo: Path) -> None:
    """Every output dvc.yaml declares, as a tiny file or folder, so `dvc commit` can lock."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for entry in stages.values():
        for out in entry.get("outs", []):
            name = out if isinstance(out, str) else next(iter(out))
            path = repo / name
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "placeholder.txt").write_text("x\n")


def status(repo: Path) -> list[str]:
    shown: dict[str, Any] = json.loads(run(["dvc", "status", "--json"], repo).stdout)
    return sorted(key.rpartition(":")[2] for key in shown)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny-bert"
    save_tiny_model(path, seed=0)
    return path


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory, model: Path) -> Path:
    """The project with model.name_or_path a local model directory, locked."""
    repo = make_project(tmp_path_factory.mktemp("locked"))
    params = tiny_params(model={"name_or_path": str(model)})
    (repo / "params.yaml").write_text(dump_params(params))
    placeholder_outputs(repo)
    run(["dvc", "repro", "-q", ALWAYS], repo)  # its output is real: the fingerprint
    run(["dvc", "commit", "-f", "-q"], repo)
    assert status(repo) == [ALWAYS]
    return repo


def test_editing_a_module_makes_exactly_its_importers_out_of_date(locked: Path) -> None:
    repo = locked
    contracts = expected_contracts(ROOT)  # from the imports, not from dvc.yaml
    assert set(STAGE_INPUTS) == set(contracts)
    importers: dict[str, frozenset[str]] = {}
    for dep in {d for c in contracts.values() for d in c.deps}:
        importers[dep] = frozenset(s for s, c in contracts.items() if dep in c.deps) - {ALWAYS}
    # One module per distinct set of importers (the first in sorted order), e.g. io.py for
    # all stages, tuning/reporter.py for train alone, the templates for error_analysis.
    edits = {}
    for dep in sorted(importers):
        edits.setdefault(importers[dep], dep)
    for unrelated in ("src/nlpflow/cli.py", "src/nlpflow/review.py"):  # imported by no stage
        assert unrelated not in importers
        edits[frozenset({unrelated})] = unrelated
        importers[unrelated] = frozenset()
    names = sorted(edits.values())
    proc = run(["python", "-c", STATUS_PER_EDIT, json.dumps(names)], repo)
    reported: dict[str, list[str]] = json.loads(proc.stdout.splitlines()[-1])
    named = {name: set(reported[name]) - {ALWAYS} for name in names}
    wrong = {n: (sorted(importers[n]), sorted(named[n])) for n in names if named[n] != importers[n]}
    assert wrong == {}, "file: (stages that import it, stages dvc status named)"
    assert all(ALWAYS in reported[name] for name in names)
    assert status(repo) == [ALWAYS]  # every edit was undone


def save_tiny_model(path: Path, seed: int) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(str(path))


def test_a_local_model_changed_in_place_reruns_the_stages_that_load_it(
    locked: Path, model: Path
) -> None:
    repo = locked
    fingerprint = json.loads((repo / "data/model_source.json").read_text())
    assert fingerprint["kind"] == "local" and fingerprint["files"] == 2

    run(["dvc", "repro", "-q", ALWAYS], repo)  # unchanged model: nothing else to run
    assert status(repo) == [ALWAYS]

    save_tiny_model(model, seed=1)  # new weights, same file names, same params.yaml
    run(["dvc", "repro", "-q", ALWAYS], repo)
    assert status(repo) == sorted([ALWAYS, "tokenize", "probe", "lr_range", "train", "evaluate"])

    save_tiny_model(model, seed=0)  # the original weights back: up to date again
    run(["dvc", "repro", "-q", ALWAYS], repo)
    assert status(repo) == [ALWAYS]
