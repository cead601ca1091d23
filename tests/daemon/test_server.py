"""mountfs/daemon/server.py: one daemon's life (signals, a taken mountpoint, realtime), its status and control requests.

The catalog refresh loop's failures are in tests/daemon/test_daemon_lifecycle.py and test_semantics.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mfs import MOUNTFS, MOUNTFSD, Harness, assert_same_tree, build, pid_alive, random_tree, wait_for

from mountfs.daemon import control, mounts

pytestmark = pytest.mark.fuse


def _runtime_gone(h: Harness, mp: str) -> bool:
    files = mounts.RuntimeFiles(h.run_dir, mp)
    return not os.path.exists(files.socket) and not os.path.exists(files.info)


# --------------------------------------------------------- new: control requests


def test_status_describes_the_mount_and_counts_reads(h: Harness, tmp_path: Path) -> None:
    src = random_tree(tmp_path / "v1", seed=1, files=3)
    v1 = build("p", "n", src)
    mp, one = h.mountpoint("cat"), h.mountpoint("one")
    d = h.start(mp)
    s = d.status()
    assert (s["pid"], s["mountpoint"], s["dataset"]) == (d.pid, mp, "")
    assert s["catalog"]["versions"] == 1 and s["versions_mounted"] == [] and s["reads"] == 0
    assert_same_tree(Path(mp) / "p/n/1.0.0", src)
    s = d.status()
    assert s["versions_mounted"] == [v1.id] and s["reads"] > 0 and s["bytes_read"] > 0
    d1 = h.mount(v1.id, one)
    s1 = d1.status()
    assert s1["dataset"] == v1.id and "catalog" not in s1  # a single-version mount has no catalog to refresh


def test_unknown_request_is_an_error_reply_and_stop_unmounts(h: Harness, tmp_path: Path) -> None:
    build("p", "n", random_tree(tmp_path / "v1", seed=1, files=2))
    mp = h.mountpoint()
    d = h.start(mp)
    sock = d.runtime.socket
    assert control.request(sock, {"op": "reboot"}) == {"ok": False, "error": "unknown control request 'reboot'"}
    assert control.request(sock, {"op": "warmup", "path": "p/missing"})["ok"] is False
    assert control.request(sock, {"op": "stop"}) == {"stopping": True, "ok": True}
    wait_for(lambda: not d.alive(), 15, "the daemon to exit after stop")
    assert not mounts.mounted_fuse(mp) and _runtime_gone(h, mp)
    assert not d.log_problems(), d.log_problems()


# ---------------------------------------- moved from test_daemon_lifecycle.py


@pytest.mark.parametrize("how, sig", [("mountfsd", signal.SIGTERM), ("module", signal.SIGTERM),
                                      ("daemon-run", signal.SIGINT)])
def test_signal_unmounts_cleanly(h: Harness, tmp_path: Path, how: str, sig: int) -> None:
    src = random_tree(tmp_path / "v1", seed=1, files=4)
    build("p", "n", src)
    mp = h.mountpoint()
    d = h.start(mp, how=how)
    assert_same_tree(Path(mp) / "p/n/latest", src)
    assert d.terminate(sig) == 0
    assert not mounts.mounted_fuse(mp)
    assert os.listdir(mp) == []
    assert _runtime_gone(h, mp)
    assert "unmounted" in d.log_text()
    assert not d.log_problems(), d.log_problems()


def test_second_daemon_on_a_live_mountpoint_is_refused(h: Harness, tmp_path: Path) -> None:
    src = random_tree(tmp_path / "v1", seed=1, files=3)
    build("p", "n", src)
    mp = h.mountpoint()
    d = h.start(mp)
    for argv in ([MOUNTFS, "daemon", "run", "--mountpoint", mp], [MOUNTFSD, "--mountpoint", mp]):
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=h.env, stdin=subprocess.DEVNULL)
        assert res.returncode != 0 and "already mounted" in res.stderr, res
    # the first daemon is untouched: still mounted, still answering, runtime files in place
    assert d.alive() and d.status()["pid"] == d.pid
    assert not _runtime_gone(h, mp)
    assert_same_tree(Path(mp) / "p/n/latest", src)
    assert h.cli_json("status")[0]["pid"] == d.pid


def _policies(pid: int) -> dict[int, int]:
    """Scheduling policy of each thread of ``pid`` (SCHED_RESET_ON_FORK included)."""
    return {int(t): os.sched_getscheduler(int(t)) for t in os.listdir(f"/proc/{pid}/task")}


def _realtime_allowed() -> bool:
    """Whether a process started here may take SCHED_FIFO (root or CAP_SYS_NICE, and no cgroup refusing it)."""
    probe = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


@pytest.mark.skipif(not _realtime_allowed(), reason="this environment refuses realtime scheduling")
def test_fuse_thread_realtime_and_its_off_switch(h: Harness, tmp_path: Path) -> None:
    src = random_tree(tmp_path / "v1", seed=1, files=30)
    v1 = build("p", "n", src)
    mp = h.mountpoint("rt")
    d = h.mount(v1.id, mp)
    assert_same_tree(mp, src)  # reads start worker threads, which must stay normal
    policies = _policies(d.pid)
    assert policies.pop(d.pid) == os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
    assert os.sched_getparam(d.pid).sched_priority == 1
    assert policies and set(policies.values()) == {os.SCHED_OTHER}, policies
    assert d.status()["realtime"] is True
    assert "realtime=True" in d.log_text()
    h.cli("umount", mp)

    cfg = tmp_path / "config.toml"
    cfg.write_text("realtime = false\n")
    mp2 = h.mountpoint("normal")
    d2 = h.mount(v1.id, mp2, env={**h.env, "MOUNTFS_CONFIG": str(cfg)})
    assert _policies(d2.pid)[d2.pid] == os.SCHED_OTHER
    assert d2.status()["realtime"] is False
    assert_same_tree(mp2, src)
    h.cli("umount", mp2)
