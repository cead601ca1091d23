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
3. per repeat: reads A and B from local disk (cold = after ``drop_caches``,
   warm = page cache), from bucket ``plain`` with boto3 (8 threads; B as 8 MiB
   ranged GETs), and through ``mountfs mount`` (``mountfs cache clear`` before
   each mount, ``drop_caches`` before each cold pass): ``find`` and ``ls -lR``
   over A, A with 8 threads (whole files, 1 MiB ``readinto``), B one file after
   another with 1 MiB reads, then each again warm (B twice: the first warm pass
   over a page also moves it to the kernel's active list, a cost per folio) and
   once more with only the page cache dropped (the daemon's own cache); the
   daemon's VmHWM before unmount; after B's warm passes, how much of B's first
   file the page cache holds in large folios, on the mount and on local disk;
   and, as the control for B warm, local B with its page cache filled in 4 KiB
   pages (``fill_small_pages``), which is how this kernel caches every FUSE file;
4. mounts M with an empty cache dir and times the first ``ls`` of its root
   after ``mountfs mount`` returns, and the daemon's RSS.

Every byte read is checked against an xxh3 of the source (``--no-verify`` skips
it).  Targets come from the issue; the ones relative to peers (JuiceFS, rclone,
weed mount) read the peer harness's run JSON (``--peers``, default the newest
``/tmp/peerbench/results/run-*.json`` of the same preset).

    .venv/bin/python bench/read.py --quick          # smoke run, ~1-2 min
    .venv/bin/python bench/read.py                  # the real sizes, ~15 min, ~10 GB of disk
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import resource
import shlex
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import common  # noqa: E402
from common import fmt_bytes, mb  # noqa: E402

from mountfs.daemon.mounts import RuntimeFiles, mounted_fuse  # noqa: E402

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
SEED = 4321
SCRIPT = os.path.abspath(__file__)
THREADS = 8
BUF = 1 * MIB
RANGE = 8 * MIB
BUCKET, PLAIN = "mountfs", "plain"
PROJECT = "bench-read"
#: (files, folders, min size, max size)
FULL = {"A": (10_000, 100, 80 * KIB, 120 * KIB), "B": (4, 1, 256 * MIB, 256 * MIB), "M": 1_000_000}
QUICK = {"A": (500, 10, 80 * KIB, 120 * KIB), "B": (2, 1, 16 * MIB, 16 * MIB), "M": 20_000}
M_FOLDERS, M_SIZES = 1000, (16, 64)
PARTS = ("a", "b", "m")
# targets (from the issue)
T_A_COLD_VS_PEER = 3.0
T_B_COLD_VS_BOTO3 = 1.0
T_WARM = 0.8
T_LS_VS_JUICEFS = 1.0
T_RSS_VS_JUICEFS = 0.5
T_RSS_FALLBACK = 120 * MIB
T_M_LS_S = 2.0
T_M_RSS = 200 * MIB
STEP_TIMEOUT = 3600


def log(msg: str) -> None:
    print(f"[read {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ steps (fresh interpreters, see common.run_step)



def step_ingest(a: dict[str, Any]) -> dict[str, Any]:
    """create + add_files + upload + finalize of one folder (store, keys, cache from the environment)."""
    from mountfs import Dataset

    t0 = time.perf_counter()
    ds = Dataset.create(dataset_name=a["name"], dataset_project=PROJECT)
    n = ds.add_files(a["src"])
    t1 = time.perf_counter()
    ds.upload(show_progress=False)
    t2 = time.perf_counter()
    ds.finalize()
    t3 = time.perf_counter()
    return {"id": ds.id, "files": n, "total_s": t3 - t0,
            "phases_s": {"create_add": t1 - t0, "upload": t2 - t1, "finalize": t3 - t2}, "vm_hwm_bytes": common.vm_hwm()}


def _s3_client(a: dict[str, Any]) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=a["endpoint"], aws_access_key_id=a["key"], aws_secret_access_key=a["secret"],
                        region_name="us-east-1",
                        config=Config(max_pool_connections=32, s3={"addressing_style": "path"},
                                      retries={"max_attempts": 3}))


def step_put_plain(a: dict[str, Any]) -> dict[str, Any]:
    """The same files as plain objects (key = path relative to the tree) for the boto3 baseline."""
    from boto3.s3.transfer import TransferConfig

    c = _s3_client(a)
    with open(a["list"]) as fh:
        files = json.load(fh)
    t0 = time.perf_counter()
    small = [f for f in files if f[1] < RANGE]
    big = [f for f in files if f[1] >= RANGE]

    def put(f: list) -> int:
        with open(os.path.join(a["root"], f[0]), "rb") as fh:
            c.put_object(Bucket=a["bucket"], Key=a["prefix"] + f[0], Body=fh.read())
        return f[1]

    with ThreadPoolExecutor(THREADS) as ex:
        n = sum(ex.map(put, small))
    cfg = TransferConfig(multipart_threshold=RANGE, multipart_chunksize=RANGE, max_concurrency=THREADS)
    for f in big:
        c.upload_file(os.path.join(a["root"], f[0]), a["bucket"], a["prefix"] + f[0], Config=cfg)
        n += f[1]
    return {"bytes": n, "seconds": time.perf_counter() - t0}


def _result(total: int, files: int, seconds: float, bad: int, errors: list[str]) -> dict[str, Any]:
    return {"bytes": total, "files": files, "seconds": seconds, "bad": bad, "errors": errors[:5],
            "vm_hwm_bytes": common.vm_hwm()}


def step_read_fs(a: dict[str, Any]) -> dict[str, Any]:
    """Read every file of the list whole with 1 MiB readinto(), ``threads`` at a time, in list (path) order."""
    import xxhash

    with open(a["list"]) as fh:
        files = json.load(fh)
    root, verify = a["root"], a["verify"]
    tl = threading.local()
    errors: list[str] = []

    def one(f: list) -> tuple[int, bool]:
        rel, size, digest = f
        buf = getattr(tl, "buf", None)
        if buf is None:
            buf = tl.buf = bytearray(BUF)
            tl.mv = memoryview(buf)
        mv = tl.mv
        h = xxhash.xxh3_64() if verify else None
        n = 0
        try:
            with open(os.path.join(root, rel), "rb", buffering=0) as fh:
                while True:
                    k = fh.readinto(buf)
                    if not k:
                        break
                    if h is not None:
                        h.update(mv[:k])
                    n += k
        except OSError as exc:
            errors.append(f"{rel}: {exc}")
            return n, False
        return n, n == size and (h is None or h.hexdigest() == digest)

    t0 = time.perf_counter()
    if a["threads"] <= 1:
        res = [one(f) for f in files]
    else:
        with ThreadPoolExecutor(a["threads"]) as ex:
            res = list(ex.map(one, files))
    dt = time.perf_counter() - t0
    return _result(sum(n for n, _ in res), len(files), dt, sum(1 for _, ok in res if not ok), errors)


def step_read_s3(a: dict[str, Any]) -> dict[str, Any]:
    """boto3 from bucket ``plain``: one GET per object over 8 threads, or (``ranged``) one object at a
    time as 8 MiB ranged GETs over 8 threads (what the peer harness's boto3-direct does for B)."""
    import xxhash

    with open(a["list"]) as fh:
        files = json.load(fh)
    c = _s3_client(a)
    verify = a["verify"]
    errors: list[str] = []
    t0 = time.perf_counter()
    if not a["ranged"]:
        def one(f: list) -> tuple[int, bool]:
            rel, size, digest = f
            h = xxhash.xxh3_64() if verify else None
            n = 0
            try:
                body = c.get_object(Bucket=a["bucket"], Key=a["prefix"] + rel)["Body"]
                for chunk in body.iter_chunks(BUF):
                    if h is not None:
                        h.update(chunk)
                    n += len(chunk)
            except Exception as exc:  # noqa: BLE001 - counted as a bad file
                errors.append(f"{rel}: {exc!r}")
                return n, False
            return n, n == size and (h is None or h.hexdigest() == digest)

        with ThreadPoolExecutor(a["threads"]) as ex:
            res = list(ex.map(one, files))
        return _result(sum(n for n, _ in res), len(files), time.perf_counter() - t0,
                       sum(1 for _, ok in res if not ok), errors)

    total = bad = 0
    with ThreadPoolExecutor(a["threads"]) as ex:
        for rel, size, digest in files:
            buf = bytearray(size)
            mv = memoryview(buf)

            def part(off: int) -> int:
                end = min(off + RANGE, size) - 1
                body = c.get_object(Bucket=a["bucket"], Key=a["prefix"] + rel, Range=f"bytes={off}-{end}")["Body"]
                p = off
                for chunk in body.iter_chunks(BUF):
                    mv[p:p + len(chunk)] = chunk
                    p += len(chunk)
                return p - off

            try:
                n = sum(ex.map(part, range(0, size, RANGE)))
                ok = n == size and (not verify or xxhash.xxh3_64(buf).hexdigest() == digest)
            except Exception as exc:  # noqa: BLE001
                n, ok = 0, False
                errors.append(f"{rel}: {exc!r}")
            total += n
            bad += 0 if ok else 1
            del mv, buf
    return _result(total, len(files), time.perf_counter() - t0, bad, errors)


STEPS = {"ingest": step_ingest, "put_plain": step_put_plain, "read_fs": step_read_fs, "read_s3": step_read_s3}


# ------------------------------------------------------------------ /proc probes


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


def proc_cpu_s(pid: int | None) -> float:
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as fh:
            s = fh.read()
    except OSError:
        return 0.0
    f = s[s.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


# ------------------------------------------------------------------ the driver


class Bench(common.BenchRun):
    """Work dir, SeaweedFS, environments, mounts, and the collected results."""

    def __init__(self, args: argparse.Namespace):
        super().__init__(
            args, "read", seed=SEED, threads=THREADS, verify=args.verify, data={}, ingest={}, runs=[], million={},
            peers={}, profile=bool(args.profile),
            experiment={k: v for k, v in os.environ.items() if k.startswith("MFS_EXP")},
        )
        self.sizes = dict(QUICK if args.quick else FULL)
        if args.files:
            self.sizes["M"] = args.files
        self.server: Any = None
        self.mounts: dict[str, "Mount"] = {}
        self.profiles: list[str] = []

    # --- SeaweedFS and the mountfs environment --------------------------------------

    def start_server(self) -> None:
        self.server = common.start_seaweed(self.path("seaweedfs"), log)
        for b in (BUCKET, PLAIN):
            self.server.make_bucket(b)
        self.store = self.server.store_url(BUCKET, "read")
        self.config = self.path("mountfs.toml")
        with open(self.config, "w") as fh:
            fh.write(f'[s3.hosts."{self.server.host_port}"]\nkey = "{self.server.access_key}"\n'
                     f'secret = "{self.server.secret_key}"\nsecure = false\n')
        os.chmod(self.config, 0o600)
        self.doc["seaweedfs"] = {"endpoint": self.server.endpoint_url, "store": self.store}

    def s3_args(self) -> dict[str, Any]:
        return {"endpoint": self.server.endpoint_url, "key": self.server.access_key, "secret": self.server.secret_key}

    def env(self, cache: str | None = None) -> dict[str, str]:
        # only our MOUNTFS_* settings: a user's config, cache or run dir must not change the numbers
        return common.clean_env(MOUNTFS_STORE=self.store, MOUNTFS_CONFIG=self.config,
                                MOUNTFS_CACHE_DIR=cache or self.path("cache"), MOUNTFS_RUN_DIR=self.path("run"))

    def mountfs(self, *cli: str, cache: str | None = None, timeout: float = 600) -> str:
        cmd = [os.path.join(os.path.dirname(sys.executable), "mountfs"), *cli]
        p = subprocess.run(cmd, env=self.env(cache), capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"`mountfs {' '.join(cli)}` failed (exit {p.returncode}): {p.stderr.strip()[-2000:]}")
        return p.stdout

    # --- data ----------------------------------------------------------------------

    def gen(self, key: str, spec: tuple[int, int, int, int], seed: int, digests: bool = True) -> dict[str, Any]:
        root = self.path(f"data-{key}")
        files, folders, lo, hi = spec
        log(f"data {key}: {files} files in {folders} folders, {fmt_bytes(lo)}..{fmt_bytes(hi)} each")
        info = common.gen_tree(root, files, folders, lo, hi, seed)
        info["path"] = root
        how = "reused" if info["reused"] else f"generated in {info['seconds']:.1f} s"
        log(f"data {key}: {fmt_bytes(info['bytes'])} {how}")
        if digests:
            info["list"] = self.file_list(root, info)
        os.sync()
        self.doc["data"][key] = info
        return info

    def file_list(self, root: str, info: dict[str, Any]) -> str:
        """``<root>.list.json``: [relpath, size, xxh3_64] of every file, path order (kept with the data)."""
        import xxhash

        path = root + ".list.json"
        spec = {k: info[k] for k in ("files", "folders", "min_size", "max_size", "seed")}
        try:
            with open(path) as fh:
                if json.load(fh)["spec"] == spec:
                    return path + ".files"
        except (OSError, ValueError, KeyError):
            pass
        out = []
        for rel in common.tree_files(root):
            h = xxhash.xxh3_64()
            with open(os.path.join(root, rel), "rb") as fh:
                while block := fh.read(16 * MIB):
                    h.update(block)
            out.append([rel, os.path.getsize(os.path.join(root, rel)), h.hexdigest()])
        with open(path + ".files", "w") as fh:
            json.dump(out, fh)
        with open(path, "w") as fh:
            json.dump({"spec": spec}, fh)
        return path + ".files"

    def ingest(self, key: str, src: str) -> dict[str, Any]:
        self.cold()
        cache = self.path("ingest-cache")
        common.remove_tree(cache)
        run = common.run_step(SCRIPT, "ingest", {"name": key, "src": src}, self.env(cache))
        common.remove_tree(cache)
        r = {**run.result, "wall_s": run.wall_s, "peak_rss_bytes": run.peak_rss_bytes}
        self.doc["ingest"][key] = r
        log(f"ingest {key}: {r['files']} files in {r['total_s']:.1f} s "
            f"({', '.join(f'{k} {v:.1f}' for k, v in r['phases_s'].items())}), id {r['id']}, "
            f"peak RSS {fmt_bytes(run.peak_rss_bytes)}")
        return r

    def put_plain(self, key: str, info: dict[str, Any]) -> None:
        run = common.run_step(SCRIPT, "put_plain", {**self.s3_args(), "bucket": PLAIN, "prefix": f"{key}/",
                                                   "root": info["path"], "list": info["list"]})
        self.doc["ingest"][f"plain-{key}"] = run.result
        log(f"plain bucket {key}: {fmt_bytes(run.result['bytes'])} in {run.result['seconds']:.1f} s")

    # --- measured operations -------------------------------------------------------

    def read_fs(self, root: str, info: dict[str, Any], threads: int) -> dict[str, Any]:
        run = common.run_step(SCRIPT, "read_fs", {"root": root, "list": info["list"], "threads": threads,
                                                 "verify": self.args.verify})
        return self._check(run.result, root)

    def read_s3(self, key: str, info: dict[str, Any], ranged: bool) -> dict[str, Any]:
        run = common.run_step(SCRIPT, "read_s3", {**self.s3_args(), "bucket": PLAIN, "prefix": f"{key}/",
                                                 "list": info["list"], "threads": THREADS, "ranged": ranged,
                                                 "verify": self.args.verify})
        return self._check(run.result, f"s3 {PLAIN}/{key}")

    @staticmethod
    def _check(r: dict[str, Any], where: str) -> dict[str, Any]:
        if r["bad"]:
            raise RuntimeError(f"{r['bad']} of {r['files']} files read from {where} are short or wrong: {r['errors']}")
        r["MBps"] = mb(r["bytes"]) / r["seconds"]
        return r

    @staticmethod
    def shell(cmd: str, cwd: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        p = subprocess.run(["bash", "-c", cmd], cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"`{cmd}` in {cwd} failed (exit {p.returncode}): {p.stderr[-500:]}")
        return {"seconds": dt, "out": p.stdout.strip()[-200:]}

    def meta(self, root: str, expect: int) -> dict[str, Any]:
        """find (cold, warm) and ls -lR (cold, warm) over ``root``."""
        out = {}
        self.cold()
        for k in ("find_cold", "find_warm"):
            r = out[k] = self.shell("find . -type f | wc -l", root)
            if int(r["out"]) != expect:
                raise RuntimeError(f"find in {root} saw {r['out']} files, expected {expect}")
        self.cold()
        for k in ("ls_cold", "ls_warm"):
            out[k] = self.shell("ls -lR . > /dev/null", root)
        return out

    def profile(self, pid: int | None, name: str) -> "Profile":
        return Profile(self, pid, name)


class Profile:
    """``py-spy record`` of the daemon during one phase (only with --profile; it costs CPU)."""

    def __init__(self, b: Bench, pid: int | None, name: str):
        self.b, self.pid, self.name, self.proc = b, pid, name, None

    def __enter__(self) -> "Profile":
        if self.b.args.profile and self.pid:
            os.makedirs(self.b.args.profile, exist_ok=True)
            out = os.path.join(self.b.args.profile, f"{self.name}.txt")
            spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
            self.proc = subprocess.Popen([spy, "record", "-p", str(self.pid), "-r", "200", "--threads", "-f", "raw",
                                          "-o", out, *shlex.split(self.b.args.profile_opts)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.b.profiles.append(out)
            time.sleep(0.5)  # attached before the phase starts
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Mount:
    """One ``mountfs mount`` of a version: its daemon's PID, probes, and a thorough unmount."""

    def __init__(self, b: Bench, name: str, dataset_id: str, cache: str | None = None):
        self.b, self.name, self.id, self.cache = b, name, dataset_id, cache
        self.mnt = b.path("mnt", name)
        self.pid: int | None = None
        self.mount_s = 0.0

    def start(self) -> "Mount":
        os.makedirs(self.mnt, exist_ok=True)
        self.b.mounts[self.name] = self
        info = RuntimeFiles(self.b.path("run"), os.path.realpath(self.mnt)).info
        t0 = time.perf_counter()
        if self.b.args.profile:
            self._start_profiled(info)
        else:
            self.b.mountfs("mount", self.id, self.mnt, cache=self.cache)
        self.mount_s = time.perf_counter() - t0
        with open(info) as fh:
            self.pid = json.load(fh)["pid"]
        # the daemon runs the code of the working tree as it is now: others may be changing it
        self.b.doc.setdefault("mounts", []).append({"name": self.name, "pid": self.pid, "at": time.time(),
                                                    "code": code_state()})
        log(f"mounted {self.name} ({self.id}) at {self.mnt} in {self.mount_s:.2f} s, daemon pid {self.pid}")
        return self

    def _start_profiled(self, info: str) -> None:
        """`mountfs mount` under `py-spy record --subprocesses`, so the daemon's start (the manifest import)
        is in the profile; py-spy would follow the detached daemon until it exits, so it is stopped
        (SIGINT) as soon as the mount is up, which is when `mountfs mount` itself returns."""
        os.makedirs(self.b.args.profile, exist_ok=True)
        out = os.path.join(self.b.args.profile, f"mount-{self.name}.txt")
        self.b.profiles.append(out)
        cmd = [os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--subprocesses", "-r", "200",
               "-f", "raw", "-o", out, *shlex.split(self.b.args.profile_opts), "--",
               os.path.join(os.path.dirname(sys.executable), "mountfs"), "mount", self.id, self.mnt]
        spy = subprocess.Popen(cmd, env=self.b.env(self.cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 600
            while not (mounted_fuse(self.mnt) and os.path.exists(info)):
                if spy.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mount of {self.name} under py-spy failed (exit {spy.returncode}); "
                                       f"log in {self.b.path('run')}")
                time.sleep(0.02)
        finally:
            if spy.poll() is None:
                spy.send_signal(signal.SIGINT)
                try:
                    spy.wait(60)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    spy.wait()

    def stats(self) -> dict[str, Any]:
        """The daemon's own counters (`mountfs status --json`): reads, hits, fetches (ranged GETs), bytes."""
        try:
            rows = json.loads(self.b.mountfs("status", "--json", cache=self.cache, timeout=30))
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            return {"error": str(exc)[:300]}
        row = next((r for r in rows if r.get("pid") == self.pid), {})
        keep = ("reads", "read_hits", "chunk_misses", "fetches", "bytes_fetched", "bytes_read", "fetch_errors")
        return {k: row[k] for k in keep if k in row}

    def probe(self) -> dict[str, Any]:
        assert self.pid is not None
        if not alive(self.pid):
            raise RuntimeError(f"the daemon of {self.name} (pid {self.pid}) died; log: {self.b.path('run')}")
        # RssFile includes the LMDB index pages the daemon touched (mapped, reclaimable page cache)
        return {"vm_hwm_bytes": proc_status(self.pid, "VmHWM"), "vm_rss_bytes": proc_status(self.pid, "VmRSS"),
                "rss_anon_bytes": proc_status(self.pid, "RssAnon"), "rss_file_bytes": proc_status(self.pid, "RssFile"),
                "cpu_s": proc_cpu_s(self.pid)}

    def stop(self) -> None:
        """`mountfs umount`; then, if needed, SIGTERM/SIGKILL by PID and fusermount3 -uz."""
        self.b.mounts.pop(self.name, None)
        try:
            self.b.mountfs("umount", self.mnt, cache=self.cache, timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            log(f"umount {self.mnt}: {exc}")
        if self.pid:
            for sig, wait in ((None, 15.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                if sig is not None and alive(self.pid):
                    log(f"daemon pid {self.pid} still running: {sig.name}")
                    try:
                        os.kill(self.pid, sig)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + wait
                while alive(self.pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not alive(self.pid):
                    break
        if mounted_fuse(self.mnt):
            subprocess.run(["fusermount3", "-uz", self.mnt], check=False)


def code_state() -> dict[str, Any]:
    """Commit of the working tree and whether mountfs/ differs from it (what a daemon started now runs)."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "--short", "HEAD"), "mountfs_dirty": bool(git("status", "--porcelain", "mountfs"))}
    except OSError:
        return {}


# ------------------------------------------------------------------ one repeat of the A/B measurements


def _machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as fh:
        vals = [int(x) for x in fh.readline().split()[1:9]]
    return sum(vals) - vals[3] - vals[4], sum(vals)


def _own_cpu_s() -> float:
    a, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + c.ru_utime + c.ru_stime


def drops() -> int:
    """How many times anyone dropped the page cache since boot (``drop_pagecache`` in /proc/vmstat)."""
    try:
        with open("/proc/vmstat") as fh:
            for line in fh:
                if line.startswith("drop_pagecache "):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def large_folio_share(path: str, pages: int = 8192) -> float | None:
    """Share of the first ``pages`` cached pages of ``path`` that sit in large (multi-page) folios.

    Why warm B through any FUSE mount is slower than ext4: the kernel copies page
    cache to the reader one folio at a time, and ext4 caches big files in large
    folios while this kernel's FUSE caches 4 KiB pages.  Maps the file, touches
    each page, looks up its frame in /proc/self/pagemap and its compound-page
    flags in /proc/kpageflags (root only; None without them)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = min(pages * 4096, os.path.getsize(path)) // 4096 * 4096
    if not size:
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        if addr in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            for off in range(0, size, 4096):
                ctypes.c_char.from_address(addr + off).value  # fault the page in (it is cached: warm)
            with open("/proc/self/pagemap", "rb") as pm, open("/proc/kpageflags", "rb") as kf:
                large = 0
                for i in range(size // 4096):
                    pm.seek(((addr >> 12) + i) * 8)
                    pfn = struct.unpack("<Q", pm.read(8))[0] & ((1 << 55) - 1)
                    if not pfn:
                        return None  # frame numbers hidden: not root
                    kf.seek(pfn * 8)
                    large += bool(struct.unpack("<Q", kf.read(8))[0] & (3 << 15))  # COMPOUND_HEAD | COMPOUND_TAIL
        finally:
            libc.munmap(addr, size)
    except OSError:
        return None
    finally:
        os.close(fd)
    return large / (size // 4096)


def fill_small_pages(root: str) -> None:
    """Bring every file under ``root`` into the page cache in 4 KiB folios.

    With POSIX_FADV_RANDOM the kernel skips read-ahead and adds each missing
    page as a single-page folio: the page cache of local files then looks like
    the one this kernel (6.18) builds for any FUSE file, which makes it the
    like-for-like control for warm reads through a mount."""
    for d, _, names in os.walk(root):
        for name in names:
            fd = os.open(os.path.join(d, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
                off = 0
                while os.pread(fd, BUF, off):
                    off += BUF
            finally:
                os.close(fd)


def cpu_phase(b: Bench, pid: int | None, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fn``; add the CPU seconds the daemon, SeaweedFS and the reader (our children) spent meanwhile,
    and ``other_cpu_pct``: the share of the machine used by anything else (other work on a shared VM,
    kernel threads): the noise indicator."""
    sw = b.server.pid if b.server is not None else None
    d0, s0, o0, m0, x0 = proc_cpu_s(pid), proc_cpu_s(sw), _own_cpu_s(), _machine_busy(), drops()
    r = fn()
    d1, s1, o1, m1, x1 = proc_cpu_s(pid), proc_cpu_s(sw), _own_cpu_s(), _machine_busy(), drops()
    # this bench drops caches only between passes: a drop during one came from someone else on the machine
    # (another bench), and a warm pass it hit is not warm; the table leaves such passes out
    r["foreign_drops"] = x1 - x0
    tick = os.sysconf("SC_CLK_TCK")
    busy, cap = (m1[0] - m0[0]) / tick, max(1e-9, (m1[1] - m0[1]) / tick)
    ours = (d1 - d0) + (s1 - s0) + (o1 - o0)
    r["cpu_s"] = {"daemon": round(d1 - d0, 2), "seaweedfs": round(s1 - s0, 2), "bench": round(o1 - o0, 2)}
    r["machine_busy_pct"] = round(100 * busy / cap, 1)
    r["other_cpu_pct"] = round(100 * max(0.0, busy - ours) / cap, 1)
    r["loadavg"] = os.getloadavg()[0]
    return r


def measure(b: Bench, i: int, data: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    run: dict[str, Any] = {"local": {}, "local4k": {}, "boto3": {}, "mountfs": {}}
    parts = b.args.parts

    def say(who: str, what: str, r: dict[str, Any]) -> None:
        extra = f" {r['MBps']:.0f} MB/s" if "MBps" in r else ""
        cpu = (f" (CPU s: daemon {r['cpu_s']['daemon']:.1f}, SeaweedFS {r['cpu_s']['seaweedfs']:.1f}, "
               f"reader {r['cpu_s']['bench']:.1f}; other {r['other_cpu_pct']:.0f}% of the machine)") if "cpu_s" in r else ""
        if r.get("foreign_drops"):
            cpu += f" [page cache dropped {r['foreign_drops']}x by another process during the pass: left out]"
        log(f"[{i}] {who} {what}: {r['seconds']:.3f} s{extra}{cpu}")

    # local disk: the ceiling, same data, same run
    if "a" in parts:
        A = data["A"]
        for k, r in b.meta(A["path"], A["files"]).items():
            run["local"][k] = r
            say("local", k, r)
        b.cold()
        for k in ("A_cold", "A_warm"):
            run["local"][k] = cpu_phase(b, None, lambda: b.read_fs(A["path"], A, THREADS))
            say("local", k, run["local"][k])
    if "b" in parts:
        B = data["B"]
        b.cold()
        for k in ("B_cold", "B_warm", "B_warm2"):
            run["local"][k] = cpu_phase(b, None, lambda: b.read_fs(B["path"], B, 1))
            say("local", k, run["local"][k])
        # the same files with the page cache in 4 KiB pages, like a FUSE file's
        b.cold()
        fill_small_pages(B["path"])
        for k in ("B_warm", "B_warm2"):
            run["local4k"][k] = cpu_phase(b, None, lambda: b.read_fs(B["path"], B, 1))
            say("local, 4 KiB pages", k, run["local4k"][k])
        # boto3 straight from the plain bucket: B as 8 MiB ranges over 8 threads
        b.cold()
        run["boto3"]["B_cold"] = cpu_phase(b, None, lambda: b.read_s3("B", B, ranged=True))
        say("boto3", "B_cold", run["boto3"]["B_cold"])
    if "a" in parts:
        b.cold()
        run["boto3"]["A_cold"] = cpu_phase(b, None, lambda: b.read_s3("A", data["A"], ranged=False))
        say("boto3", "A_cold", run["boto3"]["A_cold"])

    # mountfs: chunk cache cleared before each mount, page cache dropped before each cold pass
    for key, part in (("A", "a"), ("B", "b")):
        if part not in parts:
            continue
        D = data[key]
        b.mountfs("cache", "clear")
        m = Mount(b, key, ids[key]).start()
        res = run["mountfs"]
        res[f"{key}_mount_s"] = {"seconds": m.mount_s}
        try:
            if key == "A":
                b.cold()
                for k in ("find_cold", "find_warm"):
                    with b.profile(m.pid, f"{i}-A-{k}"):
                        r = res[k] = cpu_phase(b, m.pid, lambda: b.shell("find . -type f | wc -l", m.mnt))
                    if int(r["out"]) != D["files"]:
                        raise RuntimeError(f"find over the mount saw {r['out']} files, expected {D['files']}")
                    say("mountfs", k, r)
                b.cold()
                for k in ("ls_cold", "ls_warm"):
                    with b.profile(m.pid, f"{i}-A-{k}"):
                        r = res[k] = cpu_phase(b, m.pid, lambda: b.shell("ls -lR . > /dev/null", m.mnt))
                    say("mountfs", k, r)
            threads = THREADS if key == "A" else 1
            b.cold()
            for phase in ("cold", "warm") if key == "A" else ("cold", "warm", "warm2"):
                with b.profile(m.pid, f"{i}-{key}-{phase}"):
                    r = res[f"{key}_{phase}"] = cpu_phase(b, m.pid, lambda: b.read_fs(m.mnt, D, threads))
                say("mountfs", f"{key}_{phase}", r)
            if key == "B":
                first = min(os.path.join(d, f) for d, _, fs in os.walk(D["path"]) for f in fs)
                res["B_large_folios"] = {"local": large_folio_share(first),
                                         "mountfs": large_folio_share(os.path.join(m.mnt, os.path.relpath(first, D["path"])))}
                log(f"[{i}] page cache of B's first file in large folios: {res['B_large_folios']}")
            # page cache dropped, the daemon's chunk cache kept
            b.cold()
            with b.profile(m.pid, f"{i}-{key}-own_cache"):
                r = res[f"{key}_own_cache"] = cpu_phase(b, m.pid, lambda: b.read_fs(m.mnt, D, threads))
            say("mountfs", f"{key}_own_cache", r)
            res[f"{key}_daemon"] = {**m.probe(), "stats": m.stats()}
            log(f"[{i}] mountfs {key} daemon VmHWM {fmt_bytes(res[f'{key}_daemon']['vm_hwm_bytes'])}, "
                f"CPU {res[f'{key}_daemon']['cpu_s']:.1f} s")
        finally:
            m.stop()
    return run


# ------------------------------------------------------------------ the million-file version


def part_million(b: Bench, info: dict[str, Any], dataset_id: str) -> None:
    doc: dict[str, Any] = {"files": info["files"], "folders": info["folders"], "bytes": info["bytes"],
                           "ingest": b.doc["ingest"]["M"]}
    cache = b.path("cache-M")
    common.remove_tree(cache)  # empty: the mount downloads and imports the manifest
    for attempt in ("first", "again"):
        m = Mount(b, f"M-{attempt}", dataset_id, cache=cache)
        try:
            m.start()
            r: dict[str, Any] = {"mount_s": m.mount_s, "after_mount": m.probe()}
            with b.profile(m.pid, f"M-{attempt}-ls"):
                t0 = time.perf_counter()
                p = subprocess.run(["ls", m.mnt], capture_output=True, text=True, timeout=STEP_TIMEOUT)
                r["first_ls_s"] = time.perf_counter() - t0
            r["root_entries"] = len(p.stdout.split())
            if p.returncode != 0 or r["root_entries"] != info["folders"]:
                raise RuntimeError(f"ls of the 1M-file root: exit {p.returncode}, {r['root_entries']} entries, "
                                   f"expected {info['folders']}: {p.stderr[-300:]}")
            r["after_ls"] = m.probe()
            log(f"M {attempt}: mount {m.mount_s:.2f} s, first ls {r['first_ls_s']:.3f} s, "
                f"VmHWM {fmt_bytes(r['after_ls']['vm_hwm_bytes'])}, RSS {fmt_bytes(r['after_ls']['vm_rss_bytes'])}")
            if attempt == "first":
                first_dir = sorted(p.stdout.split())[0]
                r["ls_l_one_folder"] = b.shell(f"ls -l {first_dir} > /dev/null", m.mnt)["seconds"]
                if not b.args.no_walk:
                    with b.profile(m.pid, "M-find"):
                        w = cpu_phase(b, m.pid, lambda: b.shell("find . -type f | wc -l", m.mnt))
                    r["find_all"] = {"seconds": w["seconds"], "count": int(w["out"]), "cpu_s": w["cpu_s"]}
                    r["after_find"] = m.probe()
                    log(f"M: find over all {w['out']} files {w['seconds']:.1f} s, "
                        f"VmHWM {fmt_bytes(r['after_find']['vm_hwm_bytes'])}")
            doc[attempt] = r
        finally:
            m.stop()
    common.remove_tree(cache)
    b.doc["million"] = doc


# ------------------------------------------------------------------ peers (the harness's run JSON)


def load_peers(b: Bench) -> dict[str, Any]:
    paths = b.args.peers
    if not paths:
        out_dir = os.environ.get("PEERS_OUT", "/tmp/peerbench/results")
        preset = "quick" if b.args.quick else "full"
        cands = []
        for p in sorted(glob.glob(os.path.join(out_dir, "run-*.json")), key=os.path.getmtime):
            try:
                with open(p) as fh:
                    d = json.load(fh)
            except (OSError, ValueError):
                continue
            if d.get("meta", {}).get("dataset", {}).get("preset") == preset and "juicefs-default" in d.get("systems", {}):
                cands.append(p)
        paths = cands[-1:]
    runs = []
    for p in paths:
        with open(p) as fh:
            runs.append(json.load(fh))
    if not runs:
        log("no peer harness results found (--peers): targets relative to peers use fallbacks or stay open")
        return {}

    def med(system: str, get: Callable[[dict], Any]) -> float | None:
        vals = []
        for d in runs:
            s = d.get("systems", {}).get(system)
            try:
                v = get(s) if s and not s.get("skipped") else None
            except (KeyError, TypeError):
                v = None
            if v is not None:
                vals.append(v)
        return statistics.median(vals) if vals else None

    systems: dict[str, Any] = {}
    names = sorted({n for d in runs for n in d.get("systems", {})})
    for n in names:
        kind = next((d["systems"][n].get("kind") for d in runs if n in d["systems"] and d["systems"][n].get("kind")), None)
        systems[n] = {
            "kind": kind,
            "A_cold_MBps": med(n, lambda s: s["phases"]["A_cold"]["MBps"]),
            "A_warm_MBps": med(n, lambda s: s["phases"]["A_warm"]["MBps"]),
            "B_cold_MBps": med(n, lambda s: s["phases"]["B_cold"]["MBps"]),
            "B_warm_MBps": med(n, lambda s: s["phases"]["B_warm"]["MBps"]),
            "ls_cold_s": med(n, lambda s: s["phases"]["meta_ls_cold"]["seconds"]),
            "ls_warm_s": med(n, lambda s: s["phases"]["meta_ls_warm"]["seconds"]),
            "find_cold_s": med(n, lambda s: s["phases"]["meta_find_cold"]["seconds"]),
            "vm_hwm_bytes": med(n, lambda s: s["vmhwm_kb"] * 1024 if s.get("vmhwm_kb") else None),
        }
    mounts = {n: s for n, s in systems.items() if s["kind"] == "fuse" and n != "mountfs" and s["A_cold_MBps"]}
    best = max(mounts, key=lambda n: mounts[n]["A_cold_MBps"]) if mounts else None
    return {"files": paths, "systems": systems, "best_A_cold_mount": best}


# ------------------------------------------------------------------ table


def _vals(runs: list[dict[str, Any]], who: str, key: str, field: str) -> list[float]:
    """The pass's values over repeats, without passes during which someone else dropped the page cache
    (unless every repeat was hit)."""
    got = [r[who][key] for r in runs if key in r.get(who, {}) and r[who][key].get(field) is not None]
    clean = [x for x in got if not x.get("foreign_drops")]
    return [x[field] for x in (clean or got)]


def med(runs: list[dict[str, Any]], who: str, key: str, field: str = "seconds") -> float | None:
    vals = _vals(runs, who, key, field)
    return statistics.median(vals) if vals else None


def span(runs: list[dict[str, Any]], who: str, key: str, field: str = "seconds", fmt: str = "{:.0f}") -> str:
    """`` (min..max)`` over repeats, or nothing for one repeat."""
    vals = _vals(runs, who, key, field)
    return "" if len(vals) < 2 else f" ({fmt.format(min(vals))}..{fmt.format(max(vals))})"


def build_rows(b: Bench) -> list[dict[str, Any]]:
    runs, peers = b.doc["runs"], b.doc["peers"]
    ps = peers.get("systems", {})
    jfs = ps.get("juicefs-default", {})
    rows: list[dict[str, Any]] = []

    def row(metric: str, ours: float | None, base: float | None, base_name: str, kind: str,
            target: float | None = None, fmt: str = "{:.1f}", sense: str = ">=", note: str = "", unit: str = "") -> None:
        # kind "rate": ratio = ours/base (higher is better); "time": base/ours (speed, higher is better);
        # "size": ours/base (lower is better)
        ratio = None
        if ours is not None and base:
            ratio = ours / base if kind in ("rate", "size") else (base / ours if ours else None)
        ok = None
        if target is not None and ratio is not None:
            ok = ratio >= target if sense == ">=" else ratio <= target
        rows.append({"metric": metric, "mountfs": None if ours is None else fmt.format(ours) + unit + note,
                     "baseline": "" if base is None else f"{fmt.format(base)}{unit} {base_name}".strip(),
                     "ratio": None if ratio is None else f"{ratio:.2f}x",
                     "target": "" if target is None else f"{sense} {target:g}x", "ok": ok,
                     "values": {"mountfs": ours, "baseline": base, "ratio": ratio}})

    parts = b.args.parts
    M = lambda who, key, field="MBps": med(runs, who, key, field)  # noqa: E731
    if "a" in parts:
        row("A cold MB/s (8 threads, whole files)", M("mountfs", "A_cold"), M("local", "A_cold"), "local cold", "rate",
            note=span(runs, "mountfs", "A_cold", "MBps"))
        best = peers.get("best_A_cold_mount")
        row("A cold MB/s vs best peer mount", M("mountfs", "A_cold"), ps[best]["A_cold_MBps"] if best else None,
            f"({best}, peer run)" if best else "(no peer run)", "rate", T_A_COLD_VS_PEER)
        row("A cold MB/s vs boto3 (1 GET/file, 8 threads)", M("mountfs", "A_cold"), M("boto3", "A_cold"), "boto3", "rate")
        row("A warm MB/s", M("mountfs", "A_warm"), M("local", "A_warm"), "local page cache", "rate", T_WARM,
            note=span(runs, "mountfs", "A_warm", "MBps"))
        row("A own cache MB/s (page cache dropped)", M("mountfs", "A_own_cache"), M("local", "A_cold"), "local cold", "rate")
    if "b" in parts:
        row("B cold MB/s (1 file at a time, 1 MiB reads)", M("mountfs", "B_cold"), M("local", "B_cold"), "local cold", "rate",
            note=span(runs, "mountfs", "B_cold", "MBps"))
        row("B cold MB/s vs boto3 direct (8 x 8 MiB ranges)", M("mountfs", "B_cold"), M("boto3", "B_cold"), "boto3",
            "rate", T_B_COLD_VS_BOTO3)
        row("B warm MB/s (first warm pass)", M("mountfs", "B_warm"), M("local", "B_warm"), "local page cache", "rate",
            T_WARM, note=span(runs, "mountfs", "B_warm", "MBps"))
        row("B warm MB/s, second warm pass", M("mountfs", "B_warm2"), M("local", "B_warm2"), "local page cache", "rate")
        row("B warm MB/s vs local in 4 KiB pages (first pass)", M("mountfs", "B_warm"), M("local4k", "B_warm"),
            "local, 4 KiB pages", "rate")
        row("B warm MB/s vs local in 4 KiB pages (second pass)", M("mountfs", "B_warm2"), M("local4k", "B_warm2"),
            "local, 4 KiB pages", "rate")
        row("B own cache MB/s (page cache dropped)", M("mountfs", "B_own_cache"), M("local", "B_cold"), "local cold", "rate")
        folios = [r["mountfs"]["B_large_folios"] for r in runs if r["mountfs"].get("B_large_folios", {}).get("local") is not None]
        if folios:
            f = folios[-1]
            row("B page cache in large folios, % (why B warm trails local)", 100 * (f["mountfs"] or 0),
                100 * f["local"], "local (ext4)", "rate", fmt="{:.0f}")
    if "a" in parts:
        for k, what in (("find_cold", "find over A cold, s"), ("find_warm", "find over A warm, s"),
                        ("ls_cold", "ls -lR over A cold, s"), ("ls_warm", "ls -lR over A warm, s")):
            row(what, M("mountfs", k, "seconds"), M("local", k, "seconds"), "local", "time", fmt="{:.3f}")
        for k, what in (("ls_cold", "ls -lR over A cold vs juicefs, s"), ("ls_warm", "ls -lR over A warm vs juicefs, s")):
            row(what, M("mountfs", k, "seconds"), jfs.get(f"{k}_s"), "(juicefs-default, peer run)", "time",
                T_LS_VS_JUICEFS, fmt="{:.3f}")
        row("mount s (A, `mountfs mount` returns)", M("mountfs", "A_mount_s", "seconds"), None, "", "time", fmt="{:.2f}")
    hwm = [r["mountfs"][f"{k}_daemon"]["vm_hwm_bytes"] for r in runs for k in ("A", "B") if f"{k}_daemon" in r["mountfs"]]
    if hwm:
        peak = max(hwm)
        if jfs.get("vm_hwm_bytes"):
            row("peak daemon RSS MiB (VmHWM, A and B mounts)", peak / MIB, jfs["vm_hwm_bytes"] / MIB,
                "(juicefs-default, peer run)", "size", T_RSS_VS_JUICEFS, sense="<=")
        else:
            row("peak daemon RSS MiB (VmHWM, A and B mounts)", peak / MIB, T_RSS_FALLBACK / MIB, "(fixed target)",
                "size", 1.0, sense="<=")
    mil = b.doc.get("million") or {}
    if "first" in mil:
        n = mil["files"]
        f = mil["first"]
        row(f"M ({n} files): ingest s (SDK, create..finalize)", mil["ingest"]["total_s"], None, "", "time")
        row("M: `mountfs mount` s (empty cache: manifest import)", f["mount_s"], None, "", "time", fmt="{:.2f}")
        row("M: first ls of the root after mount, s", f["first_ls_s"], T_M_LS_S, "(target)", "size", 1.0,
            fmt="{:.3f}", sense="<=")
        row("M: daemon VmHWM after mount + ls, MiB", f["after_ls"]["vm_hwm_bytes"] / MIB, T_M_RSS / MIB, "(target)",
            "size", 1.0, sense="<=")
        if "find_all" in f:
            row(f"M: find over all files, s (then VmHWM {f['after_find']['vm_hwm_bytes'] / MIB:.0f} MiB)",
                f["find_all"]["seconds"], None, "", "time")
        if "again" in mil:
            row("M: `mountfs mount` s again (table already imported)", mil["again"]["mount_s"], None, "", "time",
                fmt="{:.2f}")
            row("M: first ls of the root, second mount, s", mil["again"]["first_ls_s"], None, "", "time", fmt="{:.3f}")
    return rows


def print_rows(rows: list[dict[str, Any]], file: Any = sys.stdout) -> None:
    head = ("metric", "mountfs", "baseline", "ratio", "target", "ok?")
    cells = [head] + [(r["metric"], r["mountfs"] or "-", r["baseline"] or "-", r["ratio"] or "-", r["target"],
                       "" if r["ok"] is None else "ok" if r["ok"] else "FAIL") for r in rows]
    common.print_cells(cells, file)


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="JSON results (default bench/results/read-<stamp>.json)")
    p.add_argument("--work", default=None, help="work folder (default: a new /tmp folder, removed at the end); "
                   "generated data in a given folder is kept and reused, stores and caches are not")
    p.add_argument("--quick", action="store_true", help="A = 500 files, B = 2 x 16 MiB, M = 20,000 files")
    p.add_argument("--only", default=",".join(PARTS), help="parts: a (10k small files), b (large files), "
                   "m (the million-file version)")
    p.add_argument("--files", type=int, default=None, help="files in M (default 1,000,000; 20,000 with --quick)")
    p.add_argument("--repeat", type=int, default=1, help="repeats of the A/B measurements (medians are reported)")
    p.add_argument("--peers", nargs="*", default=None, help="peer harness run JSON(s) (default: the newest "
                   "$PEERS_OUT/run-*.json of the same preset)")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="do not check the bytes read")
    p.add_argument("--no-walk", action="store_true", help="skip the find over all of M")
    p.add_argument("--profile", metavar="DIR", default=None, help="py-spy record the daemon in each mountfs phase "
                   "into DIR (raw collapsed stacks; perturbs the numbers)")
    p.add_argument("--profile-opts", default="", help="more py-spy record options, e.g. '--gil' (only samples "
                   "holding the GIL: where the daemon's Python CPU goes) or '--native'")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    a = p.parse_args(argv)
    common.parse_parts(p, a, PARTS)
    a.out = a.out or common.default_out("read")
    return a


def main(argv: list[str] | None = None) -> int:
    if common.step_main(STEPS, argv):
        return 0
    args = parse_args(argv)
    if os.geteuid() != 0:
        log("not root: page cache cannot be dropped (cold numbers are not cold) and mounts may be refused")
    b = Bench(args)
    log(f"work dir {b.work}; results -> {args.out}")
    t_start = time.perf_counter()
    try:
        data: dict[str, Any] = {}
        if "a" in args.parts:
            data["A"] = b.gen("A", b.sizes["A"], SEED)
        if "b" in args.parts:
            data["B"] = b.gen("B", b.sizes["B"], SEED + 1)
        if "m" in args.parts:
            data["M"] = b.gen(f"M{b.sizes['M']}", (b.sizes["M"], M_FOLDERS, *M_SIZES), SEED + 2, digests=False)
        b.start_server()
        ids = {}
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
        for m in list(b.mounts.values()):
            m.stop()
        if b.server is not None:
            pid = b.server.pid
            b.server.stop()  # SIGTERM (then SIGKILL) of the PID it started
            log(f"SeaweedFS pid {pid} stopped")
        b.doc["wall_s"] = time.perf_counter() - t_start
        b.doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        b.doc["profiles"] = b.profiles
        try:
            b.rows = build_rows(b)
        except Exception as exc:  # noqa: BLE001 - a partial run still writes its raw numbers
            log(f"table: {exc!r}")
        b.save()
        if b.own_work and not args.keep:
            common.remove_tree(b.work)
    m = b.doc["machine"]
    dropped = "yes" if b.dropped else "NO (not root?): cold passes may read from the page cache"
    print(f"\nmountfs read benchmark ({'quick' if args.quick else 'full'}, {args.repeat} repeat(s); "
          f"{m['nproc']} cores, kernel {m['kernel']}, python {m['python']}); page cache dropped: {dropped}")
    print("MB = 10^6 bytes. ratio: MB/s = mountfs/baseline; seconds = baseline/mountfs (speed, >1 = mountfs faster); "
          "MiB and the M targets = mountfs/baseline (lower is better).")
    if b.doc["peers"]:
        print(f"peer baselines from {', '.join(b.doc['peers']['files'])} (a separate run on this machine)")
    print_rows(b.doc.get("rows", []))
    noise = {who: [r[who][k]["other_cpu_pct"] for r in b.doc["runs"] for k in r.get(who, {})
                   if isinstance(r[who][k], dict) and "other_cpu_pct" in r[who][k]] for who in ("local", "boto3", "mountfs")}
    b.doc["noise_other_cpu_pct"] = {k: v for k, v in noise.items() if v}
    hit = [f"{who} {k} [{i}]" for i, r in enumerate(b.doc["runs"]) for who in ("local", "boto3", "mountfs")
           for k, x in r.get(who, {}).items() if isinstance(x, dict) and x.get("foreign_drops")]
    if hit:
        print(f"passes during which another process dropped the page cache (left out of the medians): {', '.join(hit)}")
    if any(noise.values()):
        print("noise: share of the machine's CPU used by other work during the timed passes (median, max): " +
              ", ".join(f"{who} {statistics.median(v):.0f}%, {max(v):.0f}%" for who, v in noise.items() if v))
        common.write_json(args.out, b.doc)
    codes = sorted({f"{m['code'].get('commit')}{'+dirty' if m['code'].get('mountfs_dirty') else ''}"
                    for m in b.doc.get("mounts", []) if m.get("code")})
    if codes:
        print(f"daemon code (commit of the working tree at each mount): {', '.join(codes)}")
    if b.doc["experiment"]:
        print(f"EXPERIMENT: {b.doc['experiment']}")
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
