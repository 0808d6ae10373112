"""Atomic writes: all or nothing, and recognisable leftovers."""

from __future__ import annotations

import json
import os

import pytest

from dldfd_hf._io import (
    TEMPORARY_PATTERN,
    atomic_folder,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    temporary_name,
)


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "results.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert os.listdir(target.parent) == ["results.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "card.md"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["card.md"]


def test_temporary_names_are_unique_and_parseable(tmp_path):
    first, second = temporary_name(tmp_path / "x.parquet"), temporary_name(tmp_path / "x.parquet")
    assert first != second and first.parent == tmp_path
    match = TEMPORARY_PATTERN.match(first.name)
    assert match and match["name"] == "x.parquet" and int(match["pid"]) == os.getpid()


def test_atomic_folder_appears_complete_or_not_at_all(tmp_path):
    target = tmp_path / "export"
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as staging:
            (staging / "model.safetensors").write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []
    with atomic_folder(target) as staging:
        assert staging.parent == tmp_path and staging != target and not any(staging.iterdir())
        (staging / "config.json").write_text("{}")
    assert os.listdir(target) == ["config.json"] and os.listdir(tmp_path) == ["export"]


def test_atomic_folder_replaces_a_non_empty_folder_only_when_asked_and_only_when_complete(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match=r"export already exists and is not empty \(pass overwrite=True"):
        with atomic_folder(target):
            pass
    with pytest.raises(RuntimeError):
        with atomic_folder(target, overwrite=True) as staging:
            (staging / "new.txt").write_text("new")
            raise RuntimeError("interrupted")
    assert os.listdir(target) == ["old.txt"]
    with atomic_folder(target, overwrite=True) as staging:
        (staging / "new.txt").write_text("new")
    assert os.listdir(target) == ["new.txt"] and os.listdir(tmp_path) == ["export"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="exists and is not a folder"):
        with atomic_folder(tmp_path / "file"):
            pass


def test_atomic_folder_with_a_named_staging_folder_clears_a_killed_runs_leftovers(tmp_path):
    staging = tmp_path / ".step_00000010.tmp"
    staging.mkdir()
    (staging / "half.bin").write_bytes(b"x")
    with atomic_folder(tmp_path / "step_00000010", staging=staging) as folder:
        assert folder == staging and not any(folder.iterdir())
        (folder / "state.json").write_text("{}")
    assert os.listdir(tmp_path / "step_00000010") == ["state.json"] and not staging.exists()
