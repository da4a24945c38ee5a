"""The one atomic-write helper (mmsearch_gym.runs.atomic): old or new content, never half, no temp files left."""

from __future__ import annotations

import os
import stat

import pytest

from mmsearch_gym.runs import (
    atomic_file, replace_directory, write_bytes_atomic, write_directory_atomic, write_files_atomic,
)


def _names(directory):
    return sorted(path.name for path in directory.iterdir())


def test_write_bytes_atomic_replaces_and_sets_the_mode(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    write_bytes_atomic(target, b"new", mode=0o644)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert _names(tmp_path) == ["out.bin"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_file(target) as stream:
            stream.write(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == ["out.bin"]


def test_write_files_atomic_replaces_none_when_one_fails(tmp_path):
    first, second = tmp_path / "a.html", tmp_path / "b.html"
    first.write_bytes(b"old a")
    with pytest.raises(TypeError):
        write_files_atomic([(first, b"new a"), (second, "not bytes")])  # type: ignore[list-item]
    assert first.read_bytes() == b"old a"
    assert _names(tmp_path) == ["a.html"]
    write_files_atomic([(first, b"new a"), (second, b"new b")], mode=0o644)
    assert (first.read_bytes(), second.read_bytes()) == (b"new a", b"new b")


def test_replace_directory_retires_the_old_directory(tmp_path):
    target, staging = tmp_path / "index", tmp_path / "staging"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    replace_directory(staging, target)
    assert _names(target) == ["new.txt"]
    assert _names(tmp_path) == ["index"]


def test_write_directory_atomic_leaves_no_staging_directory_on_failure(tmp_path):
    target = tmp_path / "index"

    def broken(staging):
        (staging / "half.npy").write_bytes(b"x")
        raise OSError("no space")

    with pytest.raises(OSError, match="no space"):
        write_directory_atomic(target, broken)
    assert _names(tmp_path) == []
    write_directory_atomic(target, lambda staging: (staging / "manifest.json").write_text("{}"))
    assert _names(target) == ["manifest.json"]
    assert os.listdir(tmp_path) == ["index"]
