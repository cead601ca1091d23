"""Reads through the chunk cache (mountfs/fs/reader.py), without a kernel: bytes, shared fetches, integrity."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest
import trio
from fshelp import build, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mountfs.cache import ChunkCache
from mountfs.cache.filetable import FileTables
from mountfs.errors import IntegrityError
from mountfs.fs.reader import Reader
from mountfs.fs.tree import ROOT, Tree
from mountfs.store.layout import Pack

BIG = 6 << 20  # several content-defined chunks (min 512 KiB, avg 1 MiB)


class CountingStore:
    """A store that records every chunk it reads (and is slow enough for reads to overlap)."""

    def __init__(self, inner, delay: float = 0.05):
        self.inner = inner
        self.delay = delay
        self.lock = threading.Lock()
        self.fetched: Counter[bytes] = Counter()
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read_chunks(self, refs):
        refs = list(refs)
        with self.lock:
            self.calls += 1
            self.fetched.update(r.digest for r in refs)
        time.sleep(self.delay)
        return self.inner.read_chunks(refs)


class Setup:
    def __init__(self, tmp_path: Path, session):
        rng = random.Random(7)
        self.src = tmp_path / "src"
        self.files = {
            "big.bin": rng.randbytes(BIG),
            "text.txt": b"".join(b"line %d of a compressible file\n" % i for i in range(120_000)),  # ~3.7 MiB, zstd
            "copy.bin": b"",  # filled below: same bytes as big.bin (shared chunks)
            "small/a.txt": b"a" * 100,
            "small/b.bin": rng.randbytes(70_000),
            "small/c.bin": rng.randbytes(30_000),
            "u.bin": rng.randbytes(40_000),  # a small file after a big one (text.txt) in path order
            "zero": b"",
        }
        self.files["copy.bin"] = self.files["big.bin"]
        for rel, data in self.files.items():
            write(self.src / rel, data)
        self.ds = build("p", "n", self.src)
        self.session = session
        self.store = CountingStore(session.store(""))
        self.tables = FileTables(session.config.cache_dir)
        self.tree = Tree(self.tables, lambda rec: self.store, single=session.catalog.get(self.ds.id))
        trio.run(self.tree.start)
        self.cache = session.cache
        self.ino: dict[str, int] = {}

        async def resolve() -> None:
            for rel in self.files:
                ino = ROOT
                for part in rel.split("/"):
                    ino = (await self.tree.lookup(ino, part)).ino
                self.ino[rel] = ino

        trio.run(resolve)

    def chunk_bounds(self, rel: str) -> list[int]:
        _, node = self.tree.file(self.ino[rel])
        out, pos = [], 0
        for c in node.chunks:
            out.append(pos)
            pos += c.size
        return out

    def read_all(self, reads: list[tuple[str, int, int]], concurrent: bool = True) -> list[bytes]:
        """Run reads (file, offset, size) with a fresh Reader; return their results in order."""
        results: list[bytes | None] = [None] * len(reads)

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                reader = Reader(self.tree, self.cache, nursery)

                async def one(i: int, rel: str, off: int, size: int) -> None:
                    results[i] = await reader.read(self.ino[rel], off, size)

                if concurrent:
                    async with trio.open_nursery() as inner:
                        for i, (rel, off, size) in enumerate(reads):
                            inner.start_soon(one, i, rel, off, size)
                else:
                    for i, (rel, off, size) in enumerate(reads):
                        await one(i, rel, off, size)
                self.stats = reader.stats
                nursery.cancel_scope.cancel()  # stop prefetches still running

        try:
            trio.run(main)
        except BaseExceptionGroup as group:  # trio nurseries wrap errors: raise the first one as is
            raise _leaves(group)[0] from None
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.tables.close()


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


@pytest.fixture
def setup(tmp_path: Path, session):
    s = Setup(tmp_path, session)
    yield s
    s.close()


def test_files_have_several_chunks(setup: Setup) -> None:
    assert len(setup.chunk_bounds("big.bin")) >= 3
    assert len(setup.chunk_bounds("text.txt")) >= 2
    _, node = setup.tree.file(setup.ino["text.txt"])
    assert any(c.codec != 0 for c in node.chunks), "the text file should be stored compressed"


def test_whole_files_and_chunk_boundaries(setup: Setup) -> None:
    for rel, data in setup.files.items():
        assert setup.read_all([(rel, 0, len(data) + 10)]) == [data], rel
    setup.cache.clear()
    reads = []
    for rel in ("big.bin", "text.txt"):
        data = setup.files[rel]
        for b in setup.chunk_bounds(rel)[1:]:
            for off, size in ((b - 1, 1), (b - 1, 2), (b, 1), (b - 4096, 8192), (b - 3, 1 << 20)):
                reads.append((rel, off, size))
        reads += [(rel, len(data) - 1, 100), (rel, len(data), 10), (rel, len(data) + 5, 10), (rel, 0, 0)]
    got = setup.read_all(reads)
    for (rel, off, size), out in zip(reads, got):
        assert out == setup.files[rel][off:off + size], (rel, off, size)
    assert setup.read_all([("zero", 0, 4096)]) == [b""]


def test_reads_at_any_offset(setup: Setup) -> None:
    names = sorted(setup.files)

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        reads=st.lists(
            st.tuples(st.sampled_from(names), st.integers(0, BIG + 100), st.integers(0, 3 << 20)),
            min_size=1, max_size=12,
        ),
        cold=st.booleans(),
        concurrent=st.booleans(),
    )
    def check(reads: list[tuple[str, int, int]], cold: bool, concurrent: bool) -> None:
        if cold:
            setup.cache.clear()
        got = setup.read_all(reads, concurrent=concurrent)
        for (rel, off, size), out in zip(reads, got):
            assert out == setup.files[rel][off:off + size], (rel, off, size)

    check()


def test_concurrent_reads_of_one_chunk_fetch_it_once(setup: Setup) -> None:
    bounds = setup.chunk_bounds("big.bin")
    lo, hi = bounds[1], bounds[2]
    rng = random.Random(3)
    reads = []
    for _ in range(24):
        off = rng.randrange(lo, hi - 1)
        reads.append(("big.bin", off, rng.randint(1, hi - off)))
    # the same chunk through another file with identical content
    reads += [("copy.bin", lo, 4096), ("copy.bin", lo + 10, 10)]
    got = setup.read_all(reads)
    for (rel, off, size), out in zip(reads, got):
        assert out == setup.files[rel][off:off + size]
    _, node = setup.tree.file(setup.ino["big.bin"])
    assert setup.store.fetched[node.chunks[1].digest] == 1
    assert max(setup.store.fetched.values()) == 1, "a chunk was fetched twice"
    # everything fetched is now cached: the same reads fetch nothing more
    before = sum(setup.store.fetched.values())
    assert setup.read_all(reads) == got
    assert sum(setup.store.fetched.values()) == before
    assert setup.stats.misses == 0


def test_sequential_read_prefetches_and_never_refetches(setup: Setup) -> None:
    data = setup.files["big.bin"]
    step = 128 << 10
    reads = [("big.bin", off, step) for off in range(0, len(data), step)]
    got = setup.read_all(reads, concurrent=False)
    assert b"".join(got) == data
    assert setup.stats.prefetched_chunks > 0
    assert max(setup.store.fetched.values()) == 1
    assert set(setup.store.fetched) >= {c.digest for c in setup.tree.file(setup.ino["big.bin"])[1].chunks}


def test_directory_order_prefetch(setup: Setup) -> None:
    """A miss at the start of a small file fetches the next small files with it, not the big ones between."""
    got = setup.read_all([("small/a.txt", 0, 4096)])
    assert got == [setup.files["small/a.txt"]]
    for rel in ("small/b.bin", "small/c.bin", "u.bin"):
        for c in setup.tree.file(setup.ino[rel])[1].chunks:
            assert setup.cache.contains(c.digest), rel
    assert not any(c.digest in setup.store.fetched for c in setup.tree.file(setup.ino["text.txt"])[1].chunks)
    calls = setup.store.calls
    assert setup.read_all([("small/b.bin", 0, 1 << 20), ("small/c.bin", 0, 1 << 20)]) == [
        setup.files["small/b.bin"], setup.files["small/c.bin"]]
    assert setup.store.calls == calls


def test_directory_read_again_comes_from_the_cache_files_into_memory(setup: Setup) -> None:
    """A folder read again after its read-ahead was used (a later epoch, a restarted daemon):
    the first file read from its cache file starts reading the next ones into memory, in the
    background, with one read per cache file."""
    setup.read_all([("small/a.txt", 0, 4096)])  # fetches the folder into the cache
    calls = setup.store.calls
    nxt = ("small/b.bin", "small/c.bin", "u.bin")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            reader = Reader(setup.tree, setup.cache, nursery)
            assert await reader.read(setup.ino["small/a.txt"], 0, 4096) == setup.files["small/a.txt"]
            with trio.fail_after(10):
                while reader.stats.cache_loads < len(nxt):
                    await trio.sleep(0.01)
            for rel in nxt:
                assert await reader.read(setup.ino[rel], 0, 1 << 20) == setup.files[rel]
            assert reader.stats.hot_hits == len(nxt)
            # the same folder once more, in the same reader: its read-ahead was used up, so it starts over
            assert await reader.read(setup.ino["small/a.txt"], 0, 4096) == setup.files["small/a.txt"]
            with trio.fail_after(10):
                while reader.stats.cache_loads < 2 * len(nxt):
                    await trio.sleep(0.01)
            for rel in nxt:
                assert await reader.read(setup.ino[rel], 0, 1 << 20) == setup.files[rel]
            assert reader.stats.hot_hits == 2 * len(nxt)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert setup.store.calls == calls  # nothing fetched again


def _corrupt(setup: Setup, rel: str, chunk: int) -> tuple[Path, bytes, bytes]:
    """Flip bytes inside one stored chunk of ``rel``; return (pack path, original pack, digest)."""
    _, node = setup.tree.file(setup.ino[rel])
    c = node.chunks[chunk]
    path = Path(setup.session.config.store) / Pack(c.pack).key
    original = path.read_bytes()
    damaged = bytearray(original)
    for k in range(c.offset + c.length // 3, c.offset + c.length // 3 + 16):
        damaged[k] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(damaged))
    return path, original, c.digest


@pytest.mark.allow_warnings  # the store logs the failed check before its retry; the reader logs the failure
def test_corrupted_pack_raises_never_wrong_bytes(setup: Setup) -> None:
    bounds = setup.chunk_bounds("big.bin")
    path, original, digest = _corrupt(setup, "big.bin", 1)
    data = setup.files["big.bin"]
    # the damaged chunk fails, alone or in a read spanning healthy chunks, cold and concurrently
    for off, size in ((bounds[1], 100), (bounds[1] - 10, 20), (0, len(data)), (bounds[1] + 5000, 1)):
        with pytest.raises(IntegrityError) as info:
            setup.read_all([("big.bin", off, size)])
        assert path.name in str(info.value)
    assert not setup.cache.contains(digest), "a damaged chunk reached the cache"
    # the same chunk through another path, concurrently with healthy reads
    reads = [("copy.bin", bounds[1], 10), ("small/a.txt", 0, 100)]
    with pytest.raises(IntegrityError):
        setup.read_all(reads)
    # healthy chunks still read right
    assert setup.read_all([("big.bin", 0, 1000)]) == [data[:1000]]
    assert setup.read_all([("small/a.txt", 0, 100)]) == [setup.files["small/a.txt"]]
    # once the pack is repaired the chunk reads right (the failure was not cached)
    path.write_bytes(original)
    assert setup.read_all([("big.bin", 0, len(data))]) == [data]
    assert setup.cache.contains(digest)


@pytest.mark.allow_warnings
def test_missing_pack_raises(setup: Setup) -> None:
    _, node = setup.tree.file(setup.ino["text.txt"])
    path = Path(setup.session.config.store) / Pack(node.chunks[0].pack).key
    moved = path.with_name(path.name + ".away")
    path.rename(moved)
    try:
        with pytest.raises(IntegrityError):
            setup.read_all([("text.txt", 0, 10)])
    finally:
        moved.rename(path)
    assert setup.read_all([("text.txt", 0, 10)]) == [setup.files["text.txt"][:10]]


# --- eviction racing reads; a full cache disk ---------------------------------------------


@contextlib.contextmanager
def _store_away(setup: Setup) -> Iterator[None]:
    """Every pack of the version moved out of the store's reach (a fetch now fails)."""
    packs = {c.pack for rel in setup.files for c in setup.tree.file(setup.ino[rel])[1].chunks}
    paths = [Path(setup.session.config.store) / Pack(p).key for p in packs]
    for p in paths:
        p.rename(p.with_name(p.name + ".away"))
    try:
        yield
    finally:
        for p in paths:
            p.with_name(p.name + ".away").rename(p)


