"""A fingerprint of the pretrained model ``model.name_or_path`` names, so DVC can see it change.

DVC cannot take a dependency whose path is a param that may be empty, so the ``model_source``
stage (``always_changed``: it runs on every ``dvc repro``, in well under a second) writes
this fingerprint to ``data/model_source.json``, and every stage that loads the model depends
on that file. Unchanged, the file is rewritten byte for byte and nothing downstream reruns;
a file of the model directory edited, added or removed changes it and reruns them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from nlpflow.errors import UserError

# Folders that never hold what a model loads (a git checkout of a hub model, caches).
SKIPPED_DIRS = {".git", "__pycache__", ".cache"}


def directory_digest(path: Path) -> tuple[str, int]:
    """The SHA-256 (hex) over every file's relative path and content, sorted; and the count."""
    digest = hashlib.sha256()
    count = 0
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path)
        if SKIPPED_DIRS & set(rel.parts[:-1]):
            continue
        digest.update(rel.as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
        count += 1
    return digest.hexdigest(), count


def hub_revision(name: str, cache_dir: str | Path | None = None) -> str | None:
    """The commit of ``name``'s ``main`` in the local Hugging Face cache (``cache_dir``,
    default the hub's own), read offline; None when it is not cached."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(name, "config.json", cache_dir=cache_dir)
    except ValueError:  # not a valid repo id
        return None
    if not isinstance(found, str):
        return None
    parts = Path(found).parts  # .../models--org--name/snapshots/<commit>/config.json
    return parts[-2] if len(parts) >= 3 and parts[-3] == "snapshots" else None


def model_fingerprint(name_or_path: str) -> dict[str, Any]:
    """``{"name_or_path", "kind": "none" | "local" | "hub", ...}``: for a local directory its
    content digest and file count, for a hub id the cached revision (None when not cached).

    Raises UserError when ``name_or_path`` looks like a path (it starts with ``.`` or ``/``,
    or names something that exists) but is not a directory.
    """
    if not name_or_path:
        return {"name_or_path": "", "kind": "none"}
    path = Path(name_or_path)
    if path.is_dir():
        sha, files = directory_digest(path)
        return {"name_or_path": name_or_path, "kind": "local", "sha256": sha, "files": files}
    if path.exists() or name_or_path.startswith((".", "/", "~")):
        raise UserError(
            f"params.yaml: model.name_or_path '{name_or_path}' is not a directory; give a "
            "model directory (save_pretrained layout) or a hub id"
        )
    return {"name_or_path": name_or_path, "kind": "hub", "revision": hub_revision(name_or_path)}
