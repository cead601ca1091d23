"""Helpers shared by the scripts in ``bench/``.

Synthetic data (seeded, incompressible), disk usage, the page cache, measured
subprocesses (wall time and peak RSS of exactly one child), summaries, and the
table/JSON output every bench prints and writes.  Standard library only, so a
bench runs wherever mountfs's venv does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
_BLOCK = 16 << 20

# ---------------------------------------------------------------- machine


def machine_info(path: str) -> dict[str, Any]:
    """What a reader needs to compare two result files: cores, kernel, python, memory, the disk of ``path``."""
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
    info["git"] = _git_state()
    return info


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


def _git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=BENCH_DIR, capture_output=True, text=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except OSError:
        return {}


# ---------------------------------------------------------------- data


def write_random_file(path: str, size: int, rng: random.Random) -> None:
    """``size`` incompressible bytes from ``rng``, written in bounded blocks."""
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, _BLOCK)
            fh.write(rng.randbytes(n))
            left -= n


def _marker_ok(root: str, spec: dict[str, Any]) -> bool:
    try:
        with open(root + ".spec.json") as fh:
            return json.load(fh) == spec
    except (OSError, ValueError):
        return False


def _write_marker(root: str, spec: dict[str, Any]) -> None:
    with open(root + ".spec.json", "w") as fh:
        json.dump(spec, fh)


def gen_tree(root: str, files: int, folders: int, min_size: int, max_size: int, seed: int) -> dict[str, Any]:
    """A deterministic tree ``root/dNNNN/fNNNNNNN.bin`` of random files; reused if already generated with the same spec.

    File ``i`` goes in folder ``i % folders``; sizes are uniform in
    [``min_size``, ``max_size``].  Returns the spec plus ``bytes`` and ``seconds``.
    """
    spec = {"files": files, "folders": folders, "min_size": min_size, "max_size": max_size, "seed": seed}
    if _marker_ok(root, spec):
        size, count = tree_size(root)
        return {**spec, "bytes": size, "seconds": 0.0, "reused": True}
    remove_tree(root)
    t0 = time.perf_counter()
    rng = random.Random(seed)
    width = len(str(max(folders - 1, 1)))
    dirs = [os.path.join(root, f"d{j:0{width}d}") for j in range(folders)]
    for d in dirs:
        os.makedirs(d)
    total = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for i in range(files):
        size = rng.randint(min_size, max_size)
        path = os.path.join(dirs[i % folders], f"f{i:08d}.bin")
        if size > _BLOCK:
            write_random_file(path, size, rng)
        else:
            fd = os.open(path, flags, 0o644)
            try:
                os.write(fd, rng.randbytes(size))
            finally:
                os.close(fd)
        total += size
    _write_marker(root, spec)
    return {**spec, "bytes": total, "seconds": time.perf_counter() - t0, "reused": False}


def tree_files(root: str) -> list[str]:
    """Relative paths of the regular files under ``root``, sorted."""
    out = []
    for dirpath, _, names in os.walk(root):
        out.extend(os.path.relpath(os.path.join(dirpath, n), root) for n in names)
    return sorted(out)


def tree_size(root: str) -> tuple[int, int]:
    """(apparent bytes, file count) of every regular file under ``root``."""
    total = count = 0
    stack = [root]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except FileNotFoundError:
            continue
        with it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
                    count += 1
    return total, count


def remove_tree(path: str) -> None:
    """``rm -rf`` that also copes with read-only files and folders."""
    if os.path.lexists(path):
        if os.geteuid() != 0:  # root ignores permission bits; others must restore write access first
            subprocess.run(["chmod", "-R", "u+rwX", path], check=False, stderr=subprocess.DEVNULL)
        shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path + ".spec.json"):
        os.unlink(path + ".spec.json")


# ---------------------------------------------------------------- page cache


def drop_caches() -> bool:
    """``sync`` then drop the page cache; False when not allowed (not root, or /proc read-only)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- measured subprocesses

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


def run_measured(cmd: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None) -> Run:
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


def run_step(script: str, name: str, args: dict[str, Any], env: dict[str, str] | None = None) -> Run:
    """Run step ``name`` of ``script`` in a fresh interpreter (see :func:`step_main`); its return value is ``Run.result``."""
    fd, out = tempfile.mkstemp(prefix=f"bench-step-{name}-", suffix=".json")
    os.close(fd)
    try:
        run = run_measured([sys.executable, script, "--step", name, "--step-args", json.dumps(args), "--step-out", out], env)
        with open(out) as fh:
            run.result = json.load(fh)
    finally:
        os.unlink(out)
    return run