def _one_read(setup: Setup, cache: ChunkCache, rel: str, off: int, size: int) -> bytes | memoryview:
    async def main() -> bytes | memoryview:
        async with trio.open_nursery() as nursery:
            out = await Reader(setup.tree, cache, nursery).read(setup.ino[rel], off, size)
            nursery.cancel_scope.cancel()
            return out

    return trio.run(main)


def test_an_eviction_while_a_chunk_is_read_from_its_cache_file_never_fails_the_read(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another thread evicts everything (a put under pressure) just as a read opens a chunk's
    cache file: the chunk is pinned, so its file stays and the read gets its bytes without
    the store (which is out of reach here: fetching the chunk again would fail)."""
    cache = setup.cache
    plain = cache._read_file
    evictions: list[int] = []

    def evict_first(fid: bytes, offset: int, length: int) -> bytes:
        t = threading.Thread(target=lambda: evictions.append(cache.evict(0)))
        t.start()
        t.join(30)
        assert not t.is_alive()
        return plain(fid, offset, length)

    # inside one chunk and not at offset 0: no read-ahead, so nothing else wants the store
    reads = [("big.bin", setup.chunk_bounds("big.bin")[1] + 77, 5000), ("small/b.bin", 3, 60_000),
             ("text.txt", 10, 100)]
    for rel, off, size in reads:
        monkeypatch.setattr(cache, "_read_file", plain)
        for other, data in setup.files.items():  # everything cached (again: the last eviction took it)
            assert setup.read_all([(other, 0, len(data) + 1)]) == [data]
        monkeypatch.setattr(cache, "_read_file", evict_first)
        with _store_away(setup):
            assert bytes(_one_read(setup, cache, rel, off, size)) == setup.files[rel][off:off + size], rel
    assert len(evictions) == len(reads) and all(evictions)  # it did evict (everything but the pinned file)
    monkeypatch.setattr(cache, "_read_file", plain)
    # once the read let go, the file of the pinned chunk goes at the next eviction like any other
    cache.evict(0)
    assert cache.stats()["size"] == 0
    assert not [p for p in Path(cache._chunk_dir).rglob("*") if p.is_file()]


def test_chunks_read_ahead_into_memory_are_served_after_their_cache_files_are_evicted(setup: Setup) -> None:
    """Read-ahead took the next files of a folder from their cache files into memory; then
    they were evicted.  The reads that follow get the bytes from memory (not from the store,
    out of reach here), and the chunks are put back in the cache."""
    setup.read_all([("small/a.txt", 0, 4096)])  # fetches the folder into the cache
    nxt = ("small/b.bin", "small/c.bin", "u.bin")
    digests = [c.digest for rel in nxt for c in setup.tree.file(setup.ino[rel])[1].chunks]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            reader = Reader(setup.tree, setup.cache, nursery)
            assert await reader.read(setup.ino["small/a.txt"], 0, 4096) == setup.files["small/a.txt"]
            with trio.fail_after(10):
                while reader.stats.cache_loads < len(nxt):
                    await trio.sleep(0.01)
            assert setup.cache.evict(0) > 0
            assert not any(setup.cache.contains(d) for d in digests)
            with _store_away(setup):
                for rel in nxt:
                    assert await reader.read(setup.ino[rel], 0, 1 << 20) == setup.files[rel]
                assert reader.stats.errors == 0 and reader.stats.hot_hits == len(nxt)
                with trio.fail_after(10):  # put back in the background
                    while not all(setup.cache.contains(d) for d in digests):
                        await trio.sleep(0.01)
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_reads_racing_eviction_in_a_tiny_cache_are_all_correct(setup: Setup, tmp_path: Path) -> None:
    """A cache capped far below one chunk, another thread evicting all the time, readers at
    random offsets and front to back, all at once: every byte right, no error, no warning."""
    names = [rel for rel in setup.files if setup.files[rel]]
    rng = random.Random(11)
    reads: list[tuple[str, int, int]] = []
    for _ in range(150):
        rel = rng.choice(names)
        off = rng.randrange(len(setup.files[rel]))
        reads.append((rel, off, rng.choice([1, 4096, 128 << 10, 1 << 20])))
    for rel in names:  # whole files in slices, as FUSE asks
        reads += [(rel, off, 128 << 10) for off in range(0, len(setup.files[rel]), 128 << 10)]
    tiny = ChunkCache(str(tmp_path / "tiny-cache"), 256 << 10)
    stop = threading.Event()
    evicted = [0]

    def evictor() -> None:
        while not stop.is_set():
            evicted[0] += tiny.evict(0)

    t = threading.Thread(target=evictor)
    t.start()
    try:
        for rnd in range(3):
            results: dict[int, bytes] = {}

            async def main() -> None:
                async with trio.open_nursery() as nursery:
                    reader = Reader(setup.tree, tiny, nursery)

                    async def sequential(rel: str) -> None:
                        for i, (r, off, size) in enumerate(reads):
                            if r == rel and size == 128 << 10 and off % (128 << 10) == 0 and i >= 150:
                                results[i] = bytes(await reader.read(setup.ino[r], off, size))

                    async def one(i: int) -> None:
                        r, off, size = reads[i]
                        results[i] = bytes(await reader.read(setup.ino[r], off, size))

                    async with trio.open_nursery() as inner:
                        for i in range(150):
                            inner.start_soon(one, i)
                        for rel in names:
                            inner.start_soon(sequential, rel)
                    assert reader.stats.errors == 0
                    nursery.cancel_scope.cancel()

            trio.run(main)
            assert len(results) == len(reads), rnd
            for i, (rel, off, size) in enumerate(reads):
                assert results[i] == setup.files[rel][off:off + size], (rnd, rel, off, size)
    finally:
        stop.set()
        t.join(60)
        tiny.close()
    assert evicted[0] > 0


def _tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True, capture_output=True)


@pytest.mark.allow_warnings  # the cache says once that it cannot store what was fetched
def test_a_full_cache_disk_still_serves_fetched_bytes_and_says_so_once(
        setup: Setup, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small-disk"
    try:
        _tmpfs(mnt, "2m")
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        full = ChunkCache(str(mnt / "cache"), 1 << 40)
        try:
            reads = [(rel, 0, len(data) + 1) for rel, data in setup.files.items()] * 2

            async def main() -> list[bytes]:
                async with trio.open_nursery() as nursery:
                    reader = Reader(setup.tree, full, nursery)
                    out = [bytes(await reader.read(setup.ino[r], off, size)) for r, off, size in reads]
                    assert reader.stats.errors == 0
                    nursery.cancel_scope.cancel()
                    return out

            assert trio.run(main) == [setup.files[r] for r, _, _ in reads]
            assert full.stats()["size"] < 2 << 20
        finally:
            full.close()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    warned = [r.getMessage() for r in caplog.get_records("call") if r.levelno >= logging.WARNING]
    assert len(warned) == 1, warned
    assert "serving them without caching" in warned[0] and "no space left" in warned[0], warned
    assert str(mnt / "cache") in warned[0]
