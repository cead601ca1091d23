"""Measured child processes, and bench steps run in fresh interpreters.

A step is a function of a step module (``ingest_steps.py``, ``read_steps.py``,
``transfer_steps.py``): the bench runs ``python <module> --step NAME`` through
:func:`run_step`, the module's ``__main__`` calls :func:`step_main`.  A fresh
interpreter keeps the step's peak RSS its own and its imports out of the bench;
the step times itself, so interpreter start is excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

Step = Callable[[dict[str, Any]], dict[str, Any]]

# A tiny launcher: the measured command is its child, so ru_maxrss is that
# command's own peak.  (A child forked straight from the bench process would
# report at least the bench's peak: Linux copies the parent's RSS high-water
# mark into the child at fork and keeps it across exec.)  The launcher's own
# interpreter (~10 MB) is the floor of what it can report.
_LAUNCHER = r"""
import json, os, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
p = subprocess.Popen(cmd)
_, status, ru = os.wait4(p.pid, 0)
wall = time.perf_counter() - t0
with open(out, "w") as fh:
    json.dump({"wall_s": wall, "rc": os.waitstatus_to_exitcode(status), "maxrss_kib": ru.ru_maxrss,
               "user_s": ru.ru_utime, "sys_s": ru.ru_stime}, fh)
"""


@dataclass
class Run:
    """One measured child process: wall time, peak RSS, CPU, and what a step reported."""

    wall_s: float
    peak_rss_bytes: int
    user_s: float
    sys_s: float
    result: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"wall_s": self.wall_s, "peak_rss_bytes": self.peak_rss_bytes, "user_s": self.user_s,
                "sys_s": self.sys_s, **({"result": self.result} if self.result else {})}


def run_measured(cmd: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None) -> Run:
    """Run ``cmd``; return its wall time and peak RSS.  Raises ``RuntimeError`` if it fails."""
    fd, stats_path = tempfile.mkstemp(prefix="bench-rusage-", suffix=".json")
    os.close(fd)
    try:
        rc = subprocess.run([sys.executable, "-c", _LAUNCHER, stats_path, *cmd], env=env, cwd=cwd).returncode
        with open(stats_path) as fh:
            st = json.load(fh) if os.path.getsize(stats_path) else {}
    finally:
        os.unlink(stats_path)
    if rc != 0 or st.get("rc") != 0:
        raise RuntimeError(f"command failed (exit {st.get('rc', rc)}): {' '.join(cmd)}")
    return Run(st["wall_s"], st["maxrss_kib"] * 1024, st["user_s"], st["sys_s"])


def run_step(module: str, name: str, args: dict[str, Any], env: Mapping[str, str] | None = None) -> Run:
    """Run step ``name`` of the step module at path ``module`` in a fresh interpreter; its return value is ``Run.result``."""
    fd, out = tempfile.mkstemp(prefix=f"bench-step-{name}-", suffix=".json")
    os.close(fd)
    try:
        run = run_measured([sys.executable, module, "--step", name, "--step-args", json.dumps(args), "--step-out", out], env)
        with open(out) as fh:
            run.result = json.load(fh)
    finally:
        os.unlink(out)
    return run


def step_main(steps: Mapping[str, Step], argv: list[str] | None = None) -> int:
    """Child side of :func:`run_step`: run the step ``argv`` names and write its result."""
    p = argparse.ArgumentParser(description="one bench step, run by the bench itself (harness/steps.py)")
    p.add_argument("--step", choices=sorted(steps), required=True)
    p.add_argument("--step-args", default="{}")
    p.add_argument("--step-out", required=True)
    a = p.parse_args(argv)
    result = steps[a.step](json.loads(a.step_args))
    with open(a.step_out, "w") as fh:
        json.dump(result, fh)
    return 0


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without ``MOUNTFS_*`` settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOUNTFS_")}
    env.update(extra)
    return env


def vm_hwm() -> int:
    """This process's own peak RSS in bytes (VmHWM; a cross-check of the launcher's ru_maxrss)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0
