"""The steps of ``transfer.py``, each run in a fresh interpreter (``harness.steps``).

boto3 steps get the server from the environment (``BENCH_S3_ENDPOINT``,
``AWS_*`` keys); mountfs steps get store, keys and cache from ``MOUNTFS_*``.
Every step counts the S3 API calls it makes; imports stay outside the timed regions.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import sdk  # noqa: E402
from harness.boto import put_files, split  # noqa: E402
from harness.data import MIB, tree_files  # noqa: E402
from harness.steps import step_main, vm_hwm  # noqa: E402

MODULE = os.path.abspath(__file__)
THREADS = 8
#: boto3's TransferConfig default multipart threshold and part size
BOTO_MULTIPART = 8 * MIB
PROJECT = "bench-transfer"


def _count_requests() -> "collections.Counter[str]":
    """Count every S3 API call this process makes (boto3's and the SDK's alike), by operation name.

    Wraps botocore's ``Endpoint.make_request``: one count per API call (a
    botocore-internal retry of the same call is not counted again).
    """
    import botocore.endpoint

    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    orig = botocore.endpoint.Endpoint.make_request

    def make_request(self: Any, operation_model: Any, request_dict: Any) -> Any:
        with lock:
            counts[operation_model.name] += 1
        return orig(self, operation_model, request_dict)

    botocore.endpoint.Endpoint.make_request = make_request  # type: ignore[method-assign]
    return counts


def _boto_client() -> Any:
    """A boto3 client for the server in the environment.

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
    files = [(rel, os.path.getsize(os.path.join(root, rel))) for rel in tree_files(root)]
    small, big = split(files, BOTO_MULTIPART)
    cfg = _transfer_config()
    counts.clear()
    t0 = time.perf_counter()
    n = put_files(c, root, small, big, bucket, "", THREADS, cfg)
    dt = time.perf_counter() - t0
    return {"bytes": n, "files": len(files), "seconds": dt, "client_s": client_s, "small_files": len(small),
            "big_files": len(big), "requests": dict(counts), "vm_hwm_bytes": vm_hwm()}


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
    small, big = split(objs, BOTO_MULTIPART)
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
            "small_files": len(small), "big_files": len(big), "requests": dict(counts), "vm_hwm_bytes": vm_hwm()}


def step_mountfs_upload(a: dict[str, Any]) -> dict[str, Any]:
    """create + add_files + upload + finalize of one folder; the requests of ``upload()`` counted apart."""
    counts = _count_requests()
    import mountfs.backends.s3  # noqa: F401 - imports (boto3 among them) are outside the timed region, as for boto3

    before: dict[str, int] = {}
    upload_requests: dict[str, int] = {}
    ing = sdk.ingest(a["src"], a["name"], PROJECT, workers=a.get("workers"), before_upload=lambda: before.update(counts),
                     after_upload=lambda: upload_requests.update(counts - collections.Counter(before)))
    rec = ing.ds.record
    return {"id": ing.ds.id, "files": rec.file_count, "bytes": rec.total_size, "changed": ing.changed,
            "phases_s": ing.phases_s, "total_s": ing.total_s, "requests": dict(counts),
            "upload_requests": upload_requests, "vm_hwm_bytes": vm_hwm()}


def step_mountfs_download(a: dict[str, Any]) -> dict[str, Any]:
    """Dataset.get + get_local_copy of a finalized version; MOUNTFS_CACHE_DIR is fresh."""
    counts = _count_requests()
    import mountfs.backends.s3  # noqa: F401 - imports (boto3 among them) are outside the timed region, as for boto3

    return {**sdk.local_copy(a["id"], a.get("workers")), "requests": dict(counts), "vm_hwm_bytes": vm_hwm()}


STEPS = {"boto3_upload": step_boto3_upload, "boto3_download": step_boto3_download,
         "mountfs_upload": step_mountfs_upload, "mountfs_download": step_mountfs_download}

if __name__ == "__main__":
    sys.exit(step_main(STEPS))
