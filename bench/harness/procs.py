"""``/proc`` probes: a process's CPU and memory, the machine's CPU, page-cache drops.

The CPU shares are the noise indicator on a shared machine: what the bench's
own processes used during a pass against what the whole machine did.
"""

from __future__ import annotations

import os
import resource


def drop_caches() -> bool:
    """``sync`` then drop the page cache; False when not allowed (not root, or /proc read-only)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def drop_count() -> int:
    """How many times anyone dropped the page cache since boot (``drop_pagecache`` in /proc/vmstat)."""
    try:
        with open("/proc/vmstat") as fh:
            for line in fh:
                if line.startswith("drop_pagecache "):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_status(pid: int, key: str) -> int | None:
    """``VmHWM``/``VmRSS``... of a process in bytes, None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _stat_fields(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` after the command name (which may hold spaces and parentheses): state first."""
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def proc_cpu_s(pid: int | None) -> float:
    """user+sys CPU seconds of a process (0 if there is none or it is gone)."""
    if not pid:
        return 0.0
    try:
        f = _stat_fields(pid)
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def ppid(pid: int) -> int:
    """Parent PID, 0 if the process is gone."""
    try:
        return int(_stat_fields(pid)[1])
    except (OSError, IndexError, ValueError):
        return 0


def alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def own_cpu_s() -> float:
    """CPU seconds of this process and its waited-for children."""
    a, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + c.ru_utime + c.ru_stime


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as fh:
        vals = [int(x) for x in fh.readline().split()[1:9]]
    return sum(vals) - vals[3] - vals[4], sum(vals)


def cpu_shares(before: tuple[int, int], after: tuple[int, int], ours_s: float) -> dict[str, float]:
    """``machine_busy_pct`` between two :func:`machine_busy` samples, and ``other_cpu_pct``: the share
    used by anything but the ``ours_s`` CPU seconds of the bench's own processes."""
    tick = os.sysconf("SC_CLK_TCK")
    busy, cap = (after[0] - before[0]) / tick, max(1e-9, (after[1] - before[1]) / tick)
    return {"machine_busy_pct": round(100 * busy / cap, 1), "other_cpu_pct": round(100 * max(0.0, busy - ours_s) / cap, 1)}
