"""Read-ahead that follows the access pattern (mountfs/fs/reader.py), through real mounts.

A shuffled pass (DataLoader-like: worker processes, seeded random order) reads
right bytes and reads no never-asked-for neighbours ahead, from the store or
from the cache files; a directory-order read still reads its folder ahead; a
sequential big-file read doubles its window; reads never wait behind read-ahead
in the fetch pools.  Everything is observed through the daemon's counters
(``mountfs status``), never by timing.
"""

from __future__ import annotations

import multiprocessing
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from mfs import Harness, build, drop_page_cache, wait_for, write

from mountfs.fs.reader import DIR_PREFETCH_FILES

pytestmark = pytest.mark.fuse

CLASSES = 12
PER_CLASS = 100  # 1,200 files of 12-40 KiB: about 30 MiB, several 8 MiB pack blocks
BIG = 24 << 20
#: read ahead from the cache files allowed in a shuffled pass: the stale end of a directory
#: read (or a mount's first open, with nothing to tell the order by) may start a few batches
SHUFFLED_LOADS = 3 * DIR_PREFETCH_FILES


def _dataset(root: Path, big: bool = False) -> dict[str, bytes]:
    rng = random.Random(19)
    files: dict[str, bytes] = {}
    for k in range(CLASSES):
        for i in range(PER_CLASS):
            files[f"train/class_{k:02d}/img_{i:04d}.jpg"] = rng.randbytes(rng.randint(12 << 10, 40 << 10))
    if big:
        files["shards/big.tar"] = rng.randbytes(BIG)
    for rel, data in files.items():
        write(root / rel, data)
    return files


def _small(files: dict[str, bytes]) -> list[str]:
    return sorted(r for r in files if r.startswith("train/"))


def _read_part(args: tuple[str, list[str]]) -> dict[str, bytes]:
    """A worker process: read its share of the files, each whole, in the given order."""
    mnt, rels = args
    out = {}
    for rel in rels:
        with open(os.path.join(mnt, rel), "rb") as fh:
            out[rel] = fh.read()
    return out


def _shuffled_pass(mnt: str, rels: list[str], seed: int, workers: int = 4) -> dict[str, bytes]:
    """Like DataLoader(shuffle=True) with worker processes: one seeded permutation, dealt round-robin."""
    order = list(rels)
    random.Random(seed).shuffle(order)
    parts = [(mnt, order[w::workers]) for w in range(workers)]
    got: dict[str, bytes] = {}
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for part in pool.map(_read_part, parts):
            got.update(part)
    return got


def _settled(d: Any) -> dict[str, Any]:
    wait_for(lambda: d.status()["inflight_fetches"] == 0, 30, "fetches to land in the cache")
    return d.status()


def _mount(h: Harness, tmp_path: Path, big: bool = False) -> tuple[Any, str, dict[str, bytes]]:
    files = _dataset(tmp_path / "src", big=big)
    ds = build("train", "images", tmp_path / "src")
    mp = h.mountpoint()
    return h.mount(ds.id, mp), mp, files


def test_a_shuffled_epoch_reads_no_neighbours_ahead_and_the_store_once(h: Harness, tmp_path: Path) -> None:
    d, mp, files = _mount(h, tmp_path)
    rels = _small(files)
    got = _shuffled_pass(mp, rels, seed=1)
    assert got == {r: files[r] for r in rels}
    st = _settled(d)
    pat = st["read_pattern"]
    total = sum(len(files[r]) for r in rels)
    # nearly every open was out of path order, and none of those read the folder ahead
    assert pat["opens_shuffled"] >= len(rels) * 0.9, pat
    assert pat["dir_batches"] <= len(rels) // 40, pat
    assert st["read_ahead_from_cache"] <= SHUFFLED_LOADS, st
    # the version fits the cache: misses took their pack block along, so the store was read
    # about once, in few large reads, whatever the order
    assert pat["taken_blocks"] >= 1, pat
    assert st["bytes_fetched"] <= total * 1.1, (st["bytes_fetched"], total)
    assert st["fetches"] <= len(rels) // 4, st
    assert st["fetch_errors"] == 0, st

    # the next epoch, another order, page cache dropped: from the daemon's cache, and
    # still nothing of the neighbours is read from the cache files into memory
    drop_page_cache(mp)
    before = d.status()
    got = _shuffled_pass(mp, rels, seed=2)
    assert got == {r: files[r] for r in rels}
    after = _settled(d)
    assert after["fetches"] == before["fetches"], "the second epoch asked the store again"
    assert after["read_ahead_from_cache"] - before["read_ahead_from_cache"] <= SHUFFLED_LOADS, after
    assert after["reads"] - before["reads"] >= len(rels)  # the reads did reach the daemon


