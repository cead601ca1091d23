"""The contract every backend keeps, run against each of them (``backend`` fixture),
plus what only a real server can show: outages, conditional-write races, secrets.
"""

from __future__ import annotations

import io
import os
import multiprocessing
import random
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

import pytest
from servers import SeaweedServer, pick_free_port

from mountfs.backends import Backend, open_backend
from mountfs.backends.file import FileBackend
from mountfs.backends.retry import RetryingBackend
from mountfs.backends.s3 import S3Backend
from mountfs.config import Config
from mountfs.errors import AlreadyExists, ObjectNotFound, PermissionDenied, StoreError, TransientStoreError, UsageError

MiB = 1 << 20


def blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# --- the contract --------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1000, 20 * MiB])
def test_put_get_round_trip(backend: Backend, size: int) -> None:
    data = blob(size, seed=size)
    backend.put("datasets/x/info.json", data)
    assert backend.get("datasets/x/info.json") == data
    info = backend.stat("datasets/x/info.json")
    assert (info.key, info.size) == ("datasets/x/info.json", size)
    assert backend.exists("datasets/x/info.json")


def test_overwrite_replaces_content_and_tag(backend: Backend) -> None:
    backend.put("k", b"first")
    tag = backend.stat("k").etag
    backend.put("k", memoryview(b"second, longer"))
    assert backend.get("k") == b"second, longer"
    assert backend.stat("k").etag != tag


def test_get_range(backend: Backend) -> None:
    data = blob(5 * MiB + 123, seed=7)  # crosses SeaweedFS's 4 MiB chunk boundary
    backend.put("packs/aa/p1", data)
    for offset, length in [(0, 10), (4 * MiB - 5, 10), (1000, 2 * MiB), (len(data) - 10, 10)]:
        assert backend.get_range("packs/aa/p1", offset, length) == data[offset:offset + length]
    # fewer bytes only at the end; nothing at or past it
    assert backend.get_range("packs/aa/p1", len(data) - 3, 100) == data[-3:]
    assert backend.get_range("packs/aa/p1", len(data), 10) == b""
    assert backend.get_range("packs/aa/p1", len(data) + 50, 10) == b""
    assert backend.get_range("packs/aa/p1", 5, 0) == b""


def test_get_range_of_empty_object(backend: Backend) -> None:
    backend.put("empty", b"")
    assert backend.get_range("empty", 0, 10) == b""
    assert backend.get_range("empty", 3, 10) == b""


def test_missing_object(backend: Backend) -> None:
    with pytest.raises(ObjectNotFound):
        backend.get("no/such/key")
    with pytest.raises(ObjectNotFound):
        backend.get_range("no/such/key", 0, 10)
    with pytest.raises(ObjectNotFound):
        backend.get_range("no/such/key", 0, 0)
    with pytest.raises(ObjectNotFound):
        backend.stat("no/such/key")
    assert not backend.exists("no/such/key")


def test_delete_is_idempotent(backend: Backend) -> None:
    backend.put("a/b", b"x")
    backend.delete("a/b")
    backend.delete("a/b")
    backend.delete("never/there")
    assert not backend.exists("a/b")
    assert list(backend.list()) == []


def test_list_prefixes_and_order(backend: Backend) -> None:
    keys = ["packs/aa/2", "packs/aa/1", "packs/ab/3", "packs-x", "datasets/1/info.json",
            "datasets/10/info.json", "datasets/2/manifest", "mountfs.json"]
    for i, key in enumerate(keys):
        backend.put(key, b"x" * i)

    def listed(prefix: str = "") -> list[str]:
        return [o.key for o in backend.list(prefix)]

    assert listed() == sorted(keys)
    assert listed("packs/") == ["packs/aa/1", "packs/aa/2", "packs/ab/3"]
    assert listed("packs") == ["packs-x", "packs/aa/1", "packs/aa/2", "packs/ab/3"]
    assert listed("packs/a") == ["packs/aa/1", "packs/aa/2", "packs/ab/3"]
    assert listed("datasets/1") == ["datasets/1/info.json", "datasets/10/info.json"]
    assert listed("datasets/1/") == ["datasets/1/info.json"]
    assert listed("nothing/") == [] and listed("zzz") == []
    sizes = {o.key: o.size for o in backend.list()}
    assert sizes == {key: i for i, key in enumerate(keys)}


