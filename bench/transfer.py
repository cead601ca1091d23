#!/usr/bin/env python3
"""Transfer benchmark: mountfs upload and get_local_copy against S3, measured against boto3 in the same run.

One run starts a private SeaweedFS on 127.0.0.1 (``tests/servers.py``'s
launcher, random free ports, the peer harness's 1 GiB volumes, stopped by PID
at the end) and, for each part (``--only``) and repeat, in fresh processes
after a page-cache drop:

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
can serve both).  Targets: upload A >= 3x boto3, B >= 1x; get_local_copy A
>= 2x boto3, B >= 1x; peak RSS of every mountfs step < 300 MiB.

Usage: ``python bench/transfer.py [--quick] [--only a,b] [--repeat N] ...``
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Row, fmt_bytes, fmt_summary, mb, summary  # noqa: E402

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
SEED = 1234  # ingest.py's: A uses SEED, B uses SEED + 2
PARTS = ("a", "b")
SCRIPT = os.path.abspath(__file__)
REPO = os.path.dirname(os.path.dirname(SCRIPT))
#: data set sizes: (files, folders, min size, max size), seed
FULL = {"A": ((10_000, 100, 80 * KIB, 120 * KIB), SEED), "B": ((4, 1, 256 * MIB, 256 * MIB), SEED + 2)}
QUICK = {"A": ((500, 10, 80 * KIB, 120 * KIB), SEED), "B": ((2, 1, 16 * MIB, 16 * MIB), SEED + 2)}
THREADS = 8
#: boto3's TransferConfig default multipart threshold and part size
BOTO_MULTIPART = 8 * MIB
#: (part, direction) -> minimum mountfs/boto3 MB/s ratio
TARGETS = {("A", "upload"): 3.0, ("B", "upload"): 1.0, ("A", "download"): 2.0, ("B", "download"): 1.0}
TARGET_RSS = 300 * MIB
PROJECT = "bench-transfer"


def log(msg: str) -> None:
    print(f"[transfer {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ steps (fresh interpreters, see common.run_step)



def _count_requests() -> collections.Counter:
    """Count every S3 API call this process makes (boto3's and the SDK's alike), by operation name.

    Wraps botocore's ``Endpoint.make_request``: one count per API call (a
    botocore-internal retry of the same call is not counted again).
    """
    import botocore.endpoint

    counts: collections.Counter = collections.Counter()
    lock = threading.Lock()
    orig = botocore.endpoint.Endpoint.make_request

    def make_request(self, operation_model, request_dict):  # type: ignore[no-untyped-def]
        with lock:
            counts[operation_model.name] += 1
        return orig(self, operation_model, request_dict)

    botocore.endpoint.Endpoint.make_request = make_request
    return counts


def _boto_client() -> Any:
    """A boto3 client for the server in the environment (BENCH_S3_ENDPOINT, AWS_* keys).

    Same botocore settings as mountfs's S3 backend for a custom endpoint (path
    style, checksums only when required), so the baseline differs in how it
    transfers, not in what it computes per request; enough pooled connections
    for 8 threads.
    """
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=os.environ["BENCH_S3_ENDPOINT"], region_name="us-east-1",
        config=Config(max_pool_connections=2 * THREADS, s3={"addressing_style": "path"},
                      retries={"total_max_attempts": 3, "mode": "standard"},
                      request_checksum_calculation="when_required", response_checksum_validation="when_required"))


def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    # boto3's defaults (8 MiB threshold and parts) except 8 threads instead of 10
    return TransferConfig(max_concurrency=THREADS)


def step_boto3_upload(a: dict[str, Any]) -> dict[str, Any]:
    """Every file of ``root`` as one object (key = relative path): small ones by put_object over 8 threads,
    large ones by upload_file (multipart, 8 threads) one after another."""
    counts = _count_requests()
    import boto3.s3.transfer  # noqa: F401 - imports stay outside the timed region
    import botocore.config  # noqa: F401

    t = time.perf_counter()
    c = _boto_client()
    client_s = time.perf_counter() - t
    root, bucket = a["root"], a["bucket"]
    files = [(rel, os.path.getsize(os.path.join(root, rel))) for rel in common.tree_files(root)]
    small = [f for f in files if f[1] < BOTO_MULTIPART]
    big = [f for f in files if f[1] >= BOTO_MULTIPART]
    cfg = _transfer_config()

    def put(f: tuple[str, int]) -> int:
        with open(os.path.join(root, f[0]), "rb") as fh:
            c.put_object(Bucket=bucket, Key=f[0], Body=fh.read())
        return f[1]

    counts.clear()
    t0 = time.perf_counter()
    n = 0
    if small:
        with ThreadPoolExecutor(THREADS) as ex:
            n += sum(ex.map(put, small))
    for rel, size in big:
        c.upload_file(os.path.join(root, rel), bucket, rel, Config=cfg)
        n += size
    dt = time.perf_counter() - t0
    return {"bytes": n, "files": len(files), "seconds": dt, "client_s": client_s, "small_files": len(small),
            "big_files": len(big), "requests": dict(counts), "vm_hwm_bytes": common.vm_hwm()}


def step_boto3_download(a: dict[str, Any]) -> dict[str, Any]:
    """Every object of ``bucket`` into the fresh folder ``dst``: small ones by get_object over 8 threads,
    large ones by download_file (ranged GETs, 8 threads) one after another.  The listing is timed apart."""
    counts = _count_requests()
    import boto3.s3.transfer  # noqa: F401 - imports stay outside the timed region
    import botocore.config  # noqa: F401

    t = time.perf_counter()
    c = _boto_client()
    client_s = time.perf_counter() - t
    bucket, dst = a["bucket"], a["dst"]
    cfg = _transfer_config()
    counts.clear()
    t0 = time.perf_counter()
    objs = [(o["Key"], o["Size"]) for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", ())]
    t1 = time.perf_counter()
    small = [o for o in objs if o[1] < BOTO_MULTIPART]
    big = [o for o in objs if o[1] >= BOTO_MULTIPART]
    made: set[str] = set()
    made_lock = threading.Lock()

    def target(key: str) -> str:
        path = os.path.join(dst, key)
        parent = os.path.dirname(path)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            with made_lock:
                made.add(parent)
        return path

    def get(o: tuple[str, int]) -> int:
        body = c.get_object(Bucket=bucket, Key=o[0])["Body"]
        n = 0
        with open(target(o[0]), "wb") as fh:
            for chunk in body.iter_chunks(1 * MIB):
                fh.write(chunk)
                n += len(chunk)
        return n

    n = 0
    if small:
        with ThreadPoolExecutor(THREADS) as ex:
            n += sum(ex.map(get, small))
    for key, size in big:
        c.download_file(bucket, key, target(key), Config=cfg)
        n += size
    t2 = time.perf_counter()
    return {"bytes": n, "files": len(objs), "seconds": t2 - t1, "list_s": t1 - t0, "client_s": client_s,
            "small_files": len(small),
            "big_files": len(big), "requests": dict(counts), "vm_hwm_bytes": common.vm_hwm()}


def step_mountfs_upload(a: dict[str, Any]) -> dict[str, Any]:
    """create + add_files + upload + finalize of one folder; store, keys and cache from the environment."""
    counts = _count_requests()
    import mountfs.backends.s3  # noqa: F401 - imports (boto3 among them) are outside the timed region, as for boto3
    from mountfs import Dataset

    workers = a.get("workers")
    t0 = time.perf_counter()
    ds = Dataset.create(dataset_name=a["name"], dataset_project=PROJECT)
    t1 = time.perf_counter()
    n = ds.add_files(a["src"], max_workers=workers)
    t2 = time.perf_counter()
    before_upload = dict(counts)
    ds.upload(show_progress=False, max_workers=workers)
    t3 = time.perf_counter()
    upload_requests = dict(counts - collections.Counter(before_upload))
    ds.finalize()
    t4 = time.perf_counter()
    rec = ds.record
    return {"id": ds.id, "files": rec.file_count, "bytes": rec.total_size, "changed": n,
            "phases_s": {"create": t1 - t0, "add_files": t2 - t1, "upload": t3 - t2, "finalize": t4 - t3},
            "total_s": t4 - t0, "requests": dict(counts), "upload_requests": upload_requests,
            "vm_hwm_bytes": common.vm_hwm()}


def step_mountfs_download(a: dict[str, Any]) -> dict[str, Any]:
    """Dataset.get + get_local_copy of a finalized version; MOUNTFS_CACHE_DIR is fresh."""
    counts = _count_requests()
    import mountfs.backends.s3  # noqa: F401 - imports (boto3 among them) are outside the timed region, as for boto3
    from mountfs import Dataset

    t0 = time.perf_counter()
    ds = Dataset.get(dataset_id=a["id"])
    t1 = time.perf_counter()
    path = ds.get_local_copy(max_workers=a.get("workers"))
    t2 = time.perf_counter()
    return {"path": path, "phases_s": {"get": t1 - t0, "get_local_copy": t2 - t1}, "total_s": t2 - t0,
            "requests": dict(counts), "vm_hwm_bytes": common.vm_hwm()}


STEPS = {"boto3_upload": step_boto3_upload, "boto3_download": step_boto3_download,
         "mountfs_upload": step_mountfs_upload, "mountfs_download": step_mountfs_download}


# ------------------------------------------------------------------ CPU accounting (noise on a shared machine)


def _proc_cpu_s(pid: int | None) -> float:
    """user+sys CPU seconds of a process (0 if it is gone)."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as fh:
        vals = [int(x) for x in fh.readline().split()[1:9]]
    return sum(vals) - vals[3] - vals[4], sum(vals)


