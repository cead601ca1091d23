"""Reads: (file, offset) -> chunks, from the cache or fetched from the store.

- Missing chunks are fetched with coalesced ranged reads (``Store.read_chunks``)
  in worker threads, in two pools (below); a chunk already being fetched is
  waited for, never fetched twice.
- Read-ahead follows the access pattern, not the directory.  Opens (reads at
  offset 0) are remembered per version (``_Order``): an open a few files after
  a recent one continues a run in path order.  Only an open that continues a
  run (or the first of a mount) reads ahead across the folder: a miss at the
  start of a small file then also fetches the next files of the version (path
  order = pack order), so a directory read front to back costs a few large
  reads instead of one request per file; reads reaching the middle of such a
  batch start the next one, so readers never wait at a batch's end.  Opens in
  a shuffled order read nothing ahead (no fetch, no read from the cache files:
  nothing of the event loop is spent on neighbours nobody asks for next); a
  run of opens in order again resumes it within ORDER_STREAK opens.
- A shuffled open that misses fetches just its own chunks, at once (the
  demand pool).  When the version fits the cache (half of its size), the rest
  of the pack block it sits in is taken along in the background (the
  read-ahead pool, not kept in memory): a shuffled epoch asks for those files
  soon, so it reads the store once, in whole blocks, whatever the order.
- Reads that continue where a previous read of the file ended prefetch ahead in
  the background with a window that doubles while the reads stay sequential
  and starts over when they do not (mountpoint-s3's scheme), bounded per file
  and by the pool.  Streams are kept per (file, next offset), so several
  readers of one file each keep their own window.
- Two fetch pools: reads that wait for their bytes (``DEMAND_FETCHES`` groups
  at once) never queue behind read-ahead (``max_fetches`` groups).  A read that
  comes to wait for a chunk whose read-ahead is still queued moves that group
  to the demand pool (``promoted``), so it is never answered after read-ahead
  queued before it either.
- Read-ahead of chunks the cache already holds reads them from their cache
  files into memory in the background, neighbours together in reads of up to
  a MiB (a folder read again after the page cache let it go, a restarted daemon).
- What read-ahead fetched waits in memory (``HOT_BYTES``) for the read that
  follows, instead of being read back from the cache file.  Waiting reads get
  fetched bytes before they are written to the cache; the fetch keeps its slot
  until then, so memory stays bounded by ``max_fetches + DEMAND_FETCHES`` groups.
- Every fetched chunk was verified by the store (``Store.read_chunks``), so the
  cache does not hash it again on put.
- Eviction never breaks a read: the chunk cache pins every chunk a read (or
  read-ahead from the cache files) takes from a cache file until its bytes are
  in memory, and what is in memory is served from there even when its cache
  file was evicted since (it is put back, not fetched again).
- A cache that cannot store what was fetched (a full disk: ``DiskFull``, a
  read-only folder) does not fail the read: the fetched bytes are served from
  memory and the problem is logged once per reason and 10 minutes.  Failing
  reads whose bytes are in hand would turn a full cache disk into a mount that
  serves nothing; ENOSPC reaches the mount only where nothing can be served
  without writing (importing a version's file table).
- A read gets its bytes or an error (EIO) within ``READ_DEADLINE`` (10 s,
  ``backends.retry.BUDGET.read_deadline``) of reaching the daemon, enforced
  here in the event loop whatever the store client's own timeouts.  A reader
  stops waiting at its own deadline, but the fetch goes on in its worker thread
  and keeps its slot: a late answer still lands in the cache, a hung store
  holds at most ``max_fetches`` threads, and reads queued behind them fail by
  their own deadline.  A pack block a read gave up on, or whose fetch failed
  transiently, fails at once for ``FAILED_SECONDS`` or until a fetch of it
  succeeds: the kernel reads a page again after a failed read, and that second
  read must not wait a second deadline.  So a ``read()`` on a store that
  stopped answering returns EIO within about 10 s (the documented bound is
  15 s), and reads succeed again as soon as the store answers.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

import trio

from ..cache import ChunkCache
from ..cache.filetable import Node
from ..backends import Backend
from ..backends.retry import BUDGET
from ..errors import LocalDiskError, TransientStoreError, UsageError
from ..store import ChunkRef, FileEntry, Store
from ..store.external import check_unchanged, read_range
from .tree import Mounted, Tree

log = logging.getLogger(__name__)

#: a fetch group is the chunks starting in one aligned block of this size of a
#: pack (one ranged read, at most a chunk longer).  Read-ahead extends to block
#: ends, so reads of a pack are whole blocks: B cold went from 210 requests of
#: 4.9 MiB on average to 132 of 7.8, with less CPU in the daemon and the server
GROUP_BYTES = 8 << 20
#: how far a miss at the start of a file reaches into the next files
DIR_PREFETCH_BYTES = 8 << 20
DIR_PREFETCH_FILES = 160
#: files up to this size are read ahead across a folder; bigger ones only by their own reads
SMALL_FILE = DIR_PREFETCH_BYTES // 4
#: read-ahead batches across files grow up to this
DIR_AHEAD_MAX = 16 << 20
#: directory streams remembered (readers going through different folders at once)
DIR_STREAMS = 32
#: recently fetched chunks kept in memory until read (read-ahead lands here).
#: Sized to hold what read-ahead may have fetched and not yet served (a folder
#: batch started halfway through the one before: 1.5 x DIR_AHEAD_MAX): what
#: spills is read back from its cache file inside the event loop.  At 16 MiB,
#: 1,400-2,500 of A's 10,000 cold reads did that and A cold was 17% slower;
#: peak RSS is the same either way (those bytes are held until written anyway)
HOT_BYTES = 2 * DIR_AHEAD_MAX
#: sequential read-ahead window, in chunks
WINDOW_START = 2
WINDOW_MAX = 32
#: opens remembered per version to tell a directory read from a shuffle
ORDER_HISTORY = 16
#: an open continues a run when it is at most ORDER_GAP files after a recent open (files
#: in the page cache never reach the daemon), or ORDER_BACK before it (parallel readers'
#: opens arrive a little out of order)
ORDER_GAP = 3
ORDER_BACK = 2
#: folder read-ahead runs for an open that ends a run of this many in path order: a
#: shuffled open lands within ORDER_GAP of one of ORDER_HISTORY random opens now and
#: then (5% of the time in 2,000 files), three times in a row hardly ever
ORDER_STREAK = 3
#: fetch groups at once for reads that wait for their bytes (read-ahead has its own)
DEMAND_FETCHES = 8
#: pack blocks remembered as taken along (bounded memory)
TAKEN_BLOCKS = 4096
#: files looked at either side of a shuffled miss to take its block along
TAKE_ALONG_FILES = 1024
#: a read gets its bytes or an error within this long (seconds; the store's budget)
READ_DEADLINE = BUDGET.read_deadline
#: after a read gave up on a pack block, or its fetch failed transiently, reads of
#: it fail at once for this long (or until a fetch of it succeeds): the kernel
#: retries a failed page read at once, and the store is not asked again meanwhile
FAILED_SECONDS = 3.0
#: pack blocks remembered that way (bounded memory)
FAILED_BLOCKS = 1024
#: a cache that cannot store fetched chunks says so again after this long (seconds)
CACHE_PROBLEM_SECONDS = 600.0


class _Group:
    """One ranged read of a pack block: which pool it waits in, whether a read waits for it."""

    __slots__ = ("refs", "hot", "urgent", "admitted", "queued")

    def __init__(self, refs: list[ChunkRef], hot: bool, urgent: bool) -> None:
        self.refs = refs
        self.hot = hot
        self.urgent = urgent  # a read waits for it: the demand pool
        self.admitted = False
        self.queued: trio.CancelScope | None = None  # waiting for a read-ahead slot


class _Inflight:
    __slots__ = ("event", "data", "error", "group")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.data: bytes | memoryview | None = None
        self.error: BaseException | None = None
        self.group: _Group | None = None


class _Order:
    """The last opens of one version, each with the length of the path-order run it ends."""

    __slots__ = ("recent", "starts")

    def __init__(self) -> None:
        #: (local inode, run length, the run's first inode)
        self.recent: deque[tuple[int, int, int]] = deque(maxlen=ORDER_HISTORY)
        #: first files of runs that went on long enough: a folder read again from its start
        #: (a directory-order epoch) reads ahead at once
        self.starts: deque[int] = deque(maxlen=8)

    def open(self, ino: int) -> int:
        """Record an open of local inode ``ino``; return the run it ends (0: it follows none)."""
        if not self.recent or ino in self.starts:
            # nothing to go by yet, or a run starting over: read ahead, but remembered as a
            # run of one, so that a shuffle does not go on from it by chance
            self.recent.append((ino, 1, ino))
            return ORDER_STREAK
        # a little behind too: parallel readers of one folder (DataLoader workers, threads)
        # open neighbours in a slightly different order than they asked for them
        prev = max((e for e in self.recent if -ORDER_BACK <= ino - e[0] <= ORDER_GAP), key=lambda e: e[1],
                   default=None)
        run, start = 0, ino
        if prev is not None:
            # the open it follows is done: a reader that stopped leaves no entry behind
            # for later (shuffled) opens to follow by chance
            self.recent.remove(prev)
            run, start = prev[1] + 1, prev[2]
            if run >= ORDER_STREAK and start not in self.starts:
                self.starts.append(start)
        self.recent.append((ino, run, start))
        return run


@dataclass
class _Stream:
    """Sequential-read state of one file."""

    next_offset: int = 0
    window: int = WINDOW_START
    prefetched_to: int = 0  # chunk index up to which prefetch was started


@dataclass
class _DirStream:
    """Files of one version read in path order: prefetched up to ``end``."""

    vk: bytes
    start: int
    end: int
    trigger: int  # a read reaching this file starts the next batch
    step: int = DIR_PREFETCH_BYTES


@dataclass
class ReadStats:
    reads: int = 0
    hits: int = 0
    misses: int = 0
    bytes_read: int = 0
    bytes_fetched: int = 0
    fetches: int = 0
    prefetched_chunks: int = 0
    hot_hits: int = 0
    cache_loads: int = 0
    errors: int = 0
    #: reads that gave up waiting for the store at their deadline
    timeouts: int = 0
    inflight: int = field(default=0)
    #: fetch groups done per pool (demand: a read waited for it when it started)
    fetches_demand: int = 0
    fetches_ahead: int = 0
    #: read-ahead groups still queued when a read came to wait for them: moved to the demand pool
    promoted: int = 0
    #: opens that continued a path-order run (folder read-ahead may run) or did not (it does not)
    opens_in_order: int = 0
    opens_shuffled: int = 0
    #: folder read-ahead batches started
    dir_batches: int = 0
    #: pack blocks taken along by shuffled misses
    taken_blocks: int = 0
    #: sequential windows: times one doubled, the largest reached (chunks)
    window_grows: int = 0
    window_max: int = 0


class Reader:
    """Serves file reads of a ``Tree`` through the chunk cache."""

    def __init__(
        self,
        tree: Tree,
        cache: ChunkCache,
        nursery: trio.Nursery,
        max_fetches: int = 4,
        source: Callable[[str], tuple[Backend, str]] | None = None,
    ):
        self.tree = tree
        self.cache = cache
        self._source = source
        self._checked: set[tuple[bytes, int]] = set()
        self.stats = ReadStats()
        self._nursery = nursery
        #: read-ahead's fetch pool; reads waiting for bytes have their own (DEMAND_FETCHES)
        self._limiter = trio.CapacityLimiter(max_fetches)
        self._demand = trio.CapacityLimiter(max(DEMAND_FETCHES, max_fetches))
        self._orders: OrderedDict[bytes, _Order] = OrderedDict()
        self._taken: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._fits: dict[bytes, bool] = {}
        #: read-ahead from the cache files: two readers of the local disk are plenty
        self._load_limiter = trio.CapacityLimiter(2)
        self._inflight: dict[bytes, _Inflight] = {}
        self._starts: OrderedDict[tuple[bytes, int], list[int]] = OrderedDict()
        self._streams: OrderedDict[tuple[int, int], _Stream] = OrderedDict()
        self._dirs: deque[_DirStream] = deque(maxlen=DIR_STREAMS)
        self._hot: OrderedDict[bytes, bytes | memoryview] = OrderedDict()
        self._hot_bytes = 0
        self._loading: set[bytes] = set()  # chunks being read ahead from the cache files
        self._loaded: set[bytes] = set()  # chunks in memory that came from the cache files
        #: pack blocks (or external files' blocks) that failed: key -> (until, why)
        self._failed: OrderedDict[tuple[str, int], tuple[float, str]] = OrderedDict()
        #: the last reason fetched chunks could not be cached, and when it was said
        self._cache_problem = ""
        self._cache_problem_at = -math.inf

    # --- the read path -----------------------------------------------------------

    async def read(self, ino: int, offset: int, size: int) -> bytes | memoryview:
        deadline = trio.current_time() + READ_DEADLINE
        m, node = self.tree.file(ino)
        self.stats.reads += 1
        end = min(node.size, offset + size)
        if offset >= end:
            return b""
        if node.url:
            return await self._read_external(m, node, offset, end - offset, deadline)
        starts = self._chunk_starts(m, node)
        first = bisect.bisect_right(starts, offset) - 1
        last = bisect.bisect_left(starts, end) - 1
        in_order = offset == 0 and self._opened(m, node)
        # on arrival, not after the fetch: reads of one file answered out of order
        # (the kernel's read-ahead sends several at once) still follow each other
        self._after_read(ino, m, node, offset, end, last)
        pieces: list[bytes | memoryview | None] = []
        missing: list[ChunkRef] = []
        from_disk = False
        for j in range(first, last + 1):
            c = node.chunks[j]
            lo = max(offset, starts[j]) - starts[j]
            hi = min(end, starts[j] + c.size) - starts[j]
            data: bytes | memoryview | None = self._from_hot(c, lo, hi)
            if data is None:
                data = self.cache.read(c.digest, lo, hi - lo)
                from_disk = True
            if data is None or len(data) != hi - lo:
                missing.append(c)
                data = None
            pieces.append(data)
        if missing:
            self.stats.misses += len(missing)
            self._raise_if_failed(missing)
            # only the reader that starts a fetch reaches ahead: readers waiting on
            # a fetch already under way would each add one more small request
            starts_fetch = any(c.digest not in self._inflight for c in missing)
            extra = self._dir_prefetch(m, node, starts_fetch) if in_order else []
            extra = [c for c in extra if self._failure(_block(c)) is None]
            wanted = {c.digest for c in missing}
            if offset == 0 and not in_order and starts_fetch:
                self._take_along(m, node, missing, wanted)
            got = await self._fetch(m.store, missing + extra, wanted, deadline)
            for k, j in enumerate(range(first, last + 1)):
                if pieces[k] is None:
                    c = node.chunks[j]
                    lo = max(offset, starts[j]) - starts[j]
                    hi = min(end, starts[j] + c.size) - starts[j]
                    piece = self._from_hot(c, lo, hi)  # so that it is dropped from there once read
                    pieces[k] = piece if piece is not None else memoryview(got[c.digest])[lo:hi]
        else:
            self.stats.hits += 1
            if in_order:
                # a read that had to go to the cache file starts a folder's read-ahead too
                refs = self._dir_prefetch(m, node, from_disk, restart=from_disk)
                if refs:
                    self._nursery.start_soon(self._prefetch, m.store, refs)
        # pyfuse3 takes any buffer: a read within one chunk is sent without a copy
        out: bytes | memoryview = pieces[0] if len(pieces) == 1 else b"".join(pieces)  # type: ignore[arg-type,assignment]
        self.stats.bytes_read += len(out)
        return out

    async def _read_external(self, m: Mounted, node: Node, offset: int, length: int, deadline: float) -> bytes:
        """External files are read from their source; its ETag is checked once per mount."""
        source = self._source
        if source is None:
            raise UsageError(f"cannot read external file {node.url}: no source access configured")
        entry = FileEntry(node.url, node.size, url=node.url, etag=node.etag)
        key = (m.vk, node.ino)
        block = (node.url, offset // GROUP_BYTES)
        why = self._failure(block)
        if why is not None:
            raise TransientStoreError(why)

        def blocking() -> bytes:
            backend, name = source(node.url)
            if key not in self._checked:
                check_unchanged(backend, name, entry)
                self._checked.add(key)
            return read_range(backend, name, entry, offset, length)

        with trio.move_on_at(deadline):
            # the thread keeps its limiter slot until it returns, abandoned or not
            data = await trio.to_thread.run_sync(blocking, limiter=self._limiter, abandon_on_cancel=True)
            self.stats.bytes_fetched += len(data)
            self.stats.bytes_read += len(data)
            return data
        self.stats.timeouts += 1
        why = f"the source of external file {node.url} did not answer within {READ_DEADLINE:.0f} s"
        self._remember_failed([block], why)
        raise TransientStoreError(why)

    def _chunk_starts(self, m: Mounted, node: Node) -> list[int]:
        key = (m.vk, node.ino)
        starts = self._starts.get(key)
        if starts is None:
            starts, pos = [], 0
            for c in node.chunks:
                starts.append(pos)
                pos += c.size
            self._starts[key] = starts
            if len(self._starts) > 4096:
                self._starts.popitem(last=False)
        else:
            self._starts.move_to_end(key)
        return starts

    # --- recently fetched chunks ---------------------------------------------------

    def _keep_hot(self, digest: bytes, data: bytes | memoryview, loaded: bool = False) -> None:
        # what was just fetched is about to be read (read-ahead): serve it from
        # memory rather than reading it back from the cache file on disk
        self._drop_hot(digest)
        if isinstance(data, memoryview):  # a view would keep the whole fetched range alive
            data = bytes(data)
        self._hot[digest] = data
        self._hot_bytes += len(data)
        if loaded:
            self._loaded.add(digest)
        while self._hot_bytes > HOT_BYTES:
            self._drop_hot(next(iter(self._hot)))

    def _drop_hot(self, digest: bytes) -> None:
        data = self._hot.pop(digest, None)
        if data is not None:
            self._hot_bytes -= len(data)
            self._loaded.discard(digest)

    def _from_hot(self, c: ChunkRef, lo: int, hi: int) -> memoryview | None:
        data = self._hot.get(c.digest)
        if data is None:
            return None
        if c.digest in self._loaded and not self.cache.contains(c.digest):
            # read ahead from a cache file since evicted (a small cache under
            # pressure) or cleared: these bytes were verified when read, so they
            # are served, and put back so that what the mount served is in the
            # cache afterwards.  Fetching them again would make eviction cost a
            # request, and an EIO while the store is away.
            self._loaded.discard(c.digest)
            self._nursery.start_soon(self._put_back, c.digest, data)
        self.stats.hot_hits += 1
        if hi >= c.size:  # read to its end: done with it
            self._drop_hot(c.digest)
        return memoryview(data)[lo:hi]

    # --- prefetch ------------------------------------------------------------------

    def _dir_batch(self, m: Mounted, after: int, budget: int) -> tuple[list[ChunkRef], int, int]:
        """About ``budget`` bytes of the files numbered after ``after`` that are neither
        cached nor being fetched, up to the end of the pack block the budget ends in
        (so the next batch starts on a block: whole-block reads); also the last file
        looked at and the one halfway.  What of it the cache holds is read into
        memory in the background (``_load_soon``)."""
        candidates: list[ChunkRef] = []
        last = half = after
        total = 0
        tail: ChunkRef | None = None
        for nxt in self.tree.next_files(m, after, DIR_PREFETCH_FILES):
            if total >= budget and not (tail is not None and nxt.chunks and _same_block(nxt.chunks[0], tail)):
                break
            last = nxt.ino
            if total < budget // 2:
                half = nxt.ino
            if nxt.size > SMALL_FILE:
                # a big file gets its own read-ahead once it is read; fetching it
                # here (where a folder of small files ends) would only hold memory
                continue
            for c in nxt.chunks:
                candidates.append(c)
                total += c.length
                tail = c
        return self._split_cached(candidates), last, half

    def _split_cached(self, refs: Sequence[ChunkRef]) -> list[ChunkRef]:
        """Of read-ahead candidates not in memory or on their way already, start
        reading the cached ones into memory; return the rest (to fetch)."""
        refs = [c for c in refs if c.digest not in self._inflight and c.digest not in self._hot]
        absent = set(self.cache.missing(c.digest for c in refs))
        self._load_soon([c for c in refs if c.digest not in absent])
        return [c for c in refs if c.digest in absent]

    def _load_soon(self, refs: list[ChunkRef]) -> None:
        refs = [c for c in refs if c.digest not in self._loading]
        if refs:
            self._loading.update(c.digest for c in refs)
            self._nursery.start_soon(self._load, refs)

    async def _load(self, refs: list[ChunkRef]) -> None:
        """Read-ahead from the cache files: what a mount reads again after the page
        cache let it go comes from a few large reads of its cache files into
        memory, not one disk read per chunk inside the event loop."""
        digests = [c.digest for c in refs]

        def keep(got: list[tuple[bytes, bytes]]) -> None:  # in the event loop, a span at a time
            for digest, data in got:
                self._keep_hot(digest, data, loaded=True)
            self.stats.cache_loads += len(got)

        def blocking() -> int:
            return self.cache.read_many(digests, lambda got: trio.from_thread.run_sync(keep, got))

        try:
            await trio.to_thread.run_sync(blocking, limiter=self._load_limiter)
        except Exception as exc:  # the reads that want them go to the cache themselves
            log.debug("read-ahead from the cache failed: %s", exc)
        finally:
            self._loading.difference_update(digests)

    def _dir_prefetch(self, m: Mounted, node: Node, starts_fetch: bool, restart: bool = False) -> list[ChunkRef]:
        """Read-ahead across the files of a version read in path order (= pack order).

        A miss at the start of a small file that starts a fetch (or a read
        from the cache file) also reads ahead the next files: they sit right
        after it in the pack, and in the same cache file once fetched.  Once
        reads reach the middle of what was read ahead that way, the next batch
        is started in the background, so readers going through a directory keep
        finding their files in memory instead of stopping at each batch's end.
        ``restart``: the file came from its cache file although a stream covers
        it, so that stream is stale.  Returns the chunks to fetch together with
        the miss.
        """
        if node.size > SMALL_FILE:
            return []
        st = next((d for d in self._dirs if d.vk == m.vk and d.start <= node.ino <= d.end), None)
        if st is not None and restart:
            # a file this stream read ahead came from its cache file, not memory:
            # the folder is read again (its read-ahead long consumed); start over here
            self._dirs.remove(st)
            st = None
        if st is None:
            if not starts_fetch:
                return []
            refs, last, half = self._dir_batch(m, node.ino, DIR_PREFETCH_BYTES)
            self._dirs.append(_DirStream(m.vk, node.ino, last, half))
            self.stats.dir_batches += 1
            return refs
        self._dirs.remove(st)
        self._dirs.append(st)  # most recently used last
        if node.ino >= st.trigger and st.end > st.trigger:
            st.step = min(st.step * 2, DIR_AHEAD_MAX)
            refs, last, half = self._dir_batch(m, st.end, st.step)
            st.end, st.trigger = last, half
            self.stats.dir_batches += 1
            if refs:
                self.stats.prefetched_chunks += len(refs)
                self._nursery.start_soon(self._prefetch, m.store, refs)
        return []

    def _after_read(self, ino: int, m: Mounted, node: Node, offset: int, end: int, last: int) -> None:
        """Per-file sequential read-ahead: a window that doubles while reads follow each other."""
        chunks = node.chunks
        st = self._streams.pop((ino, offset), None)
        if st is None:
            if last + 1 >= len(chunks):
                return  # nothing after this read to fetch (a small file read whole)
            st = _Stream()
            if offset != 0:  # a jump: remembered, read ahead only once the next read follows it
                st.next_offset = end
                self._remember_stream(ino, st)
                return
        else:
            st.window = min(st.window * 2, WINDOW_MAX)
            self.stats.window_grows += 1
            self.stats.window_max = max(self.stats.window_max, st.window)
        st.next_offset = end
        if end < node.size:
            self._remember_stream(ino, st)
        if st.prefetched_to - (last + 1) > st.window // 2:
            return  # enough is on its way: top up in one larger request later, not a chunk per read
        lo = max(last + 1, st.prefetched_to)
        hi = min(len(chunks), last + 1 + st.window)
        while hi < len(chunks) and _same_block(chunks[hi], chunks[hi - 1]):
            hi += 1  # to the end of the pack block the window ends in: whole blocks, no remnant reads
        if lo >= hi:
            return
        ahead = self._split_cached(chunks[lo:hi])
        st.prefetched_to = hi
        if ahead:
            self.stats.prefetched_chunks += len(ahead)
            self._nursery.start_soon(self._prefetch, m.store, ahead)

    def _remember_stream(self, ino: int, st: _Stream) -> None:
        self._streams[(ino, st.next_offset)] = st
        if len(self._streams) > 1024:
            self._streams.popitem(last=False)

    def _opened(self, m: Mounted, node: Node) -> bool:
        """Record an open; whether it continues a path-order run (folder read-ahead may run)."""
        order = self._orders.get(m.vk)
        if order is None:
            order = self._orders[m.vk] = _Order()
            if len(self._orders) > 64:
                self._orders.popitem(last=False)
        if order.open(node.ino) >= ORDER_STREAK:
            self.stats.opens_in_order += 1
            return True
        self.stats.opens_shuffled += 1
        return False

    def _version_fits(self, m: Mounted) -> bool:
        """Whether the version takes at most half the cache: its blocks may be taken along whole."""
        fits = self._fits.get(m.vk)
        if fits is None:
            info = self.tree.tables.info(m.vk)
            fits = self._fits[m.vk] = info is not None and info.bytes <= self.cache.max_size // 2
        return fits

    def _take_along(self, m: Mounted, node: Node, missing: list[ChunkRef], wanted: set[bytes]) -> None:
        """A shuffled miss: fetch the rest of its pack block(s) in the background, once per block.

        The read itself waits only for its own chunks; the files around it in the
        block are what a shuffled epoch asks for soon, so over the epoch the store
        is read once in whole blocks.  Only for a small file of a version the
        cache can hold (else the blocks would push each other out before use)."""
        if node.size > SMALL_FILE or not self._version_fits(m):
            return
        blocks = {_block(c) for c in missing} - self._taken.keys()
        if not blocks:
            return
        # the files of a block, in path order around this one: about GROUP_BYTES / size either side
        reach = min(TAKE_ALONG_FILES, GROUP_BYTES // max(node.size, 4096) + 8)
        lo = max(0, node.ino - reach)
        nodes = self.tree.next_files(m, lo, 2 * reach)
        refs: list[ChunkRef] = []
        seen = {b: [False, False] for b in blocks}  # a file before / after the block was scanned
        for nxt in nodes:
            for c in nxt.chunks:
                b = _block(c)
                for t, edges in seen.items():
                    if b[0] == t[0]:
                        edges[0] = edges[0] or b[1] < t[1]
                        edges[1] = edges[1] or b[1] > t[1]
                if b in blocks and nxt.size <= SMALL_FILE and c.digest not in wanted and c.digest not in self._inflight:
                    refs.append(c)
        for b, (before, after) in seen.items():
            # a block is done once the scan covered it end to end; else the next miss in it
            # takes along what this one did not reach
            if (before or lo == 0) and (after or len(nodes) < 2 * reach):
                self._taken[b] = None
        while len(self._taken) > TAKEN_BLOCKS:
            self._taken.popitem(last=False)
        if refs:
            absent = set(self.cache.missing(c.digest for c in refs))
            refs = [c for c in refs if c.digest in absent]
        if refs:
            self.stats.taken_blocks += len(blocks)
            self.stats.prefetched_chunks += len(refs)
            self._nursery.start_soon(self._prefetch, m.store, refs, False)

    async def fetch(self, store: Store, refs: list[ChunkRef]) -> None:
        """Fetch ``refs`` into the cache (for warmup); raises if any fails.

        Nothing is kept in memory: not the bytes (a warmup batch is tens of
        MiB), not in the read-ahead memory (nobody is about to read them).
        """
        waits = self._start(store, refs, hot=False, wanted=set())  # the read-ahead pool: reads go first
        while waits:
            f = waits.pop(0)[1]
            await f.event.wait()
            if f.error is not None:
                raise f.error

    async def _prefetch(self, store: Store, refs: list[ChunkRef], hot: bool = True) -> None:
        refs = [c for c in refs if self._failure(_block(c)) is None]
        try:
            await self._fetch(store, refs, wanted=set(), hot=hot)
        except Exception as exc:  # a later read will report it
            log.debug("prefetch failed: %s", exc)

    # --- fetching --------------------------------------------------------------------

    def _start(self, store: Store, refs: list[ChunkRef], hot: bool,
               wanted: set[bytes]) -> list[tuple[bytes, _Inflight]]:
        """Start fetching what of ``refs`` is not on its way yet; the in-flight entry of each.

        A group with a ``wanted`` chunk goes to the demand pool; a read-ahead group
        still queued that has one is moved there."""
        mine: list[ChunkRef] = []
        waits: dict[bytes, _Inflight] = {}
        for c in refs:
            f = self._inflight.get(c.digest)
            if f is None:
                if c.digest in waits:
                    continue
                f = self._inflight[c.digest] = _Inflight()
                mine.append(c)
            elif c.digest in wanted and f.group is not None:
                self._promote(f.group)
            waits[c.digest] = f
        for refs_ in _groups(mine):
            group = _Group(refs_, hot, urgent=any(c.digest in wanted for c in refs_))
            for c in refs_:
                self._inflight[c.digest].group = group
            self._nursery.start_soon(self._fetch_group, store, group)
        return list(waits.items())

    def _promote(self, group: _Group) -> None:
        if group.urgent or group.admitted:
            return  # in the demand pool already, or fetching
        group.urgent = True
        self.stats.promoted += 1
        if group.queued is not None:
            group.queued.cancel()

    async def _admit(self, group: _Group) -> trio.CapacityLimiter:
        """Wait for a slot in the group's pool; a read-ahead group promoted meanwhile moves on."""
        if not group.urgent:
            with trio.CancelScope() as group.queued:
                await self._limiter.acquire_on_behalf_of(group)
                group.admitted = True  # a promotion in the same moment finds it fetching: fine
                return self._limiter
        await self._demand.acquire_on_behalf_of(group)
        group.admitted = True
        return self._demand

    async def _fetch(self, store: Store, refs: list[ChunkRef], wanted: set[bytes],
                     deadline: float = math.inf, hot: bool = True) -> dict[bytes, bytes]:
        """Fetch ``refs`` (sharing fetches already running); return the ``wanted`` chunks' bytes,
        or raise ``TransientStoreError`` at ``deadline`` (the fetches go on)."""
        waits = dict(self._start(store, refs, hot=hot, wanted=wanted))
        with trio.move_on_at(deadline):
            for digest in wanted:
                f = waits[digest]
                await f.event.wait()
                if f.error is not None:
                    raise f.error
        late = [c for c in refs if c.digest in wanted and not waits[c.digest].event.is_set()]
        if late:
            packs = ", ".join(sorted({c.pack for c in late}))
            why = f"store {store.url} did not answer within {READ_DEADLINE:.0f} s (pack {packs})"
            self.stats.timeouts += 1
            self._remember_failed([_block(c) for c in late], why)
            raise TransientStoreError(why)
        out: dict[bytes, bytes] = {}
        for digest in wanted:
            f = waits[digest]
            if f.error is not None:
                raise f.error
            out[digest] = f.data  # type: ignore[assignment]
        return out

    # --- blocks that failed --------------------------------------------------------

    def _remember_failed(self, blocks: list[tuple[str, int]], why: str) -> None:
        until = trio.current_time() + FAILED_SECONDS
        for b in blocks:
            self._failed[b] = (until, why)
            self._failed.move_to_end(b)
        while len(self._failed) > FAILED_BLOCKS:
            self._failed.popitem(last=False)

    def _failure(self, block: tuple[str, int]) -> str | None:
        """Why ``block`` failed moments ago, or None when it may be fetched."""
        hit = self._failed.get(block)
        if hit is None:
            return None
        if trio.current_time() >= hit[0]:
            del self._failed[block]
            return None
        return hit[1]

    def _raise_if_failed(self, refs: list[ChunkRef]) -> None:
        if self._failed:
            for c in refs:
                why = self._failure(_block(c))
                if why is not None:
                    raise TransientStoreError(f"{why}; not asked again for {FAILED_SECONDS:.0f} s")

    async def _fetch_group(self, store: Store, g: _Group) -> None:
        group = g.refs
        self.stats.inflight += 1
        limiter: trio.CapacityLimiter | None = None
        try:
            # a fetch holds its slot until its bytes are in the cache: at most
            # the pools' groups are in memory, however slow the disk.  Readers'
            # deadlines never cancel it (a late answer still lands in the cache),
            # so a hung store holds at most that many threads; only shutdown
            # abandons the thread
            limiter = await self._admit(g)
            got = await trio.to_thread.run_sync(self._get_blocking, store, group, abandon_on_cancel=True)
            self._failed.pop(_block(group[0]), None)
            if g.hot:
                # readers get the bytes before the cache write: waiting for the
                # disk too made readers of a directory stall at each batch's end
                for c in group:
                    self._keep_hot(c.digest, got[c.digest])
            if g.hot or g.urgent:  # a warmup returns once its bytes are in the cache
                for c in group:
                    f = self._inflight[c.digest]  # stays until written: not fetched again meanwhile
                    f.data = got[c.digest]
                    f.event.set()
            await trio.to_thread.run_sync(self._put_blocking, got)
            self.stats.fetches += 1
            if limiter is self._demand:
                self.stats.fetches_demand += 1
            else:
                self.stats.fetches_ahead += 1
            for c in group:
                f = self._inflight.pop(c.digest)
                f.data = got[c.digest]
                f.event.set()
        except BaseException as exc:
            if isinstance(exc, Exception):  # not a cancellation (shutdown): a real failure
                self.stats.errors += 1
                log.error("fetch failed store=%s packs=%s error=%s", store.url, sorted({c.pack for c in group}), exc)
                if isinstance(exc, TransientStoreError):  # the store did not answer: not asked again at once
                    self._remember_failed([_block(group[0])], str(exc))
            for c in group:
                waiting = self._inflight.pop(c.digest, None)
                if waiting is not None and not waiting.event.is_set():
                    waiting.error = exc
                    waiting.event.set()
            if not isinstance(exc, Exception):
                raise
        finally:
            if limiter is not None:
                limiter.release_on_behalf_of(g)
            self.stats.inflight -= 1

    def _get_blocking(self, store: Store, group: list[ChunkRef]) -> dict[bytes, bytes | memoryview]:
        got = store.read_chunks(group)
        self.stats.bytes_fetched += sum(len(d) for d in got.values())
        return got

    async def _put_back(self, digest: bytes, data: bytes | memoryview) -> None:
        """Store again a chunk served from memory whose cache file went meanwhile."""
        try:
            one: dict[bytes, bytes | memoryview] = {digest: bytes(data)}
            await trio.to_thread.run_sync(self._put_blocking, one, limiter=self._load_limiter)
        except Exception as exc:  # only the cache's own state: the read was served
            log.debug("putting back chunk %s failed: %s", digest.hex(), exc)

    def _put_blocking(self, got: dict[bytes, bytes | memoryview]) -> None:
        try:
            self.cache.put_many(got.items(), verified=True)  # read_chunks checked each one
        except LocalDiskError as exc:
            # a full disk (DiskFull), a read-only folder: the readers have their bytes
            # already (module docstring), so it never fails a read, and it is said
            # once per reason and CACHE_PROBLEM_SECONDS, not per fetch: on a disk
            # at the edge small puts still land between failures
            now = time.monotonic()  # a worker thread: not trio's clock
            if str(exc) != self._cache_problem or now - self._cache_problem_at >= CACHE_PROBLEM_SECONDS:
                self._cache_problem, self._cache_problem_at = str(exc), now
                log.warning("cannot cache fetched chunks, serving them without caching: %s", exc)


def _block(c: ChunkRef) -> tuple[str, int]:
    """The GROUP_BYTES-aligned block of its pack that a chunk starts in (what one fetch reads)."""
    return c.pack, c.offset // GROUP_BYTES


def _same_block(a: ChunkRef, b: ChunkRef) -> bool:
    """Whether two chunks start in the same GROUP_BYTES-aligned block of the same pack."""
    return _block(a) == _block(b)


def _groups(refs: list[ChunkRef]) -> list[list[ChunkRef]]:
    """One group per aligned GROUP_BYTES block of a pack (the chunks starting in it, in offset order)."""
    refs = sorted(refs, key=lambda c: (c.pack, c.offset))
    out: list[list[ChunkRef]] = []
    cur: list[ChunkRef] = []
    for c in refs:
        if cur and not _same_block(c, cur[0]):
            out.append(cur)
            cur = []
        cur.append(c)
    if cur:
        out.append(cur)
    return out
