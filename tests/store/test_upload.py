"""Uploading chunks (mountfs/store/upload.py) to a real folder store: what the store has is skipped,
the rest is packed and indexed, and a crash leaves packs without an index, never an index without its pack.
"""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path
from typing import Iterator

import pytest
import xxhash

from mountfs.backends.base import Staged
from mountfs.backends.file import FileBackend
from mountfs.errors import TransientStoreError
from mountfs.store import upload
from mountfs.store.layout import INDEX, PACKS
from mountfs.store.packs import CODEC_NONE, CODEC_ZSTD
from mountfs.store.store import Store
from mountfs.store.upload import ChunkSource, upload_chunks


def _source(*chunks: bytes) -> ChunkSource:
    """A file of these chunks, as the chunker describes one: its (digest, size) list and a reader."""
    pairs = [(xxhash.xxh3_128_digest(c), c) for c in chunks]
    return [(d, len(c)) for d, c in pairs], lambda: iter(pairs)


def _unread(*chunks: bytes) -> ChunkSource:
    """A source that must not be read: the store already has all of it."""
    def read() -> Iterator[tuple[bytes, bytes]]:
        raise AssertionError("a source whose chunks the store has was read")

    return [(xxhash.xxh3_128_digest(c), len(c)) for c in chunks], read


def _chunks(n: int, size: int = 3000, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(n)]


def _everything_readable(root: Path, chunks: list[bytes]) -> None:
    """A fresh process's view of the store: every chunk indexed, and each reads back verified."""
    store = Store(FileBackend(root))
    index = store.chunk_index()
    digests = {xxhash.xxh3_128_digest(c): c for c in chunks}
    assert set(digests) <= set(index)
    got = store.read_chunks(index[d] for d in digests)
    assert got == digests


def test_chunks_are_packed_indexed_and_read_back(tmp_path: Path) -> None:
    store = Store(FileBackend(tmp_path))
    chunks = _chunks(30)
    stats = upload_chunks(store, [_source(*chunks[:10]), _source(*chunks[10:]), _source()], pack_size=20_000)
    assert (stats.chunks_new, stats.chunks_known, stats.bytes_new) == (30, 0, 30 * 3000)
    packs = [o.key for o in store.backend.list(PACKS)]
    indexes = [o.key for o in store.backend.list(INDEX)]
    assert stats.packs == len(packs) == len(indexes) >= 4, "20 kB packs of 3 kB chunks"
    assert sorted(k.rsplit("/", 1)[1] for k in packs) == sorted(k.rsplit("/", 1)[1] for k in indexes)
    assert stats.bytes_sent == sum(o.size for o in store.backend.list(PACKS)) + sum(
        o.size for o in store.backend.list(INDEX))
    _everything_readable(tmp_path, chunks)


def test_a_chunk_is_sent_once_however_often_it_appears(tmp_path: Path) -> None:
    store = Store(FileBackend(tmp_path))
    a, b, c = _chunks(3)
    stats = upload_chunks(store, [_source(a, b, a), _source(b, c), _source(a)])
    assert (stats.chunks_new, stats.chunks_known, stats.packs) == (3, 3, 1)
    assert len(store.chunk_index()) == 3
    _everything_readable(tmp_path, [a, b, c])


def test_what_the_store_has_is_neither_read_nor_sent(tmp_path: Path) -> None:
    chunks = _chunks(8)
    upload_chunks(Store(FileBackend(tmp_path)), [_source(*chunks)])
    before = sorted(o.key for o in FileBackend(tmp_path).list())
    # another process (a fresh Store) uploads the same files again, and one new file
    new = _chunks(1, seed=9)
    seen: list[int] = []
    stats = upload_chunks(Store(FileBackend(tmp_path)), [_unread(*chunks[:4]), _unread(*chunks[4:]), _source(*new)],
                          progress=seen.append)
    assert (stats.chunks_new, stats.chunks_known, stats.packs) == (1, 8, 1)
    assert sum(seen) == 9 * 3000, "progress counts the skipped bytes too"
    after = sorted(o.key for o in FileBackend(tmp_path).list())
    assert len(after) == len(before) + 2, "one new pack and its index"
    _everything_readable(tmp_path, chunks + new)


def test_many_tiny_chunks_make_packs_of_bounded_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload, "MAX_PACK_CHUNKS", 4)
    store = Store(FileBackend(tmp_path))
    chunks = [i.to_bytes(4, "big") for i in range(10)]
    stats = upload_chunks(store, [_source(c) for c in chunks])
    assert stats.packs == 3  # 4 + 4 + 2
    assert sorted(len(list(g)) for g in _chunks_per_pack(store).values()) == [2, 4, 4]
    _everything_readable(tmp_path, chunks)


