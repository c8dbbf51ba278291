"""Atomic writes (``atomic``): a failed write leaves the old file and no debris."""

import errno
import os

import pytest

from ganscope import atomic
from ganscope.errors import GanscopeError


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    target.write_bytes(b"old")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(GanscopeError, match="No space left on device"):
        atomic.write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_path_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(GanscopeError, match="cannot write"):
        atomic.write_json(tmp_path / "file" / "out.json", {})


def test_unreadable_json_names_the_file(tmp_path):
    (tmp_path / "a.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(GanscopeError, match="a.json is unreadable"):
        atomic.read_json(tmp_path / "a.json")
