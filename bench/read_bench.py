"""``read.py``'s run: SeaweedFS and the mountfs settings, data sets and their ingest, the passes' scaffolding.

A pass is one timed read or walk; :meth:`Bench.cpu_phase` adds what the
daemon, SeaweedFS and the reader spent meanwhile, and what else the machine
did (the noise indicator on a shared VM).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from typing import Any, Callable

import read_steps
from harness.data import remove_tree, sizes
from harness.mounts import Mounts
from harness.procs import cpu_shares, drop_count, machine_busy, own_cpu_s, proc_cpu_s
from harness.profile import PhaseProfiler
from harness.report import fmt_bytes, mb
from harness.run import BenchRun
from harness.servers import mountfs_env, start_seaweed, stop_seaweed, write_mountfs_config
from harness.steps import run_step

SEED = 4321
THREADS = read_steps.THREADS
BUCKET, PLAIN = "mountfs", "plain"
STEP_TIMEOUT = 3600
#: a pass's result: its timings and what the reader reported
Result = dict[str, Any]


class Bench(BenchRun):
    """Work dir, SeaweedFS, environments, mounts, and the collected results."""

    def __init__(self, args: argparse.Namespace):
        super().__init__(
            args, "read", seed=SEED, threads=THREADS, verify=args.verify, data={}, ingest={}, runs=[], million={},
            peers={}, profile=bool(args.profile),
            experiment={k: v for k, v in os.environ.items() if k.startswith("MFS_EXP")},
        )
        s = sizes(args.quick)
        self.sizes = s._replace(many=args.files) if args.files else s
        self.server: Any = None
        self.profiler = PhaseProfiler(args.profile, args.profile_opts)
        self.mounts = Mounts(self.env, self.path("mnt"), self.path("run"), self.profiler, self._record_mount, self.log)

    def _record_mount(self, entry: dict[str, Any]) -> None:
        self.doc.setdefault("mounts", []).append(entry)  # the key appears with the first mount

    # --- SeaweedFS and the mountfs environment --------------------------------------

    def start_server(self) -> None:
        self.server = start_seaweed(self.path("seaweedfs"), self.log)
        for b in (BUCKET, PLAIN):
            self.server.make_bucket(b)
        self.store = self.server.store_url(BUCKET, "read")
        self.config = write_mountfs_config(self.path("mountfs.toml"), self.server)
        self.doc["seaweedfs"] = {"endpoint": self.server.endpoint_url, "store": self.store}

    def stop(self) -> None:
        """Every mount, then SeaweedFS, by PID."""
        self.mounts.stop_all()
        if self.server is not None:
            stop_seaweed(self.server, self.log)

    def s3_args(self) -> dict[str, Any]:
        return {"endpoint": self.server.endpoint_url, "key": self.server.access_key, "secret": self.server.secret_key}

    def env(self, cache: str | None = None) -> dict[str, str]:
        return mountfs_env(self.store, self.config, cache or self.path("cache"), self.path("run"))

    # --- data ----------------------------------------------------------------------

    def ingest(self, key: str, src: str) -> dict[str, Any]:
        self.cold()
        cache = self.path("ingest-cache")
        remove_tree(cache)
        run = run_step(read_steps.MODULE, "ingest", {"name": key, "src": src}, self.env(cache))
        remove_tree(cache)
        r = {**run.result, "wall_s": run.wall_s, "peak_rss_bytes": run.peak_rss_bytes}
        self.doc["ingest"][key] = r
        self.log(f"ingest {key}: {r['files']} files in {r['total_s']:.1f} s "
                 f"({', '.join(f'{k} {v:.1f}' for k, v in r['phases_s'].items())}), id {r['id']}, "
                 f"peak RSS {fmt_bytes(run.peak_rss_bytes)}")
        return r

    def put_plain(self, key: str, info: dict[str, Any]) -> None:
        run = run_step(read_steps.MODULE, "put_plain", {**self.s3_args(), "bucket": PLAIN, "prefix": f"{key}/",
                                                       "root": info["path"], "list": info["list"]})
        self.doc["ingest"][f"plain-{key}"] = run.result
        self.log(f"plain bucket {key}: {fmt_bytes(run.result['bytes'])} in {run.result['seconds']:.1f} s")

    # --- measured operations -------------------------------------------------------

    def read_fs(self, root: str, info: dict[str, Any], threads: int) -> Result:
        run = run_step(read_steps.MODULE, "read_fs", {"root": root, "list": info["list"], "threads": threads,
                                                     "verify": self.args.verify})
        return self._check(run.result, root)

    def read_s3(self, key: str, info: dict[str, Any], ranged: bool) -> Result:
        run = run_step(read_steps.MODULE, "read_s3", {**self.s3_args(), "bucket": PLAIN, "prefix": f"{key}/",
                                                     "list": info["list"], "threads": THREADS, "ranged": ranged,
                                                     "verify": self.args.verify})
        return self._check(run.result, f"s3 {PLAIN}/{key}")

    @staticmethod
    def _check(r: Result, where: str) -> Result:
        if r["bad"]:
            raise RuntimeError(f"{r['bad']} of {r['files']} files read from {where} are short or wrong: {r['errors']}")
        r["MBps"] = mb(r["bytes"]) / r["seconds"]
        return r

    @staticmethod
    def shell(cmd: str, cwd: str) -> Result:
        t0 = time.perf_counter()
        p = subprocess.run(["bash", "-c", cmd], cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"`{cmd}` in {cwd} failed (exit {p.returncode}): {p.stderr[-500:]}")
        return {"seconds": dt, "out": p.stdout.strip()[-200:]}

    def find(self, root: str) -> Result:
        return self.shell("find . -type f | wc -l", root)

    def meta(self, root: str, expect: int, each: Callable[[str, Callable[[], Result]], Result]) -> dict[str, Result]:
        """find (cold, warm) and ls -lR (cold, warm) over ``root``; ``each(name, walk)`` runs one walk."""
        out = {}
        self.cold()
        for k in ("find_cold", "find_warm"):
            r = out[k] = each(k, lambda: self.find(root))
            if int(r["out"]) != expect:
                raise RuntimeError(f"find in {root} saw {r['out']} files, expected {expect}")
        self.cold()
        for k in ("ls_cold", "ls_warm"):
            out[k] = each(k, lambda: self.shell("ls -lR . > /dev/null", root))
        return out

    def cpu_phase(self, pid: int | None, fn: Callable[[], Result]) -> Result:
        """Run ``fn``; add the CPU seconds the daemon, SeaweedFS and the reader (our children) spent meanwhile,
        and ``other_cpu_pct``: the share of the machine used by anything else (other work on a shared VM,
        kernel threads): the noise indicator."""
        sw = self.server.pid if self.server is not None else None
        d0, s0, o0, m0, x0 = proc_cpu_s(pid), proc_cpu_s(sw), own_cpu_s(), machine_busy(), drop_count()
        r = fn()
        d1, s1, o1, m1, x1 = proc_cpu_s(pid), proc_cpu_s(sw), own_cpu_s(), machine_busy(), drop_count()
        # this bench drops caches only between passes: a drop during one came from someone else on the machine
        # (another bench), and a warm pass it hit is not warm; the table leaves such passes out
        r["foreign_drops"] = x1 - x0
        r["cpu_s"] = {"daemon": round(d1 - d0, 2), "seaweedfs": round(s1 - s0, 2), "bench": round(o1 - o0, 2)}
        r.update(cpu_shares(m0, m1, (d1 - d0) + (s1 - s0) + (o1 - o0)))
        r["loadavg"] = os.getloadavg()[0]
        return r

    def say(self, i: int, who: str, what: str, r: Result) -> None:
        extra = f" {r['MBps']:.0f} MB/s" if "MBps" in r else ""
        cpu = (f" (CPU s: daemon {r['cpu_s']['daemon']:.1f}, SeaweedFS {r['cpu_s']['seaweedfs']:.1f}, "
               f"reader {r['cpu_s']['bench']:.1f}; other {r['other_cpu_pct']:.0f}% of the machine)") if "cpu_s" in r else ""
        if r.get("foreign_drops"):
            cpu += f" [page cache dropped {r['foreign_drops']}x by another process during the pass: left out]"
        self.log(f"[{i}] {who} {what}: {r['seconds']:.3f} s{extra}{cpu}")
