"""Git revisions and DVC experiments: one place that names them, resolves them and reads files
at them (used by ``nlpflow review``, ``nlpflow compare`` and ``nlpflow tune``).

A *revision spec* is what a user types: ``workspace``, anything ``git rev-parse`` accepts
(``main``, ``HEAD~1``, a tag, a commit), or the name of a DVC experiment. As in DVC's own
``resolve_rev``, a git revision wins over an experiment of the same name.

DVC keeps each experiment as a git ref ``refs/exps/<baseline[:2]>/<baseline[2:]>/<name>``
pointing at the experiment's commit, where ``baseline`` is the commit it was run on; other
entries under ``refs/exps`` (``exec``, ``celery``, stash refs) are DVC's bookkeeping.

Files at a commit are read from git (``git show``: this project keeps metrics in git), and
outputs kept in the DVC cache through ``dvc.api`` (they must be in the local cache or pullable).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nlpflow.errors import UserError

WORKSPACE = "workspace"
EXPS_PREFIX = "refs/exps"


def git(args: Sequence[str], repo: str | Path, check: bool = True) -> str:
    """``git ARGS`` in ``repo``; its stdout.

    Raises:
        UserError: git exited non-zero and ``check`` is set (the message has git's stderr).
    """
    proc = subprocess.run(
        ["git", *args], cwd=repo, text=True, capture_output=True, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        raise UserError(f"`git {' '.join(args)}` failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout


def head_commit(repo: str | Path) -> str:
    """The full sha of ``HEAD`` (raises UserError outside a git repository)."""
    return git(["rev-parse", "HEAD"], repo).strip()


def experiment_ref(baseline: str, name: str) -> str:
    """The git ref DVC keeps experiment ``name`` of commit ``baseline`` under."""
    return f"{EXPS_PREFIX}/{baseline[:2]}/{baseline[2:]}/{name}"


def parse_experiment_ref(ref: str) -> tuple[str, str] | None:
    """``refs/exps/ab/cdef.../name`` -> (baseline sha, name); None for DVC's other refs."""
    parts = ref.split("/")
    if len(parts) != 5 or parts[:2] != ["refs", "exps"] or len(parts[2]) != 2:
        return None
    return parts[2] + parts[3], parts[4]


def experiment_refs(repo: str | Path, baseline: str | None = None) -> dict[str, str]:
    """Experiment name -> commit sha, for the experiments run on ``baseline`` (a full sha),
    or on any baseline when it is None (a name found on several: the last in ref order)."""
    prefix = experiment_ref(baseline, "").rstrip("/") if baseline else EXPS_PREFIX
    out = git(["for-each-ref", "--format=%(refname) %(objectname)", prefix], repo, check=False)
    refs: dict[str, str] = {}
    for line in out.splitlines():
        ref, _, sha = line.partition(" ")
        parsed = parse_experiment_ref(ref)
        if parsed is not None:
            refs[parsed[1]] = sha
    return refs


@dataclass(frozen=True)
class Revision:
    """A resolved revision spec: a commit, or the workspace (``sha`` None)."""

    spec: str  # as the user typed it
    sha: str | None  # the full commit sha; None = the workspace (files on disk)
    experiment: bool = False  # ``spec`` named a DVC experiment

    @property
    def label(self) -> str:
        """How reports name it: ``workspace``, ``experiment `x```, ``main`` (1a2b3c4d)."""
        if self.sha is None:
            return WORKSPACE
        if self.experiment:
            return f"experiment `{self.spec}`"
        return f"`{self.spec}` ({self.sha[:8]})"


def resolve(repo: str | Path, spec: str) -> Revision:
    """Resolve ``workspace``, a git revision or a DVC experiment name in ``repo``.

    Raises:
        UserError: ``spec`` is none of these (the message names the repository).
    """
    if spec == WORKSPACE:
        return Revision(spec, None)
    sha = git(["rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}"], repo, check=False)
    if sha.strip():
        return Revision(spec, sha.strip())
    exps = experiment_refs(repo)
    if spec in exps:
        return Revision(spec, exps[spec], experiment=True)
    raise UserError(f"'{spec}' is neither a git revision nor a DVC experiment in {repo}")


def read_at(repo: str | Path, rev: Revision, path: str) -> bytes | None:
    """The bytes of ``path`` (relative to ``repo``) at ``rev``; None when it is not there.

    The workspace is read from disk; a commit from git, else (an output kept in the DVC
    cache) through ``dvc.api`` from the local cache or the project's remote.
    """
    if rev.sha is None:
        file = Path(repo) / path
        return file.read_bytes() if file.is_file() else None
    proc = subprocess.run(
        ["git", "show", f"{rev.sha}:{path}"],
        cwd=repo,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode == 0:
        return proc.stdout
    try:
        import dvc.api

        with dvc.api.open(path, repo=str(repo), rev=rev.sha, mode="rb") as fh:
            data: bytes = fh.read()
            return data
    except Exception:  # not tracked, not cached, no remote: all mean "not there"
        return None


def files_at(repo: str | Path, rev: Revision, dirs: Sequence[str]) -> list[str]:
    """Paths (relative, sorted) of the files under ``dirs`` at ``rev`` (git-tracked ones for a
    commit; every file on disk for the workspace)."""
    if rev.sha is None:
        found: list[str] = []
        for d in dirs:
            root = Path(repo) / d
            if root.is_dir():
                found += [str(p.relative_to(repo)) for p in root.rglob("*") if p.is_file()]
        return sorted(found)
    out = git(["ls-tree", "-r", "--name-only", rev.sha, "--", *dirs], repo, check=False)
    return sorted(out.split())
