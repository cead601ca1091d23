"""ChunkCache against real LMDB in temp directories (no mocks of the index)."""

from __future__ import annotations

import multiprocessing
import os
import random
import tempfile
import threading
import time
from collections import OrderedDict

import pytest
import xxhash
from hypothesis import given, settings, strategies as st

from mountfs.cache import CacheUnusable, ChunkCache
from mountfs.cache import chunks as chunks_mod
from mountfs.cache.env import open_env, release_env
from mountfs.errors import DiskFull, IntegrityError, LocalDiskError, MountfsError


def chunk(i: int, size: int | None = None) -> tuple[bytes, bytes]:
    """Deterministic chunk ``i``: (data, digest)."""
    size = 1 + (i * 37) % 200 if size is None else size
    data = bytes((i + k) % 251 for k in range(size))
    return data, xxhash.xxh3_128_digest(data)


@pytest.fixture
def open_cache(tmp_path):
    opened: list[ChunkCache] = []

    def _open(max_size: int = 1 << 20, min_free: int = 0, directory=None) -> ChunkCache:
        cache = ChunkCache(str(directory or tmp_path / "cache"), max_size, min_free)
        opened.append(cache)
        return cache

    yield _open
    for cache in opened:
        cache.close()


def check_consistent(cache: ChunkCache) -> dict[bytes, int]:
    """Index, file rows, members, LRU table, totals and files agree exactly; return digest -> size."""
    env = cache._cenv.env
    with env.begin() as txn:
        entries = {k: chunks_mod._ENTRY.unpack(v) for k, v in txn.cursor(db=cache._chunks)}
        files = {k: chunks_mod._FILE.unpack(v) for k, v in txn.cursor(db=cache._files)}
        members = [k for k, _ in txn.cursor(db=cache._members_db)]
        lru = [k for k, _ in txn.cursor(db=cache._lru)]
        total = cache._u64(txn, b"chunks.bytes")
        count = cache._u64(txn, b"chunks.count")
    sizes = {d: e[0] for d, e in entries.items()}
    assert sorted(members) == sorted(fid + d for d, (_, fid, _) in entries.items())
    assert set(files) == {fid for _, fid, _ in entries.values()}
    for fid, (_, nbytes, n) in files.items():
        mine = [size for size, f, _ in entries.values() if f == fid]
        assert (nbytes, n) == (sum(mine), len(mine))
    assert sorted(lru) == sorted(chunks_mod._U64.pack(use) + fid for fid, (use, _, _) in files.items())
    assert total == sum(sizes.values()) and count == len(sizes)
    on_disk = {}
    for root, _, names in os.walk(cache._chunk_dir):
        for name in names:
            with open(os.path.join(root, name), "rb") as fh:
                on_disk[bytes.fromhex(name)] = fh.read()
    # every file holds at least one indexed chunk, and every chunk is where the index says
    assert set(on_disk) == set(files)
    for d, (size, fid, offset) in entries.items():
        assert xxhash.xxh3_128_digest(on_disk[fid][offset:offset + size]) == d
    assert [n for n in os.listdir(cache._tmp_dir) if n.endswith(".tmp")] == []
    return sizes


def test_round_trip(open_cache):
    cache = open_cache()
    data, d = chunk(1, 1000)
    assert cache.get(d) is None and not cache.contains(d)
    cache.put(d, data)
    assert cache.contains(d)
    assert cache.get(d) == data
    assert cache.read(d, 10, 20) == data[10:30]
    assert cache.read(d, 990, 100) == data[990:]
    cache.put(d, data)  # already present: no second copy
    s = cache.stats()
    assert (s["size"], s["count"], s["hits"], s["misses"]) == (1000, 1, 3, 1)
    assert cache.read(chunk(2)[1], 0, 10) is None
    check_consistent(cache)


def test_put_of_mismatched_data_raises_integrity_error(open_cache):
    cache = open_cache()
    data, d = chunk(1)
    with pytest.raises(IntegrityError, match=d.hex()):
        cache.put(d, data + b"x")
    assert not cache.contains(d)
    assert check_consistent(cache) == {}


