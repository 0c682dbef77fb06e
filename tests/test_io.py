"""Atomic writes: a writer that fails publishes nothing and leaves the old output intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpflow.io import atomic_dir, atomic_file, read_json, write_json


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_file(target) as fh:
        fh.write('{"half": ')
        raise RuntimeError("killed mid-write")
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_failed_dir_write_keeps_old_dir(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "x").write_text("new")
        raise RuntimeError("killed")
    assert (target / "x").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    with atomic_dir(target) as tmp:
        (tmp / "y").write_text("new")
    assert [p.name for p in target.iterdir()] == ["y"]
