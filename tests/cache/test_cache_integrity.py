"""A damaged, read-only or full cache: never wrong bytes, never a raw error, never advice that loses data.

Real ChunkCache and LMDB in temp folders; the damage is done to the real cache
files, the read-only folder is a real read-only bind mount (as root: mode bits
do not stop root) or real mode bits, the full index a real LMDB map made small.
The mount test runs a real daemon over a real FUSE mount.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import xxhash

from mountfs.cache import ChunkCache
from mountfs.cache import chunks as chunks_mod
from mountfs.cache import env as env_mod
from mountfs.cache.filetable import FileTables
from mountfs.errors import LocalDiskError
from mountfs.store.manifest import FileEntry

_DAEMON_TESTS = Path(__file__).resolve().parents[1] / "daemon"
if str(_DAEMON_TESTS) not in sys.path:
    sys.path.insert(0, str(_DAEMON_TESTS))

from mfs import Harness, drop_page_cache, harness, short_run_dir, wait_for  # noqa: E402

MOUNTFS = str(Path(sys.executable).parent / "mountfs")


def chunk(i: int, size: int = 5000) -> tuple[bytes, bytes]:
    """Deterministic chunk ``i``: (data, digest)."""
    data = random.Random(i).randbytes(size)
    return data, xxhash.xxh3_128_digest(data)


def file_of(cache: ChunkCache, digest: bytes) -> tuple[str, int]:
    """The cache file holding ``digest`` and the chunk's offset in it."""
    with cache._cenv.env.begin() as txn:
        _, fid, offset = chunks_mod._ENTRY.unpack(txn.get(digest, db=cache._chunks))
    return cache._file_path(fid), offset


def flip(path: str | os.PathLike[str], offset: int) -> None:
    """Invert one byte of a file in place and sync it (the cache reads with O_DIRECT)."""
    fd = os.open(path, os.O_RDWR)
    try:
        byte = os.pread(fd, 1, offset)
        os.pwrite(fd, bytes([byte[0] ^ 0xFF]), offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("mountfs")]


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ChunkCache]:
    with ChunkCache(str(tmp_path / "cache"), 1 << 30) as c:
        yield c


# --- a damaged cache file ---------------------------------------------------------------


def _read_back(cache: ChunkCache, api: str, digests: list[bytes]) -> dict[bytes, bytes]:
    """What ``api`` serves of ``digests``: digest -> bytes, absent ones left out."""
    if api == "read_many":
        got: dict[bytes, bytes] = {}
        cache.read_many(digests, lambda pairs: got.update(pairs))
        return got
    out = {}
    for d in digests:
        data = cache.read(d, 0, 1 << 20) if api == "read" else cache.get(d)
        if data is not None:
            out[d] = data
    return out


@pytest.mark.allow_warnings  # one warning for the damaged file, asserted below
@pytest.mark.parametrize("api", ["read", "get", "read_many"])
def test_a_flipped_byte_is_never_served_and_drops_its_file(cache: ChunkCache, caplog, api: str) -> None:
    together = [chunk(i) for i in range(3)]  # one put_many: one cache file
    alone = chunk(10)
    cache.put_many((d, data) for data, d in together)
    cache.put(alone[1], alone[0])
    # served (and verified) once by this very process: the old code trusted them from then on
    assert cache.read(together[1][1], 100, 50) == together[1][0][100:150]
    assert _read_back(cache, api, [d for _, d in together]) == {d: data for data, d in together}
    path, offset = file_of(cache, together[1][1])
    flip(path, offset + 4321)

    # the damaged chunk first (read_many goes in file order anyway): its neighbours are then gone too
    got = _read_back(cache, api, [together[1][1], together[0][1], together[2][1], alone[1]])
    assert got == {alone[1]: alone[0]}  # the damaged file's chunks are all left out, the others served
    assert cache.stats()["corrupt"] == 1
    [warning] = warnings_of(caplog)
    assert path in warning and together[1][1].hex() in warning
    assert not os.path.exists(path)
    assert not any(cache.contains(d) for _, d in together)
    assert cache.stats()["size"] == len(alone[0]) and cache.stats()["count"] == 1

    # what the caller fetches again goes back in, and is served right
    cache.put_many((d, data) for data, d in together)
    assert _read_back(cache, api, [d for _, d in together]) == {d: data for data, d in together}
    assert cache.read(together[1][1], 4000, 1000) == together[1][0][4000:]
    assert len(warnings_of(caplog)) == 1 and cache.stats()["corrupt"] == 1


@pytest.mark.allow_warnings
def test_a_file_damaged_in_two_places_warns_once(cache: ChunkCache, caplog) -> None:
    items = [chunk(i) for i in range(4)]
    cache.put_many((d, data) for data, d in items)
    path, _ = file_of(cache, items[0][1])
    for _, d in (items[0], items[3]):
        flip(path, file_of(cache, d)[1] + 7)
    assert cache.read(items[3][1], 0, 10) is None
    assert all(cache.read(d, 0, 10) is None for _, d in items)  # misses now: nothing left to check
    assert len(warnings_of(caplog)) == 1 and items[3][1].hex() in warnings_of(caplog)[0]
    stats = cache.stats()
    assert (stats["corrupt"], stats["misses"], stats["count"]) == (1, 1 + 4, 0)


