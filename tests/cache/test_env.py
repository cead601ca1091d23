"""The shared LMDB environment (mountfs/cache/env.py): a full map grows, in this process and
in the others using the folder; a full disk is DiskFull.  Real LMDB maps made small, real
processes, a real tmpfs filled up."""

from __future__ import annotations

import multiprocessing
import os
import threading
from multiprocessing.connection import Connection
from pathlib import Path

import lmdb
import pytest
import xxhash

from mountfs.cache import ChunkCache
from mountfs.cache import env as env_mod
from mountfs.cache.filetable import FileTables
from mountfs.errors import DiskFull
from mountfs.store.manifest import FileEntry

SMALL = 128 << 10  # a map a few hundred chunks fill


def chunk(i: int, size: int = 200) -> tuple[bytes, bytes]:
    data = i.to_bytes(8, "big") * (size // 8)
    return data, xxhash.xxh3_128_digest(data)


def entries(n: int, tag: str = "") -> list[FileEntry]:
    return [FileEntry(f"d{i // 100:03d}/{tag}f{i:05d}", i, mtime_ns=i) for i in range(n)]


def fill(folder: Path, leave: int) -> Path:
    """Fill the file system of ``folder`` with one file until about ``leave`` bytes are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize - leave
    filler = folder / "filler"
    with open(filler, "wb") as fh:
        while free > 0:
            n = min(free, 1 << 20)
            fh.write(b"\0" * n)
            free -= n
    return filler


@pytest.fixture
def small_map(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(env_mod, "MAP_SIZE", SMALL)


def test_a_full_map_grows_and_every_write_lands(tmp_path: Path, small_map: None,
                                               caplog: pytest.LogCaptureFixture) -> None:
    folder = str(tmp_path / "cache")
    with ChunkCache(folder, 1 << 40) as cache:
        tables = FileTables(folder)
        try:
            stored = [chunk(i) for i in range(3000)]
            for data, d in stored:
                cache.put(d, data)
            info = tables.import_version(b"v" * 10, entries(5000), 7)
            assert (info.files, info.dirs) == (5000, 51)
            assert cache._cenv.map_size > SMALL
            assert all(cache.get(d) == data for data, d in stored)
            assert tables.info(b"v" * 10) == info
            d1 = tables.lookup(b"v" * 10, 1, b"d049")
            assert d1 is not None and tables.lookup(b"v" * 10, d1, b"f04999") is not None
            cache.clear()
            assert tables.clear() == 1 and tables.imported() == []
        finally:
            tables.close()
    assert any("map grown to" in r.getMessage() for r in caplog.records)


def test_the_map_stops_growing_at_its_limit_with_a_clear_error(tmp_path: Path, small_map: None,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(env_mod, "MAX_MAP_SIZE", 4 * SMALL)
    folder = tmp_path / "cache"
    with ChunkCache(str(folder), 1 << 40) as cache:
        with pytest.raises(DiskFull) as info:
            for i in range(100_000):
                data, d = chunk(i)
                cache.put(d, data)
        assert cache._cenv.map_size == 4 * SMALL
        msg = str(info.value)
        assert f"cache index {folder / 'index'} is full (0.5 MiB)" in msg and "mountfs cache clear" in msg, msg
        cache.clear()  # the advice works
        data, d = chunk(1)
        cache.put(d, data)
        assert cache.get(d) == data


def test_a_resize_waits_for_the_transactions_of_other_threads(tmp_path: Path, small_map: None) -> None:
    """LMDB remaps the file on a resize: a thread in a transaction meanwhile keeps reading
    the snapshot it began with, and the resize happens once it has ended."""
    folder = str(tmp_path / "cache")
    with ChunkCache(folder, 1 << 40) as cache:
        first, d0 = chunk(0)
        cache.put(d0, first)
        cenv = cache._cenv
        inside, done, resizing = threading.Event(), threading.Event(), threading.Event()
        seen: list[object] = []

        class Gate(threading.Event):
            """The env's own gate event; a resize clears it as it starts waiting for transactions."""

            def clear(self) -> None:
                super().clear()
                resizing.set()

        gate = Gate()
        gate.set()
        cenv._reopened = gate

        def hold() -> None:
            try:
                with cenv.begin() as txn:
                    seen.append(txn.get(d0, db=cache._chunks))
                    inside.set()
                    assert resizing.wait(30), "no resize came"  # it now waits for this transaction
                    seen.append(txn.get(d0, db=cache._chunks))  # still valid: nothing was remapped
                    seen.append(cenv.map_size)
            except BaseException as exc:  # noqa: BLE001 - reported below
                seen.append(exc)
            finally:
                done.set()

        t = threading.Thread(target=hold)
        t.start()
        assert inside.wait(10)
        i = 1
        while cenv.map_size == SMALL:
            data, d = chunk(i)
            cache.put(d, data)
            i += 1
        assert done.wait(10)
        t.join(10)
        assert seen[0] is not None and seen[:2] == [seen[0], seen[0]] and seen[2] == SMALL, seen
        assert cache.get(d0) == first


def _stuck_reader(path: str, conn: Connection) -> None:
    """A process stuck inside a read transaction: every page freed after it stays in use."""
    env = lmdb.open(path, map_size=SMALL, max_dbs=16, lock=True)
    txn = env.begin()
    conn.send("in")
    conn.recv()
    txn.abort()
    env.close()


def _adopter(folder: str, conn: Connection) -> None:
    """Opens the cache with a small map, then (told to) reads what the parent wrote after
    growing the map far beyond, and writes chunks of its own."""
    env_mod.MAP_SIZE = SMALL
    with ChunkCache(folder, 1 << 40) as cache:
        conn.send(cache._cenv.map_size)
        digests = conn.recv()
        ok = all(cache.get(d) is not None for d in digests)
        mine = [chunk(100_000 + i) for i in range(200)]
        for data, d in mine:
            cache.put(d, data)
        conn.send((ok, [d for _, d in mine], cache._cenv.map_size))


def test_a_reader_stuck_in_another_process_does_not_stop_writes(tmp_path: Path, small_map: None) -> None:
    folder = tmp_path / "cache"
    ChunkCache(str(folder), 1 << 40).close()
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_stuck_reader, args=(str(folder / "index"), there))
    proc.start()
    try:
        assert here.poll(60) and here.recv() == "in"
        with ChunkCache(str(folder), 20_000) as cache:  # small cap: evicts all the time
            for i in range(3000):
                data, d = chunk(i)
                cache.put(d, data)
                assert cache.get(d) == data
            assert cache._cenv.map_size > SMALL
    finally:
        here.send("out")
        proc.join(30)
        if proc.is_alive():
            proc.kill()  # by its own handle: our child
    assert proc.exitcode == 0


