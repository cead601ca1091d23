"""cli/mounts.py: mount, umount, status, warmup, cache and daemon commands, as people and scripts see them.

These run in-process without a daemon; the same commands against real mounts are in tests/daemon/
(test_daemon_lifecycle.py, test_server.py, test_mounts.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mountfs.daemon import mounts


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own runtime folder (never the real /run/mountfs)."""
    path = tmp_path / "run"
    monkeypatch.setenv("MOUNTFS_RUN_DIR", str(path))
    return path


def _leftover(run_dir: Path, mountpoint: str, pid: int = 999_999_999) -> mounts.RuntimeFiles:
    """The description a daemon killed with SIGKILL leaves behind: its socket answers no one."""
    files = mounts.RuntimeFiles(str(run_dir), mountpoint)
    files.prepare()
    files.write_info({"pid": pid, "mountpoint": mountpoint, "socket": files.socket, "dataset": ""})
    return files


# ---------------------------------------------------------------------- status


def test_status_with_no_mounts(env, mountfs, run_dir) -> None:
    assert mountfs.json("status") == []
    res = mountfs("status")
    assert res.stdout == "no mounts\n"
    assert not run_dir.exists()  # status only reads: it makes no run dir


def test_status_shows_a_dead_daemon_and_how_to_clean_up(env, mountfs, run_dir, tmp_path) -> None:
    mp = str(tmp_path / "gone")
    _leftover(run_dir, mp, pid=4242)
    assert mountfs.json("status") == [{"mountpoint": mp, "pid": 4242, "dead": True}]
    line = mountfs("status").stdout.splitlines()[1]  # under the header
    assert line.split()[:2] == [mp, "4242"] and "dead: run `mountfs umount`" in line


# ---------------------------------------------------------------------- umount


def test_umount_of_a_folder_that_is_not_a_mount_is_one_line(env, mountfs, run_dir, tmp_path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    line = mountfs.fails("umount", str(plain), code=3)
    assert line == f"mountfs: error: nothing is mounted at {os.path.realpath(plain)}"
    line = mountfs.fails("umount", str(tmp_path / "missing"), code=3)
    assert "nothing is mounted at" in line


def test_umount_after_a_dead_daemon_clears_its_description(env, mountfs, run_dir, tmp_path) -> None:
    mp = tmp_path / "gone"
    mp.mkdir()
    files = _leftover(run_dir, str(mp))
    mountfs.fails("umount", str(mp), code=3)  # nothing mounted there any more: says so ...
    assert not os.path.exists(files.info)  # ... and `mountfs status` stops listing it
    assert mountfs.json("status") == []


# ---------------------------------------------------------------------- warmup


def test_warmup_outside_any_mount_is_one_line(env, mountfs, run_dir, tmp_path) -> None:
    line = mountfs.fails("warmup", str(env.data), code=3)
    assert line == (f"mountfs: error: {os.path.realpath(env.data)} is not inside a mountfs mount of this user; "
                    "see `mountfs status`")


# ----------------------------------------------------------------------- cache
# moved from test_cli_errors.py


def test_cache_commands_need_no_store(env, mountfs, monkeypatch):
    # the cache is local: a store that cannot be reached must not stop info, evict or clear
    import xxhash

    from mountfs.cache import ChunkCache

    with ChunkCache(str(env.cache), 1 << 30) as cache:
        cache.put(xxhash.xxh3_128_digest(b"chunk"), b"chunk")
    monkeypatch.setenv("MOUNTFS_STORE", "s3://127.0.0.1:9/nowhere")
    assert mountfs.json("cache", "info")["count"] > 0
    mountfs("cache", "evict", "--to", "0")
    mountfs("cache", "clear")
    assert mountfs.json("cache", "info")["count"] == 0
