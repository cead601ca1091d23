"""Servers a bench starts and the settings mountfs reads for a store.

SeaweedFS comes from ``tests/servers.py`` (127.0.0.1 only, random free ports,
the peer harness's 1 GiB volumes with ``bulk=True``) and is stopped by PID.
A mountfs step sees only the bench's ``MOUNTFS_*`` settings: a user's config,
cache or run dir must not change the numbers.
"""

from __future__ import annotations

import collections
import importlib
import os
import sys
import time
from typing import Any, Callable

from harness.data import remove_tree
from harness.machine import REPO
from harness.steps import clean_env

Log = Callable[[str], None]


def start_seaweed(workdir: str, log: Log) -> Any:
    """A private SeaweedFS in a fresh ``workdir``, started; stop it with :func:`stop_seaweed`."""
    sys.path.insert(0, os.path.join(REPO, "tests"))
    server = importlib.import_module("servers").SeaweedServer
    remove_tree(workdir)
    s = server(workdir, bulk=True)
    t0 = time.perf_counter()
    s.start()
    log(f"SeaweedFS pid {s.pid} on {s.endpoint_url} ({time.perf_counter() - t0:.1f} s)")
    return s


def stop_seaweed(server: Any, log: Log) -> None:
    """SIGTERM (then SIGKILL) of the PID it started."""
    pid = server.pid
    server.stop()
    log(f"SeaweedFS pid {pid} stopped")


def write_mountfs_config(path: str, server: Any) -> str:
    """A private ``MOUNTFS_CONFIG`` (mode 0600) with the server's keys under its host entry; returns ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f'[s3.hosts."{server.host_port}"]\nkey = "{server.access_key}"\n'
                 f'secret = "{server.secret_key}"\nsecure = false\n')
    return path


def mountfs_env(store: str, config: str, cache: str, run_dir: str | None = None, *,
                no_aws_keys: bool = False) -> dict[str, str]:
    """The environment of a mountfs process: only these ``MOUNTFS_*`` settings; with ``no_aws_keys``
    the config file's host entry is the only key source."""
    extra = {"MOUNTFS_STORE": store, "MOUNTFS_CONFIG": config, "MOUNTFS_CACHE_DIR": cache}
    if run_dir is not None:
        extra["MOUNTFS_RUN_DIR"] = run_dir
    env = clean_env(**extra)
    if no_aws_keys:
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            env.pop(k, None)
    return env


def bucket_objects(client: Any, bucket: str, prefix: str = "") -> dict[str, Any]:
    """Objects and bytes in a bucket, and per first key component below ``prefix``."""
    count = size = 0
    by: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", ()):
            count += 1
            size += o["Size"]
            top = o["Key"][len(prefix):].split("/", 1)[0]
            by[top][0] += 1
            by[top][1] += o["Size"]
    return {"objects": count, "bytes": size, "by_prefix": {k: {"objects": v[0], "bytes": v[1]} for k, v in sorted(by.items())}}


def drop_bucket(client: Any, bucket: str, log: Log) -> None:
    """Free the disk a run's bucket uses: delete its objects (1000 per request), then the bucket."""
    try:
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for o in page.get("Contents", ())]
        for i in range(0, len(keys), 1000):
            client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})
        client.delete_bucket(Bucket=bucket)
    except Exception as exc:  # noqa: BLE001 - only disk space is at stake
        log(f"could not remove bucket {bucket}: {exc!r}")
