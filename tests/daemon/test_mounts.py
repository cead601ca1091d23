"""mountfs/daemon/mounts.py: the kernel's mount table, stale mounts, unmounting and per-mount runtime files.

The run dir's defences (owner, mode, symlinks) are tests/security/test_run_dir.py's.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest
from mfs import Harness, assert_same_tree, build, random_tree, wait_for

from mountfs.daemon import mounts
from mountfs.errors import UsageError


def _settle(d) -> None:
    """Wait until the daemon has written what it fetched to its cache (readers are served first)."""
    wait_for(lambda: d.status()["inflight_fetches"] == 0, 10, "the cache writes to finish")


def _runtime_gone(h: Harness, mp: str) -> bool:
    files = mounts.RuntimeFiles(h.run_dir, mp)
    return not os.path.exists(files.socket) and not os.path.exists(files.info)


# ------------------------------------------------------------ runtime files


def test_runtime_files_are_named_by_the_mountpoint(tmp_path: Path) -> None:
    a = mounts.RuntimeFiles("/run/mountfs", "/datasets")
    stem = "/run/mountfs/" + hashlib.sha1(b"/datasets").hexdigest()[:16]
    assert (a.socket, a.info, a.log) == (stem + ".sock", stem + ".json", stem + ".log")
    # short whatever the mountpoint: a unix socket path has at most 107 bytes
    long = mounts.RuntimeFiles("/run/mountfs", "/" + "x" * 300)
    assert len(long.socket) == len("/run/mountfs/") + 16 + len(".sock")
    assert len({mounts.RuntimeFiles("/r", mp).stem for mp in ("/a", "/b", "/a/b", "/a b")}) == 4


def test_a_run_dir_under_a_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    files = mounts.RuntimeFiles(str(tmp_path / "afile" / "deeper" / "run"), str(tmp_path / "mnt"))
    with pytest.raises(UsageError, match=r"cannot create the run dir .*set MOUNTFS_RUN_DIR"):
        files.prepare()
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_info_is_written_whole_listed_and_removed(tmp_path: Path) -> None:
    run_dir = str(tmp_path / "run")
    one, two = mounts.RuntimeFiles(run_dir, "/mnt/one"), mounts.RuntimeFiles(run_dir, "/mnt/two")
    one.prepare()
    two.prepare()  # a second mount finds the run dir there and ours
    one.write_info({"mountpoint": "/mnt/one", "pid": 1})
    one.write_info({"mountpoint": "/mnt/one", "pid": 2})  # replaced, never half written
    two.write_info({"mountpoint": "/mnt/two", "pid": 3})
    assert sorted(os.listdir(run_dir)) == sorted([os.path.basename(one.info), os.path.basename(two.info)])
    assert sorted(d["pid"] for d in mounts.all_runtime(run_dir)) == [2, 3]
    Path(one.socket).write_text("")
    one.remove()
    one.remove()  # already gone is fine
    assert mounts.all_runtime(run_dir) == [{"mountpoint": "/mnt/two", "pid": 3}]
    assert mounts.all_runtime(str(tmp_path / "never-made")) == []


# ---------------------------------------------------------- the mount table


def test_nothing_is_mounted_at_a_plain_folder(tmp_path: Path) -> None:
    assert not mounts.mounted_fuse(str(tmp_path))
    assert not mounts.mounted_fuse(str(tmp_path / "missing"))
    assert not mounts.is_stale(str(tmp_path))
    assert mounts.clean_stale(str(tmp_path)) is False


@pytest.mark.fuse
def test_mounted_fuse_and_unmount_on_a_real_mount(h: Harness, tmp_path: Path) -> None:
    src = random_tree(tmp_path / "v1", seed=1, files=2)
    v1 = build("p", "n", src)
    mp = h.mountpoint("with space")  # the kernel writes it as \040 in mountinfo
    d = h.mount(v1.id, mp)
    link = tmp_path / "link"
    link.symlink_to(mp)
    assert mounts.mounted_fuse(mp) and mounts.mounted_fuse(str(link))  # resolved first
    assert not mounts.mounted_fuse(os.path.dirname(mp))
    assert not mounts.is_stale(mp)
    assert mounts.clean_stale(mp) is False  # alive: left alone
    assert_same_tree(mp, src)
    assert mounts.unmount(mp) is True
    wait_for(lambda: not d.alive(), 10, "the daemon to exit once unmounted")
    assert not mounts.mounted_fuse(mp) and os.listdir(mp) == []


# moved from test_daemon_lifecycle.py: what is_stale's statfs is for
@pytest.mark.fuse
@pytest.mark.allow_warnings
def test_single_version_mount_after_sigkill(h: Harness, tmp_path: Path) -> None:
    """A killed single-version daemon leaves a stale mount; `mountfs mount` again on it just works.

    The version root has an hour-long attribute timeout, so the kernel keeps
    answering stat() for the dead mount: staleness must be probed otherwise.
    """
    src = random_tree(tmp_path / "v1", seed=1, files=5, big=1 << 20)
    build("p", "n", src)
    mp = h.mountpoint()
    d = h.mount("p/n/1.0.0", mp)
    assert_same_tree(mp, src)
    _settle(d)
    d.terminate(signal.SIGKILL)
    assert mounts.mounted_fuse(mp) and mounts.is_stale(mp)
    d2 = h.mount("p/n/1.0.0", mp)
    assert d2.pid != d.pid
    assert_same_tree(mp, src)
    assert d2.status()["bytes_fetched"] == 0
    d2.terminate(signal.SIGKILL)
    h.cli("umount", mp)
    assert not mounts.mounted_fuse(mp) and _runtime_gone(h, mp)
