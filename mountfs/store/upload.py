"""Uploading new chunks: skip what the store has, pack the rest in path order, ship packs in parallel."""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Container, Iterable, Iterator

from ..backends.base import Staged
from .layout import Pack, PackIndex
from .locks import shared_lock
from .packs import PackBuilder, PackedChunk, encode_chunk
from .store import Store

log = logging.getLogger(__name__)

#: many tiny files still make packs of bounded index size (and bounded memory per pack)
MAX_PACK_CHUNKS = 16384

#: a source is the list of its chunks (digest, size) and a function yielding (digest, bytes)
ChunkList = list[tuple[bytes, int]]
ChunkReader = Callable[[], Iterator[tuple[bytes, bytes | memoryview]]]
ChunkSource = tuple[ChunkList, ChunkReader]


@dataclass
class UploadStats:
    packs: int = 0
    bytes_sent: int = 0
    chunks_new: int = 0
    chunks_known: int = 0
    bytes_new: int = 0


#: packs written but not yet fsynced, per upload (a local store's disk catches up meanwhile)
UNSYNCED_PACKS = 8

#: sources up to this size are read ahead by worker threads (many small files: I/O latency bound)
READ_AHEAD_MAX = 4 << 20
READ_AHEAD_DEPTH = 256
#: and at most this many bytes of them (packs being built and sent hold the rest)
READ_AHEAD_BYTES = 8 << 20


def _read_ahead(sources: Iterable[ChunkSource], known: Container[bytes], read_workers: int) -> Iterator[ChunkSource]:
    """The same sources in the same order, small ones already read by a pool of threads.

    Reading a million small files one after another waits on the disk once per
    file; several reads in flight overlap those waits.  Sources whose chunks
    the store already has are not read at all.
    """
    with ThreadPoolExecutor(read_workers) as pool:
        queue: deque[tuple[ChunkList, Future[list[tuple[bytes, bytes | memoryview]]] | ChunkReader, int]] = deque()
        ahead = 0  # bytes read ahead and not yet handed on
        for chunk_list, read in sources:
            size = sum(n for _, n in chunk_list)
            if size <= READ_AHEAD_MAX and any(d not in known for d, _ in chunk_list):
                queue.append((chunk_list, pool.submit(_read_all, read), size))
                ahead += size
            else:
                queue.append((chunk_list, read, 0))
            while len(queue) > READ_AHEAD_DEPTH or ahead > READ_AHEAD_BYTES:
                chunk_list, got, size = queue.popleft()
                ahead -= size
                yield _resolved(chunk_list, got)
        while queue:
            chunk_list, got, _ = queue.popleft()
            yield _resolved(chunk_list, got)


def _read_all(read: ChunkReader) -> list[tuple[bytes, bytes | memoryview]]:
    return list(read())


def _resolved(chunk_list: ChunkList, read_or_future: Future[list[tuple[bytes, bytes | memoryview]]] | ChunkReader) -> ChunkSource:
    if isinstance(read_or_future, Future):
        data = read_or_future.result()
        return chunk_list, lambda: iter(data)
    return chunk_list, read_or_future


