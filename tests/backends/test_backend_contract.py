"""The contract every backend keeps, run against each of them (``backend`` fixture):
a folder, SeaweedFS (S3), the GCS emulator, Azurite, and a folder through RetryingBackend.

What is specific to one backend (its URLs, settings, error table, outages, secrets)
is in that backend's own file: test_file.py, test_s3.py, test_gs.py, test_azure.py.
"""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from mountfs.backends import Backend
from mountfs.backends.s3 import S3Backend
from mountfs.errors import AlreadyExists, ObjectNotFound

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


