"""Dataset.mount from Python: a writable copy mounted, edited, finalized into a version, remounted read-only."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from mountfs import Dataset
from mountfs.daemon import mounts
from mountfs.errors import StateError, UsageError


@pytest.fixture
def run_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from mountfs import config

    # unix socket paths are limited to 107 bytes: tmp_path may be too long
    d = tempfile.mkdtemp(prefix="mfs", dir="/tmp")
    monkeypatch.setenv("MOUNTFS_RUN_DIR", d)
    config.set_process_config(None)
    yield d
    for info in mounts.all_runtime(d):
        mp = str(info.get("mountpoint", ""))
        if mounts.mounted_fuse(mp):
            mounts.stop(d, mp)
    shutil.rmtree(d, ignore_errors=True)


def test_mount_edit_finalize_remounts_the_new_version(finalized, tmp_path: Path, run_dir: str) -> None:
    base = finalized({"a.txt": b"alpha\n", "sub/b.bin": os.urandom(50_000)}, name="cats", project="vision")
    ds = Dataset.get(dataset_project="vision", dataset_name="cats", writable_copy=True)
    target = tmp_path / "mnt"
    with ds.mount(target) as path:
        assert path == str(target.resolve())
        Path(path, "a.txt").write_bytes(b"beta\n")
        Path(path, "new.txt").write_bytes(b"new\n")
        os.unlink(Path(path, "sub", "b.bin"))
        # the same draft cannot be mounted twice
        with pytest.raises(UsageError, match="already mounted writable"):
            ds.mount(tmp_path / "mnt2")
    assert not mounts.mounted_fuse(str(target))
    # the changes outlived the unmount; finalizing an unmounted copy with changes would lose them
    with pytest.raises(StateError, match="not mounted"):
        ds.finalize(auto_upload=True)
    ds.mount(target)
    assert Path(target, "a.txt").read_bytes() == b"beta\n"
    assert ds.finalize(auto_upload=True)
    assert ds.is_final()
    # read-only now, showing the new version
    assert os.statvfs(target).f_flag & os.ST_RDONLY
    assert sorted(os.listdir(target)) == ["a.txt", "new.txt"]
    ds.unmount()
    closed = Dataset.get(dataset_id=ds.id)
    assert closed.list_files() == ["a.txt", "new.txt"]
    assert closed.list_added_files() == ["new.txt"] and closed.list_removed_files() == ["sub/b.bin"]
    assert base.list_files() == ["a.txt", "sub/b.bin"]  # the parent never changes
