"""mountfs/daemon/mounts.py: the kernel's mount table, stale mounts, unmounting and per-mount runtime files.

The run dir's defences (owner, mode, symlinks) are tests/security/test_run_dir.py's.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mfs import MOUNTFSD, Harness, assert_same_tree, build, random_tree, wait_for

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


# ------------------------------------------- the folder a mount goes on (as mount(8) and JuiceFS)


def _one_line_error(res: subprocess.CompletedProcess, *wanted: str) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == UsageError.exit_code and len(lines) == 1, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr and all(w in lines[0] for w in wanted), lines
    return lines[0]


@pytest.mark.fuse
def test_a_missing_mountpoint_is_created_one_level_and_removed_at_umount(h: Harness, tmp_path: Path) -> None:
    src = random_tree(tmp_path / "v1", seed=1, files=2)
    v1 = build("p", "n", src)
    mp = str(h.workdir / "new")
    assert not os.path.exists(mp)
    res = h.cli("mount", v1.id, mp)
    h.mountpoints.add(mp)
    assert f"created mountpoint {mp}" in res.stderr and "mounted p/n" in res.stdout
    assert_same_tree(mp, src)
    h.cli("umount", mp)
    assert not os.path.exists(mp) and _runtime_gone(h, mp)

    # a missing parent: nothing is created, one line says why
    deep = h.workdir / "no" / "such" / "mnt"
    _one_line_error(h.cli("mount", v1.id, str(deep), code=None), "parent folder", str(deep.parent), "does not exist")
    assert not (h.workdir / "no").exists()
    # a file where the folder must be
    (h.workdir / "afile").write_text("x")
    _one_line_error(h.cli("mount", v1.id, str(h.workdir / "afile"), code=None), "not a folder")

    # a folder that was there stays after umount, and one the daemon made stays if something was put in it
    kept = h.mountpoint("kept")
    h.mount(v1.id, kept)
    h.cli("umount", kept)
    assert os.path.isdir(kept)


@pytest.mark.fuse
def test_a_non_empty_mountpoint_is_refused_unless_nonempty(h: Harness, tmp_path: Path) -> None:
    src = random_tree(tmp_path / "v1", seed=1, files=2)
    v1 = build("p", "n", src)
    mp = h.mountpoint("busy")
    Path(mp, "mine.txt").write_text("the user's own")
    for extra in ([], ["--writable"]):  # the writable mount refuses before it makes a draft
        drafts = len(h.cli_json("search", "--all"))
        _one_line_error(h.cli("mount", *extra, v1.id, mp, code=None), f"mountpoint {mp} is not empty", "--nonempty")
        assert len(h.cli_json("search", "--all")) == drafts
    assert not mounts.mounted_fuse(mp)
    d = h.mount(v1.id, mp, "--nonempty")
    assert_same_tree(mp, src)  # the folder's own file is hidden while mounted
    h.cli("umount", mp)
    wait_for(lambda: not d.alive(), 10, "the daemon to exit")
    assert os.listdir(mp) == ["mine.txt"] and Path(mp, "mine.txt").read_text() == "the user's own"
    d = h.mount(v1.id, mp, "--writable", "--nonempty")
    assert "mine.txt" not in os.listdir(mp)
    h.cli("umount", mp)
    assert os.listdir(mp) == ["mine.txt"]


@pytest.mark.fuse
def test_the_catalog_daemon_keeps_the_folder_rules(h: Harness, tmp_path: Path) -> None:
    build("p", "n", random_tree(tmp_path / "v1", seed=1, files=1))
    mp = h.mountpoint("catalog")
    Path(mp, "x").write_text("x")
    res = subprocess.run([MOUNTFSD, "--mountpoint", mp], capture_output=True, text=True, env=h.env, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == UsageError.exit_code, res
    assert f"mountpoint {mp} is not empty" in res.stderr and "--nonempty" in res.stderr, res.stderr
    assert not mounts.mounted_fuse(mp)
    d = h.start(mp, how="mountfsd", extra=["--nonempty"])
    assert "p" in os.listdir(mp)
    d.terminate()
    assert os.listdir(mp) == ["x"]
    # a missing one: created, and gone again when the daemon stops on SIGTERM
    new = str(h.workdir / "cat-new")
    d = h.start(new, how="mountfsd")
    assert "created mountpoint" in d.log_text()
    d.terminate()
    assert not os.path.exists(new)
    res = subprocess.run([MOUNTFSD, "--mountpoint", str(h.workdir / "gone" / "mnt")], capture_output=True,
                         text=True, env=h.env, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == UsageError.exit_code and "parent folder" in res.stderr, res.stderr


@pytest.mark.fuse
@pytest.mark.allow_warnings
def test_umount_after_sigkill_removes_the_mountpoint_the_daemon_made(h: Harness, tmp_path: Path) -> None:
    v1 = build("p", "n", random_tree(tmp_path / "v1", seed=1, files=1))
    mp = str(h.workdir / "made")
    h.mountpoints.add(mp)
    d = h.mount(v1.id, mp)
    assert json.loads(Path(d.runtime.info).read_text())["created_mountpoint"] is True
    d.terminate(signal.SIGKILL)
    h.cli("umount", mp)
    assert not os.path.exists(mp) and not mounts.mounted_fuse(mp)


@pytest.mark.fuse
@pytest.mark.allow_warnings
def test_a_remount_after_sigkill_inherits_the_removal_of_the_mountpoint(h: Harness, tmp_path: Path) -> None:
    v1 = build("p", "n", random_tree(tmp_path / "v1", seed=1, files=1))
    mp = str(h.workdir / "made-again")
    h.mountpoints.add(mp)
    h.mount(v1.id, mp).terminate(signal.SIGKILL)
    d = h.mount(v1.id, mp)  # no umount between: the new daemon cleans the dead mount
    assert "created by a daemon that was killed" in d.log_text()
    h.cli("umount", mp)
    assert not os.path.exists(mp) and not mounts.mounted_fuse(mp)


@pytest.mark.fuse
def test_status_names_what_a_mount_serves(h: Harness, tmp_path: Path) -> None:
    v1 = build("p/q", "n", random_tree(tmp_path / "v1", seed=1, files=1), version="1.2")
    d = h.mount(v1.id, h.mountpoint())
    reply = d.status()
    assert (reply["project"], reply["name"], reply["version"], reply["dataset"]) == ("p/q", "n", "1.2", v1.id)
    out = h.cli("status").stdout
    assert f"p/q/n 1.2 ({v1.id})" in out, out
    cat = h.start(h.mountpoint("cat"))
    assert cat.status()["name"] == ""
    assert any(line.startswith(cat.mountpoint) and " catalog " in f"{line} " for line in h.cli("status").stdout
               .splitlines()), h.cli("status").stdout


# ------------------------------------------------------------------ the mounts' logs


def test_a_mountpoints_log_is_rotated_once_past_its_size(tmp_path: Path) -> None:
    files = mounts.RuntimeFiles(str(tmp_path), "/mnt/x")
    files.prepare()
    files.rotate_log(10)  # none yet: nothing to do
    Path(files.log).write_bytes(b"a" * 11)
    files.rotate_log(10)
    assert not os.path.exists(files.log) and Path(files.log + ".1").read_bytes() == b"a" * 11
    Path(files.log).write_bytes(b"b" * 5)
    files.rotate_log(10)  # small: kept as it is, appended to
    assert Path(files.log).read_bytes() == b"b" * 5
    Path(files.log).write_bytes(b"c" * 20)
    files.rotate_log(10)  # the previous .log.1 goes: at most two files per mountpoint
    assert Path(files.log + ".1").read_bytes() == b"c" * 20 and not os.path.exists(files.log)


def test_logs_of_mountpoints_not_used_for_long_are_pruned(tmp_path: Path) -> None:
    run = str(tmp_path / "run")
    os.mkdir(run)
    live, old, fresh = (mounts.RuntimeFiles(run, m) for m in ("/mnt/live", "/mnt/old", "/mnt/fresh"))
    for f in (live, old, fresh):
        Path(f.log).write_text("log\n")
    Path(old.log + ".1").write_text("older\n")
    live.write_info({"mountpoint": "/mnt/live", "pid": 1})
    Path(run, "unrelated.txt").write_text("not a log")
    month_ago = time.time() - 31 * 24 * 3600
    for p in (live.log, old.log, old.log + ".1", os.path.join(run, "unrelated.txt")):
        os.utime(p, (month_ago, month_ago))
    assert mounts.prune_logs(run) == 2
    assert sorted(os.listdir(run)) == sorted(os.path.basename(p) for p in (
        live.log, live.info, fresh.log, os.path.join(run, "unrelated.txt")))


@pytest.mark.fuse
def test_mount_rotates_a_large_log_and_writes_to_a_fresh_one(h: Harness, tmp_path: Path, monkeypatch) -> None:
    v1 = build("p", "n", random_tree(tmp_path / "v1", seed=1, files=1))
    mp = h.mountpoint()
    files = mounts.RuntimeFiles(h.run_dir, mp)
    files.prepare()
    Path(files.log).write_bytes(b"old line\n" * ((mounts.LOG_MAX_BYTES // 9) + 1))
    h.mount(v1.id, mp)
    assert Path(files.log + ".1").read_bytes().startswith(b"old line")
    assert b"old line" not in Path(files.log).read_bytes()
    h.cli("umount", mp)
