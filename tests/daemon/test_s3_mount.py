"""The catalog mount over an S3 store (a real SeaweedFS on 127.0.0.1), and the server going away mid-read.

``MOUNTFS_SKIP_S3=1`` skips these tests locally; without it a missing
``weed`` binary fails them (CI must exercise S3).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from mfs import (Catalog, Daemon, Harness, assert_same_tree, drop_page_cache, environment, harness, sha,
                 short_run_dir, standard_catalog, tree_files)

pytestmark = [pytest.mark.fuse, pytest.mark.s3]

#: a read of data the cache does not hold must fail within this long when the store is gone
READ_FAIL_BOUND = 30.0


@dataclass
class S3Mount:
    server: object
    h: Harness
    daemon: Daemon
    mnt: Path
    cat: Catalog
    url: str


@pytest.fixture(scope="module")
def s3mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Mount]:
    if os.environ.get("MOUNTFS_SKIP_S3") == "1":
        pytest.skip("S3 tests skipped: MOUNTFS_SKIP_S3=1")
    from servers import SeaweedServer, find_weed

    try:
        find_weed()
    except FileNotFoundError as exc:
        pytest.fail(f"{exc} (set MOUNTFS_SKIP_S3=1 to skip S3 tests locally)", pytrace=False)
    root = tmp_path_factory.mktemp("s3catalog")
    server = SeaweedServer(root / "weed")  # this module's own: it is stopped and started again
    server.start()
    try:
        url = server.store_url(server.new_bucket(), "datasets/root")
        # credentials the way users give them: the config file's entry for the endpoint
        config = root / "config.toml"
        config.write_text(textwrap.dedent(f"""\
            [s3.hosts."{server.host_port}"]
            key = "{server.access_key}"
            secret = "{server.secret_key}"
            secure = false
            """))
        env = dict(os.environ, MOUNTFS_STORE=url, MOUNTFS_CACHE_DIR=str(root / "cache"),
                   MOUNTFS_CONFIG=str(config), MOUNTFS_RUN_DIR=short_run_dir())
        for k in ("MOUNTFS_CACHE_SIZE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
            env.pop(k, None)
        with environment(env):
            cat = standard_catalog(root / "src", big=5 << 20, long=8 << 20)
        work = root / "work"
        work.mkdir()
        with harness(env, work) as h:
            mnt = h.mountpoint()
            d = h.start(mnt)
            yield S3Mount(server, h, d, Path(mnt), cat, url)
    finally:
        server.stop()


def test_s3_catalog_byte_for_byte(s3mount: S3Mount) -> None:
    mnt, cat = s3mount.mnt, s3mount.cat
    assert set(os.listdir(mnt)) == {".by-id", "vision", "audio"}
    assert os.readlink(mnt / "vision/cats/latest") == "1.0.1"
    for key, (dataset_id, src) in cat.versions.items():
        assert_same_tree(mnt / key, src)
        assert_same_tree(mnt / ".by-id" / dataset_id, src)
    st = s3mount.daemon.status()
    assert st["store"] == s3mount.url and st["fetch_errors"] == 0
    assert st["bytes_fetched"] >= (5 << 20) + (8 << 20)
    assert s3mount.h.cli_json("status")[0]["store"] == s3mount.url
    assert not s3mount.daemon.log_problems(), s3mount.daemon.log_problems()


_READER = r"""
import errno, hashlib, json, os, sys, time
# read each file in 256 KiB blocks (a little pause between them); one JSON line per file
for path in sys.argv[1:]:
    t0 = time.monotonic()
    h = hashlib.sha256()
    result = {"path": path}
    try:
        with open(path, "rb", buffering=0) as fh:
            while True:
                block = fh.read(256 << 10)
                if not block:
                    break
                h.update(block)
                print(json.dumps({"progress": path}), flush=True)
                time.sleep(0.02)
        result["sha"] = h.hexdigest()
    except OSError as exc:
        result["errno"] = exc.errno
    result["seconds"] = time.monotonic() - t0
    print(json.dumps(result), flush=True)
"""


def _read_in_subprocess(paths: list[Path], on_first_progress=None, timeout: float = 120) -> dict[str, dict]:
    """Read files in another process (a hung FUSE read must never hang the test); path -> result."""
    proc = subprocess.Popen([sys.executable, "-c", _READER, *map(str, paths)], stdout=subprocess.PIPE, text=True)
    results: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            msg = json.loads(line)
            if "progress" in msg:
                if on_first_progress is not None:
                    on_first_progress()
                    on_first_progress = None
                continue
            results[msg["path"]] = msg
            assert time.monotonic() < deadline, "the reader is too slow"
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()  # by PID: our own child
            proc.wait(10)
    return results


@pytest.mark.allow_warnings
def test_s3_outage_eio_bounded_cached_still_reads(s3mount: S3Mount) -> None:
    mnt, cat, server, d, h = s3mount.mnt, s3mount.cat, s3mount.server, s3mount.daemon, s3mount.h
    h.cli("cache", "clear")
    drop_page_cache(mnt / "vision")
    drop_page_cache(mnt / "audio")
    cached_key = "vision/cats/1.0.1"
    assert_same_tree(mnt / cached_key, cat.src(cached_key))  # now in the daemon's cache
    fetched = d.status()["bytes_fetched"]

    long_rel = "audio/speech/1.0.0/long.wav"
    boxes = sorted(tree_files(cat.src("vision/det/boxes/2.0")).items())[:2]
    uncached = [mnt / long_rel] + [mnt / "vision/det/boxes/2.0" / rel for rel, _ in boxes]
    want = {str(mnt / long_rel): sha(cat.src("audio/speech/1.0.0") / "long.wav")}
    for rel, p in boxes:
        want[str(mnt / "vision/det/boxes/2.0" / rel)] = sha(p)

    killed_at: list[float] = []

    def kill_server() -> None:  # the store disappears while the first file is being read
        server.kill()
        killed_at.append(time.monotonic())

    results = _read_in_subprocess(uncached, on_first_progress=kill_server)
    done = time.monotonic()
    assert killed_at, "the reader never started"
    assert set(results) == set(want)
    failed = [r for r in results.values() if "errno" in r]
    for r in results.values():
        if "errno" in r:
            assert r["errno"] == 5, r  # EIO, never another error, never a hang
        else:
            assert r["sha"] == want[r["path"]], f"wrong bytes from {r['path']}"
        assert r["seconds"] < READ_FAIL_BOUND, r
    assert failed, "no read failed although the store was gone"
    assert done - killed_at[0] < READ_FAIL_BOUND * len(results)

    # what the cache holds still reads, byte for byte, without the store
    drop_page_cache(mnt / cached_key)
    assert_same_tree(mnt / cached_key, cat.src(cached_key))
    assert_same_tree(mnt / ".by-id" / cat.id(cached_key), cat.src(cached_key))
    assert os.listdir(mnt / "vision/cats") and os.readlink(mnt / "vision/cats/latest") == "1.0.1"
    st = d.status()
    assert st["fetch_errors"] > 0
    assert d.alive()

    # the server comes back (same data, same port): the same reads now succeed
    server.start()
    results = _read_in_subprocess(uncached)
    for r in results.values():
        assert r.get("sha") == want[r["path"]], r
    assert_same_tree(mnt / "audio/speech/1.0.0", cat.src("audio/speech/1.0.0"))
    assert d.status()["bytes_fetched"] > fetched
    problems = d.log_problems()
    assert any("fetch failed" in line for line in problems), problems
