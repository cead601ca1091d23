"""A store that stops answering during cold reads through a mount: EIO within the bound, then recovery.

SeaweedFS is stopped with SIGSTOP (its sockets stay open, connections are still
accepted by the kernel, nothing answers: a hung server, not a dead one).  Every
cold ``read()`` must get EIO within ``READ_FAIL_BOUND`` of the syscall, the
kernel's re-issue of the failed page read included, whatever the S3 client's
own timeouts; what the daemon's cache holds still reads meanwhile; after
SIGCONT the same daemon serves every file byte for byte.

``MOUNTFS_SKIP_S3=1`` skips these tests locally; without it a missing ``weed``
binary fails them (CI must exercise S3).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mfs import Harness, drop_page_cache, environment, harness, short_run_dir, wait_for, write

pytestmark = [pytest.mark.fuse, pytest.mark.s3, pytest.mark.slow]

#: the documented bound (README "Mounting", mountfs/fs/reader.py): from a read() syscall to its EIO
READ_FAIL_BOUND = 15.0
#: how long the hung reads are waited for before the test calls them hung
COLLECT_SECONDS = READ_FAIL_BOUND + 15.0
FILES = 6
#: above the reader's SMALL_FILE, so reading one file does not read ahead into the next
FILE_SIZE = 3 << 20


@dataclass
class Store:
    server: object  # servers.SeaweedServer
    root: Path
    files: dict[str, bytes]  # path in the version -> bytes
    env: dict[str, str]  # the SDK's environment (store URL, credentials)
    version_dir: str  # project/name/version under the catalog mount


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    if os.environ.get("MOUNTFS_SKIP_S3") == "1":
        pytest.skip("S3 tests skipped: MOUNTFS_SKIP_S3=1")
    from servers import SeaweedServer, find_weed

    try:
        find_weed()
    except FileNotFoundError as exc:
        pytest.fail(f"{exc} (set MOUNTFS_SKIP_S3=1 to skip S3 tests locally)", pytrace=False)
    root = tmp_path_factory.mktemp("hang")
    server = SeaweedServer(root / "weed")  # this module's own: it is stopped and continued
    server.start()
    try:
        url = server.store_url(server.new_bucket(), "datasets/root")
        env = dict(os.environ, MOUNTFS_STORE=url, MOUNTFS_CACHE_DIR=str(root / "sdk-cache"),
                   MOUNTFS_CONFIG=str(_config(root / "sdk.toml", server)))
        for k in ("MOUNTFS_CACHE_SIZE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
            env.pop(k, None)
        files = {f"part-{i}.bin": os.urandom(FILE_SIZE) for i in range(FILES)}
        src = root / "src"
        for rel, data in files.items():
            write(src / rel, data)
        with environment(env):
            from mountfs import Dataset

            ds = Dataset.create(dataset_name="shards", dataset_project="hang", dataset_version="1.0.0")
            ds.add_files(str(src))
            ds.upload(show_progress=False, chunk_size=1)  # 1 MiB packs: every file spans several
            ds.finalize()
        yield Store(server, root, files, env, "hang/shards/1.0.0")
    finally:
        server.stop()


def _config(path: Path, server, **s3: float) -> Path:
    """A config file with the server's credentials and ``[s3]`` settings ``s3``."""
    general = "".join(f"{k} = {v}\n" for k, v in s3.items())
    path.write_text(f"[s3]\n{general}\n" + textwrap.dedent(f"""\
        [s3.hosts."{server.host_port}"]
        key = "{server.access_key}"
        secret = "{server.secret_key}"
        secure = false
        """))
    return path


def _server_pids(pid: int) -> list[int]:
    """``pid`` and its descendants: every process that could answer S3 requests."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in os.listdir(f"/proc/{p}/task"):
            with open(f"/proc/{p}/task/{task}/children") as fh:
                todo.extend(int(c) for c in fh.read().split())
    return out


# Opens the files, says "ready", waits for a line on stdin, then reads every
# file in its own thread in 256 KiB read() calls until EOF or an error; one JSON
# line per file: the errno and how long the failing read() call took, or the
# sha256 and the slowest read() call.
_READER = r"""
import hashlib, json, sys, threading, time
paths = sys.argv[1:]
files = [open(p, "rb", buffering=0) for p in paths]
print("ready", flush=True)
sys.stdin.readline()
lock = threading.Lock()

def read(path, fh):
    h, out = hashlib.sha256(), {"path": path, "slowest": 0.0}
    while True:
        t0 = time.monotonic()
        try:
            block = fh.read(256 << 10)
        except OSError as exc:
            out.update(errno=exc.errno, seconds=time.monotonic() - t0)
            break
        out["slowest"] = max(out["slowest"], time.monotonic() - t0)
        if not block:
            out["sha"] = h.hexdigest()
            break
        h.update(block)
    with lock:
        print(json.dumps(out), flush=True)

