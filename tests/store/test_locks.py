"""Lock objects in a store (mountfs/store/locks.py) on a real folder store: shared locks share, exclusive ones are
alone, stale locks are ignored and removed by the exclusive taker, a lock goes at the end of its block, by an
exception too, and a held lock is refreshed."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from mountfs.backends.file import FileBackend
from mountfs.errors import StoreLocked
from mountfs.store.layout import LOCKS, Lock
from mountfs.store.locks import EXCLUSIVE, SHARED, StoreLock, exclusive_lock, read_locks, remove_stale, shared_lock


@pytest.fixture
def backend(tmp_path: Path) -> FileBackend:
    return FileBackend(tmp_path / "store")


def _keys(backend: FileBackend) -> list[str]:
    return [o.key for o in backend.list(LOCKS)]


def _plant(backend: FileBackend, kind: str, age: float, purpose: str = "upload") -> str:
    """A lock of another process, last refreshed ``age`` seconds ago."""
    lock_id = f"{len(_keys(backend)):032x}"
    t = time.time() - age
    backend.put(Lock(lock_id).key, json.dumps({"kind": kind, "purpose": purpose, "host": "elsewhere", "pid": 4242,
                                               "created": t, "refreshed": t}).encode())
    return Lock(lock_id).key


def test_shared_locks_share_and_are_released(backend: FileBackend) -> None:
    with shared_lock(backend, "upload"), shared_lock(backend, "finalize"):
        assert sorted(lk.purpose for lk in read_locks(backend)) == ["finalize", "upload"]
        assert {lk.kind for lk in read_locks(backend)} == {SHARED}
    assert _keys(backend) == []


def test_exclusive_is_refused_beside_a_shared_lock_naming_the_holder(backend: FileBackend) -> None:
    _plant(backend, SHARED, age=125)
    with pytest.raises(StoreLocked, match=r"\(gc needs the store alone\): shared lock of upload by pid 4242 on elsewhere, refreshed 12\d s ago"):
        with exclusive_lock(backend, "gc"):
            pytest.fail("entered")
    assert len(_keys(backend)) == 1  # its own lock was taken back


def test_shared_is_refused_beside_an_exclusive_lock(backend: FileBackend) -> None:
    with exclusive_lock(backend, "gc"):
        with pytest.raises(StoreLocked, match=r"is locked \(gc is removing unused packs\): exclusive lock of gc"):
            with shared_lock(backend, "upload"):
                pytest.fail("entered")
        with pytest.raises(StoreLocked, match="gc is removing unused packs"):
            with exclusive_lock(backend, "gc"):
                pytest.fail("entered")
        assert len(_keys(backend)) == 1
    assert _keys(backend) == []


def test_a_lock_written_by_a_racer_after_the_first_check_is_seen(backend: FileBackend) -> None:
    """Written first, checked second: a racer that appears between the two checks still refuses us."""
    lock = StoreLock(backend, EXCLUSIVE, "gc")
    real = lock._blocking
    calls = []

    def blocking(now: float) -> list:  # type: ignore[type-arg]
        calls.append(now)
        seen = real(now)
        if len(calls) == 1:
            _plant(backend, SHARED, age=0)  # the racer arrives just after our first look
        return seen

    lock._blocking = blocking  # type: ignore[method-assign]
    with pytest.raises(StoreLocked):
        lock.acquire()
    assert len(calls) == 2 and len(_keys(backend)) == 1


def test_stale_locks_are_ignored_and_removed_by_the_exclusive_taker(backend: FileBackend) -> None:
    stale = _plant(backend, EXCLUSIVE, age=31 * 60, purpose="gc")
    with shared_lock(backend, "upload"):  # a dead gc does not stop uploads
        pass
    _plant(backend, SHARED, age=2 * 3600)
    assert remove_stale(backend) == 2
    with exclusive_lock(backend, "gc"):
        assert [lk.purpose for lk in read_locks(backend)] == ["gc"]
    assert stale not in _keys(backend) and _keys(backend) == []


def test_an_unreadable_lock_counts_as_held_until_stale(backend: FileBackend) -> None:
    backend.put(Lock("f" * 32).key, b"{not json")
    with pytest.raises(StoreLocked, match="unreadable lock"):
        with shared_lock(backend, "upload"):
            pytest.fail("entered")
    with shared_lock(backend, "upload", stale_seconds=0):  # judged by the object's own time: stale at once here
        pass


def test_a_lock_is_released_when_its_block_raises(backend: FileBackend) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with shared_lock(backend, "upload"):
            assert len(_keys(backend)) == 1
            raise RuntimeError("boom")
    assert _keys(backend) == []
    with pytest.raises(RuntimeError, match="boom"):
        with exclusive_lock(backend, "gc"):
            raise RuntimeError("boom")
    assert _keys(backend) == []


class _Watched(FileBackend):
    """The real folder backend, telling when a lock object is written again."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.rewritten = threading.Event()

    def put(self, key: str, data: bytes | memoryview) -> None:
        super().put(key, data)
        if key.startswith(LOCKS):
            self.rewritten.set()


def test_a_held_lock_is_refreshed(tmp_path: Path) -> None:
    backend = _Watched(tmp_path / "store")
    lock = StoreLock(backend, SHARED, "upload", refresh_seconds=0.02)
    lock.acquire()
    try:
        (first,) = read_locks(backend)
        assert backend.rewritten.wait(10), "the lock was never refreshed"
        (later,) = read_locks(backend)
        assert later.refreshed > first.refreshed and later.created == first.created
    finally:
        lock.release()
    assert _keys(backend) == []
