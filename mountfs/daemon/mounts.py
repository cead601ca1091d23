"""The kernel's mount table, stale FUSE mounts, unmounting, and per-mount runtime files."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

FSNAME = "mountfs"


def mounted_fuse(path: str) -> bool:
    """Is a mountfs FUSE filesystem mounted at ``path`` (alive or stale)?"""
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                fields = line.split()
                sep = fields.index("-")
                mnt = fields[4].replace("\\040", " ")
                if mnt == real and fields[sep + 1].startswith("fuse") and fields[sep + 2] == FSNAME:
                    return True
    except (OSError, ValueError):
        pass
    return False


def is_stale(path: str) -> bool:
    """A FUSE mount whose daemon is gone answers ENOTCONN to everything the kernel asks it.

    statfs, not stat: the kernel answers stat from its attribute cache (up to
    an hour for a version's root) without asking the dead daemon.
    """
    try:
        os.statvfs(path)
    except OSError as exc:
        return exc.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    return False


def unmount(path: str, lazy: bool = False) -> bool:
    """fusermount3 -u (or -uz); True when nothing is mounted there afterwards."""
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool is None:
        cmd = ["umount", "-l", path] if lazy else ["umount", path]
    else:
        cmd = [tool, "-uz" if lazy else "-u", path]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        log.info("unmount %s: %s", path, res.stderr.strip())
    return not mounted_fuse(path)


def clean_stale(path: str) -> bool:
    """Unmount a dead daemon's mount at ``path``; True if one was cleaned."""
    if mounted_fuse(path) and is_stale(path):
        log.warning("cleaning stale mount at %s left by a dead daemon", path)
        return unmount(path, lazy=True)
    return False


def realtime_thread(priority: int = 1) -> bool:
    """Run the calling thread SCHED_FIFO at ``priority`` (1: the lowest); threads it starts stay normal.

    The thread answering FUSE requests is on every reader's path.  On a busy
    machine a normal thread waits for a core after each wakeup: 1 s of queueing
    per 10,000 cold small files on two cores shared with readers and an S3
    server, and every reader waits with it.  Needs root or CAP_SYS_NICE and a
    scheduler that allows realtime; False when refused.  The kernel caps
    realtime use (``sched_rt_runtime_us``), and the thread only runs to answer.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except OSError:
        return False
    return True


def raise_read_ahead(path: str, kb: int = 1024) -> bool:
    """Let the kernel send 1 MiB reads instead of 128 KiB (root only; FUSE-NOTES item 3)."""
    st = os.stat(path)
    bdi = f"/sys/class/bdi/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/read_ahead_kb"
    try:
        with open(bdi, "w") as fh:
            fh.write(str(kb))
        return True
    except OSError as exc:
        log.info("read-ahead left at the kernel default (%s: %s)", bdi, exc.strerror)
        return False


@dataclass(frozen=True)
class RuntimeFiles:
    """Where one mount's daemon keeps its control socket, description and log."""

    run_dir: str
    mountpoint: str

    @property
    def stem(self) -> str:
        # no realpath() here: inside the daemon that would stat its own mountpoint
        # before it can answer, and hang; callers pass an absolute, resolved path
        return os.path.join(self.run_dir, hashlib.sha1(self.mountpoint.encode()).hexdigest()[:16])

    @property
    def socket(self) -> str:
        return self.stem + ".sock"

    @property
    def info(self) -> str:
        return self.stem + ".json"

    @property
    def log(self) -> str:
        return self.stem + ".log"

    def prepare(self) -> None:
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)

    def write_info(self, doc: dict) -> None:
        tmp = self.info + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(doc, fh)
        os.replace(tmp, self.info)

    def remove(self) -> None:
        for p in (self.socket, self.info):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


def all_runtime(run_dir: str) -> list[dict]:
    """Descriptions of every mount whose daemon wrote one in ``run_dir``."""
    out = []
    try:
        names = sorted(os.listdir(run_dir))
    except FileNotFoundError:
        return out
    for name in names:
        if name.endswith(".json"):
            try:
                with open(os.path.join(run_dir, name)) as fh:
                    out.append(json.load(fh))
            except (OSError, ValueError):
                continue
    return out