@pytest.mark.allow_warnings  # the conftest otherwise fails any test that logs a WARNING
@pytest.mark.parametrize("damage", ["corrupt", "truncate", "delete"])
def test_damaged_chunk_file_is_dropped(open_cache, caplog, damage):
    cache = open_cache()
    data, d = chunk(3, 500)
    cache.put(d, data)
    path, _ = _file_of(cache, d)
    if damage == "delete":
        os.unlink(path)
    else:
        with open(path, "r+b") as fh:
            fh.truncate(100) if damage == "truncate" else fh.write(b"\xff" * 10)
    assert cache.get(d) is None
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert d.hex() in caplog.records[0].getMessage()
    assert not cache.contains(d) and not os.path.exists(path)
    assert cache.stats()["size"] == 0 and cache.stats()["misses"] == 1
    check_consistent(cache)
    cache.put(d, data)  # a refetch heals it
    assert cache.get(d) == data


def test_lru_eviction_honours_recent_gets(open_cache):
    cache = open_cache(max_size=400)
    items = [chunk(i, 100) for i in range(5)]
    for data, d in items[:4]:
        cache.put(d, data)
    assert cache.get(items[0][1]) == items[0][0]  # a is now the newest
    cache.put(items[4][1], items[4][0])  # 500 > 400: evict to 360 => b and c go
    present = [i for i, (_, d) in enumerate(items) if cache.contains(d)]
    assert present == [0, 3, 4]
    assert cache.stats()["evictions"] == 2
    check_consistent(cache)


def test_pinned_chunks_survive_eviction(open_cache):
    cache = open_cache(max_size=400)
    items = [chunk(i, 100) for i in range(6)]
    for data, d in items[:4]:
        cache.put(d, data)
    with cache.pinned([items[0][1], items[1][1]]):
        cache.put(items[4][1], items[4][0])
        assert [cache.contains(d) for _, d in items[:5]] == [True, True, False, False, True]
        assert cache.evict(0) == 100  # only the unpinned one
        assert cache.stats()["size"] == 200
    cache.pin(items[0][1])
    assert cache.evict(0) == 100
    assert [cache.contains(d) for _, d in items] == [True] + [False] * 5
    cache.unpin(items[0][1])
    with pytest.raises(ValueError):
        cache.unpin(items[0][1])
    check_consistent(cache)


def test_evict_default_target_is_the_cap(open_cache):
    cache = open_cache(max_size=1000)
    for i in range(8):
        cache.put(chunk(i, 100)[1], chunk(i, 100)[0])
    cache.max_size = 500
    assert cache.evict() == 300 and cache.stats()["size"] == 500
    assert cache.evict(10_000) == 0
    check_consistent(cache)


def test_low_free_space_triggers_eviction(open_cache, monkeypatch):
    cache = open_cache(max_size=10_000, min_free=1 << 30)
    free = {"bytes": 10 << 30}

    class Fake:
        def __init__(self, path):
            self.f_bavail, self.f_frsize = free["bytes"], 1

    monkeypatch.setattr(os, "statvfs", Fake)
    for i in range(5):
        cache.put(chunk(i, 1000)[1], chunk(i, 1000)[0])
    assert cache.stats()["size"] == 5000
    free["bytes"] = (1 << 30) - 1500  # 1500 short: frees that plus 10% of the cap
    cache.put(chunk(9, 1000)[1], chunk(9, 1000)[0])
    assert cache.stats()["size"] == 3000
    check_consistent(cache)


OPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["put", "get", "read", "pin", "unpin"]), st.integers(0, 11)),
        st.tuples(st.just("evict"), st.integers(0, 600)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_size_accounting_matches_a_model(ops):
    with tempfile.TemporaryDirectory() as tmp:
        cache = ChunkCache(tmp, max_size=500)
        try:
            lru: OrderedDict[bytes, int] = OrderedDict()
            pins: dict[bytes, int] = {}

            def model_evict(target: int) -> int:
                freed = 0
                for d in list(lru):
                    if sum(lru.values()) <= target:
                        break
                    if not pins.get(d):
                        freed += lru.pop(d)
                return freed

            for op, arg in ops:
                data, d = chunk(arg)
                if op == "put":
                    if d in lru:
                        lru.move_to_end(d)
                    else:
                        lru[d] = len(data)
                        if sum(lru.values()) > 500:
                            model_evict(450)
                    cache.put(d, data)
                elif op in ("get", "read"):
                    got = cache.get(d) if op == "get" else cache.read(d, 1, 5)
                    assert got == ((data if op == "get" else data[1:6]) if d in lru else None)
                    if d in lru:
                        lru.move_to_end(d)
                elif op == "pin":
                    pins[d] = pins.get(d, 0) + 1
                    cache.pin(d)
                elif op == "unpin" and pins.get(d):
                    pins[d] -= 1
                    cache.unpin(d)
                elif op == "evict":
                    assert cache.evict(arg) == model_evict(arg)
                assert cache.stats()["size"] == sum(lru.values())
            assert check_consistent(cache) == dict(lru)
        finally:
            cache.close()


def test_state_survives_restart(open_cache, tmp_path):
    cache = open_cache(max_size=300)
    items = [chunk(i, 100) for i in range(4)]
    for data, d in items[:3]:
        cache.put(d, data)
    cache.get(items[0][1])  # only in the pending batch until close
    cache.close()
    cache = open_cache(max_size=300)
    assert cache.stats()["size"] == 300 and cache.stats()["count"] == 3
    cache.put(items[3][1], items[3][0])  # 400 > 300: evict to 270, oldest first
    assert [cache.contains(d) for _, d in items] == [True, False, False, True]
    assert cache.get(items[0][1]) == items[0][0]
    check_consistent(cache)


def test_two_instances_in_one_process_share_the_environment(open_cache, tmp_path):
    os.makedirs(tmp_path / "cache")
    os.symlink(tmp_path / "cache", tmp_path / "alias")
    one, two = open_cache(), open_cache(directory=tmp_path / "alias")
    assert one._cenv is two._cenv
    data, d = chunk(5)
    one.put(d, data)
    one.close()
    assert two.get(d) == data


def _worker(directory: str, seed: int, rounds: int) -> int:
    cache = ChunkCache(directory, max_size=6000)
    rng, wrong = random.Random(seed), 0
    try:
        for _ in range(rounds):
            data, d = chunk(rng.randrange(60))
            cache.put(d, data)
            data, d = chunk(rng.randrange(60))
            wrong += cache.get(d) not in (None, data)
            wrong += cache.read(d, 2, 7) not in (None, data[2:9])
            if rng.random() < 0.05:
                cache.evict(rng.randrange(6000))
    finally:
        cache.close()
    return wrong


def test_two_processes_stay_consistent(tmp_path, open_cache):
    directory = str(tmp_path / "cache")
    ChunkCache(directory, max_size=6000).close()  # create it before the race
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_worker, [(directory, 1, 300), (directory, 2, 300)])
    assert results == [0, 0]
    cache = open_cache(max_size=6000)
    assert sum(check_consistent(cache).values()) <= 6000


def test_threads_stay_consistent(open_cache):
    cache = open_cache(max_size=5000)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(150):
                data, d = chunk(rng.randrange(50))
                cache.put(d, data)
                data, d = chunk(rng.randrange(50))
                assert cache.get(d) in (None, data)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(check_consistent(cache).values()) <= 5000


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_disk_full_raises_disk_full_and_leaves_no_temp(open_cache, tmp_path):
    import subprocess

    tmp = tmp_path / "cache" / "tmp"
    tmp.mkdir(parents=True)
    # a real full disk where temp files are written
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tmp)], check=True)
    try:
        cache = open_cache()
        data, d = chunk(7, size=256 << 10)
        with pytest.raises(DiskFull, match="no space left"):  # ENOSPC at a mount (fs/errnos.py)
            cache.put(d, data)
        assert os.listdir(tmp) == [] and not cache.contains(d)
    finally:
        subprocess.run(["umount", str(tmp)], check=True)
    cache.put(d, data)  # room again: the same put works
    assert check_consistent(cache) == {d: len(data)}


def test_stale_temp_files_of_dead_writers_are_swept(open_cache, tmp_path):
    tmp = tmp_path / "cache" / "tmp"
    os.makedirs(tmp)
    dead = tmp / "999999999.abc.tmp"
    fresh = tmp / f"{os.getpid()}.def.tmp"
    dead.write_bytes(b"partial")
    fresh.write_bytes(b"in progress")
    old = time.time() - 120
    os.utime(dead, (old, old))
    os.utime(fresh, (old, old))
    open_cache()
    assert sorted(os.listdir(tmp)) == [fresh.name]


def test_corrupt_index_says_how_to_recover(tmp_path):
    index = tmp_path / "cache" / "index"
    os.makedirs(index)
    (index / "data.mdb").write_bytes(os.urandom(64 << 10))
    with pytest.raises(CacheUnusable, match=r"remove \S+/index and \S+/chunks .*copies are kept") as info:
        ChunkCache(str(tmp_path / "cache"), 1 << 20)
    assert isinstance(info.value, MountfsError)
    # `mountfs cache clear` opens the same index, and removing the whole folder loses local copies
    assert "cache clear" not in str(info.value) and "remove the folder" not in str(info.value)