def upload_chunks(
    store: Store,
    sources: Iterable[ChunkSource],
    *,
    compression: bool = True,
    pack_size: int = 32 << 20,
    max_workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> UploadStats:
    """Send every chunk of ``sources`` that the store lacks; return what was sent.

    Each pack is written before its index object, so after a crash a chunk is
    either fully indexed (and skipped by the retry) or it is sent again.
    A shared lock on the store is held throughout: ``mountfs gc`` cannot delete
    a pack this upload counts on (restic's prune race).
    """
    with shared_lock(store.backend, "upload"):
        return _upload_chunks(store, sources, compression=compression, pack_size=pack_size,
                              max_workers=max_workers, progress=progress)


def _upload_chunks(
    store: Store,
    sources: Iterable[ChunkSource],
    *,
    compression: bool,
    pack_size: int,
    max_workers: int,
    progress: Callable[[int], None] | None,
) -> UploadStats:
    known = store.chunk_index()
    stats = UploadStats()
    seen: set[bytes] = set()
    lock = threading.Lock()
    # bound memory: at most max_workers packs being encoded/sent plus the one filling
    slots = threading.BoundedSemaphore(max_workers)
    # and packs written but not yet made durable (page cache, not our memory)
    unsynced = threading.BoundedSemaphore(UNSYNCED_PACKS)
    # a shipped pack's future yields its commit's future, which is then awaited in turn
    futures: list[Future[Future[None]] | Future[None]] = []
    commits = ThreadPoolExecutor(max_workers, thread_name_prefix="commit")

    def ship(raw: list[tuple[bytes, bytes | memoryview]]) -> Future[None]:
        try:
            builder = PackBuilder()
            for digest, data in raw:
                stored, codec = encode_chunk(data, compression)
                builder.add(digest, stored, len(data), codec)
            pack_id, parts, footer, entries = builder.finish()
            del raw[:]
            unsynced.acquire()
            try:
                staged = store.backend.stage_parts(Pack(pack_id).key, parts)
            except BaseException:
                unsynced.release()
                raise
        finally:
            slots.release()
        return commits.submit(commit, staged, pack_id, sum(len(p) for p in parts), footer, entries)

    def commit(staged: Staged, pack_id: str, size: int, footer: bytes, entries: list[PackedChunk]) -> None:
        # the pack is durable before its index says it exists: a crash in
        # between costs a re-send, never a chunk indexed but missing
        try:
            staged.commit()
        finally:
            unsynced.release()
        store.backend.put(PackIndex(pack_id).key, footer)
        store.add_to_index(pack_id, entries)
        with lock:
            # indexed now: `known` answers for them, `seen` need not hold them any longer
            seen.difference_update(e.digest for e in entries)
            stats.packs += 1
            stats.bytes_sent += size + len(footer)
        log.debug("pack %s: %d chunks, %d bytes", pack_id, len(entries), size)

    def settle(wait: bool) -> None:
        # surface a failure early instead of reading on; a shipped pack's result is its commit
        for f in [f for f in futures if wait or f.done()]:
            result = f.result()
            futures.remove(f)
            if isinstance(result, Future):
                futures.append(result)

    pool = ThreadPoolExecutor(max_workers, thread_name_prefix="pack")
    try:
        pending: list[tuple[bytes, bytes | memoryview]] = []
        pending_bytes = 0

        def flush() -> None:
            nonlocal pending, pending_bytes
            slots.acquire()
            futures.append(pool.submit(ship, pending))
            pending, pending_bytes = [], 0
            settle(wait=False)

        for chunk_list, read in _read_ahead(sources, known, read_workers=max(4, 2 * max_workers)):
            with lock:
                wanted = [d for d, _ in chunk_list if d not in known and d not in seen]
            if not wanted:
                stats.chunks_known += len(chunk_list)
                if progress:
                    progress(sum(s for _, s in chunk_list))
                continue
            wanted_set = set(wanted)
            for digest, data in read():
                if progress:
                    progress(len(data))
                with lock:
                    if digest not in wanted_set or digest in seen or digest in known:
                        stats.chunks_known += 1
                        continue
                    seen.add(digest)
                stats.chunks_new += 1
                stats.bytes_new += len(data)
                pending.append((digest, data))
                pending_bytes += len(data)
                if pending_bytes >= pack_size or len(pending) >= MAX_PACK_CHUNKS:
                    flush()
        if pending:
            flush()
        while futures:
            settle(wait=True)
    finally:
        # packs already shipped still get committed (a retry then skips them);
        # the pack pool drains first because its last packs hand work to `commits`
        pool.shutdown(wait=True)
        commits.shutdown(wait=True)
    return stats
