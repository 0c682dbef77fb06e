"""One contract per stage: the inputs classes, dvc.yaml generated from the stages' imports
and inputs (the gate `make test` runs), the model fingerprint, and the suite's own params."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

from nlpflow.contracts import (
    STAGE_INPUTS,
    ErrorAnalysisInputs,
    ProbeInputs,
    Subset,
    TrainInputs,
)
from nlpflow.dvcdeps import drift, expected_contracts, imported_files, write
from nlpflow.errors import UserError
from nlpflow.params import Params, load_params, parse_params
from tests.conftest import ROOT, dump_params, tiny_params

# --------------------------------------------------------------------------- inputs classes


def test_every_subset_names_keys_of_its_section_with_their_types() -> None:
    subsets = {
        tp
        for cls in STAGE_INPUTS.values()
        for tp in typing.get_type_hints(cls).values()
        if isinstance(tp, type) and issubclass(tp, Subset)
    }
    assert subsets, "no Subset in use"
    for subset in subsets:
        section = typing.get_type_hints(subset.SECTION)
        for name, tp in typing.get_type_hints(subset).items():
            if name == "SECTION":
                continue
            assert name in section, f"{subset.__name__}.{name} is no key of its section"
            # The subset may name a Literal's plain base type (str), never another type.
            expected = section[name]
            base = type(typing.get_args(expected)[0]) if typing.get_origin(expected) else expected
            assert tp in (expected, base), f"{subset.__name__}.{name}: {tp} vs {expected}"


def test_keys_are_what_each_stage_reads() -> None:
    assert TrainInputs.keys() == ["seed", "model", "train"]
    assert ErrorAnalysisInputs.keys() == ["seed", "error_analysis", "evaluate.confidence_level"]
    probe = ProbeInputs.keys()
    assert "model.dropout" not in probe and "model.hidden_size" in probe and "probe" in probe
    assert "train.lr" not in probe and "train.threads" in probe
    for cls in STAGE_INPUTS.values():
        for key in cls.keys():  # noqa: SIM118 (a classmethod, not a dict)
            section, _, rest = key.partition(".")
            assert hasattr(Params(), section) and (
                not rest or hasattr(getattr(Params(), section), rest)
            )


def test_from_params_copies_exactly_the_declared_values() -> None:
    params = parse_params(tiny_params())
    inputs = ProbeInputs.from_params(params)
    assert inputs.model.hidden_size == params.model.hidden_size
    assert inputs.train.effective_batch_size == params.train.effective_batch_size
    assert not hasattr(inputs.model, "dropout") and not hasattr(inputs.train, "lr")
    with pytest.raises(dataclasses.FrozenInstanceError):
        inputs.model.hidden_size = 3  # type: ignore[misc]
    params.probe.max_batch_size = 1  # the inputs hold copies
    assert inputs.probe.max_batch_size != 1
    assert inputs.model.with_dropout(0.1).hidden_size == params.model.hidden_size
    # The checkpoint's run hash and the probe's cache key are built from as_dict().
    train = TrainInputs.from_params(params).as_dict()
    assert set(train) == {"seed", "model", "train"} and train["train"]["lr"] == params.train.lr


# --------------------------------------------------------------------------- dvc.yaml


def test_dvc_yaml_lists_exactly_what_each_stage_imports_and_reads() -> None:
    """The gate: a stage that imports a project file or reads a param dvc.yaml does not list,
    or a listed one it does not use, fails here. Fix with `nlpflow dvc-deps --write`."""
    assert drift(ROOT) == []


def test_known_imports_are_listed() -> None:
    contracts = expected_contracts(ROOT)
    for stage in STAGE_INPUTS:
        deps = contracts[stage].deps
        assert deps[0] == f"stages/{stage}.py"
        for shared in ("stages/__init__.py", "src/nlpflow/io.py", "src/nlpflow/params.py",
                       "src/nlpflow/errors.py", "src/nlpflow/contracts.py"):  # fmt: skip
            assert shared in deps, f"{stage} misses {shared}"
    train = contracts["train"].deps
    assert {"src/nlpflow/tuning/reporter.py", "src/nlpflow/tuning/config.py",
            "src/nlpflow/tuning/storage.py"} <= set(train)  # fmt: skip
    assert "src/nlpflow/review.py" not in train and "src/nlpflow/cli.py" not in train
    assert "src/nlpflow/evaluation/templates" in contracts["error_analysis"].deps
    assert "tokenizer.truncation" not in contracts["error_analysis"].params


def drifted_copy(tmp_path: Path) -> Path:
    text = (ROOT / "dvc.yaml").read_text()
    stages = text.split("\n  train:\n", 1)
    train_part = stages[1].replace("      - src/nlpflow/io.py\n", "", 1)
    text = stages[0] + "\n  train:\n" + train_part
    text = text.replace(
        "      - stages/evaluate.py\n",
        "      - stages/evaluate.py\n      - src/nlpflow/review.py\n",
    )
    text = text.replace(
        "    params:\n      - seed\n      - error_analysis\n",
        "    params:\n      - seed\n      - error_analysis\n      - tokenizer.truncation\n",
    )
    evaluate_params = "    params:\n      - seed\n      - evaluate\n"
    assert evaluate_params in text
    text = text.replace(evaluate_params, "    params:\n      - evaluate\n")
    path = tmp_path / "dvc.yaml"
    path.write_text(text)
    return path


def test_drift_is_named_line_by_line(tmp_path: Path) -> None:
    assert drift(ROOT, drifted_copy(tmp_path)) == [
        "train: imports src/nlpflow/io.py but deps does not list it",
        "evaluate: deps lists src/nlpflow/review.py but the stage does not import it",
        "evaluate: reads param seed but params does not list it",
        "error_analysis: params lists tokenizer.truncation but the stage does not read it",
    ]


def test_write_fixes_drift_and_keeps_comments_and_other_deps(tmp_path: Path) -> None:
    path = drifted_copy(tmp_path)
    assert write(ROOT, path) is True
    assert path.read_text() == (ROOT / "dvc.yaml").read_text()  # comments, order, data deps
    assert write(ROOT, path) is False


def test_cli_check_exits_1_naming_the_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nlpflow.cli import main

    project = tmp_path / "p"
    shutil.copytree(
        ROOT / "stages", project / "stages", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(drifted_copy(tmp_path), project / "dvc.yaml")
    assert main(["dvc-deps", "--check", "--root", str(project)]) == 1
    err = capsys.readouterr().err
    assert "train: imports src/nlpflow/io.py but deps does not list it" in err
    assert main(["dvc-deps", "--write", "--root", str(project)]) == 0
    assert main(["dvc-deps", "--check", "--root", str(project)]) == 0


def test_imports_inside_functions_count_type_checking_ones_do_not(tmp_path: Path) -> None:
    pkg = tmp_path / "src/nlpflow"
    (pkg / "sub").mkdir(parents=True)
    (tmp_path / "stages").mkdir()
    for name in ("__init__.py", "sub/__init__.py", "sub/lazy.py", "sub/typing_only.py",
                 "sub/sibling.py", "unused.py"):  # fmt: skip
        (pkg / name).write_text("")
    (pkg / "sub/lazy.py").write_text("from . import sibling\n")
    (tmp_path / "stages/__init__.py").write_text("")
    (tmp_path / "stages/x.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import json\n"
        "if TYPE_CHECKING:\n    from nlpflow.sub import typing_only\n"
        "def main():\n    from nlpflow.sub.lazy import thing\n"
    )
    assert imported_files(tmp_path, Path("stages/x.py")) == {
        "stages/x.py",
        "stages/__init__.py",  # Python runs it to import stages.x
        "src/nlpflow/__init__.py",
        "src/nlpflow/sub/__init__.py",
        "src/nlpflow/sub/lazy.py",
        "src/nlpflow/sub/sibling.py",
    }


# --------------------------------------------------------------------------- model fingerprint


def test_model_fingerprint_follows_the_directory_content(tmp_path: Path) -> None:
    from nlpflow.modeling.source import model_fingerprint

    model = tmp_path / "model"
    (model / ".git").mkdir(parents=True)
    (model / "config.json").write_text('{"hidden_size": 16}')
    (model / ".git" / "HEAD").write_text("ref")
    first = model_fingerprint(str(model))
    assert first["kind"] == "local" and first["files"] == 1
    (model / ".git" / "HEAD").write_text("other")  # not something a model loads
    assert model_fingerprint(str(model)) == first
    (model / "config.json").write_text('{"hidden_size": 32}')
    assert model_fingerprint(str(model))["sha256"] != first["sha256"]
    assert model_fingerprint("") == {"name_or_path": "", "kind": "none"}
    hub = model_fingerprint("nobody/not-cached-model")
    assert hub == {"name_or_path": "nobody/not-cached-model", "kind": "hub", "revision": None}
    with pytest.raises(UserError) as err:
        model_fingerprint(str(tmp_path / "missing"))
    assert "is not a directory" in str(err.value)


def test_a_hub_model_is_fingerprinted_by_its_cached_revision(tmp_path: Path) -> None:
    from nlpflow.modeling.source import hub_revision

    repo = tmp_path / "models--org--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "snapshots/0123abc").mkdir(parents=True)
    (repo / "snapshots/0123abc/config.json").write_text("{}")
    (repo / "refs/main").write_text("0123abc")
    assert hub_revision("org/tiny", cache_dir=tmp_path) == "0123abc"
    (repo / "snapshots/4567def").mkdir()
    (repo / "snapshots/4567def/config.json").write_text("{}")
    (repo / "refs/main").write_text("4567def")  # the hub model updated in the cache
    assert hub_revision("org/tiny", cache_dir=tmp_path) == "4567def"
    assert hub_revision("org/other", cache_dir=tmp_path) is None


# --------------------------------------------------------------------------- the suite's params


def test_suite_params_never_read_the_checkout_params_yaml() -> None:
    opened: list[str] = []
    recording = [True]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if recording[0] and event == "open" and args and isinstance(args[0], str | Path):
            opened.append(str(args[0]))

    sys.addaudithook(hook)  # hooks cannot be removed: this one stops recording below
    try:
        params = tiny_params()
    finally:
        recording[0] = False
    assert not [p for p in opened if Path(p).name == "params.yaml"], opened
    assert params["train"]["epochs"] == 2  # the tiny overrides on the schema's defaults


def test_params_rewritten_by_dvc_are_read_as_dvc_reads_them(tmp_path: Path) -> None:
    from dvc.utils.serialize import modify_yaml

    path = tmp_path / "params.yaml"
    path.write_text(dump_params(tiny_params()))
    with modify_yaml(path) as data:  # what `dvc exp run -S train.lr=0.001` does
        data["train"]["lr"] = 0.001
    assert "only_label: yes\n" in path.read_text()  # unquoted: YAML 1.1 would read True
    params = load_params(path)
    assert params.train.lr == 0.001
    assert [d.only_label for d in params.error_analysis.behaviour.directional] == ["yes", "yes"]