def step_main(steps: dict[str, Callable[[dict[str, Any]], dict[str, Any]]], argv: list[str] | None = None) -> bool:
    """Child side of :func:`run_step`: if ``argv`` asks for a step, run it, write its result, return True."""
    argv = sys.argv[1:] if argv is None else argv
    if "--step" not in argv:
        return False
    p = argparse.ArgumentParser()
    p.add_argument("--step", choices=sorted(steps), required=True)
    p.add_argument("--step-args", default="{}")
    p.add_argument("--step-out", required=True)
    a = p.parse_args(argv)
    result = steps[a.step](json.loads(a.step_args))
    with open(a.step_out, "w") as fh:
        json.dump(result, fh)
    return True


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without ``MOUNTFS_*`` settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOUNTFS_")}
    env.update(extra)
    return env


# ---------------------------------------------------------------- numbers and output


def summary(values: Iterable[float]) -> dict[str, float]:
    vals = list(values)
    return {"n": len(vals), "median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def fmt_summary(s: dict[str, float], fmt: Callable[[float], str]) -> str:
    """``median`` alone for one run (or identical runs), ``median (min..max)`` otherwise."""
    if s["n"] == 1 or s["min"] == s["max"]:
        return fmt(s["median"])
    return f"{fmt(s['median'])} ({fmt(s['min'])}..{fmt(s['max'])})"


def mb(n: float) -> float:
    """bytes -> MB (10^6), the unit of every MB/s in these benches."""
    return n / 1e6


def fmt_bytes(n: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


@dataclass
class Row:
    """One line of a result table; ``ok`` is None when there is no target."""

    part: str
    metric: str
    value: str
    target: str = ""
    ok: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"part": self.part, "metric": self.metric, "value": self.value, "target": self.target, "ok": self.ok}


class BenchRun:
    """What every bench keeps: its work dir, whether the page cache could be
    dropped before each timed step, its result rows and its JSON document."""

    def __init__(self, args: argparse.Namespace, bench: str, **doc: Any):
        self.args = args
        self.own_work = args.work is None
        self.work = os.path.abspath(args.work or tempfile.mkdtemp(prefix=f"mountfs-bench-{bench}-", dir="/tmp"))
        os.makedirs(self.work, exist_ok=True)
        self.dropped: bool | None = None  # None until the first timed step
        self.rows: list[Row | dict[str, Any]] = []  # read.py's rows carry their own columns
        self.doc: dict[str, Any] = {
            "bench": bench, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv[1:],
            "quick": args.quick, "repeat": args.repeat, "work_dir": self.work,
            "machine": machine_info(self.work), **doc,
        }

    def path(self, *names: str) -> str:
        return os.path.join(self.work, *names)

    def cold(self) -> None:
        """Before every timed step: flush dirty pages and drop the page cache if allowed."""
        ok = drop_caches()
        self.dropped = ok if self.dropped is None else self.dropped and ok

    def save(self) -> None:
        self.doc["caches_dropped"] = bool(self.dropped)
        self.doc["rows"] = [r.as_dict() if isinstance(r, Row) else r for r in self.rows]
        write_json(self.args.out, self.doc)


def print_table(rows: Sequence[Row], file=sys.stdout) -> None:
    head = ("part", "metric", "value", "target", "ok?")
    cells = [head] + [(r.part, r.metric, r.value, r.target, "" if r.ok is None else "ok" if r.ok else "FAIL") for r in rows]
    print_cells(cells, file)


def default_out(bench: str) -> str:
    return os.path.join(BENCH_DIR, "results", f"{bench}-{time.strftime('%Y%m%d-%H%M%S')}.json")


def write_json(path: str, doc: dict[str, Any]) -> None:
    """Write ``doc`` atomically (a crash leaves the previous file or the new one)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=1, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)


def vm_hwm() -> int:
    """This process's own peak RSS in bytes (VmHWM; a cross-check of the launcher's ru_maxrss)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def print_cells(cells: Sequence[Sequence[str]], file=sys.stdout) -> None:
    """A markdown table; the first row is the header."""
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    line = lambda c: "| " + " | ".join(s.ljust(w) for s, w in zip(c, widths)) + " |"  # noqa: E731
    print(line(cells[0]), file=file)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=file)
    for c in cells[1:]:
        print(line(c), file=file)
    file.flush()


def parse_parts(parser, args, parts: Sequence[str]) -> None:
    """``--only a,b`` into ``args.parts``, refusing unknown parts and ``--repeat`` below 1."""
    args.parts = [x.strip().lower() for x in args.only.split(",") if x.strip()]
    bad = [x for x in args.parts if x not in parts]
    if bad or args.repeat < 1:
        parser.error(f"unknown part(s) {bad}; choose from {','.join(parts)}" if bad else "--repeat must be >= 1")


def start_seaweed(workdir: str, log) -> "object":
    """A private SeaweedFS (tests/servers.py: 127.0.0.1 only, random free ports, the
    peer harness's volume settings), started; stop it by PID."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    from servers import SeaweedServer

    remove_tree(workdir)
    server = SeaweedServer(workdir, bulk=True)
    t0 = time.perf_counter()
    server.start()
    log(f"SeaweedFS pid {server.pid} on {server.endpoint_url} ({time.perf_counter() - t0:.1f} s)")
    return server
