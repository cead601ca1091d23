"""The machine and the code a result came from, so that two result files can be compared."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def machine_info(path: str) -> dict[str, Any]:
    """Cores, kernel, python, memory, the disk of ``path``, the commit."""
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "nproc_usable": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "cpu": _first_line("/proc/cpuinfo", "model name"),
        "mem_total_bytes": _meminfo_bytes("MemTotal"),
        "root": os.geteuid() == 0,
    }
    du = shutil.disk_usage(path)
    info["disk"] = {"path": path, "free_bytes": du.free, "total_bytes": du.total, **_mount_of(path)}
    try:
        info["git"] = {"commit": _git("rev-parse", "HEAD"),
                       "dirty": bool(_git("status", "--porcelain", "--untracked-files=no"))}
    except OSError:
        info["git"] = {}
    return info


def code_state() -> dict[str, Any]:
    """Commit of the working tree and whether mountfs/ differs from it (what a daemon started now runs)."""
    try:
        return {"commit": _git("rev-parse", "--short", "HEAD"), "mountfs_dirty": bool(_git("status", "--porcelain", "mountfs"))}
    except OSError:
        return {}


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def _first_line(path: str, key: str) -> str:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _meminfo_bytes(key: str) -> int:
    value = _first_line("/proc/meminfo", key)
    return int(value.split()[0]) * 1024 if value else 0


def _mount_of(path: str) -> dict[str, str]:
    best = ("", "", "")
    try:
        with open("/proc/mounts") as fh:
            for line in fh:
                dev, mnt, fstype = line.split()[:3]
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[1]):
                    best = (dev, mnt, fstype)
    except OSError:
        pass
    return {"device": best[0], "mount": best[1], "fstype": best[2]}