threads = [threading.Thread(target=read, args=(p, fh)) for p, fh in zip(paths, files)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


class Reads:
    """The reader above in a subprocess: a hung FUSE read can never hang the test."""

    def __init__(self, paths: list[str]) -> None:
        self.count = len(paths)
        self.proc = subprocess.Popen([sys.executable, "-c", _READER, *paths], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        assert self._next(30) == "ready", "the reader could not open the files"

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def _next(self, timeout: float) -> str | None:
        try:
            return self.lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def go(self, timeout: float) -> dict[str, dict]:
        """Start the reads; path -> result of those that ended within ``timeout``."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        results: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        while len(results) < self.count:
            line = self._next(deadline - time.monotonic())
            if line is None:
                break
            msg = json.loads(line)
            results[msg["path"]] = msg
        return results

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # by PID: our own child (a fatal signal ends a waiting FUSE read)
        self.proc.wait(10)


def _read_all(paths: list[str], timeout: float = 60) -> dict[str, dict]:
    reads = Reads(paths)
    try:
        return reads.go(timeout)
    finally:
        reads.close()


def _hang_and_recover(store: Store, h: Harness) -> list[str]:
    """Mount, SIGSTOP the server during cold reads, check the bound, SIGCONT, check recovery;
    the daemon's logged problems, for the caller to check."""
    server = store.server
    mnt = h.mountpoint()
    d = h.start(mnt)
    vdir = os.path.join(mnt, store.version_dir)
    wait_for(lambda: os.path.isdir(vdir), 30, f"{store.version_dir} in the catalog mount")
    paths = {rel: os.path.join(vdir, rel) for rel in store.files}
    for rel, p in paths.items():  # the version's file table is imported while the store answers
        assert os.stat(p).st_size == len(store.files[rel])
    cached, *cold = sorted(paths)
    with open(paths[cached], "rb") as fh:
        assert fh.read() == store.files[cached]
    drop_page_cache(paths[cached])  # the daemon's cache holds it, the kernel's does not

    reads = Reads([paths[rel] for rel in [cached, *cold]])
    pids = _server_pids(server.pid)
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)  # by PID: our own server
        results = reads.go(COLLECT_SECONDS)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        reads.close()
    hung = sorted(set(paths.values()) - set(results))
    assert not hung, f"read() still blocked {COLLECT_SECONDS:.0f} s after the store stopped: {hung}"
    took = []
    for rel, p in paths.items():
        r = results[p]
        if rel == cached:
            assert r.get("sha") is not None, f"a cached file failed while the store hung: {r}"
        else:
            assert r.get("errno") == 5, f"{rel}: wanted EIO from a hung store, got {r}"  # EIO, nothing else
            took.append(f"{r['seconds']:.2f}")
            assert r["seconds"] <= READ_FAIL_BOUND, f"{rel}: read() took {r['seconds']:.1f} s to fail"
    print(f"read() to EIO with the store stopped, per cold file (s): {', '.join(took)}")

    # the store answers again: the same daemon serves every file, byte for byte
    want = {paths[rel]: hashlib.sha256(data).hexdigest() for rel, data in store.files.items()}

    def all_right() -> bool:
        got = _read_all(sorted(want))
        return all(got.get(p, {}).get("sha") == sha for p, sha in want.items())

    started = time.monotonic()
    wait_for(all_right, 60, "reads to succeed after SIGCONT", interval=0.2)
    print(f"every file read right {time.monotonic() - started:.1f} s after SIGCONT")
    drop_page_cache(vdir)
    got = _read_all(sorted(want))
    assert {p: r.get("sha") for p, r in got.items()} == want
    assert d.alive()
    return d.log_problems()


@pytest.mark.timeout(240)
def test_hung_store_gives_eio_within_the_bound_then_recovers(store: Store, tmp_path: Path) -> None:
    env = dict(store.env, MOUNTFS_CACHE_DIR=str(tmp_path / "cache"), MOUNTFS_RUN_DIR=short_run_dir())
    work = tmp_path / "work"
    work.mkdir()
    with harness(env, work) as h:
        problems = _hang_and_recover(store, h)
    assert any("fetch failed" in line or "did not answer" in line for line in problems), problems


@pytest.mark.timeout(240)
def test_bound_holds_whatever_the_clients_timeouts(store: Store, tmp_path: Path) -> None:
    # a per-attempt read timeout far past the bound: only the reader's own
    # deadline (in the event loop) can turn the hang into EIO in time
    config = _config(tmp_path / "slow-client.toml", store.server, read_timeout=120)
    env = dict(store.env, MOUNTFS_CACHE_DIR=str(tmp_path / "cache"), MOUNTFS_RUN_DIR=short_run_dir(),
               MOUNTFS_CONFIG=str(config))
    work = tmp_path / "work"
    work.mkdir()
    with harness(env, work) as h:
        problems = _hang_and_recover(store, h)
    assert any("did not answer within 10 s" in line for line in problems), problems
