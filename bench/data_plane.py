#!/usr/bin/env python3
"""The daemon's ranged S3 reads on boto3 against obstore (``[s3] data_plane``), one run, one SeaweedFS.

Starts a private SeaweedFS on 127.0.0.1 (``tests/servers.py``, stopped by PID)
and measures, each in a fresh process:

1. **ranges**: ``S3Backend.get_ranges`` of 8 MiB ranges over one 256 MiB
   object (``--passes`` times), by 4 and 8 threads, for each data plane:
   MB/s, the fetching process's CPU per GB (the side thread's own CPU taken
   out), and how many loop turns a pure-Python thread running beside the
   fetches got done, against the same thread running alone;
2. **mount**: a cold read (empty mountfs cache, page cache dropped) of one
   big file (``--mount-size``) through ``mountfs mount`` of an S3 store, one
   reader: MB/s, the daemon's CPU per GB and its peak RSS (``VmHWM``).

Prints a table and writes JSON to ``bench/results/data_plane-<time>.json``.
Usage: ``python bench/data_plane.py [--passes N] [--mount-size 512M] [--skip-mount]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "daemon"))

OBJECT = 256 << 20
RANGE = 8 << 20
PLANES = ("boto3", "obstore")


def _spin(stop: threading.Event, out: dict[str, float]) -> None:
    """A pure-Python thread: counts loop turns until ``stop``, and its own CPU."""
    n = 0
    t0 = time.thread_time()
    while not stop.is_set():
        for _ in range(1000):
            n += 1
    out["turns"] = n
    out["cpu"] = time.thread_time() - t0


def child_ranges(plane: str, threads: int, host: str, settings: str, bucket: str, passes: int) -> dict[str, Any]:
    """One process's fetches: the figures of one plane at one thread count."""
    from mountfs.backends.s3 import S3Backend
    from mountfs.config import Config

    cfg = Config(s3_hosts={host: json.loads(settings)}, s3={"data_plane": plane}, environ={})
    store = S3Backend.from_url(f"s3://{host}/{bucket}", cfg)
    assert (store._ranges is not None) == (plane == "obstore")
    offsets = [o for _ in range(passes) for o in range(0, OBJECT, RANGE)]

    def fetch(off: int) -> int:
        return sum(len(p) for p in store.get_ranges("blob", off, [(0, RANGE)]))

    with ThreadPoolExecutor(threads) as pool:  # warm the connections
        list(pool.map(fetch, offsets[:threads]))
        # the side thread alone, for as long as the fetches will take roughly
        stop, alone = threading.Event(), {}
        t = threading.Thread(target=_spin, args=(stop, alone))
        t0 = time.monotonic()
        t.start()
        time.sleep(1.0)
        stop.set()
        t.join()
        alone_rate = alone["turns"] / (time.monotonic() - t0)

        stop, beside = threading.Event(), {}
        t = threading.Thread(target=_spin, args=(stop, beside))
        c0, w0 = os.times(), time.monotonic()
        t.start()
        got = sum(pool.map(fetch, offsets))
        stop.set()
        t.join()
        wall, c1 = time.monotonic() - w0, os.times()
    store.close()
    cpu = (c1.user - c0.user) + (c1.system - c0.system) - beside["cpu"]
    return {"plane": plane, "threads": threads, "bytes": got, "seconds": wall, "MBps": got / wall / 1e6,
            "cpu_s_per_GB": cpu / (got / 1e9), "side_turns_per_s": beside["turns"] / wall,
            "side_alone_turns_per_s": alone_rate, "side_share": beside["turns"] / wall / alone_rate}


def _drop_caches() -> None:
    subprocess.run(["sync"], check=False)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass


def _proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmHWM", "VmRSS"):
            out[k] = int(v.split()[0]) * 1024
    return out


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mount_runs(server: Any, work: Path, size: int, repeat: int) -> list[dict[str, Any]]:
    """A cold read of one file of ``size`` through a mount, for each plane, ``repeat`` times (one version)."""
    from mfs import build, environment, harness, short_run_dir

    url = server.store_url(server.new_bucket(), "ds")
    config = work / "config.toml"
    config.write_text(f'[s3.hosts."{server.host_port}"]\nkey = "{server.access_key}"\n'
                      f'secret = "{server.secret_key}"\nsecure = false\n')
    env = dict(os.environ, MOUNTFS_STORE=url, MOUNTFS_CACHE_DIR=str(work / "cache"), MOUNTFS_CONFIG=str(config),
               MOUNTFS_RUN_DIR=short_run_dir())
    for k in ("MOUNTFS_CACHE_SIZE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
              "MOUNTFS_S3_DATA_PLANE"):
        env.pop(k, None)
    src = work / "src"
    src.mkdir()
    with open(src / "big.bin", "wb") as fh:
        block = os.urandom(16 << 20)
        for i in range(size // len(block)):
            fh.write(bytes([i & 255]) + block[1:])
    with environment(env):
        ds = build("bench", "big", src)
    shutil.rmtree(src)
    results = []
    for plane in [p for rep in range(repeat) for p in (PLANES if rep % 2 == 0 else PLANES[::-1])]:
        penv = dict(env, MOUNTFS_S3_DATA_PLANE=plane)
        with harness(penv, work) as h:
            h.cli("cache", "clear", env=penv)
            mnt = h.mountpoint(f"mnt-{plane}-{len(results)}")
            d = h.mount(ds.id, mnt, env=penv)
            path = Path(mnt) / "big.bin"
            _drop_caches()
            cpu0, t0, got = _proc_cpu(d.pid), time.monotonic(), 0
            with open(path, "rb", buffering=0) as fh:
                while block := fh.read(1 << 20):
                    got += len(block)
            wall = time.monotonic() - t0
            cpu = _proc_cpu(d.pid) - cpu0
            st = _proc_status(d.pid)
            status = d.status()
            results.append({"plane": plane, "bytes": got, "seconds": wall, "MBps": got / wall / 1e6,
                            "daemon_cpu_s_per_GB": cpu / (got / 1e9), "VmHWM": st["VmHWM"],
                            "fetch_errors": status.get("fetch_errors"), "fetches": status.get("fetches")})
            print(f"  mount {plane}: {got / wall / 1e6:.0f} MB/s, {cpu / (got / 1e9):.2f} daemon CPU s/GB, "
                  f"VmHWM {st['VmHWM'] >> 20} MiB", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--passes", type=int, default=4, help="passes over the 256 MiB object per measurement")
    p.add_argument("--mount-size", default="512M", help="size of the file read through the mount")
    p.add_argument("--skip-mount", action="store_true")
    p.add_argument("--repeat", type=int, default=1, help="runs of every measurement, the planes' order alternating")
    p.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        plane, threads, host, settings, bucket, passes = args.child
        print(json.dumps(child_ranges(plane, int(threads), host, settings, bucket, int(passes))))
        return 0

    from servers import started_seaweed

    from mountfs.config import parse_size

    work = Path(tempfile.mkdtemp(prefix="data-plane-"))
    report: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "ranges": [],
                              "mount": [], "object": OBJECT, "range": RANGE, "passes": args.passes,
                              "cpus": os.cpu_count()}
    try:
        with started_seaweed(work / "weed") as server:
            bucket = server.new_bucket()
            server.client().put_object(Bucket=bucket, Key="blob", Body=os.urandom(OBJECT))
            settings = json.dumps(server.s3_host_settings()[server.host_port])
            for rep, threads in [(r, t) for r in range(args.repeat) for t in (4, 8)]:
                for plane in PLANES if rep % 2 == 0 else PLANES[::-1]:
                    out = subprocess.run([sys.executable, __file__, "--child", plane, str(threads), server.host_port,
                                          settings, bucket, str(args.passes)],
                                         capture_output=True, text=True, check=True, env=dict(os.environ))
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    report["ranges"].append(r)
                    print(f"  ranges {plane} x{threads}: {r['MBps']:.0f} MB/s, {r['cpu_s_per_GB']:.2f} CPU s/GB, "
                          f"side thread {r['side_share']:.2f} of alone", flush=True)
            if not args.skip_mount:
                report["mount"] = mount_runs(server, work, parse_size(args.mount_size), args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nmedians of {args.repeat} run(s) (range); ratio: obstore/boto3 of the medians, and per run\n"
          "| measurement | boto3 | obstore | obstore/boto3 |\n| --- | --- | --- | --- |")

    def row(label: str, rows: list[dict[str, Any]], field: str, scale: float = 1.0) -> None:
        b = [r[field] * scale for r in rows if r["plane"] == "boto3"]
        o = [r[field] * scale for r in rows if r["plane"] == "obstore"]
        per_run = ", ".join(f"{y / x:.2f}" for x, y in zip(b, o))
        cell = lambda v: f"{statistics.median(v):.2f}" + (f" ({min(v):.2f}-{max(v):.2f})" if len(v) > 1 else "")
        print(f"| {label} | {cell(b)} | {cell(o)} | {statistics.median(o) / statistics.median(b):.2f}x "
              f"(runs: {per_run}) |")

    for threads in (4, 8):
        rs = [r for r in report["ranges"] if r["threads"] == threads]
        for field, label in (("MBps", "MB/s"), ("cpu_s_per_GB", "client CPU s/GB"),
                             ("side_share", "Python side thread, share of alone")):
            row(f"8 MiB ranges x{threads} threads, {label}", rs, field)
    if report["mount"]:
        for field, label, scale in (("MBps", "MB/s", 1.0), ("daemon_cpu_s_per_GB", "daemon CPU s/GB", 1.0),
                                    ("VmHWM", "daemon VmHWM MiB", 1 / (1 << 20))):
            row(f"mount, cold read of one file, {label}", report["mount"], field, scale)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"data_plane-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