@pytest.mark.allow_warnings
def test_a_read_slice_that_misses_the_damage_still_refuses_the_chunk(cache: ChunkCache, caplog) -> None:
    data, d = chunk(1, 64 << 10)
    cache.put(d, data)
    path, offset = file_of(cache, d)
    flip(path, offset + 60_000)
    assert cache.read(d, 0, 4096) is None  # the slice itself is intact; the chunk is not
    assert cache.stats()["corrupt"] == 1 and len(warnings_of(caplog)) == 1


@pytest.mark.allow_warnings
def test_a_chunk_read_in_slices_comes_from_disk_once_and_is_checked_again_next_time(
        cache: ChunkCache, caplog, monkeypatch) -> None:
    data, d = chunk(1, 64 << 10)
    cache.put(d, data)
    reads = []
    real = cache._read_file
    monkeypatch.setattr(cache, "_read_file", lambda fid, off, n: reads.append(n) or real(fid, off, n))
    step = 16 << 10
    assert b"".join(cache.read(d, off, step) for off in range(0, len(data), step)) == data
    assert reads == [len(data)]  # the whole chunk once, verified; its next slices from memory
    path, offset = file_of(cache, d)
    flip(path, offset + 100)
    assert cache.read(d, 0, step) is None  # the last slice reached its end: read from disk, checked again
    assert reads == [len(data)] * 2 and cache.stats()["corrupt"] == 1 and len(warnings_of(caplog)) == 1


