"""File tables (mountfs/cache/filetable.py) in a real LMDB: import and queries, and tables
dropped when their version goes (retain, clear, `mountfs cache clear`) but never while
another live process uses them.  The other processes are real (spawned), their leases real
flocks."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Iterator

import pytest
import xxhash

from mountfs.cache import ChunkCache
from mountfs.cache import filetable as ft_mod
from mountfs.cache.filetable import KIND_DIR, KIND_FILE, ROOT_INO, FileTables, version_key
from mountfs.store.manifest import ChunkRef, FileEntry

IDS = ["01a2" + f"{i:016x}" for i in range(4)]  # dataset ids (20 hex digits)
MOUNTFS = str(Path(sys.executable).parent / "mountfs")


def entries(n: int, tag: str = "") -> list[FileEntry]:
    return [FileEntry(f"d{i % 3}/{tag}f{i:04d}", 10 + i, mode=0o644, mtime_ns=i,
                      chunks=[ChunkRef(bytes([i % 256]) * 16, 10 + i, "ab" * 16, i, 10 + i, 0)])
            for i in sorted(range(n), key=lambda i: f"d{i % 3}/{tag}f{i:04d}")]


@pytest.fixture
def tables(tmp_path: Path) -> Iterator[FileTables]:
    t = FileTables(str(tmp_path / "cache"))
    yield t
    t.close()


def stored(t: FileTables) -> set[bytes]:
    return t._stored()


def test_import_and_queries(tables: FileTables) -> None:
    vk = version_key(IDS[0])
    assert len(vk) == 10 and tables.info(vk) is None
    info = tables.import_version(vk, entries(30), 5)
    assert (info.files, info.dirs, info.bytes) == (30, 4, sum(10 + i for i in range(30)))
    assert tables.info(vk) == info and tables.imported() == [vk]
    root = tables.node(vk, ROOT_INO)
    assert root is not None and root.kind == KIND_DIR and root.mtime_ns == 5
    d1 = tables.lookup(vk, ROOT_INO, b"d1")
    assert d1 is not None
    names = [name for name, _ in tables.children(vk, d1)]
    assert names == [f"f{i:04d}".encode() for i in range(30) if i % 3 == 1]
    ino = tables.lookup(vk, d1, b"f0004")
    node = tables.node(vk, ino) if ino is not None else None
    assert node is not None and node.kind == KIND_FILE and node.size == 14 and node.chunks[0].offset == 4
    assert [n.ino for n in tables.next_files(vk, ino, 3)] == [ino + 1, ino + 2, ino + 3]  # type: ignore[operator]


def test_retain_drops_every_other_version_and_says_how_many(tables: FileTables) -> None:
    for i, vid in enumerate(IDS):
        tables.import_version(version_key(vid), entries(20 + i, tag=str(i)), 0)
    assert tables.retain(IDS[1:3]) == 2
    assert set(tables.imported()) == {version_key(IDS[1]), version_key(IDS[2])}
    assert stored(tables) == set(tables.imported())  # nothing of the dropped ones is left
    assert tables.info(version_key(IDS[1])) is not None and tables.lookup(version_key(IDS[2]), ROOT_INO, b"d0")
    assert tables.retain(IDS) == 0  # nothing more to drop
    assert tables.clear() == 2 and stored(tables) == set()


def test_retain_drops_a_partial_import(tables: FileTables, monkeypatch: pytest.MonkeyPatch) -> None:
    """An import that died half way (its batches written, its version row not) is found and dropped."""
    monkeypatch.setattr(ft_mod, "_BATCH", 10)

    def dies(n: int) -> Iterator[FileEntry]:
        yield from entries(n)
        raise RuntimeError("the manifest stopped")

    with pytest.raises(RuntimeError):
        tables.import_version(version_key(IDS[0]), dies(50), 0)
    assert tables.imported() == [] and stored(tables) == {version_key(IDS[0])}
    assert tables.retain([]) == 1 and stored(tables) == set()


def test_a_large_table_is_dropped_in_batches(tables: FileTables, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ft_mod, "_DROP_BATCH", 7)
    tables.import_version(version_key(IDS[0]), entries(100), 0)
    tables.import_version(version_key(IDS[1]), entries(5), 0)
    writes: list[int] = []
    plain = tables._delete_some
    monkeypatch.setattr(tables, "_delete_some", lambda txn, vk: writes.append(1) or plain(txn, vk))
    assert tables.retain([IDS[1]]) == 1
    assert len(writes) > 30  # 100 files, 3 folders: ~300 entries, 7 a transaction
    assert stored(tables) == {version_key(IDS[1])} and tables.info(version_key(IDS[1])) is not None


# --- tables another process uses -------------------------------------------------------------


def _user(folder: str, conn: Connection) -> None:
    """Another process using tables: imports or opens what it is told, until told to stop."""
    tables = FileTables(folder)
    try:
        while True:
            cmd, vid = conn.recv()
            if cmd == "stop":
                break
            vk = version_key(vid)
            if cmd == "import":
                tables.import_version(vk, entries(40, tag="theirs"), 0)
            info = tables.info(vk)
            conn.send(None if info is None else info.files)
    finally:
        if cmd == "stop":
            tables.close()


class User:
    """A spawned process holding tables of ``folder`` (stopped or killed by its own handle)."""

    def __init__(self, folder: str):
        ctx = multiprocessing.get_context("spawn")
        self.conn, there = ctx.Pipe()
        self.proc = ctx.Process(target=_user, args=(folder, there))
        self.proc.start()

    def ask(self, cmd: str, vid: str) -> int | None:
        self.conn.send((cmd, vid))
        assert self.conn.poll(60), "the other process did not answer"
        answer: int | None = self.conn.recv()
        return answer

    def stop(self) -> None:
        if self.proc.is_alive():
            self.conn.send(("stop", ""))
            self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(10)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)  # type: ignore[arg-type]  # our own child
        self.proc.join(30)


@pytest.fixture
def user(tmp_path: Path) -> Iterator[User]:
    FileTables(str(tmp_path / "cache")).close()  # the folder exists before the child opens it
    u = User(str(tmp_path / "cache"))
    yield u
    u.stop()


def test_tables_another_live_process_uses_are_kept_until_it_is_gone(tables: FileTables, user: User) -> None:
    for vid in IDS[:3]:
        tables.import_version(version_key(vid), entries(20), 0)
    assert user.ask("open", IDS[0]) == 20  # found: used there from now on
    assert user.ask("import", IDS[3]) == 40
    assert tables.retain([IDS[1]]) == 1  # IDS[2] went; IDS[0] and IDS[3] are in use there
    assert set(tables.imported()) == {version_key(v) for v in (IDS[0], IDS[1], IDS[3])}
    assert tables.clear() == 1  # IDS[1]
    assert user.ask("open", IDS[0]) == 20 and user.ask("open", IDS[3]) == 40  # intact
    user.kill()  # its lease dies with it: no close, no cleanup
    assert tables.clear() == 2 and stored(tables) == set()
    own = tables._lease.token
    with tables._cenv.begin() as txn:  # its stale uses were forgotten, its lease file removed
        assert {bytes(k[10:]) for k in txn.cursor(db=tables._users).iternext(values=False)} == {own}
    assert os.listdir(os.path.join(tables._cenv.directory, "leases")) == [own.hex()]


def test_a_process_closing_its_tables_gives_up_its_claim(tables: FileTables, user: User) -> None:
    tables.import_version(version_key(IDS[0]), entries(20), 0)
    assert user.ask("open", IDS[0]) == 20
    assert tables.clear() == 0
    user.stop()
    assert tables.clear() == 1


def test_a_process_that_starts_using_a_table_stops_a_drop_under_way(
        tables: FileTables, user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    """The drop is in batches; between two of them the other process imports the same
    version: the next batch sees its claim and stops, so its new table stays whole."""
    monkeypatch.setattr(ft_mod, "_DROP_BATCH", 5)
    vk = version_key(IDS[0])
    tables.import_version(vk, entries(40, tag="theirs"), 0)
    plain = tables._drop_batch
    batches: list[bool | None] = []

    def drop_batch(key: bytes) -> bool | None:
        done = plain(key)
        batches.append(done)
        if len(batches) == 1:  # committed; before the next batch, the other process imports it
            assert user.ask("import", IDS[0]) == 40
        return done

    monkeypatch.setattr(tables, "_drop_batch", drop_batch)
    assert tables.retain([]) == 0
    assert batches == [False, None]
    monkeypatch.undo()
    assert user.ask("open", IDS[0]) == 40
    info = tables.info(vk)
    assert info is not None and info.files == 40
    ino = tables.lookup(vk, ROOT_INO, b"d2")
    assert ino is not None and len(tables.children(vk, ino)) == 13


def test_cache_clear_drops_chunks_and_file_tables_but_not_those_in_use(
        user: User, isolated_env: dict[str, str]) -> None:
    folder = isolated_env["MOUNTFS_CACHE_DIR"]  # the CLI's cache, and the one ``user`` opened
    importer = FileTables(folder)
    for vid in IDS[:3]:
        importer.import_version(version_key(vid), entries(20), 0)
    importer.close()  # this process uses none of them now
    assert user.ask("open", IDS[0]) == 20  # a running mount uses this one
    with ChunkCache(folder, 1 << 30) as cache:
        data = b"x" * 1000
        cache.put(xxhash.xxh3_128_digest(data), data)

    def clear() -> str:
        done = subprocess.run([MOUNTFS, "cache", "clear"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def left() -> set[bytes]:
        looker = FileTables(folder)  # only looks: uses nothing
        try:
            return stored(looker)
        finally:
            looker.close()

    out = clear()
    assert out == (f"cleared {folder}: every cached chunk, 2 file tables; "
                   f"kept 1 file table in use by running mounts\n"), out
    assert left() == {version_key(IDS[0])}
    with ChunkCache(folder, 1 << 30) as cache:
        assert cache.stats()["count"] == 0
    user.stop()
    assert clear() == f"cleared {folder}: every cached chunk, 1 file table\n"
    assert left() == set()
