#!/usr/bin/env python3
"""Read benchmark: finalized versions served through FUSE by the mountfs daemon, from an S3 store.

One run, everything on this machine:

1. starts its own SeaweedFS on 127.0.0.1 (``tests/servers.py``'s launcher, with
   the peer harness's 1 GiB volumes) and
   generates, from fixed seeds, A (10,000 files of 80-120 KiB in 100 folders),
   B (4 files of 256 MiB) and M (``--files`` files of 16-64 B in 1000 folders,
   default 1,000,000);
2. ingests each as one version with the mountfs SDK into
   ``s3://127.0.0.1:PORT/mountfs/read`` (keys in a ``MOUNTFS_CONFIG`` file), and
   puts A and B as plain objects in bucket ``plain`` for the boto3 baseline;
3. per repeat: the baselines (``read_local.py``: local disk cold and warm, B in
   4 KiB pages, boto3 from bucket ``plain``), then A and B through ``mountfs
   mount`` (``read_mount.py``: walks, cold, warm and own-cache reads, B's large
   folios, the daemon's memory);
4. S (``read_shuffle.py``): 6,000 files of 40-160 KiB in 50 class folders read
   cold in a seeded random order by 4 and 8 worker processes (a DataLoader's
   shape), local disk and mountfs in the same run (``--baseline-pythonpath``:
   also a daemon running older code, as "before");
5. mounts M with an empty cache dir (``read_million.py``) and times the first
   ``ls`` of its root after ``mountfs mount`` returns, and the daemon's RSS.

Every byte read is checked against an xxh3 of the source (``--no-verify`` skips
it).  Targets come from the issue (``read_table.py``); the ones relative to
peers (JuiceFS, rclone, weed mount) read the peer harness's run JSON
(``read_peers.py``; ``--peers``, default the newest
``/tmp/peerbench/results/run-*.json`` of the same preset).

    .venv/bin/python bench/read.py --quick          # smoke run, ~1-2 min
    .venv/bin/python bench/read.py                  # the real sizes, ~15 min, ~10 GB of disk
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import options  # noqa: E402
from harness.data import many_spec  # noqa: E402
from harness.report import stamp  # noqa: E402
from read_bench import SEED, Bench  # noqa: E402
from read_local import baselines  # noqa: E402
from read_million import part_million  # noqa: E402
from read_mount import mounted  # noqa: E402
from read_peers import load_peers  # noqa: E402
from read_shuffle import FULL as S_FULL, QUICK as S_QUICK, part_shuffled, print_shuffled  # noqa: E402
from read_table import build_rows, print_report  # noqa: E402

PARTS = ("a", "b", "m", "s")


def measure(b: Bench, i: int, data: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """One repeat of the A/B measurements: the baselines, then the mounts."""
    run: dict[str, Any] = {"local": {}, "local4k": {}, "boto3": {}, "mountfs": {}}
    baselines(b, i, data, run)
    mounted(b, i, data, ids, run["mountfs"])
    if "S" in data:
        part_shuffled(b, i, data["S"], ids["S"], run.setdefault("S", {}))
    return run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = options.parser("read", __doc__ or "", PARTS, quick="A = 500 files, B = 2 x 16 MiB, M = 20,000 files",
                       work="work folder (default: a new /tmp folder, removed at the end); "
                            "generated data in a given folder is kept and reused, stores and caches are not",
                       only="parts: a (10k small files), b (large files), m (the million-file version), "
                            "s (small files read shuffled by worker processes)",
                       repeat="repeats of the A/B measurements (medians are reported)")
    p.add_argument("--files", type=int, default=None, help="files in M (default 1,000,000; 20,000 with --quick)")
    p.add_argument("--peers", nargs="*", default=None, help="peer harness run JSON(s) (default: the newest "
                   "$PEERS_OUT/run-*.json of the same preset)")
    p.add_argument("--baseline-pythonpath", metavar="DIR", default=None, help="S: also run the mountfs passes "
                   "with daemons started with PYTHONPATH=DIR (a copy of the package from before a change)")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="do not check the bytes read")
    p.add_argument("--no-walk", action="store_true", help="skip the find over all of M")
    p.add_argument("--profile", metavar="DIR", default=None, help="py-spy record the daemon in each mountfs phase "
                   "into DIR (raw collapsed stacks; perturbs the numbers)")
    p.add_argument("--profile-opts", default="", help="more py-spy record options, e.g. '--gil' (only samples "
                   "holding the GIL: where the daemon's Python CPU goes) or '--native'")
    return options.parse(p, argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    b = Bench(args)
    if os.geteuid() != 0:
        b.log("not root: page cache cannot be dropped (cold numbers are not cold) and mounts may be refused")
    b.log(f"work dir {b.work}; results -> {args.out}")
    t_start = time.perf_counter()
    try:
        data: dict[str, Any] = {}
        if "a" in args.parts:
            data["A"] = b.gen("A", b.sizes.A, SEED, digests=True)
        if "b" in args.parts:
            data["B"] = b.gen("B", b.sizes.B, SEED + 1, digests=True)
        if "s" in args.parts:
            data["S"] = b.gen("S", S_QUICK if args.quick else S_FULL, SEED + 3, digests=True)
        if "m" in args.parts:
            data["M"] = b.gen(f"M{b.sizes.many}", many_spec(b.sizes.many), SEED + 2)
        b.start_server()
        ids: dict[str, str] = {}
        for key in ("A", "B"):
            if key in data:
                ids[key] = b.ingest(key, data[key]["path"])["id"]
                b.put_plain(key, data[key])
        if "S" in data:
            ids["S"] = b.ingest("S", data["S"]["path"])["id"]
        b.save()
        for i in range(args.repeat):
            b.doc["runs"].append(measure(b, i, data, ids))
            b.save()
        if "M" in data:
            ids["M"] = b.ingest("M", data["M"]["path"])["id"]
            b.save()
            part_million(b, data["M"], ids["M"])
        b.doc["peers"] = load_peers(b)
    finally:
        b.stop()
        b.doc["wall_s"] = time.perf_counter() - t_start
        b.doc["finished"] = stamp()
        b.doc["profiles"] = b.profiler.files
        try:
            b.rows = build_rows(b)
        except Exception as exc:  # noqa: BLE001 - a partial run still writes its raw numbers
            b.log(f"table: {exc!r}")
        b.close()
    print_report(b)
    b.doc["shuffled_rows"] = print_shuffled(b.doc)
    b.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