# --- a read-only cache folder -----------------------------------------------------------


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` read-only for this process: a read-only bind mount as root (mode bits
    do not stop root), the mode bits of everything below it otherwise."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
            yield
        finally:
            subprocess.run(["umount", str(path)], check=True)
        return
    modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
    for p, mode in modes.items():
        p.chmod(mode & ~0o222)
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def _assert_says_not_writable(exc: LocalDiskError, folder: Path) -> None:
    msg = str(exc)
    assert f"cache folder {folder} is not writable" in msg and "MOUNTFS_CACHE_DIR" in msg, msg
    assert "remove" not in msg and "clear" not in msg, msg  # what it holds is fine


def test_a_read_only_cache_folder_is_a_clear_error_and_keeps_what_it_holds(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    data, d = chunk(1)
    with ChunkCache(str(folder), 1 << 20) as c:
        c.put(d, data)
    with read_only(folder):
        with pytest.raises(LocalDiskError) as info:
            ChunkCache(str(folder), 1 << 20)
        _assert_says_not_writable(info.value, folder)
        with pytest.raises(LocalDiskError) as info:
            FileTables(str(folder))  # the daemon opens its file tables first
        _assert_says_not_writable(info.value, folder)
    with ChunkCache(str(folder), 1 << 20) as c:
        assert c.get(d) == data


def test_a_new_cache_folder_in_a_read_only_parent_is_a_clear_error(tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    with read_only(parent), pytest.raises(LocalDiskError) as info:
        ChunkCache(str(parent / "cache"), 1 << 20)
    _assert_says_not_writable(info.value, parent / "cache")


def test_a_put_into_a_cache_made_read_only_meanwhile_is_a_clear_error(cache: ChunkCache) -> None:
    kept, d = chunk(1)
    cache.put(d, kept)
    new, d2 = chunk(2)
    with read_only(Path(cache.directory) / "tmp"):
        with pytest.raises(LocalDiskError) as info:
            cache.put(d2, new)  # the reader then serves the bytes without caching them
        _assert_says_not_writable(info.value, Path(cache.directory))
        assert cache.get(d) == kept and not cache.contains(d2)
    cache.put(d2, new)
    assert cache.get(d2) == new


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MOUNTFS, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def _one_error_line(res: subprocess.CompletedProcess, code: int) -> str:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mountfs: error: "), res.stderr
    return lines[0]


def test_the_cli_on_a_read_only_cache_says_one_line_and_no_destructive_advice(tmp_path: Path,
                                                                              isolated_env: dict[str, str]) -> None:
    from mountfs import Dataset

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(chunk(1)[0])
    ds = Dataset.create(dataset_name="n", dataset_project="p")
    ds.add_files(str(src))
    ds.upload(show_progress=False)
    ds.finalize()
    copy = Path(ds.get_local_copy())  # a complete copy inside the cache folder
    cache_dir = Path(isolated_env["MOUNTFS_CACHE_DIR"])
    assert copy.is_relative_to(cache_dir)
    with read_only(cache_dir):
        for args in (["get", "--id", ds.id], ["cache", "info"]):
            line = _one_error_line(_run_cli(*args), LocalDiskError.exit_code)
            assert f"{cache_dir} is not writable" in line and "MOUNTFS_CACHE_DIR" in line, line
            assert "clear" not in line and "remove" not in line, line
    assert (copy / "a.bin").read_bytes() == chunk(1)[0]


# --- a full index -----------------------------------------------------------------------


@pytest.mark.allow_warnings  # last-use times lost once, asserted below
def test_a_full_index_is_a_clear_error_and_cached_chunks_are_still_served(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(env_mod, "MAP_SIZE", 256 << 10)  # a real LMDB map, small enough to fill
    monkeypatch.setattr(env_mod, "MAX_MAP_SIZE", 256 << 10)  # and not allowed to grow (test_env.py grows it)
    monkeypatch.setattr(chunks_mod, "_FLUSH_SECONDS", 1e9)
    folder = tmp_path / "cache"
    with ChunkCache(str(folder), 1 << 40) as c:
        # a long-lived reader (a stuck process) keeps every page freed after it: the map fills
        old_snapshot = c._cenv.env.begin()
        try:
            stored: list[tuple[bytes, bytes]] = []
            with pytest.raises(LocalDiskError) as info:
                for i in range(100_000):
                    data = i.to_bytes(8, "big") * 4
                    c.put(xxhash.xxh3_128_digest(data), data)
                    stored.append((data, xxhash.xxh3_128_digest(data)))
            assert f"cache index {folder / 'index'} is full" in str(info.value), info.value
            assert "mountfs cache clear" in str(info.value) and "remove" not in str(info.value)
            with pytest.raises(LocalDiskError, match="is full"):  # the file tables are in the same map
                FileTables(str(folder)).import_version(b"v" * 10, [FileEntry("f", 1)], 0)
            # every hit flushes its last-use time, which no longer fits: reads go on regardless
            monkeypatch.setattr(chunks_mod, "_FLUSH_HITS", 1)
            assert stored and all(c.get(d) == data for data, d in stored)
            assert len(warnings_of(caplog)) == 1 and "last-use times not recorded" in warnings_of(caplog)[0]
        finally:
            old_snapshot.abort()
        c.clear()  # the advice works
        data, d = chunk(3)
        c.put(d, data)
        assert c.get(d) == data
    assert os.path.realpath(folder) not in env_mod._registry  # the failed FileTables gave its reference back


# --- a running mount over a corrupted cache ---------------------------------------------


@pytest.fixture
def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    """The real-mount harness of tests/daemon, with a private runtime folder."""
    run = short_run_dir()
    monkeypatch.setenv("MOUNTFS_RUN_DIR", run)
    work = tmp_path / "work"
    work.mkdir()
    with harness(dict(os.environ), work) as hh:
        yield hh


@pytest.mark.fuse
def test_a_mount_over_a_corrupted_cache_refetches_and_counts_it(h: Harness, tmp_path: Path,
                                                                isolated_env: dict[str, str]) -> None:
    from mountfs import Dataset

    rng = random.Random(5)
    sizes = [3 << 20, 1_500_000, 900_000, 600_000, 300_000, 100_000, 50_000, 20_000, 5_000, 2 << 20]
    src = tmp_path / "src"
    want = {}
    for i, size in enumerate(sizes):
        rel = f"d{i % 3}/f{i:02d}.bin"
        want[rel] = rng.randbytes(size)
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(want[rel])
    ds = Dataset.create(dataset_name="n", dataset_project="p")
    ds.add_files(str(src))
    ds.upload(show_progress=False)
    ds.finalize()

    mnt = Path(h.mountpoint())
    d = h.mount(ds.id, str(mnt))
    for rel, data in want.items():
        assert (mnt / rel).read_bytes() == data, rel
    # readers get fetched bytes before they are written to the cache: wait for those writes
    wait_for(lambda: d.status()["inflight_fetches"] == 0, 30, "the cache writes of the fetches")

    chunk_files = [p for p in (Path(isolated_env["MOUNTFS_CACHE_DIR"]) / "chunks").rglob("*") if p.is_file()]
    assert chunk_files
    for p in chunk_files:  # a byte in every 64 KiB: every chunk of every cache file is damaged
        for offset in range(1000, p.stat().st_size, 64 << 10):
            flip(p, offset)
    drop_page_cache(mnt)  # the reads below reach the daemon

    for rel, data in want.items():
        assert (mnt / rel).read_bytes() == data, f"{rel}: wrong bytes from a damaged cache"  # fetched again

    rows = [r for r in h.cli_json("status") if r.get("mountpoint") == str(mnt)]
    assert rows and rows[0]["cache"]["corrupt"] > 0, rows
    assert "damaged (fetched again)" in h.cli("status").stdout
    problems = d.log_problems()
    named = [p for p in chunk_files if any(str(p) in line for line in problems)]
    assert problems and len(named) == len(problems), problems  # one warning per damaged file, naming it
    assert all("does not match its digest" in line for line in problems), problems
    assert not any(p.exists() for p in named)