def test_incompatible_layout_version_is_refused(tmp_path):
    directory = str(tmp_path / "cache")
    cenv = open_env(directory)
    with cenv.env.begin(write=True) as txn:
        txn.put(b"layout", b"999", db=cenv.db("meta"))
    release_env(cenv)
    with pytest.raises(CacheUnusable, match="layout version is 999.*use the mountfs that wrote it"):
        ChunkCache(directory, 1 << 20)


def test_forked_child_gets_a_clear_error(open_cache):
    cache = open_cache()
    data, d = chunk(8)
    cache.put(d, data)
    pid = os.fork()
    if pid == 0:
        try:
            cache.contains(d)
            code = 1
        except CacheUnusable:
            try:
                ChunkCache(cache.directory, 1 << 20)
                code = 2
            except CacheUnusable:
                code = 0
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert cache.get(d) == data  # the parent is unharmed
    check_consistent(cache)


def test_clear_removes_everything(open_cache):
    cache = open_cache()
    for i in range(5):
        cache.put(chunk(i)[1], chunk(i)[0])
    cache.clear()
    assert cache.stats()["size"] == 0 and cache.stats()["count"] == 0
    assert check_consistent(cache) == {}
    cache.put(chunk(1)[1], chunk(1)[0])
    assert cache.get(chunk(1)[1]) == chunk(1)[0]
    assert os.listdir(cache._tmp_dir) == []


def test_eviction_resumes_across_batches_past_pinned_chunks(open_cache, monkeypatch):
    monkeypatch.setattr(chunks_mod, "_EVICT_BATCH", 2)
    cache = open_cache(max_size=10_000)
    items = [chunk(i, 100) for i in range(20)]
    for data, d in items:
        cache.put(d, data)
    keep = [d for i, (_, d) in enumerate(items) if i % 3 == 0]
    with cache.pinned(keep):
        assert cache.evict(0) == 100 * (20 - len(keep))
    assert set(check_consistent(cache)) == set(keep)
    assert cache.stats()["evictions"] == 20 - len(keep)


def test_put_many_is_one_transaction_and_consistent(open_cache):
    cache = open_cache(max_size=1 << 20)
    items = [chunk(i, size=5000) for i in range(40)]
    cache.put_many((d, data) for data, d in items)
    cache.put_many((d, data) for data, d in items[:5])  # already there: nothing changes
    assert check_consistent(cache) == {d: len(data) for data, d in items}
    for data, d in items:
        assert cache.read(d, 10, 100) == data[10:110]
    bad_data, bad_d = chunk(99, size=10)
    with pytest.raises(IntegrityError):
        cache.put_many([(bad_d, bad_data + b"x")])
    assert not cache.contains(bad_d)


def _file_of(cache: ChunkCache, digest: bytes) -> tuple[str, int]:
    with cache._cenv.env.begin() as txn:
        _, fid, offset = chunks_mod._ENTRY.unpack(txn.get(digest, db=cache._chunks))
    return cache._file_path(fid), offset


def test_chunks_put_together_share_a_file_and_leave_together(open_cache):
    cache = open_cache(max_size=10_000)
    first = [chunk(i, 1000) for i in range(4)]
    second = [chunk(i, 1000) for i in range(10, 14)]
    cache.put_many((d, data) for data, d in first)
    cache.put_many((d, data) for data, d in second)
    assert len({_file_of(cache, d)[0] for _, d in first}) == 1
    assert sorted(_file_of(cache, d)[1] for _, d in first) == [0, 1000, 2000, 3000]
    with cache.pinned([first[3][1]]):  # one chunk pins its whole file
        assert cache.evict(4000) == 4000
    assert set(check_consistent(cache)) == {d for _, d in first}
    cache.put_many((d, data) for data, d in second)
    assert cache.get(first[2][1]) == first[2][0]  # one chunk used: its whole file is the newest
    assert cache.evict(4000) == 4000
    assert set(check_consistent(cache)) == {d for _, d in first}


def _damage_and_close(cache, digest: bytes) -> None:
    """Close ``cache``, then flip 10 bytes inside the chunk ``digest`` in its shared file."""
    path, offset = _file_of(cache, digest)
    cache.close()
    with open(path, "r+b") as fh:
        fh.seek(offset + 10)
        fh.write(b"\xff" * 10)