def test_another_process_follows_a_map_grown_meanwhile(tmp_path: Path, small_map: None) -> None:
    folder = str(tmp_path / "cache")
    ChunkCache(folder, 1 << 40).close()
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_adopter, args=(folder, there))
    proc.start()
    try:
        assert here.poll(60) and here.recv() == SMALL
        with ChunkCache(folder, 1 << 40) as cache:
            stored = [chunk(i) for i in range(3000)]
            for data, d in stored:
                cache.put(d, data)
            assert cache._cenv.map_size >= 4 * SMALL  # grown past what the other process maps
            here.send([d for _, d in stored])
            assert here.poll(60)
            ok, theirs, their_size = here.recv()
            assert ok and their_size >= 4 * SMALL
            assert all(cache.get(d) is not None for d in theirs)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0


def test_a_full_disk_under_the_index_is_disk_full(small_disk, caplog: pytest.LogCaptureFixture) -> None:
    disk = small_disk("4m")
    folder = disk / "cache"
    tables = FileTables(str(folder))
    try:
        filler = fill(disk, leave=64 << 10)
        with pytest.raises(DiskFull) as info:
            tables.import_version(b"v" * 10, entries(20_000), 1)
        assert f"no space left in the cache at {folder}" in str(info.value)
        assert tables.info(b"v" * 10) is None
        filler.unlink()  # room again: the same import works
        assert tables.import_version(b"v" * 10, entries(20_000), 1).files == 20_000
    finally:
        tables.close()
