#!/usr/bin/env python3
"""Fleet benchmark: 4 daemons with separate caches read one version cold from one SeaweedFS at once.

What a multi-node training job does on its first epoch: every node mounts the
same version with its own empty cache and reads all of it.  One run, on this
machine: starts its own SeaweedFS, generates S (6,000 files of 40-160 KiB in 50
folders; ``--quick``: 600 in 10), ingests it once, mounts it ``--nodes`` times
(default 4, each its own cache folder), drops the page cache and reads every
mount at the same time, in two shapes: directory order (8 threads per node) and
shuffled (4 worker processes per node, seeded, a different order per node).

Reported: aggregate MB/s (all bytes / wall time of the phase), each node's MB/s,
and S3 requests per GB from each daemon's own counters (``fetches``: one ranged
read each): a fleet must cost each node what one node costs alone, never a
request storm.  ``--baseline-pythonpath DIR`` runs the same phases once more
with daemons started with ``PYTHONPATH=DIR`` (the code from before a change).

    .venv/bin/python bench/fleet.py --quick
    .venv/bin/python bench/fleet.py --baseline-pythonpath /tmp/mfs_before
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import options  # noqa: E402
from harness.report import mb, stamp  # noqa: E402
from harness.steps import run_step  # noqa: E402
import read_steps  # noqa: E402
from read_bench import SEED, Bench  # noqa: E402
from read_shuffle import FULL, QUICK, _mounts_with  # noqa: E402

SHAPES = ("dir_order", "shuffled")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = options.parser("fleet", __doc__ or "", SHAPES, quick="S = 600 files in 10 folders",
                       work="work folder (default: a new /tmp folder, removed at the end)",
                       only="shapes: dir_order (8 threads per node), shuffled (4 processes per node)",
                       repeat="repeats of every phase")
    p.add_argument("--nodes", type=int, default=4, help="daemons reading at once (default 4)")
    p.add_argument("--baseline-pythonpath", metavar="DIR", default=None,
                   help="also run with daemons started with PYTHONPATH=DIR, as 'before'")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="do not check the bytes read")
    a = options.parse(p, argv)
    a.profile, a.profile_opts, a.files = None, "", None
    return a


def phase(b: Bench, label: str, shape: str, info: dict[str, Any], dataset_id: str, nodes: int,
          pythonpath: str | None, i: int) -> dict[str, Any]:
    """Mount ``nodes`` fresh caches, drop the page cache, read every mount at once."""
    mounts = b.mounts if pythonpath is None else _mounts_with(b, pythonpath)
    ms = []
    try:
        for n in range(nodes):
            cache = b.path(f"cache-{label}-{n}")
            mounts.cli("cache", "clear", cache=cache)
            ms.append(mounts.mount(f"node{n}-{label}", dataset_id, cache=cache))
        b.cold()

        def read(n: int) -> dict[str, Any]:
            m = ms[n]
            if shape == "dir_order":
                args = {"root": m.mnt, "list": info["list"], "threads": 8, "verify": b.args.verify}
                r = run_step(read_steps.MODULE, "read_fs", args).result
            else:
                args = {"root": m.mnt, "list": info["list"], "workers": 4, "seed": SEED + 100 * i + n,
                        "verify": b.args.verify}
                r = run_step(read_steps.MODULE, "read_shuffled", args).result
            if r.get("bad"):
                raise RuntimeError(f"node {n}: {r['bad']} files short or wrong: {r.get('errors')}")
            return {"bytes": r["bytes"], "seconds": r["seconds"], "MBps": mb(r["bytes"]) / r["seconds"]}

        t0 = time.perf_counter()
        with ThreadPoolExecutor(nodes) as pool:
            per = list(pool.map(read, range(nodes)))
        wall = time.perf_counter() - t0
        for n, m in enumerate(ms):
            st = m.stats()
            per[n]["fetches"], per[n]["bytes_fetched"] = st.get("fetches", 0), st.get("bytes_fetched", 0)
            per[n]["req_per_GB"] = per[n]["fetches"] / (per[n]["bytes"] / 1e9)
    finally:
        for m in ms:
            m.stop()
    total = sum(p["bytes"] for p in per)
    out = {"label": label, "shape": shape, "nodes": nodes, "wall_s": wall, "aggregate_MBps": mb(total) / wall,
           "per_node": per}
    speeds = ", ".join(f"{p['MBps']:.0f}" for p in per)
    reqs = ", ".join(f"{p['req_per_GB']:.0f}" for p in per)
    b.log(f"[{i}] {label} {shape}: aggregate {out['aggregate_MBps']:.0f} MB/s; per node {speeds} MB/s; "
          f"requests/GB {reqs}")
    return out


def print_table(doc: dict[str, Any]) -> None:
    print(f"\nfleet: {doc['nodes']} daemons, separate caches, one version read cold from one SeaweedFS at once")
    print(f"{'code':<7} {'shape':<10} {'aggregate MB/s':>14} {'per node MB/s':>24} {'S3 req/GB per node':>22}")
    for r in doc["phases"]:
        per = r["per_node"]
        speeds = " ".join(f"{p['MBps']:.0f}" for p in per)
        reqs = " ".join(f"{p['req_per_GB']:.0f}" for p in per)
        print(f"{r['label']:<7} {r['shape']:<10} {r['aggregate_MBps']:>14.0f} {speeds:>24} {reqs:>22}")

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    b = Bench(args)
    b.doc.update(nodes=args.nodes, phases=[])
    t_start = time.perf_counter()
    try:
        info = b.gen("S", QUICK if args.quick else FULL, SEED + 3, digests=True)
        b.start_server()
        dataset_id = b.ingest("S", info["path"])["id"]
        labels: list[tuple[str, str | None]] = [("after", None)]
        if args.baseline_pythonpath:
            labels.insert(0, ("before", os.path.abspath(args.baseline_pythonpath)))
        for i in range(args.repeat):
            for shape in args.parts:
                for label, pp in labels:
                    b.doc["phases"].append(phase(b, label, shape, info, dataset_id, args.nodes, pp, i))
                    b.save()
    finally:
        b.stop()
        b.doc["wall_s"] = time.perf_counter() - t_start
        b.doc["finished"] = stamp()
        b.close()
    print_table(b.doc)
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