@pytest.mark.allow_warnings
def test_a_damaged_chunk_in_a_shared_file_drops_the_whole_file(open_cache, tmp_path, caplog):
    items = [chunk(i, 5000) for i in range(3)]
    other = chunk(10, 5000)
    cache = open_cache()
    cache.put_many((d, data) for data, d in items)
    cache.put(other[1], other[0])
    _damage_and_close(cache, items[1][1])
    cache = open_cache()  # a new process would not trust the file either
    assert cache.read(items[1][1], 0, 100) is None
    assert items[1][1].hex() in caplog.text
    assert cache.read(items[0][1], 0, 100) is None  # written with it: fetched again too
    assert cache.get(items[2][1]) is None
    assert set(check_consistent(cache)) == {other[1]}


def test_a_layout_1_cache_is_emptied_and_keeps_its_file_tables(tmp_path):
    directory = tmp_path / "cache"
    cenv = open_env(str(directory))
    meta, old_chunks, tables = cenv.db("meta"), cenv.db("chunks"), cenv.db("ft_versions")
    with cenv.env.begin(write=True) as txn:
        txn.put(b"layout", b"1", db=meta)
        txn.put(b"chunks.bytes", chunks_mod._U64.pack(3), db=meta)
        txn.put(b"\x01" * 16, b"old-entry-format", db=old_chunks)
        txn.put(b"v1", b"a file table row", db=tables)
    release_env(cenv)
    os.makedirs(directory / "chunks" / "01")
    (directory / "chunks" / "01" / ("01" * 16)).write_bytes(b"old")
    with ChunkCache(str(directory), 1 << 20) as cache:
        assert cache.stats()["size"] == 0 and check_consistent(cache) == {}
        tables = cache._cenv.db("ft_versions")
        with cache._cenv.env.begin() as txn:
            assert txn.get(b"v1", db=tables) == b"a file table row"
            assert txn.get(b"layout", db=cache._meta) == b"2"
        data, d = chunk(1, 100)
        cache.put(d, data)
        assert cache.get(d) == data


@pytest.mark.allow_warnings  # the damaged chunk's file is dropped with a warning
def test_read_many_reads_each_file_once_and_leaves_out_damage(open_cache, monkeypatch):
    first = [chunk(i, 5000) for i in range(4)]
    second = [chunk(i, 3000) for i in range(10, 12)]
    cache = open_cache()
    cache.put_many((d, data) for data, d in first)
    cache.put_many((d, data) for data, d in second)
    reads = []
    real = cache._read_file
    monkeypatch.setattr(cache, "_read_file", lambda fid, off, n: reads.append(fid) or real(fid, off, n))
    absent = b"\x01" * 16
    handed: list[list[tuple[bytes, bytes]]] = []
    n = cache.read_many([d for _, d in first] + [d for _, d in second] + [absent], handed.append)
    got = dict(pair for batch in handed for pair in batch)
    assert got == {d: data for data, d in first + second}
    assert n == len(got) == 6
    assert len(reads) == 2  # neighbours in one cache file are read together
    reads.clear()
    handed.clear()
    cache.read_many([d for _, d in first], handed.append, span=5000)  # reads of at most a span
    assert len(reads) == 4 and len(handed) == 4  # one read per chunk
    _damage_and_close(cache, first[2][1])
    cache = open_cache()
    monkeypatch.setattr(cache, "_read_file", lambda fid, off, n: reads.append(fid) or real(fid, off, n))
    reads.clear()
    handed.clear()
    assert cache.read_many([d for _, d in first + second], handed.append, span=5000) == 2 + 2
    # the damaged third chunk ends the first file's reads: its fourth is neither read nor handed
    assert len(reads) == 3 + 2  # (the second file's 3000-byte chunks are a span each)
    assert dict(pair for batch in handed for pair in batch) == {d: data for data, d in first[:2] + second}
    assert all(cache.read(d, 0, 100) is None for _, d in first)  # the reads that want them fetch again


# --- chunks being read are pinned ---------------------------------------------------------