def _chunks_per_pack(store: Store) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for ref in store.chunk_index().values():
        out.setdefault(ref.pack, []).append(ref.digest)
    return out


def test_compression_is_per_chunk_and_can_be_switched_off(tmp_path: Path) -> None:
    text, noise = b"words " * 2000, os.urandom(12_000)
    on = Store(FileBackend(tmp_path / "on"))
    upload_chunks(on, [_source(text, noise)])
    codecs = {ref.size: ref.codec for ref in on.chunk_index().values()}
    assert codecs == {len(text): CODEC_ZSTD, len(noise): CODEC_NONE}
    off = Store(FileBackend(tmp_path / "off"))
    upload_chunks(off, [_source(text, noise)], compression=False)
    assert {ref.codec for ref in off.chunk_index().values()} == {CODEC_NONE}
    _everything_readable(tmp_path / "on", [text, noise])


# --- crashes ----------------------------------------------------------------------------------


class _Logged(Staged):
    def __init__(self, inner: Staged, key: str, log: list[str]) -> None:
        self.inner, self.key, self.log = inner, key, log

    def commit(self) -> None:
        self.inner.commit()
        self.log.append(self.key)

    def discard(self) -> None:
        self.inner.discard()


class _Recording(FileBackend):
    """A folder that records the moment each object becomes visible; index writes fail once ``fail_index``."""

    def __init__(self, root: Path, fail_index: bool = False) -> None:
        super().__init__(root)
        self.visible: list[str] = []
        self.fail_index = fail_index
        self._lock = threading.Lock()

    def stage_parts(self, key: str, parts: list[bytes | memoryview]) -> Staged:
        return _Logged(super().stage_parts(key, parts), key, self.visible)

    def put(self, key: str, data: bytes | memoryview) -> None:
        if key.startswith(INDEX) and self.fail_index:
            # the process dies here: its pack is durable, its index never written
            raise TransientStoreError("the store went away (test)")
        super().put(key, data)
        with self._lock:
            self.visible.append(key)


def test_each_pack_is_durable_before_its_index(tmp_path: Path) -> None:
    backend = _Recording(tmp_path)
    stats = upload_chunks(Store(backend), [_source(*_chunks(40))], pack_size=10_000, max_workers=4)
    packs = [k for k in backend.visible if k.startswith(PACKS)]
    assert stats.packs == len(packs) > 4
    for pack_key in packs:
        pack_id = pack_key.rsplit("/", 1)[1]
        assert backend.visible.index(pack_key) < backend.visible.index(INDEX + pack_id), pack_id


def test_a_crash_before_the_index_costs_a_resend_never_a_missing_chunk(tmp_path: Path) -> None:
    chunks = _chunks(12)
    crashing = _Recording(tmp_path, fail_index=True)
    with pytest.raises(TransientStoreError):
        upload_chunks(Store(crashing), [_source(*chunks)], pack_size=10_000)
    orphans = [o.key for o in FileBackend(tmp_path).list(PACKS)]
    assert orphans and list(FileBackend(tmp_path).list(INDEX)) == []
    assert Store(FileBackend(tmp_path)).chunk_index() == {}, "no chunk is known from a pack without its index"
    # the retry sends them again (the same bytes make the same pack ids) and indexes them
    stats = upload_chunks(Store(FileBackend(tmp_path)), [_source(*chunks)], pack_size=10_000)
    assert stats.chunks_new == 12
    assert set(orphans) <= {o.key for o in FileBackend(tmp_path).list(PACKS)}
    _everything_readable(tmp_path, chunks)
    assert not [p for p in tmp_path.rglob(".tmp-*")], "no temp file left behind"


def test_a_failing_source_stops_the_upload_and_leaves_a_consistent_store(tmp_path: Path) -> None:
    good, bad = _chunks(10), _chunks(2, seed=5)

    def broken() -> Iterator[tuple[bytes, bytes]]:
        yield xxhash.xxh3_128_digest(bad[0]), bad[0]
        raise OSError(5, "Input/output error")  # the disk fails in the middle of the file

    broken_source: ChunkSource = ([(xxhash.xxh3_128_digest(c), len(c)) for c in bad], broken)
    with pytest.raises(OSError, match="Input/output error"):
        # a pack per chunk: everything before the broken file has been shipped when it fails
        upload_chunks(Store(FileBackend(tmp_path)), [_source(*good), broken_source], pack_size=3000)
    # what was shipped is committed and indexed, and every indexed chunk reads back verified
    _everything_readable(tmp_path, good)
    store = Store(FileBackend(tmp_path))
    assert xxhash.xxh3_128_digest(bad[1]) not in store.chunk_index()
    for ref in store.chunk_index().values():
        store.read_chunk(ref)
    assert not [p for p in tmp_path.rglob(".tmp-*")], "nothing half-written is left"
