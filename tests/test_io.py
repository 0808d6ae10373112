"""Atomic writes: all or nothing, and recognisable leftovers."""

from __future__ import annotations

import json
import os

import pytest

from dldfd_hf._io import TEMPORARY_PATTERN, atomic_path, atomic_write_json, atomic_write_text, temporary_name


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