def _evicting_reads(cache: ChunkCache, monkeypatch) -> list[int]:
    """Make each read of a cache file first wait for an eviction of everything, run by
    another thread (a put under pressure elsewhere in the process); return what each freed."""
    plain = cache._read_file
    freed: list[int] = []

    def read_file(fid: bytes, offset: int, length: int) -> bytes:
        t = threading.Thread(target=lambda: freed.append(cache.evict(0)))
        t.start()
        t.join(30)
        assert not t.is_alive(), "the eviction hung"
        return plain(fid, offset, length)

    monkeypatch.setattr(cache, "_read_file", read_file)
    return freed


@pytest.mark.parametrize("how", ["read", "get", "read_many"])
def test_a_chunk_being_read_is_not_evicted_under_the_read(open_cache, monkeypatch, how):
    cache = open_cache(max_size=1 << 20)
    items = [chunk(i, 1000) for i in range(5)]
    for data, d in items:
        cache.put(d, data)  # five files
    data, d = items[2]
    freed = _evicting_reads(cache, monkeypatch)
    if how == "read":
        assert cache.read(d, 10, 100) == data[10:110]
    elif how == "get":
        assert cache.get(d) == data
    else:  # a read-ahead of two chunks pins both for its whole duration
        got: list[tuple[bytes, bytes]] = []
        assert cache.read_many([d, items[0][1]], got.extend) == 2
        assert sorted(got) == sorted([(d, data), items[0][::-1]])
    kept = {d: 1000} if how != "read_many" else {d: 1000, items[0][1]: 1000}
    assert freed[0] == 5000 - 1000 * len(kept)  # everything but the files being read
    monkeypatch.undo()
    assert check_consistent(cache) == kept
    assert cache.stats()["corrupt"] == 0 and cache._pins.idle()
    assert cache.evict(0) == 1000 * len(kept)  # unpinned once the read is over
    assert check_consistent(cache) == {}


def test_a_read_that_pins_while_an_eviction_commits_keeps_the_file_until_it_is_done(open_cache, monkeypatch):
    """The eviction decided without the pin (it was not there yet) and removed the entry,
    but the read looked the entry up before that committed: the file is deleted only once
    the read let go of it."""
    cache = open_cache()
    data, d = chunk(1, 1000)
    cache.put(d, data)
    decided, looked_up, evicted = threading.Event(), threading.Event(), threading.Event()
    plain_batch, plain_read = cache._evict_batch, cache._read_file

    def batch(txn, target, resume):
        out = plain_batch(txn, target, resume)
        if out[0]:
            decided.set()
            assert looked_up.wait(10)  # the read pinned and looked up before this commits
        return out

    def read_file(fid: bytes, offset: int, length: int) -> bytes:
        looked_up.set()
        assert evicted.wait(10)  # the eviction has committed and is over
        assert os.path.exists(cache._file_path(fid))
        return plain_read(fid, offset, length)

    monkeypatch.setattr(cache, "_evict_batch", batch)
    monkeypatch.setattr(cache, "_read_file", read_file)
    freed: list[int] = []

    def evict() -> None:
        freed.append(cache.evict(0))
        evicted.set()

    t = threading.Thread(target=evict)
    t.start()
    try:
        assert decided.wait(10)
        assert cache.read(d, 0, 1000) == data
    finally:
        t.join(30)
    assert freed == [1000] and not cache.contains(d)
    monkeypatch.undo()
    assert cache._pins.idle() and check_consistent(cache) == {}  # the file went with the read


def test_pins_of_concurrent_reads_and_evictions_never_lose_a_read(open_cache):
    """Threads reading chunks while others put and evict all the time: a read of a chunk
    the cache held when the read began never misses because of an eviction here."""
    cache = open_cache(max_size=20_000)
    keep = [chunk(i, 3000) for i in range(4)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader(k: int) -> None:
        try:
            rng = random.Random(k)
            for _ in range(300):
                data, d = rng.choice(keep)
                cache.put(d, data)
                # between the put and the read an eviction may take it (a miss, fine);
                # once read() found it, it returns every byte
                got = cache.read(d, 5, 2000)
                assert got is None or got == data[5:2005]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def churn() -> None:
        try:
            i = 100
            while not stop.is_set():
                data, d = chunk(i, 4000)
                cache.put(d, data)
                cache.evict(0)
                i += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    churner = threading.Thread(target=churn)
    for t in readers + [churner]:
        t.start()
    for t in readers:
        t.join(60)
    stop.set()
    churner.join(60)
    assert errors == [] and cache.stats()["corrupt"] == 0
    assert cache._pins.idle()
    cache.evict(0)
    assert check_consistent(cache) == {}
