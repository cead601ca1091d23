"""The steps of ``read.py``, each run in a fresh interpreter (``harness.steps``): the readers that time
themselves, the ingest of a data set, and the plain objects of the boto3 baseline.

A file list is ``[[relpath, size, xxh3_64], ...]`` in path order (``harness.data.file_list``);
with ``verify`` every byte read is checked against it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import sdk  # noqa: E402
from harness.boto import put_files, split  # noqa: E402
from harness.data import MIB  # noqa: E402
from harness.steps import step_main, vm_hwm  # noqa: E402

MODULE = os.path.abspath(__file__)
THREADS = 8
BUF = 1 * MIB
RANGE = 8 * MIB
PROJECT = "bench-read"

FileEntry = list[Any]  # [relpath, size, xxh3 hex digest]


def _files(a: dict[str, Any]) -> list[FileEntry]:
    with open(a["list"]) as fh:
        files: list[FileEntry] = json.load(fh)
    return files


def _s3_client(a: dict[str, Any]) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=a["endpoint"], aws_access_key_id=a["key"], aws_secret_access_key=a["secret"],
                        region_name="us-east-1",
                        config=Config(max_pool_connections=32, s3={"addressing_style": "path"},
                                      retries={"max_attempts": 3}))


def _result(total: int, files: int, seconds: float, bad: int, errors: list[str]) -> dict[str, Any]:
    return {"bytes": total, "files": files, "seconds": seconds, "bad": bad, "errors": errors[:5],
            "vm_hwm_bytes": vm_hwm()}


def step_ingest(a: dict[str, Any]) -> dict[str, Any]:
    """create + add_files + upload + finalize of one folder (store, keys, cache from the environment)."""
    ing = sdk.ingest(a["src"], a["name"], PROJECT)
    p = ing.phases_s
    return {"id": ing.ds.id, "files": ing.changed, "total_s": ing.total_s,
            "phases_s": {"create_add": p["create"] + p["add_files"], "upload": p["upload"], "finalize": p["finalize"]},
            "vm_hwm_bytes": vm_hwm()}


def step_put_plain(a: dict[str, Any]) -> dict[str, Any]:
    """The same files as plain objects (key = prefix + path relative to the tree) for the boto3 baseline."""
    from boto3.s3.transfer import TransferConfig

    c = _s3_client(a)
    files = _files(a)
    t0 = time.perf_counter()
    small, big = split(files, RANGE)
    cfg = TransferConfig(multipart_threshold=RANGE, multipart_chunksize=RANGE, max_concurrency=THREADS)
    n = put_files(c, a["root"], small, big, a["bucket"], a["prefix"], THREADS, cfg)
    return {"bytes": n, "seconds": time.perf_counter() - t0}


def step_read_fs(a: dict[str, Any]) -> dict[str, Any]:
    """Read every file of the list whole with 1 MiB readinto(), ``threads`` at a time, in list (path) order."""
    import xxhash

    files = _files(a)
    root, verify = a["root"], a["verify"]
    tl = threading.local()
    errors: list[str] = []

    def one(f: FileEntry) -> tuple[int, bool]:
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

    files = _files(a)
    c = _s3_client(a)
    verify = a["verify"]
    errors: list[str] = []
    t0 = time.perf_counter()
    if not a["ranged"]:
        def one(f: FileEntry) -> tuple[int, bool]:
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


def step_read_shuffled(a: dict[str, Any]) -> dict[str, Any]:
    """Every file of the list once, in a seeded random order, by ``workers`` processes (read_shuffle.py)."""
    from read_shuffle import shuffled_read

    with open(a["list"]) as fh:
        files = json.load(fh)
    r = shuffled_read(a["root"], files, a["workers"], a["seed"], a["verify"])
    return {**r, "bad": 0, "errors": []}


STEPS = {"ingest": step_ingest, "put_plain": step_put_plain, "read_fs": step_read_fs, "read_s3": step_read_s3,
         "read_shuffled": step_read_shuffled}

if __name__ == "__main__":
    sys.exit(step_main(STEPS))
