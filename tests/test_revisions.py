"""Revision specs as review, compare and tune resolve them: workspace, git revisions, DVC
experiment refs (and DVC's bookkeeping refs ignored), files read at each."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpflow.errors import UserError
from nlpflow.revisions import (
    Revision,
    experiment_ref,
    experiment_refs,
    files_at,
    parse_experiment_ref,
    read_at,
    resolve,
)
from tests.conftest import run


def commit(repo: Path, text: str, message: str) -> str:
    (repo / "metrics").mkdir(exist_ok=True)
    (repo / "metrics/train.json").write_text(text)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", message], repo)
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


def experiment(repo: Path, baseline: str, name: str, text: str) -> str:
    """An experiment as DVC stores it: a commit on top of ``baseline`` under refs/exps."""
    (repo / "metrics/train.json").write_text(text)
    run(["git", "add", "-A"], repo)
    tree = run(["git", "write-tree"], repo).stdout.strip()
    sha = run(["git", "commit-tree", tree, "-p", baseline, "-m", name], repo).stdout.strip()
    run(["git", "update-ref", experiment_ref(baseline, name), sha], repo)
    run(["git", "checkout", "-q", "--", "."], repo)
    return sha


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "config", "user.email", "t@example.com"], repo)
    run(["git", "config", "user.name", "t"], repo)
    return repo


def test_workspace_branches_commits_and_experiments_resolve_and_read(repo: Path) -> None:
    first = commit(repo, '{"epochs": 1}', "first")
    head = commit(repo, '{"epochs": 2}', "second")
    exp = experiment(repo, head, "lr-big", '{"epochs": 3}')
    old_exp = experiment(repo, first, "on-first", '{"epochs": 4}')
    # DVC's own refs under refs/exps are not experiments
    run(["git", "update-ref", "refs/exps/exec/EXEC_BASELINE", head], repo)
    (repo / "metrics/train.json").write_text('{"epochs": 9}')  # uncommitted

    assert experiment_refs(repo, head) == {"lr-big": exp}
    assert experiment_refs(repo) == {"lr-big": exp, "on-first": old_exp}

    cases = {
        "workspace": (None, b'{"epochs": 9}', "workspace"),
        "main": (head, b'{"epochs": 2}', f"`main` ({head[:8]})"),
        "HEAD~1": (first, b'{"epochs": 1}', f"`HEAD~1` ({first[:8]})"),
        "lr-big": (exp, b'{"epochs": 3}', "experiment `lr-big`"),
        "on-first": (old_exp, b'{"epochs": 4}', "experiment `on-first`"),
    }
    for spec, (sha, content, label) in cases.items():
        rev = resolve(repo, spec)
        assert (rev.sha, rev.label) == (sha, label), spec
        assert read_at(repo, rev, "metrics/train.json") == content, spec
        assert read_at(repo, rev, "metrics/none.json") is None, spec
    assert files_at(repo, resolve(repo, "main"), ["metrics"]) == ["metrics/train.json"]


def test_a_git_revision_wins_over_an_experiment_of_the_same_name(repo: Path) -> None:
    head = commit(repo, "{}", "first")
    experiment(repo, head, "release", '{"x": 1}')
    run(["git", "tag", "release"], repo)
    assert resolve(repo, "release") == Revision("release", head)


def test_an_unknown_spec_is_one_clear_error(repo: Path, tmp_path: Path) -> None:
    commit(repo, "{}", "first")
    for where in (repo, tmp_path):  # a repository, and a directory that is none
        with pytest.raises(UserError) as err:
            resolve(where, "no-such-rev")
        assert str(err.value) == (
            f"'no-such-rev' is neither a git revision nor a DVC experiment in {where}"
        )


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("refs/exps/ab/cdef/name", ("abcdef", "name")),
        ("refs/exps/exec/EXEC_BASELINE", None),
        ("refs/exps/celery/stash", None),
        ("refs/heads/ab/cd/name", None),
    ],
)
def test_experiment_refs_are_told_from_dvc_bookkeeping(
    ref: str, parsed: tuple[str, str] | None
) -> None:
    assert parse_experiment_ref(ref) == parsed


def test_an_output_kept_in_the_dvc_cache_is_read_at_its_commit(repo: Path) -> None:
    """Predictions are a DVC output, not in git: read through dvc.api from the cache."""
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "core.analytics", "false"], repo)
    out = repo / "data" / "predictions.jsonl"
    out.parent.mkdir()
    out.write_text('{"id": 1}\n')
    run(["dvc", "add", "-q", "data/predictions.jsonl"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "predictions"], repo)
    out.write_text('{"id": 2}\n')  # the workspace moves on

    assert read_at(repo, resolve(repo, "main"), "data/predictions.jsonl") == b'{"id": 1}\n'
    assert read_at(repo, resolve(repo, "workspace"), "data/predictions.jsonl") == b'{"id": 2}\n'
    assert read_at(repo, resolve(repo, "main"), "data/other.jsonl") is None