def test_put_file_large(backend: Backend, tmp_path: Path) -> None:
    data = blob(40 * MiB, seed=40)
    path = tmp_path / "big"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        backend.put_file("packs/big", fh, len(data))
    info = backend.stat("packs/big")
    assert info.size == len(data)
    if isinstance(getattr(backend, "inner", backend), S3Backend):
        assert "-" in info.etag, "40 MiB should have gone up as a multipart upload"
    assert backend.get_range("packs/big", 33 * MiB, 100) == data[33 * MiB:33 * MiB + 100]
    assert backend.get("packs/big") == data


@pytest.mark.server_feature("conditional_write")
def test_put_if_absent(backend: Backend) -> None:
    backend.put_if_absent("catalog/p/n/1.0.0", b"first")
    with pytest.raises(AlreadyExists):
        backend.put_if_absent("catalog/p/n/1.0.0", b"second")
    assert backend.get("catalog/p/n/1.0.0") == b"first"


def _race(backend: Backend, key: str, n: int) -> None:
    barrier = threading.Barrier(n)
    won: list[bytes] = []
    lost: list[Exception] = []

    def creator(i: int) -> None:
        payload = f"writer {i} ".encode() * (1000 + i)
        barrier.wait()
        try:
            backend.put_if_absent(key, payload)
            won.append(payload)
        except AlreadyExists as exc:
            lost.append(exc)

    threads = [threading.Thread(target=creator, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1 and len(lost) == n - 1, (len(won), lost)
    assert backend.get(key) == won[0]


@pytest.mark.server_feature("conditional_write")
def test_put_if_absent_race_threads(backend: Backend) -> None:
    # contended creates are slow on SeaweedFS (losers wait on a lock ~1 s), so two rounds
    for round_ in range(2):
        _race(backend, f"catalog/race/{round_}", 8)


def _create_in_process(root: str, key: str, payload: bytes, barrier: "multiprocessing.synchronize.Barrier",
                       results: "multiprocessing.Queue[tuple[str, bytes]]") -> None:
    barrier.wait()
    try:
        FileBackend(root).put_if_absent(key, payload)
        results.put(("won", payload))
    except AlreadyExists:
        results.put(("lost", payload))


def test_put_if_absent_race_processes(backend: Backend) -> None:
    root = getattr(backend, "root", None)  # RetryingBackend passes attributes through
    if root is None:
        pytest.skip("processes racing on one folder: file backend only (S3 races are the thread test)")
    ctx = multiprocessing.get_context("fork")
    for round_ in range(3):
        key, barrier, results = f"catalog/proc/{round_}", ctx.Barrier(2), ctx.Queue()
        payloads = [f"process {i}".encode() * 500 for i in range(2)]
        procs = [ctx.Process(target=_create_in_process, args=(str(root), key, p, barrier, results)) for p in payloads]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        outcome = dict(results.get(timeout=5) for _ in procs)
        assert sorted(outcome) == ["lost", "won"]
        assert backend.get(key) == outcome["won"]


# --- S3 only: what a real server shows ------------------------------------------


@pytest.mark.s3
def test_s3_prefixes_isolate_stores(seaweed: SeaweedServer, open_s3: Callable[..., Backend]) -> None:
    bucket = seaweed.new_bucket()
    one, two = open_s3(bucket=bucket, prefix="stores/a"), open_s3(bucket=bucket, prefix="stores/ab")
    one.put("k", b"1")
    two.put("k", b"2")
    assert [o.key for o in one.list()] == ["k"] and one.get("k") == b"1"
    assert two.get("k") == b"2"
    assert one.url == f"s3://{seaweed.host_port}/{bucket}/stores/a"


@pytest.mark.s3
def test_s3_bodies_carry_a_crc32_the_server_checks(open_s3: Callable[..., Backend],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Payloads go unsigned (no SHA-256 over http) but each body has a CRC32 that the server verifies."""
    import mountfs.backends.s3 as s3mod

    store = open_s3()
    small, big = blob(1000, seed=1), blob(20 * MiB, seed=2)
    store.put("a", small)
    store.put_parts("b", [small[:10], small[10:]])
    monkeypatch.setattr(s3mod, "_SINGLE_PUT_MAX", 16 * MiB)
    store.put_parts("c", [big[:3 * MiB], big[3 * MiB:]])  # > 16 MiB: a multipart upload
    store.put_if_absent("d", small)
    client = store._client  # type: ignore[attr-defined]
    for key, data in (("a", small), ("b", small), ("c", big), ("d", small)):
        assert store.get(key) == data
        head = client.head_object(Bucket=store.bucket, Key=store._key(key), ChecksumMode="ENABLED")  # type: ignore[attr-defined]
        assert head.get("ChecksumCRC32"), key
    assert client.head_object(Bucket=store.bucket, Key=store._key("a"), ChecksumMode="ENABLED")[  # type: ignore[attr-defined]
        "ChecksumCRC32"] == s3mod._crc32([small])

    # a body that does not match its CRC32 (as if damaged on the way) is refused, and nothing is stored
    monkeypatch.setattr(s3mod, "_crc32", lambda parts: s3mod.base64.b64encode(b"\0\0\0\1").decode())
    for put in (lambda: store.put("e", small), lambda: store.put_parts("f", [big]),
                lambda: store.put_if_absent("g", small)):
        with pytest.raises(StoreError):
            put()
    for key in "efg":
        with pytest.raises(ObjectNotFound):
            store.get(key)


@pytest.mark.s3
def test_s3_url_forms(seaweed: SeaweedServer) -> None:
    bucket = seaweed.new_bucket()
    # s3://bucket/prefix: AWS style, endpoint and keys from the standard variables
    env = {"AWS_ACCESS_KEY_ID": seaweed.access_key, "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
           "AWS_ENDPOINT_URL": seaweed.endpoint_url, "AWS_REGION": "us-east-1"}
    aws = open_backend(f"s3://{bucket}/p", Config(environ=env))
    assert isinstance(aws, S3Backend) and aws.url == f"s3://{bucket}/p"
    aws.put("k", b"v")
    # s3://host:port/bucket/prefix with the keys from the environment instead of s3.hosts
    hosted = S3Backend.from_url(seaweed.store_url(bucket, "p"), Config(environ=env))
    assert hosted.get("k") == b"v"
    with pytest.raises(UsageError):
        S3Backend.from_url(f"s3://{seaweed.host_port}/", Config(s3_hosts=seaweed.s3_host_settings()))


@pytest.mark.s3
@pytest.mark.allow_warnings  # the dead endpoint makes RetryingBackend give up
def test_s3_errors_never_show_the_secret(seaweed: SeaweedServer, open_s3: Callable[..., Backend],
                                         caplog: pytest.LogCaptureFixture) -> None:
    bucket = seaweed.new_bucket()
    good = open_s3(bucket=bucket)
    good.put("k", b"v")
    wrong_secret = "wrong-secret-0123456789abcdef"
    bad_hosts = {seaweed.host_port: {"key": seaweed.access_key, "secret": wrong_secret}}
    bad = S3Backend.from_url(seaweed.store_url(bucket), Config(s3_hosts=bad_hosts))
    dead_host = f"127.0.0.1:{pick_free_port()}"  # nothing listens there
    dead = RetryingBackend(S3Backend.from_url(f"s3://{dead_host}/{bucket}", Config(
        s3_hosts={dead_host: {"key": "k", "secret": seaweed.secret_key}}, s3={"connect_timeout": 1})),
        total_timeout=1)
    caught: list[BaseException] = []
    for call, expected in [(lambda: good.get("missing"), ObjectNotFound),
                           (lambda: good.put_if_absent("k", b"again"), AlreadyExists),
                           (lambda: bad.get("k"), PermissionDenied),
                           (lambda: bad.put("k2", b"x"), PermissionDenied),
                           (lambda: dead.get("k"), TransientStoreError)]:
        with pytest.raises(expected) as info:
            call()
        caught.append(info.value)
    texts = [str(e) + repr(e) + "".join(traceback.format_exception(e)) for e in caught]
    texts += [repr(good), good.url, repr(bad), repr(dead), caplog.text]
    for secret in (seaweed.secret_key, wrong_secret):
        assert not [t for t in texts if secret in t]


class _KillingReader(io.BytesIO):
    """A file that kills the server once the upload is underway."""

    def __init__(self, data: bytes, server: SeaweedServer, after: int) -> None:
        super().__init__(data)
        self.server, self.after = server, after

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self.after and self.server.running:
            self.server.kill()
        return super().read(size)


@pytest.mark.s3
@pytest.mark.allow_warnings  # RetryingBackend warns when it gives up: expected here
@pytest.mark.timeout(90)
def test_s3_outage_fails_fast_then_recovers(private_seaweed: SeaweedServer, open_s3: Callable[..., Backend]) -> None:
    server = private_seaweed
    # small parts so that 24 MiB is a multipart upload of 5 parts
    store = RetryingBackend(open_s3(server, connect_timeout=2, multipart_threshold="8M", multipart_chunksize="5M"))
    store.put("before", b"kept")
    data = blob(24 * MiB, seed=3)

    # the server dies in the middle of a multipart upload
    start = time.monotonic()
    with pytest.raises(TransientStoreError):
        store.put_file("packs/big", _KillingReader(data, server, after=8 * MiB), len(data))
    assert time.monotonic() - start < 15
    start = time.monotonic()
    with pytest.raises(TransientStoreError):
        store.get("before")
    assert time.monotonic() - start < 15

    server.start()
    assert store.get("before") == b"kept"
    assert not store.exists("packs/big"), "a failed upload must leave no partial object"
    store.put_file("packs/big", io.BytesIO(data), len(data))
    assert store.get("packs/big") == data
    assert [o.key for o in store.list()] == ["before", "packs/big"]


def test_store_error_family() -> None:
    # callers catch StoreError for any storage failure
    for cls in (ObjectNotFound, AlreadyExists, PermissionDenied, TransientStoreError):
        assert issubclass(cls, StoreError)


def test_put_parts_writes_the_concatenation(backend) -> None:
    parts = [os.urandom(1000), b"", memoryview(os.urandom(3 << 20)), b"tail"]
    backend.put_parts("packs/joined", parts)
    assert backend.get("packs/joined") == b"".join(bytes(p) for p in parts)


def test_get_ranges_reads_pieces_and_skips_gaps(backend) -> None:
    data = blob(3 * MiB, seed=9)
    backend.put("packs/p", data)
    spans = [(0, 10), (10, 5), (1000, MiB), (2 * MiB, 7)]
    got = backend.get_ranges("packs/p", 100, spans)
    assert [bytes(g) for g in got] == [data[100 + a:100 + a + n] for a, n in spans]
    assert backend.get_ranges("packs/p", 100, []) == []
    tail = backend.get_ranges("packs/p", 3 * MiB - 4, [(0, 4), (2, 2)][:1])
    assert [bytes(g) for g in tail] == [data[-4:]]
    with pytest.raises(ObjectNotFound):
        backend.get_ranges("packs/absent", 0, [(0, 1)])


def test_put_parts_of_a_big_pack(backend, monkeypatch: pytest.MonkeyPatch) -> None:
    # S3 sends a pack bigger than this as a multipart upload of several parts at once
    import mountfs.backends.s3 as s3mod
    monkeypatch.setattr(s3mod, "_SINGLE_PUT_MAX", 16 * MiB)
    parts = [blob(7 * MiB + 3, seed=1), memoryview(blob(13 * MiB, seed=2)), b"", blob(5, seed=3)]
    backend.put_parts("packs/big", parts)
    assert backend.get("packs/big") == b"".join(bytes(p) for p in parts)
    assert [o.key for o in backend.list()] == ["packs/big"]


def test_staged_object_appears_only_when_committed(backend) -> None:
    parts = [os.urandom(2000), memoryview(os.urandom(1 << 20))]
    staged = backend.stage_parts("packs/staged", parts)
    staged.commit()
    assert backend.get("packs/staged") == b"".join(bytes(p) for p in parts)
    assert [o.key for o in backend.list()] == ["packs/staged"]


def test_file_store_stages_without_a_visible_object(tmp_path) -> None:
    # the deferred fsync is only safe if nothing unsynced has its final name
    backend = FileBackend(tmp_path)
    staged = backend.stage_parts("packs/x", [b"abc"])
    assert not backend.exists("packs/x") and list(backend.list()) == []
    staged.commit()
    assert backend.get("packs/x") == b"abc"
    dropped = backend.stage_parts("packs/y", [b"def"])
    dropped.discard()
    assert not backend.exists("packs/y") and os.listdir(tmp_path / "packs") == ["x"]


def test_parts_reader_seeks_and_reads_like_a_file() -> None:
    from mountfs.backends.base import PartsReader

    parts = [b"abc", b"", b"defgh", memoryview(b"ij")]
    r = PartsReader(parts)
    assert r.size == 10 and r.read() == b"abcdefghij"
    r.seek(2)
    assert r.read(4) == b"cdef" and r.tell() == 6
    r.seek(-3, 2)
    assert r.read(100) == b"hij" and r.read(1) == b""