# ------------------------------------------------------------------ the driver


class Bench(common.BenchRun):
    """Work dir, SeaweedFS, environments, and the collected results."""

    def __init__(self, args: argparse.Namespace):
        super().__init__(
            args, "transfer", seed=SEED, threads=THREADS, mountfs_workers=args.workers, profile=args.profile,
            boto3={"threads": THREADS, "multipart_threshold": BOTO_MULTIPART, "multipart_chunksize": BOTO_MULTIPART,
                   "max_concurrency": THREADS, "checksums": "when_required"},
            data={}, parts={},
        )
        self.sizes = QUICK if args.quick else FULL
        self.server: Any = None
        self.config_path = self.path("mountfs.toml")

    # --- SeaweedFS ------------------------------------------------------------------

    def start_server(self) -> None:
        self.server = common.start_seaweed(self.path("seaweedfs"), log)
        self.client = self.server.client()
        self.config = self.config_path
        fd = os.open(self.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f'[s3.hosts."{self.server.host_port}"]\nkey = "{self.server.access_key}"\n'
                     f'secret = "{self.server.secret_key}"\nsecure = false\n')
        self.doc["seaweedfs"] = {"endpoint": self.server.endpoint_url, "pid": self.server.pid}

    def stop_server(self) -> None:
        if self.server is not None:
            pid = self.server.pid
            self.server.stop()  # SIGTERM (then SIGKILL) of the PID it started
            self.server = None
            log(f"SeaweedFS pid {pid} stopped")

    def boto_env(self) -> dict[str, str]:
        # keys through the environment, never on a command line
        return common.clean_env(BENCH_S3_ENDPOINT=self.server.endpoint_url, AWS_ACCESS_KEY_ID=self.server.access_key,
                                AWS_SECRET_ACCESS_KEY=self.server.secret_key, AWS_DEFAULT_REGION="us-east-1")

    def mountfs_env(self, store: str, cache: str) -> dict[str, str]:
        env = common.clean_env(MOUNTFS_STORE=store, MOUNTFS_CONFIG=self.config, MOUNTFS_CACHE_DIR=cache,
                               MOUNTFS_RUN_DIR=self.path("run"))
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            env.pop(k, None)  # the config file's host entry is the only key source
        return env

    def bucket_objects(self, bucket: str, prefix: str = "") -> dict[str, Any]:
        """Objects and bytes in a bucket, and per first key component below ``prefix``."""
        count = size = 0
        by: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", ()):
                count += 1
                size += o["Size"]
                top = o["Key"][len(prefix):].split("/", 1)[0]
                by[top][0] += 1
                by[top][1] += o["Size"]
        return {"objects": count, "bytes": size, "by_prefix": {k: {"objects": v[0], "bytes": v[1]} for k, v in sorted(by.items())}}

    def drop_bucket(self, bucket: str) -> None:
        """Free the disk a run's bucket uses: delete its objects (1000 per request), then the bucket."""
        try:
            keys = [o["Key"] for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                    for o in page.get("Contents", ())]
            for i in range(0, len(keys), 1000):
                self.client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]],
                                                                  "Quiet": True})
            self.client.delete_bucket(Bucket=bucket)
        except Exception as exc:  # noqa: BLE001 - only disk space is at stake
            log(f"could not remove bucket {bucket}: {exc!r}")

    # --- measured steps ---------------------------------------------------------------

    def step(self, name: str, args: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        """Drop caches, run one step in a fresh process; add its wall/RSS/CPU and what else ran meanwhile."""
        self.cold()
        sw = self.server.pid
        s0, m0 = _proc_cpu_s(sw), _machine_busy()
        with Spy(self, name, args.get("tag", "")):
            run = common.run_step(SCRIPT, name, args, env)
        s1, m1 = _proc_cpu_s(sw), _machine_busy()
        tick = os.sysconf("SC_CLK_TCK")
        busy, cap = (m1[0] - m0[0]) / tick, max(1e-9, (m1[1] - m0[1]) / tick)
        ours = (s1 - s0) + run.user_s + run.sys_s
        out = run.as_dict()
        out["cpu_s"] = {"step": round(run.user_s + run.sys_s, 2), "seaweedfs": round(s1 - s0, 2)}
        out["machine_busy_pct"] = round(100 * busy / cap, 1)
        out["other_cpu_pct"] = round(100 * max(0.0, busy - ours) / cap, 1)
        return out

    # --- data -------------------------------------------------------------------------

    def gen(self, key: str) -> dict[str, Any]:
        (files, folders, lo, hi), seed = self.sizes[key]
        root = self.path(f"data-{key}")
        log(f"data {key}: {files} files in {folders} folders, {fmt_bytes(lo)}..{fmt_bytes(hi)} each")
        info = common.gen_tree(root, files, folders, lo, hi, seed)
        info["path"] = root
        os.sync()
        self.doc["data"][key] = info
        how = "reused" if info["reused"] else f"generated in {info['seconds']:.1f} s"
        log(f"data {key}: {fmt_bytes(info['bytes'])} {how}")
        return info


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


class Spy:
    """With ``--profile DIR``: ``py-spy record --nonblocking`` attached to the step process while it runs.

    Attached by PID (found as our grandchild: bench -> launcher -> step), not
    wrapped around it, so the launcher's peak RSS is still the step's own;
    non-blocking sampling never pauses the step.  Raw collapsed stacks, one
    file per step; failures to profile are logged, never fatal.
    """

    def __init__(self, b: "Bench", name: str, tag: str):
        self.b, self.name, self.tag = b, name, tag
        self.proc: subprocess.Popen | None = None
        self.done = threading.Event()
        self.thread: threading.Thread | None = None
        self.out = ""

    def __enter__(self) -> "Spy":
        if self.b.args.profile:
            os.makedirs(self.b.args.profile, exist_ok=True)
            self.out = os.path.join(self.b.args.profile, f"{self.name}-{self.tag}.txt")
            self.thread = threading.Thread(target=self._attach, daemon=True)
            self.thread.start()
        return self

    def _find(self) -> int | None:
        me = os.getpid()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as fh:
                    argv = fh.read().split(b"\0")
            except OSError:
                continue
            if SCRIPT.encode() in argv and b"--step" in argv and self.name.encode() in argv \
                    and _ppid(_ppid(int(d))) == me:
                return int(d)
        return None

    def _attach(self) -> None:
        while not self.done.is_set():
            pid = self._find()
            if pid:
                spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
                with open(self.out + ".log", "w") as logfh:
                    self.proc = subprocess.Popen(
                        [spy, "record", "--pid", str(pid), "--nonblocking", "--threads", "-r", str(self.b.args.profile_rate),
                         "-f", "raw", "-o", self.out], stdout=logfh, stderr=subprocess.STDOUT)
                return
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        if self.thread is None:
            return
        self.done.set()
        self.thread.join()
        if self.proc is not None:
            try:
                self.proc.wait(30)  # py-spy writes its file once the target has exited
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                self.proc.wait(10)
            log(f"py-spy profile of {self.name} {self.tag}: {self.out}")
        else:
            log(f"py-spy: {self.name} {self.tag} ended before it could be attached")


def _check_copy(src: str, copy: str, nbytes: int, nfiles: int, what: str, n: int = 5) -> None:
    """Sizes and count of the whole copy, bytes of a few files."""
    got_bytes, got_files = common.tree_size(copy)
    if (got_bytes, got_files) != (nbytes, nfiles):
        raise RuntimeError(f"{what}: {copy} has {got_files} files / {got_bytes} B, expected {nfiles} / {nbytes}")
    files = common.tree_files(src)
    for rel in random.Random(SEED).sample(files, min(n, len(files))):
        if subprocess.run(["cmp", "-s", os.path.join(src, rel), os.path.join(copy, rel)]).returncode != 0:
            raise RuntimeError(f"{what}: {rel} differs from the source")


def _cpu(runs: list[dict[str, Any]], step: str) -> str:
    """``client + server`` CPU seconds of a step (medians over the runs)."""
    c = statistics.median(r[step]["cpu_s"]["step"] for r in runs)
    w = statistics.median(r[step]["cpu_s"]["seaweedfs"] for r in runs)
    return f"{c:.1f} + {w:.1f}"


def _reqs(counts: dict[str, int]) -> str:
    """``total (Op n, Op n, ...)``, the biggest first."""
    items = sorted(counts.items(), key=lambda kv: -kv[1])
    return f"{sum(counts.values())} (" + ", ".join(f"{k} {v}" for k, v in items) + ")"


def one_run(b: Bench, key: str, info: dict[str, Any], i: int) -> dict[str, Any]:
    src, nbytes, nfiles = info["path"], info["bytes"], info["files"]
    tag = f"{key}{i}"
    run: dict[str, Any] = {}
    workers = b.args.workers

    # 1-2: boto3, one object per file
    plain = b.server.new_bucket(f"plain-{key.lower()}")
    up = b.step("boto3_upload", {"root": src, "bucket": plain, "tag": tag}, b.boto_env())
    up["bucket"] = {"name": plain, **b.bucket_objects(plain)}
    run["boto3_upload"] = up
    r = up["result"]
    log(f"{key}[{i}] boto3 upload: {r['seconds']:.2f} s, {mb(r['bytes']) / r['seconds']:.1f} MB/s, "
        f"requests {_reqs(r['requests'])}, peak RSS {fmt_bytes(up['peak_rss_bytes'])}, other CPU {up['other_cpu_pct']}%")
    if up["bucket"]["objects"] != nfiles or up["bucket"]["bytes"] != nbytes:
        raise RuntimeError(f"boto3 upload: bucket {plain} holds {up['bucket']['objects']} objects / "
                           f"{up['bucket']['bytes']} B, expected {nfiles} / {nbytes}")

    dst = b.path(f"boto3-copy-{key}")
    common.remove_tree(dst)
    os.makedirs(dst)
    dl = b.step("boto3_download", {"bucket": plain, "dst": dst, "tag": tag}, b.boto_env())
    run["boto3_download"] = dl
    r = dl["result"]
    _check_copy(src, dst, nbytes, nfiles, "boto3 download")
    common.remove_tree(dst)
    b.drop_bucket(plain)
    log(f"{key}[{i}] boto3 download: {r['seconds']:.2f} s (+ list {r['list_s']:.2f} s), "
        f"{mb(r['bytes']) / r['seconds']:.1f} MB/s, requests {_reqs(r['requests'])}, "
        f"peak RSS {fmt_bytes(dl['peak_rss_bytes'])}, other CPU {dl['other_cpu_pct']}%")

    # 3-4: mountfs, packs
    bucket = b.server.new_bucket(f"store-{key.lower()}")
    store = b.server.store_url(bucket, "ds")
    cache = b.path(f"mountfs-cache-up-{key}")
    common.remove_tree(cache)
    ing = b.step("mountfs_upload", {"src": src, "name": f"data-{key}", "workers": workers, "tag": tag},
                 b.mountfs_env(store, cache))
    common.remove_tree(cache)
    ing["bucket"] = {"name": bucket, **b.bucket_objects(bucket, "ds/")}
    run["mountfs_upload"] = ing
    r = ing["result"]
    if (r["files"], r["bytes"]) != (nfiles, nbytes):
        raise RuntimeError(f"mountfs upload recorded {r['files']} files / {r['bytes']} B, expected {nfiles} / {nbytes}")
    ph = r["phases_s"]
    log(f"{key}[{i}] mountfs ingest: {r['total_s']:.2f} s (" + ", ".join(f"{k} {v:.2f}" for k, v in ph.items()) +
        f"), upload {mb(nbytes) / ph['upload']:.1f} MB/s, upload requests {_reqs(r['upload_requests'])}, "
        f"bucket {ing['bucket']['objects']} objects, peak RSS {fmt_bytes(ing['peak_rss_bytes'])}, "
        f"other CPU {ing['other_cpu_pct']}%")

    cache = b.path(f"mountfs-cache-get-{key}")
    common.remove_tree(cache)
    glc = b.step("mountfs_download", {"id": r["id"], "workers": workers, "tag": tag}, b.mountfs_env(store, cache))
    run["mountfs_download"] = glc
    r = glc["result"]
    _check_copy(src, r["path"], nbytes, nfiles, "mountfs get_local_copy")
    common.remove_tree(cache)
    b.drop_bucket(bucket)
    log(f"{key}[{i}] mountfs get_local_copy: {r['total_s']:.2f} s (" +
        ", ".join(f"{k} {v:.2f}" for k, v in r["phases_s"].items()) +
        f"), {mb(nbytes) / r['total_s']:.1f} MB/s, requests {_reqs(r['requests'])}, "
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


def summarize(key: str, runs: list[dict[str, Any]], nbytes: int, nfiles: int) -> tuple[dict[str, Any], list[Row]]:
    """Medians (min..max) over the runs of one part, and its table rows."""

    def rate(seconds: Callable[[dict], float]) -> list[float]:
        return [mb(nbytes) / seconds(r) for r in runs]

    # boto3: client creation + transfer (runs before client_s was recorded: transfer only)
    bu = rate(lambda r: r["boto3_upload"]["result"]["seconds"] + r["boto3_upload"]["result"].get("client_s", 0.0))
    bd = rate(lambda r: r["boto3_download"]["result"]["seconds"] + r["boto3_download"]["result"].get("client_s", 0.0))
    mu = rate(lambda r: r["mountfs_upload"]["result"]["phases_s"]["upload"])
    mi = rate(lambda r: r["mountfs_upload"]["result"]["total_s"])
    md = rate(lambda r: r["mountfs_download"]["result"]["total_s"])
    mg = rate(lambda r: r["mountfs_download"]["result"]["phases_s"]["get_local_copy"])
    s = {
        "bytes": nbytes, "files": nfiles,
        "boto3_upload_MBps": summary(bu), "mountfs_upload_MBps": summary(mu), "mountfs_ingest_MBps": summary(mi),
        "upload_ratio": summary(m / x for m, x in zip(mu, bu)),
        "ingest_ratio": summary(m / x for m, x in zip(mi, bu)),
        "boto3_download_MBps": summary(bd), "mountfs_download_MBps": summary(md),
        "download_ratio": summary(m / x for m, x in zip(md, bd)),
        "mountfs_get_local_copy_only_MBps": summary(mg),
        "get_local_copy_only_ratio": summary(m / x for m, x in zip(mg, bd)),
        "mountfs_phases_s": {k: summary(r["mountfs_upload"]["result"]["phases_s"][k] for r in runs)
                             for k in runs[0]["mountfs_upload"]["result"]["phases_s"]},
        "peak_rss": {s_: summary(r[s_]["peak_rss_bytes"] for r in runs)
                     for s_ in ("boto3_upload", "boto3_download", "mountfs_upload", "mountfs_download")},
        "other_cpu_pct": {s_: summary(r[s_]["other_cpu_pct"] for r in runs)
                          for s_ in ("boto3_upload", "boto3_download", "mountfs_upload", "mountfs_download")},
    }
    r0 = runs[0]
    f1, f2 = (lambda v: f"{v:.1f}"), (lambda v: f"{v:.2f}")
    ph = s["mountfs_phases_s"]
    tu, td = TARGETS[(key, "upload")], TARGETS[(key, "download")]
    bu_obj, mu_obj = r0["boto3_upload"]["bucket"], r0["mountfs_upload"]["bucket"]
    packs = mu_obj["by_prefix"].get("packs", {}).get("objects", 0)
    rss_ok = lambda step: s["peak_rss"][step]["max"] < TARGET_RSS  # noqa: E731
    how_up = "put_object per file" if r0["boto3_upload"]["result"]["big_files"] == 0 else "upload_file, multipart"
    how_dl = "get_object per file" if r0["boto3_download"]["result"]["big_files"] == 0 else "download_file, ranged"
    P = key
    rows = [
        Row(P, f"data: {nfiles} files, {fmt_bytes(nbytes)}", ""),
        Row(P, f"boto3 upload MB/s ({THREADS} threads, {how_up})", fmt_summary(s["boto3_upload_MBps"], f1)),
        Row(P, "mountfs upload() MB/s", fmt_summary(s["mountfs_upload_MBps"], f1)),
        Row(P, "upload: mountfs upload() / boto3", fmt_summary(s["upload_ratio"], f2), f">= {tu:g}x",
            s["upload_ratio"]["median"] >= tu),
        Row(P, "mountfs phases s (add_files / upload / finalize)",
            " / ".join(f"{ph[k]['median']:.2f}" for k in ("add_files", "upload", "finalize"))),
        Row(P, "mountfs create+add+upload+finalize MB/s", fmt_summary(s["mountfs_ingest_MBps"], f1)),
        Row(P, "  ... / boto3 upload", fmt_summary(s["ingest_ratio"], f2)),
        Row(P, "objects in bucket: boto3 / mountfs (packs)", f"{bu_obj['objects']} / {mu_obj['objects']} ({packs})"),
        Row(P, "upload requests: boto3", _reqs(r0["boto3_upload"]["result"]["requests"])),
        Row(P, "upload requests: mountfs upload()", _reqs(r0["mountfs_upload"]["result"]["upload_requests"])),
        Row(P, "upload CPU s, client + SeaweedFS: boto3 / mountfs (whole ingest)",
            f"{_cpu(runs, 'boto3_upload')} / {_cpu(runs, 'mountfs_upload')}"),
        Row(P, "upload peak RSS: boto3", fmt_summary(s["peak_rss"]["boto3_upload"], fmt_bytes)),
        Row(P, "upload peak RSS: mountfs (whole ingest)", fmt_summary(s["peak_rss"]["mountfs_upload"], fmt_bytes),
            f"< {fmt_bytes(TARGET_RSS)}", rss_ok("mountfs_upload")),
        Row(P, f"boto3 download MB/s ({THREADS} threads, {how_dl})", fmt_summary(s["boto3_download_MBps"], f1)),
        Row(P, "mountfs get_local_copy MB/s", fmt_summary(s["mountfs_download_MBps"], f1)),
        Row(P, "download: mountfs / boto3", fmt_summary(s["download_ratio"], f2), f">= {td:g}x",
            s["download_ratio"]["median"] >= td),
        Row(P, "mountfs get_local_copy() alone MB/s (no Dataset.get)", fmt_summary(s["mountfs_get_local_copy_only_MBps"], f1)),
        Row(P, "  ... / boto3 download", fmt_summary(s["get_local_copy_only_ratio"], f2)),
        Row(P, "download requests: boto3 (listing not timed)", _reqs(r0["boto3_download"]["result"]["requests"])),
        Row(P, "download requests: mountfs (get + get_local_copy)", _reqs(r0["mountfs_download"]["result"]["requests"])),
        Row(P, "download CPU s, client + SeaweedFS: boto3 / mountfs",
            f"{_cpu(runs, 'boto3_download')} / {_cpu(runs, 'mountfs_download')}"),
        Row(P, "download peak RSS: boto3", fmt_summary(s["peak_rss"]["boto3_download"], fmt_bytes)),
        Row(P, "download peak RSS: mountfs", fmt_summary(s["peak_rss"]["mountfs_download"], fmt_bytes),
            f"< {fmt_bytes(TARGET_RSS)}", rss_ok("mountfs_download")),
        Row(P, "other CPU % (boto3 up/down, mountfs up/down)",
            " / ".join(f"{s['other_cpu_pct'][k]['median']:.0f}" for k in
                       ("boto3_upload", "boto3_download", "mountfs_upload", "mountfs_download"))),
    ]
    return s, rows


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="JSON results (default bench/results/transfer-<stamp>.json)")
    p.add_argument("--work", default=None, help="work folder (default: a new /tmp folder, removed at the end); "
                   "generated data in a given folder is kept and reused (same data-A/data-B as ingest.py)")
    p.add_argument("--quick", action="store_true", help="A = 500 files, B = 2 x 16 MiB: a smoke run")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts out of {','.join(PARTS)}")
    p.add_argument("--repeat", type=int, default=1, help="runs of each timed step (median/min/max are reported)")
    p.add_argument("--workers", type=int, default=None,
                   help="max_workers for mountfs upload/add_files/get_local_copy (default: the SDK's, = cores)")
    p.add_argument("--profile", default=None, metavar="DIR",
                   help="attach `py-spy record --nonblocking` to every step (raw collapsed stacks, DIR/<step>-<part><run>.txt)")
    p.add_argument("--profile-rate", type=int, default=50, help="py-spy samples per second (default 50)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--report", default=None, metavar="JSON",
                   help="measure nothing: print the table of a results file again (with this version's rows)")
    a = p.parse_args(argv)
    common.parse_parts(p, a, PARTS)
    a.out = a.out or common.default_out("transfer")
    if a.profile:
        a.profile = os.path.abspath(a.profile)
    return a


def main(argv: list[str] | None = None) -> int:
    if common.step_main(STEPS, argv):
        return 0
    args = parse_args(argv)
    if args.report:
        return report(args.report)
    b = Bench(args)
    log(f"work dir {b.work}; results -> {args.out}")
    if os.geteuid() != 0:
        log("not root: the page cache cannot be dropped; timed steps may read from it")
    t_start = time.perf_counter()
    try:
        data = {key: b.gen(key) for key in ("A", "B") if key.lower() in args.parts}
        b.start_server()
        for key, info in data.items():
            t0 = time.perf_counter()
            part(b, key, info)
            b.doc["parts"][key]["seconds"] = time.perf_counter() - t0
            b.save()  # a later failure keeps what was measured so far
    finally:
        b.stop_server()
        b.doc["wall_s"] = time.perf_counter() - t_start
        b.doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        b.save()
        if b.own_work and not args.keep:
            common.remove_tree(b.work)
        elif not args.keep:  # a given --work keeps only the generated data-* for the next run
            common.remove_tree(b.path("seaweedfs"))
            common.remove_tree(b.path("run"))
            if os.path.exists(b.config_path):
                os.unlink(b.config_path)
    print_report(b.doc, b.rows)
    print(f"\nJSON: {args.out}")
    return 0


def print_report(doc: dict[str, Any], rows: list[Row]) -> None:
    m = doc["machine"]
    dropped = "yes" if doc.get("caches_dropped") else "NO (not root?): timed steps may read from the page cache"
    print(f"\nmountfs transfer benchmark vs boto3 on SeaweedFS 127.0.0.1 ({'quick' if doc['quick'] else 'full'}, "
          f"{doc['repeat']} run(s) per step; {m['nproc']} cores, kernel {m['kernel']}, python {m['python']})")
    print(f"page cache dropped before each timed step: {dropped}; MB = 10^6 bytes; mountfs MB/s use the SDK calls' "
          f"time in a fresh process (upload() alone for the upload ratio), boto3 MB/s client creation + transfer; "
          f"ratio = mountfs / boto3 (> 1: mountfs faster)" + ("; py-spy attached" if doc.get("profile") else ""))
    common.print_table(rows)


def report(path: str) -> int:
    """``--report``: the table of a saved run, rebuilt from its raw numbers."""
    with open(path) as fh:
        doc = json.load(fh)
    rows: list[Row] = []
    for key, p in doc["parts"].items():
        if p.get("runs"):
            d = doc["data"][key]
            rows += summarize(key, p["runs"], d["bytes"], d["files"])[1]
    print_report(doc, rows)
    if any("client_s" not in r["boto3_upload"]["result"] for p in doc["parts"].values() for r in p.get("runs", ())):
        print("note: a run from before boto3's client creation was timed: its boto3 MB/s are the transfer's alone, "
              "and its mountfs times include importing boto3 (~0.1-0.2 s)")
    print(f"\nJSON: {os.path.abspath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
