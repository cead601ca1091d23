#!/usr/bin/env python3
"""Transfer benchmark: mountfs upload and get_local_copy against S3, measured against boto3 in the same run.

One run starts a private SeaweedFS on 127.0.0.1 (``tests/servers.py``'s
launcher, random free ports, the peer harness's 1 GiB volumes, stopped by PID
at the end) and, for each part (``--only``) and repeat, in fresh processes
(``transfer_steps.py``) after a page-cache drop:

1. boto3 upload of the tree into a new bucket, 8 threads: ``put_object`` per
   file below boto3's multipart threshold (8 MiB), else ``upload_file`` one
   file after another with boto3's default ``TransferConfig`` (8 MiB parts)
   and ``max_concurrency=8``;
2. boto3 download of every object of that bucket into a fresh folder, 8
   threads: ``get_object`` per file, or ``download_file`` (same config);
3. mountfs ``Dataset.create`` + ``add_files`` + ``upload`` + ``finalize``
   into ``s3://127.0.0.1:PORT/<another new bucket>/ds`` (keys in a private
   ``MOUNTFS_CONFIG``, fresh ``MOUNTFS_CACHE_DIR``); ``upload()`` is timed on
   its own;
4. mountfs ``Dataset.get`` + ``get_local_copy`` with a fresh cache dir.

Parts: ``a`` = A, 10,000 files of 80-120 KiB in 100 folders; ``b`` = B, 4
files of 256 MiB (same specs and seeds as ``ingest.py``, so a ``--work`` dir
can serve both).  Targets (``transfer_table.py``): upload A >= 3x boto3, B >=
1x; get_local_copy A >= 2x boto3, B >= 1x; peak RSS of every mountfs step < 300 MiB.

Usage: ``python bench/transfer.py [--quick] [--only a,b] [--repeat N] ...``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transfer_steps  # noqa: E402
from harness import options  # noqa: E402
from harness.data import check_copy, remove_tree, sizes  # noqa: E402
from harness.procs import cpu_shares, machine_busy, proc_cpu_s  # noqa: E402
from harness.profile import StepSpy  # noqa: E402
from harness.report import fmt_bytes, mb, stamp  # noqa: E402
from harness.run import BenchRun  # noqa: E402
from harness.servers import (bucket_objects, drop_bucket, mountfs_env, start_seaweed, stop_seaweed,  # noqa: E402
                             write_mountfs_config)
from harness.steps import clean_env, run_step  # noqa: E402
from transfer_steps import BOTO_MULTIPART, THREADS  # noqa: E402
from transfer_table import print_report, reqs, report, summarize  # noqa: E402

SEED = 1234  # ingest.py's: A uses SEED, B uses SEED + 2
SEEDS = {"A": SEED, "B": SEED + 2}
PARTS = ("a", "b")


class Bench(BenchRun):
    """Work dir, SeaweedFS, the steps' environments, and the collected results."""

    def __init__(self, args: argparse.Namespace):
        super().__init__(
            args, "transfer", seed=SEED, threads=THREADS, mountfs_workers=args.workers, profile=args.profile,
            boto3={"threads": THREADS, "multipart_threshold": BOTO_MULTIPART, "multipart_chunksize": BOTO_MULTIPART,
                   "max_concurrency": THREADS, "checksums": "when_required"},
            data={}, parts={},
        )
        self.sizes = sizes(args.quick)
        self.server: Any = None
        self.config = self.path("mountfs.toml")

    def start_server(self) -> None:
        self.server = start_seaweed(self.path("seaweedfs"), self.log)
        self.client = self.server.client()
        write_mountfs_config(self.config, self.server)
        self.doc["seaweedfs"] = {"endpoint": self.server.endpoint_url, "pid": self.server.pid}

    def stop_server(self) -> None:
        if self.server is not None:
            stop_seaweed(self.server, self.log)
            self.server = None

    def boto_env(self) -> dict[str, str]:
        # keys through the environment, never on a command line
        return clean_env(BENCH_S3_ENDPOINT=self.server.endpoint_url, AWS_ACCESS_KEY_ID=self.server.access_key,
                         AWS_SECRET_ACCESS_KEY=self.server.secret_key, AWS_DEFAULT_REGION="us-east-1")

    def mountfs_env(self, store: str, cache: str) -> dict[str, str]:
        return mountfs_env(store, self.config, cache, self.path("run"), no_aws_keys=True)

    def step(self, name: str, args: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        """Drop caches, run one step in a fresh process; add its wall/RSS/CPU and what else ran meanwhile."""
        self.cold()
        sw = self.server.pid
        s0, m0 = proc_cpu_s(sw), machine_busy()
        with StepSpy(self.args.profile, self.args.profile_rate, transfer_steps.MODULE, name, args.get("tag", ""),
                     self.log):
            run = run_step(transfer_steps.MODULE, name, args, env)
        s1, m1 = proc_cpu_s(sw), machine_busy()
        out = run.as_dict()
        out["cpu_s"] = {"step": round(run.user_s + run.sys_s, 2), "seaweedfs": round(s1 - s0, 2)}
        out.update(cpu_shares(m0, m1, (s1 - s0) + run.user_s + run.sys_s))
        return out


def one_run(b: Bench, key: str, info: dict[str, Any], i: int) -> dict[str, Any]:
    src, nbytes, nfiles = info["path"], info["bytes"], info["files"]
    tag = f"{key}{i}"
    run: dict[str, Any] = {}
    workers = b.args.workers

    # 1-2: boto3, one object per file
    plain = b.server.new_bucket(f"plain-{key.lower()}")
    up = b.step("boto3_upload", {"root": src, "bucket": plain, "tag": tag}, b.boto_env())
    up["bucket"] = {"name": plain, **bucket_objects(b.client, plain)}
    run["boto3_upload"] = up
    r = up["result"]
    b.log(f"{key}[{i}] boto3 upload: {r['seconds']:.2f} s, {mb(r['bytes']) / r['seconds']:.1f} MB/s, "
          f"requests {reqs(r['requests'])}, peak RSS {fmt_bytes(up['peak_rss_bytes'])}, other CPU {up['other_cpu_pct']}%")
    if up["bucket"]["objects"] != nfiles or up["bucket"]["bytes"] != nbytes:
        raise RuntimeError(f"boto3 upload: bucket {plain} holds {up['bucket']['objects']} objects / "
                           f"{up['bucket']['bytes']} B, expected {nfiles} / {nbytes}")

    dst = b.path(f"boto3-copy-{key}")
    remove_tree(dst)
    os.makedirs(dst)
    dl = b.step("boto3_download", {"bucket": plain, "dst": dst, "tag": tag}, b.boto_env())
    run["boto3_download"] = dl
    r = dl["result"]
    check_copy(src, dst, nbytes, nfiles, "boto3 download", SEED)
    remove_tree(dst)
    drop_bucket(b.client, plain, b.log)
    b.log(f"{key}[{i}] boto3 download: {r['seconds']:.2f} s (+ list {r['list_s']:.2f} s), "
          f"{mb(r['bytes']) / r['seconds']:.1f} MB/s, requests {reqs(r['requests'])}, "
          f"peak RSS {fmt_bytes(dl['peak_rss_bytes'])}, other CPU {dl['other_cpu_pct']}%")

    # 3-4: mountfs, packs
    bucket = b.server.new_bucket(f"store-{key.lower()}")
    store = b.server.store_url(bucket, "ds")
    cache = b.path(f"mountfs-cache-up-{key}")
    remove_tree(cache)
    ing = b.step("mountfs_upload", {"src": src, "name": f"data-{key}", "workers": workers, "tag": tag},
                 b.mountfs_env(store, cache))
    remove_tree(cache)
    ing["bucket"] = {"name": bucket, **bucket_objects(b.client, bucket, "ds/")}
    run["mountfs_upload"] = ing
    r = ing["result"]
    if (r["files"], r["bytes"]) != (nfiles, nbytes):
        raise RuntimeError(f"mountfs upload recorded {r['files']} files / {r['bytes']} B, expected {nfiles} / {nbytes}")
    ph = r["phases_s"]
    b.log(f"{key}[{i}] mountfs ingest: {r['total_s']:.2f} s (" + ", ".join(f"{k} {v:.2f}" for k, v in ph.items()) +
          f"), upload {mb(nbytes) / ph['upload']:.1f} MB/s, upload requests {reqs(r['upload_requests'])}, "
          f"bucket {ing['bucket']['objects']} objects, peak RSS {fmt_bytes(ing['peak_rss_bytes'])}, "
          f"other CPU {ing['other_cpu_pct']}%")

    cache = b.path(f"mountfs-cache-get-{key}")
    remove_tree(cache)
    glc = b.step("mountfs_download", {"id": r["id"], "workers": workers, "tag": tag}, b.mountfs_env(store, cache))
    run["mountfs_download"] = glc
    r = glc["result"]
    check_copy(src, r["path"], nbytes, nfiles, "mountfs get_local_copy", SEED)
    remove_tree(cache)
    drop_bucket(b.client, bucket, b.log)
    b.log(f"{key}[{i}] mountfs get_local_copy: {r['total_s']:.2f} s (" +
          ", ".join(f"{k} {v:.2f}" for k, v in r["phases_s"].items()) +
          f"), {mb(nbytes) / r['total_s']:.1f} MB/s, requests {reqs(r['requests'])}, "
          f"peak RSS {fmt_bytes(glc['peak_rss_bytes'])}, other CPU {glc['other_cpu_pct']}%")
    return run


def part(b: Bench, key: str, info: dict[str, Any]) -> None:
    runs = []
    for i in range(b.args.repeat):
        runs.append(one_run(b, key, info, i))
        b.doc["parts"][key] = {"runs": runs}
        b.save()
    s, rows = summarize(key, runs, info["bytes"], info["files"])
    b.doc["parts"][key] = {"runs": runs, "summary": s}
    b.rows += rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = options.parser("transfer", __doc__ or "", PARTS, quick="A = 500 files, B = 2 x 16 MiB: a smoke run",
                       work="work folder (default: a new /tmp folder, removed at the end); generated data in a given "
                            "folder is kept and reused (same data-A/data-B as ingest.py)")
    p.add_argument("--workers", type=int, default=None,
                   help="max_workers for mountfs upload/add_files/get_local_copy (default: the SDK's, = cores)")
    p.add_argument("--profile", default=None, metavar="DIR",
                   help="attach `py-spy record --nonblocking` to every step (raw collapsed stacks, DIR/<step>-<part><run>.txt)")
    p.add_argument("--profile-rate", type=int, default=50, help="py-spy samples per second (default 50)")
    p.add_argument("--report", default=None, metavar="JSON",
                   help="measure nothing: print the table of a results file again (with this version's rows)")
    a = options.parse(p, argv)
    if a.profile:
        a.profile = os.path.abspath(a.profile)
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        return report(args.report)
    b = Bench(args)
    b.log(f"work dir {b.work}; results -> {args.out}")
    if os.geteuid() != 0:
        b.log("not root: the page cache cannot be dropped; timed steps may read from it")
    t_start = time.perf_counter()
    try:
        data = {key: b.gen(key, getattr(b.sizes, key), SEEDS[key]) for key in ("A", "B") if key.lower() in args.parts}
        b.start_server()
        for key, info in data.items():
            t0 = time.perf_counter()
            part(b, key, info)
            b.doc["parts"][key]["seconds"] = time.perf_counter() - t0
            b.save()  # a later failure keeps what was measured so far
    finally:
        b.stop_server()
        b.doc["wall_s"] = time.perf_counter() - t_start
        b.doc["finished"] = stamp()
        b.close()
        if not b.own_work and not args.keep:  # a given --work keeps only the generated data-* for the next run
            remove_tree(b.path("seaweedfs"))
            remove_tree(b.path("run"))
            if os.path.exists(b.config):
                os.unlink(b.config)
    print_report(b.doc, b.rows)
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