def test_a_directory_order_read_still_reads_its_folder_ahead(h: Harness, tmp_path: Path) -> None:
    d, mp, files = _mount(h, tmp_path)
    rels = _small(files)
    for rel in rels:
        assert Path(mp, rel).read_bytes() == files[rel], rel
    st = _settled(d)
    pat = st["read_pattern"]
    assert pat["opens_in_order"] >= len(rels) * 0.9, pat
    assert pat["dir_batches"] >= 2, pat
    assert st["read_ahead_hits"] >= len(rels) // 2, st  # served from what read-ahead fetched
    assert st["fetches"] <= len(rels) // 10, st

    # read again from the cache files (page cache dropped): the folder is read into memory ahead
    drop_page_cache(mp)
    before = d.status()
    for rel in rels:
        assert Path(mp, rel).read_bytes() == files[rel], rel
    after = _settled(d)
    assert after["fetches"] == before["fetches"]
    assert after["read_ahead_from_cache"] - before["read_ahead_from_cache"] >= len(rels) // 2, after

    # a shuffled pass stops it, a directory-order pass after it resumes it
    drop_page_cache(mp)
    before = d.status()
    _shuffled_pass(mp, rels, seed=3, workers=2)
    mid = _settled(d)
    assert mid["read_ahead_from_cache"] - before["read_ahead_from_cache"] <= SHUFFLED_LOADS, mid
    drop_page_cache(mp)
    for rel in rels:
        assert Path(mp, rel).read_bytes() == files[rel], rel
    end = _settled(d)
    assert end["read_ahead_from_cache"] - mid["read_ahead_from_cache"] >= len(rels) // 2, end


def test_a_sequential_big_file_read_doubles_its_window(h: Harness, tmp_path: Path) -> None:
    d, mp, files = _mount(h, tmp_path, big=True)
    before = d.status()["read_pattern"]
    with open(os.path.join(mp, "shards/big.tar"), "rb") as fh:
        pieces = iter(lambda: fh.read(128 << 10), b"")
        assert b"".join(pieces) == files["shards/big.tar"]
    st = _settled(d)
    pat = st["read_pattern"]
    assert pat["window_grows"] - before["window_grows"] >= 3, pat
    assert pat["window_max"] >= 8, pat  # from 2 chunks: doubled at least twice
    assert st["read_ahead_hits"] > 0 and st["fetch_errors"] == 0, st


def test_reads_are_not_queued_behind_read_ahead_and_parallel_readers_get_right_bytes(
        h: Harness, tmp_path: Path) -> None:
    """A big sequential read fills the read-ahead pool while 16 readers read small files
    in a shuffled order and pieces of the big file at random offsets."""
    d, mp, files = _mount(h, tmp_path, big=True)
    rels = _small(files)
    rng = random.Random(5)
    order = list(rels)
    rng.shuffle(order)
    big = files["shards/big.tar"]
    pieces = [(off, rng.randint(1, 300_000)) for off in (rng.randrange(len(big)) for _ in range(64))]

    def stream() -> bytes:
        with open(os.path.join(mp, "shards/big.tar"), "rb") as fh:
            return fh.read()

    def small(rel: str) -> bool:
        return Path(mp, rel).read_bytes() == files[rel]

    def piece(p: tuple[int, int]) -> bool:
        fd = os.open(os.path.join(mp, "shards/big.tar"), os.O_RDONLY)
        try:
            return os.pread(fd, p[1], p[0]) == big[p[0]:p[0] + p[1]]
        finally:
            os.close(fd)

    with ThreadPoolExecutor(17) as pool:
        whole = pool.submit(stream)
        ok_small = list(pool.map(small, order))
        ok_pieces = list(pool.map(piece, pieces))
        assert whole.result() == big
    assert all(ok_small) and all(ok_pieces)
    st = _settled(d)
    pat = st["read_pattern"]
    assert st["fetch_errors"] == 0, st
    # both pools worked: the reads' own fetches went through the demand pool, beside read-ahead
    assert pat["fetches_demand"] > 0 and pat["fetches_ahead"] > 0, pat
    assert pat["fetches_demand"] + pat["fetches_ahead"] == st["fetches"], pat
    assert pat["promoted"] >= 0, pat


def test_warmup_before_the_first_epoch_leaves_the_epoch_nothing_to_fetch(h: Harness, tmp_path: Path) -> None:
    d, mp, files = _mount(h, tmp_path)
    h.cli("warmup", mp)
    before = _settled(d)
    drop_page_cache(mp)
    rels = _small(files)
    got = _shuffled_pass(mp, rels, seed=4)
    assert got == {r: files[r] for r in rels}
    after = _settled(d)
    assert after["fetches"] == before["fetches"] and after["bytes_fetched"] == before["bytes_fetched"]
    # at most the folder batch of the mount's first open (nothing to tell the order by yet)
    assert after["read_ahead_from_cache"] - before["read_ahead_from_cache"] <= SHUFFLED_LOADS, after
    assert after["read_pattern"]["dir_batches"] - before["read_pattern"]["dir_batches"] <= 1, after
