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
4. mounts M with an empty cache dir (``read_million.py``) and times the first
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
from read_table import build_rows, print_report  # noqa: E402

PARTS = ("a", "b", "m")


def measure(b: Bench, i: int, data: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """One repeat of the A/B measurements: the baselines, then the mounts."""
    run: dict[str, Any] = {"local": {}, "local4k": {}, "boto3": {}, "mountfs": {}}
    baselines(b, i, data, run)
    mounted(b, i, data, ids, run["mountfs"])
    return run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = options.parser("read", __doc__ or "", PARTS, quick="A = 500 files, B = 2 x 16 MiB, M = 20,000 files",
                       work="work folder (default: a new /tmp folder, removed at the end); "
                            "generated data in a given folder is kept and reused, stores and caches are not",
                       only="parts: a (10k small files), b (large files), m (the million-file version)",
                       repeat="repeats of the A/B measurements (medians are reported)")
    p.add_argument("--files", type=int, default=None, help="files in M (default 1,000,000; 20,000 with --quick)")
    p.add_argument("--peers", nargs="*", default=None, help="peer harness run JSON(s) (default: the newest "
                   "$PEERS_OUT/run-*.json of the same preset)")
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
        if "m" in args.parts:
            data["M"] = b.gen(f"M{b.sizes.many}", many_spec(b.sizes.many), SEED + 2)
        b.start_server()
        ids: dict[str, str] = {}
        for key in ("A", "B"):
            if key in data:
                ids[key] = b.ingest(key, data[key]["path"])["id"]
                b.put_plain(key, data[key])
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
