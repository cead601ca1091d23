"""Content-addressed cache of chunk bytes with an LRU size cap (DESIGN.md §5).

Chunks stored together (one ``put_many``: the chunks of one fetch) share one
file, ``<dir>/chunks/<hex[:2]>/<hex>`` named by a random 16-byte file id.  A
directory of small files read through a mount becomes a few files of some MiB
instead of one file per chunk: creating, renaming and later deleting a file
costs more CPU than fetching 100 KiB.  LMDB sub-databases index them:

- ``chunks``: digest -> ``>Q16sQ`` size, file id, offset in the file
- ``files``: file id -> ``>QQQ`` last use (ns) of any of its chunks, bytes and
  number of its chunks still indexed
- ``members``: file id + digest -> ``b""``: the chunks of a file
- ``lru``: ``>Q`` last use + file id -> ``b""``: oldest first in a cursor scan, so
  eviction never sorts the index in memory
- ``meta``: ``chunks.bytes``, ``chunks.count``: ``>Q`` totals of the chunks,
  updated in the same transaction, so they stay exact

Eviction removes whole files, least recently used first (chunks fetched
together are mostly used together); a file with a pinned chunk is skipped.
Chunks being read are pinned: :meth:`ChunkCache.read`, :meth:`~ChunkCache.get`
and :meth:`~ChunkCache.read_many` pin what they read before they look it up
and until its bytes are in memory, so an eviction in this process (a put
under pressure in another thread) never deletes a file a read is about to
open; a file emptied by eviction is deleted only after the commit, once no
pin covers it (``pins.py`` says why that is enough).  A read in another
process may still find a file gone: it counts a miss and the caller fetches
the chunk again, never wrong bytes.

Invariant: a file under its final name appears (rename in) only inside the
write transaction that adds its entries, and goes (unlink) only after the
transaction that removed them committed; the writer lock is shared by all
processes, so a put in the CLI and an eviction in the daemon cannot
interleave.  Files are not fsynced: a power cut may leave a
damaged file under its final name, and anyone who can write the folder can
change one, so every chunk read from a file is hashed and checked against its
digest, every time, before any of it is served (xxh3-128 runs at ~12 GB/s,
faster than the disk read and the FUSE copy around it).  A chunk that does not
match drops its whole file from the index, so the caller fetches them again:
the file is damaged, its neighbours were written with it.  (A chunk read in
slices is read and checked once, then held in memory until its last slice:
bytes already verified, not a file trusted.)  A crash may leave an orphan file
without entries: wasted space, never wrong data.

A full disk is :class:`DiskFull` (a :class:`LocalDiskError`); a full index
map grows (``env.py``).

Files bypass the page cache (``O_DIRECT``) where the file system allows it.
What a mount serves is already in the kernel's page cache of the FUSE file;
buffered chunk files would hold the same bytes in memory a second time, and
filling those extra pages cost more CPU than the fetch itself.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
import secrets
import shutil
import struct
import threading
import time
from collections import OrderedDict
from typing import Callable, Iterable, Iterator, TypeVar

import lmdb
import xxhash

from ..errors import IntegrityError, LocalDiskError
from .env import DENIED, disk_full, no_space, not_writable, open_env, release_env
from .pins import Pins

log = logging.getLogger(__name__)
T = TypeVar("T")

_ENTRY = struct.Struct(">Q16sQ")  # size, file id, offset
_FILE = struct.Struct(">QQQ")  # last use, bytes, chunks
_U64 = struct.Struct(">Q")
_BYTES, _COUNT = b"chunks.bytes", b"chunks.count"
_FLUSH_SECONDS = 1.0  # last-use updates wait at most this long ...
_FLUSH_HITS = 1024  # ... or this many hits before one write transaction
_LOW_WATER = 0.9  # evict down to 90% of the cap so every put does not evict
_EVICT_BATCH = 512  # chunks removed per write transaction: bounds the writer lock
#: verified chunks held in memory for the next slices of their reads (:meth:`ChunkCache.read`):
#: four of the largest chunks
_RECENT_BYTES = 32 << 20

_ALIGN = 4096  # O_DIRECT offsets, lengths and buffers: a multiple of the block size
_DIRECT_PIECE = 1 << 20
_direct_local = threading.local()


def _aligned_buffer() -> memoryview:
    """This thread's page-aligned buffer for O_DIRECT transfers (anonymous mmap: aligned)."""
    buf = getattr(_direct_local, "buf", None)
    if buf is None:
        buf = _direct_local.buf = memoryview(mmap.mmap(-1, _DIRECT_PIECE))
    return buf


def _write_direct(fd: int, parts: list[bytes | memoryview]) -> None:
    """Write the concatenation of ``parts`` to an O_DIRECT file: whole aligned
    pieces, the last one padded, then the file cut to size."""
    buf = _aligned_buffer()
    fill = total = 0

    def flush(padded: int) -> None:
        if os.write(fd, buf[:padded]) != padded:
            # a short write to a regular file: the disk is full
            raise OSError(errno.ENOSPC, "short write to a cache file")

    for part in parts:
        src = memoryview(part).cast("B")
        pos = 0
        while pos < len(src):
            k = min(len(buf) - fill, len(src) - pos)
            buf[fill:fill + k] = src[pos:pos + k]
            fill, pos, total = fill + k, pos + k, total + k
            if fill == len(buf):
                flush(fill)
                fill = 0
    if fill:
        padded = -(-fill // _ALIGN) * _ALIGN
        buf[fill:padded] = bytes(padded - fill)
        flush(padded)
        os.ftruncate(fd, total)


def _write_all(fd: int, parts: list[bytes | memoryview]) -> None:
    for part in parts:
        view = memoryview(part).cast("B")
        while view:
            view = view[os.write(fd, view):]


def _read_direct(fd: int, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset`` (fewer at end of file) of an O_DIRECT file."""
    buf = _aligned_buffer()
    out: list[bytes] = []
    pos, end = offset, offset + length
    while pos < end:
        start = pos - pos % _ALIGN
        want = min(len(buf), -(-(end - start) // _ALIGN) * _ALIGN)
        got = os.preadv(fd, [buf[:want]], start)
        piece = bytes(buf[pos - start:min(got, end - start)])
        if not piece:
            break
        out.append(piece)
        pos += len(piece)
    return out[0] if len(out) == 1 else b"".join(out)


def _intact(digest: bytes, data: bytes, size: int) -> bool:
    """Whether ``data`` is the whole chunk ``digest``."""
    return len(data) == size and xxhash.xxh3_128_digest(data) == digest


class ChunkCache:
    """Chunks on local disk, named by their xxh3-128 digest, least recently used evicted first.

    Safe to share between threads; several processes may open the same
    ``directory`` at once.  Pins (:meth:`pin`, :meth:`pinned`) protect chunks
    only from evictions run by *this* process.  ``hits``, ``misses`` and
    ``evictions`` and ``corrupt`` in :meth:`stats` count this instance; ``size``
    and ``count`` are the whole directory's.  Reads pin what they read for
    their duration (module docstring).
    """

    def __init__(self, directory: str, max_size: int, min_free: int = 0) -> None:
        self.directory = os.path.abspath(directory)
        self.max_size = max_size
        self.min_free = min_free
        self._chunk_dir = os.path.join(self.directory, "chunks")
        self._tmp_dir = os.path.join(self.directory, "tmp")
        try:
            os.makedirs(self._chunk_dir, exist_ok=True)
            os.makedirs(self._tmp_dir, exist_ok=True)
        except OSError as exc:
            if exc.errno not in DENIED:
                raise
            raise not_writable(self.directory, exc) from None
        self._cenv = open_env(self.directory)
        try:
            self._meta = self._cenv.db("meta")
            self._chunks = self._cenv.db("chunks")
            self._lru = self._cenv.db("lru")
            self._files = self._cenv.db("files")
            self._members_db = self._cenv.db("members")
        except BaseException:
            release_env(self._cenv)
            raise
        self._closed = False
        #: O_DIRECT files until the file system refuses them
        self._direct = hasattr(os, "O_DIRECT")
        # Guards everything below.  Lock order: an LMDB write txn, then this
        # lock; never begin a write txn while holding it.
        self._lock = threading.Lock()
        self._pins = Pins(self._delete_file)
        self._pending: dict[bytes, int] = {}
        self._last_flush = time.monotonic()
        self._stamp = 0
        self._hits = self._misses = self._evictions = self._corrupt = 0
        self._stamps_lost = False  # the last flush of last-use times failed (and said so)
        #: chunks being read in slices (:meth:`read`): verified bytes in memory, never a file trusted
        self._recent: OrderedDict[bytes, bytes] = OrderedDict()
        self._recent_bytes = 0

    # --- public API --------------------------------------------------------

    def get(self, digest: bytes) -> bytes | None:
        """The chunk's bytes, verified against ``digest``; ``None`` if absent or damaged."""
        self._check_digest(digest)
        self._pins.start_read(digest)  # pinned before the lookup (module docstring)
        try:
            entry = self._entry(digest)
            if entry is None:
                self._miss()
                return None
            data = self._get_verified(digest, entry)
        finally:
            self._pins.end_read(digest)
        if data is not None:
            self._use(digest)
        return data

    def read(self, digest: bytes, offset: int, length: int) -> bytes | None:
        """``length`` bytes at ``offset`` of the chunk; shorter at the end of the chunk;
        ``None`` if absent or damaged.

        The whole chunk is read from its file and verified, whoever wrote it: a
        slice cannot be checked on its own, and the file may have changed on
        disk since this process last read it.  A chunk read in slices (FUSE
        asks 128 KiB at a time) is kept in memory, verified, until a slice
        reaches its end, so it is read from disk and hashed once, not per slice.
        """
        if offset < 0 or length < 0:
            raise ValueError(f"bad chunk range offset={offset} length={length}")
        self._check_digest(digest)
        self._pins.start_read(digest)  # pinned before the lookup: no eviction here deletes its file now
        try:
            entry = self._entry(digest)
            if entry is None:
                self._keep_recent(digest, None)
                self._miss()
                return None
            with self._lock:
                data = self._recent.get(digest)
                if data is not None:
                    self._recent.move_to_end(digest)
            if data is None:
                data = self._get_verified(digest, entry)
                if data is None:
                    return None
        finally:
            self._pins.end_read(digest)
        ends = offset + length >= len(data)
        self._keep_recent(digest, None if ends else data)
        self._use(digest)
        return data if offset == 0 and ends else data[offset:offset + length]

    def put(self, digest: bytes, data: bytes) -> None:
        """Store ``data`` under ``digest``, then evict if over the cap or under ``min_free``.

        Raises :class:`IntegrityError` if ``data`` does not hash to ``digest`` and
        :class:`LocalDiskError` if the disk is full.
        """
        self._check_digest(digest)
        self.put_many([(digest, data)])

    def put_many(self, items: Iterable[tuple[bytes, bytes | memoryview]], verified: bool = False) -> None:
        """:meth:`put` for many chunks: one file, one index transaction (one commit, one sync).

        ``verified``: the caller has just checked every chunk against its digest
        (``Store.read_chunks`` does), so they are not hashed a second time.
        """
        new: dict[bytes, bytes | memoryview] = {}
        for digest, data in items:
            if not verified:
                actual = xxhash.xxh3_128_digest(data)
                if actual != digest:
                    raise IntegrityError(
                        f"chunk {digest.hex()}: data does not match its digest (it hashes to {actual.hex()})")
            new[digest] = data
        if not new:
            return
        with self._txn() as txn:
            known = [d for d in new if txn.get(d, db=self._chunks) is not None]
        for digest in known:
            del new[digest]
            self._use(digest, hit=False)
        if not new:
            return
        tmp: str | None = None
        path: str | None = None  # renamed in, its transaction not yet committed
        try:
            tmp = self._write_temp(list(new.values()))
            fid = secrets.token_bytes(16)

            def place(txn: lmdb.Transaction) -> tuple[int, int]:
                # may run twice (the map grew): the file is renamed in once
                nonlocal tmp, path
                offset, placed, placed_bytes = 0, 0, 0
                for digest, data in new.items():
                    size = len(data)
                    if txn.get(digest, db=self._chunks) is None:  # not stored by another process meanwhile
                        txn.put(digest, _ENTRY.pack(size, fid, offset), db=self._chunks)
                        txn.put(fid + digest, b"", db=self._members_db)
                        placed, placed_bytes = placed + 1, placed_bytes + size
                    offset += size
                if placed:
                    stamp = self._next_stamp()
                    txn.put(fid, _FILE.pack(stamp, placed_bytes, placed), db=self._files)
                    txn.put(_U64.pack(stamp) + fid, b"", db=self._lru)
                    self._add_totals(txn, placed_bytes, placed)
                    if tmp is not None:
                        path = self._file_path(fid)
                        os.makedirs(os.path.dirname(path), exist_ok=True)
                        os.replace(tmp, path)
                        tmp = None
                return self._u64(txn, _BYTES), placed

            total, placed = self._write(place)
            if placed:
                path = None  # committed: the index's file now
        except (OSError, lmdb.Error) as exc:
            if isinstance(exc, OSError) and exc.errno in DENIED:
                raise not_writable(self.directory, exc) from exc
            if not disk_full(exc, self.directory):
                raise
            raise no_space(self.directory) from exc
        finally:
            for leftover in (tmp, path):  # no entry points at either
                if leftover is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(leftover)
        self._evict_if_needed(total)

    def read_many(self, digests: Iterable[bytes], sink: Callable[[list[tuple[bytes, bytes]]], None],
                  span: int = _DIRECT_PIECE) -> int:
        """Read the chunks of ``digests`` that the cache holds, handing them to ``sink``
        a few at a time; return how many.

        Chunks fetched together share a file, so neighbours are read together, in
        reads of about ``span`` bytes: a folder read back in order costs a few
        large reads, and no more than a span is held here at once.  Chunks are
        verified as :meth:`read` does; a missing or damaged one is left out (the
        read that wants it then fetches it again): a damaged one drops its whole
        file, of which nothing more is handed.
        """
        wanted = list(digests)
        self._pins.hold(wanted)  # before the lookup, until the last span is read
        try:
            return self._read_many(wanted, sink, span)
        finally:
            self._pins.release(wanted)

    def _read_many(self, digests: list[bytes], sink: Callable[[list[tuple[bytes, bytes]]], None],
                   span: int) -> int:
        with self._txn() as txn:
            found = [(d, _ENTRY.unpack(raw)) for d in digests if (raw := txn.get(d, db=self._chunks)) is not None]
        by_file: dict[bytes, list[tuple[int, int, bytes]]] = {}
        for digest, (size, fid, base) in found:
            by_file.setdefault(fid, []).append((base, size, digest))
        count = 0
        for fid, items in by_file.items():
            items.sort()
            i = 0
            while i < len(items):
                j = i + 1
                while j < len(items) and items[j][0] + items[j][1] - items[i][0] <= span:
                    j += 1
                good = self._read_run(fid, items[i:j])
                if good is None:
                    break  # the file is gone (evicted meanwhile, or dropped as damaged)
                i = j
                for digest, _ in good:
                    self._use(digest)
                sink(good)
                count += len(good)
        return count

    def missing(self, digests: Iterable[bytes]) -> list[bytes]:
        """The digests the index does not have, in one read transaction."""
        with self._txn() as txn:
            return [d for d in digests if txn.get(d, db=self._chunks) is None]

    def contains(self, digest: bytes) -> bool:
        """Whether the index has the chunk (its file is checked only when read)."""
        with self._txn() as txn:
            return txn.get(digest, db=self._chunks) is not None

    def pin(self, digest: bytes) -> None:
        """Protect a chunk from this process's evictions until the matching :meth:`unpin`."""
        self._pins.hold((digest,))

    def unpin(self, digest: bytes) -> None:
        """Undo one :meth:`pin`; ``ValueError`` if it is not pinned."""
        self._pins.release((digest,))

    @contextlib.contextmanager
    def pinned(self, digests: Iterable[bytes]) -> Iterator[None]:
        """Pin ``digests`` for the duration of the ``with`` block."""
        held = list(digests)
        for d in held:
            self.pin(d)
        try:
            yield
        finally:
            for d in held:
                self.unpin(d)

    def evict(self, target_bytes: int | None = None) -> int:
        """Evict least recently used, unpinned chunks (with the others of their file)
        until the cache holds at most ``target_bytes`` (default: ``max_size``);
        return the bytes freed."""
        target = self.max_size if target_bytes is None else max(0, target_bytes)
        self._flush()  # LRU order must include this process's recent hits
        freed = 0
        resume: bytes | None = b""
        while resume is not None:
            start = resume
            size, gone, resume, emptied = self._write(lambda txn: self._evict_batch(txn, target, start))
            self._pins.delete_when_free(emptied)
            freed += size
            with self._lock:
                self._evictions += gone
        return freed

    def _evict_batch(self, txn: lmdb.Transaction, target: int, resume: bytes
                     ) -> tuple[int, int, bytes | None, list[tuple[bytes, list[bytes]]]]:
        """One transaction of :meth:`evict` from LRU row ``resume`` on: (bytes freed,
        chunks removed, the row to go on from or ``None``, the files emptied)."""
        total = self._u64(txn, _BYTES)
        if total <= target:
            return 0, 0, None, []
        pins = self._pins.now()
        cur = txn.cursor(db=self._lru)
        ok, done, freed, removed = cur.set_range(resume), 0, 0, 0
        emptied: list[tuple[bytes, list[bytes]]] = []
        while ok and total > target and done < _EVICT_BATCH:
            key = bytes(cur.key())
            fid = key[8:]
            members = self._members(txn, fid)
            if pins.intersection(members):
                ok = cur.next()
                continue
            size, gone, empty = self._remove(txn, fid, members)
            if empty:
                emptied.append((fid, members))
            txn.delete(key, db=self._lru)  # also a stray row of a file already gone
            total, freed, done, removed = total - size, freed + size, done + max(gone, 1), removed + gone
            ok = cur.set_range(key)  # this row is gone: go on from the next one
        return freed, removed, bytes(cur.key()) if ok and total > target else None, emptied

    def clear(self) -> None:
        """Remove every chunk, pinned or not, for all processes using this directory."""
        trash: list[str] = []

        def empty(txn: lmdb.Transaction) -> None:
            txn.drop(self._chunks, delete=False)
            txn.drop(self._lru, delete=False)
            txn.drop(self._files, delete=False)
            txn.drop(self._members_db, delete=False)
            txn.put(_BYTES, _U64.pack(0), db=self._meta)
            txn.put(_COUNT, _U64.pack(0), db=self._meta)
            # A rename is instant, so the writer lock is held briefly (a fresh
            # name each time: this runs again if the map grew meanwhile).
            trash.append(os.path.join(self._tmp_dir, f"trash-{secrets.token_hex(4)}"))
            os.rename(self._chunk_dir, trash[-1])
            os.makedirs(self._chunk_dir)

        try:
            self._write(empty)
        finally:
            self._pins.forget_doomed()  # in the trash now
            for path in trash:
                shutil.rmtree(path, ignore_errors=True)

    def stats(self) -> dict[str, int]:
        """size, count (whole directory), max_size, and this instance's hits, misses,
        evictions and corrupt (chunks read back that did not match their digest)."""
        with self._txn() as txn:
            size, count = self._u64(txn, _BYTES), self._u64(txn, _COUNT)
        with self._lock:
            return {"size": size, "count": count, "max_size": self.max_size, "hits": self._hits,
                    "misses": self._misses, "evictions": self._evictions, "corrupt": self._corrupt}

    def close(self) -> None:
        """Write pending last-use times and release the environment; idempotent."""
        if self._closed:
            return
        try:
            self._flush()
        finally:
            self._closed = True
            for fid in self._pins.forget_doomed():  # no read of this instance is left to hold them
                self._delete_file(fid)
            release_env(self._cenv)

    def __enter__(self) -> "ChunkCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- index -------------------------------------------------------------

    @contextlib.contextmanager
    def _txn(self, write: bool = False) -> Iterator[lmdb.Transaction]:
        if self._closed:
            raise ValueError("the chunk cache is closed")
        with self._cenv.begin(write=write) as txn:
            yield txn

    def _write(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        """``fn`` in a write transaction that grows a full map and runs it again (``CacheEnv.write``)."""
        if self._closed:
            raise ValueError("the chunk cache is closed")
        return self._cenv.write(fn)

    def _entry(self, digest: bytes) -> tuple[int, bytes, int] | None:
        with self._txn() as txn:
            raw = txn.get(digest, db=self._chunks)
        return _ENTRY.unpack(raw) if raw is not None else None

    def _members(self, txn: lmdb.Transaction, fid: bytes) -> list[bytes]:
        cur = txn.cursor(db=self._members_db)
        out: list[bytes] = []
        if cur.set_range(fid):
            for key in cur.iternext(values=False):
                if key[:16] != fid:
                    break
                out.append(bytes(key[16:]))
        return out

    def _remove(self, txn: lmdb.Transaction, fid: bytes, digests: list[bytes]) -> tuple[int, int, bool]:
        """Remove ``digests`` (chunks of file ``fid``) from the index, and the file's
        row once it holds no indexed chunk; return (bytes, chunks) removed and
        whether the file is empty now (the caller deletes it once this commits:
        ``Pins.delete_when_free``)."""
        size_sum = gone = 0
        for digest in digests:
            txn.delete(fid + digest, db=self._members_db)
            raw = txn.get(digest, db=self._chunks)
            if raw is not None and _ENTRY.unpack(raw)[1] == fid:  # else indexed in another file
                txn.delete(digest, db=self._chunks)
                size_sum, gone = size_sum + _ENTRY.unpack(raw)[0], gone + 1
        row = txn.get(fid, db=self._files)
        if row is not None:
            last_use, nbytes, count = _FILE.unpack(row)
            if count - gone > 0:
                txn.put(fid, _FILE.pack(last_use, nbytes - size_sum, count - gone), db=self._files)
            else:
                txn.delete(fid, db=self._files)
                txn.delete(_U64.pack(last_use) + fid, db=self._lru)
                row = None
        self._add_totals(txn, -size_sum, -gone)
        return size_sum, gone, row is None

    def _u64(self, txn: lmdb.Transaction, key: bytes) -> int:
        raw = txn.get(key, db=self._meta)
        return _U64.unpack(raw)[0] if raw else 0

    def _add_totals(self, txn: lmdb.Transaction, nbytes: int, count: int) -> int:
        total = max(0, self._u64(txn, _BYTES) + nbytes)
        txn.put(_BYTES, _U64.pack(total), db=self._meta)
        txn.put(_COUNT, _U64.pack(max(0, self._u64(txn, _COUNT) + count)), db=self._meta)
        return total

    def _keep_recent(self, digest: bytes, data: bytes | None) -> None:
        """Keep ``data`` for the next slices of chunk ``digest`` (``None``: done with it)."""
        with self._lock:
            old = self._recent.pop(digest, None)
            if old is not None:
                self._recent_bytes -= len(old)
            if data is None:
                return
            self._recent[digest] = data
            self._recent_bytes += len(data)
            while self._recent_bytes > _RECENT_BYTES:
                self._recent_bytes -= len(self._recent.popitem(last=False)[1])

    def _get_verified(self, digest: bytes, entry: tuple[int, bytes, int]) -> bytes | None:
        """The whole chunk read and checked; a damaged or missing one drops its file (``None``)."""
        size, fid, base = entry
        try:
            data = self._read_file(fid, base, size)
        except FileNotFoundError:
            self._drop_file(fid, digest, "the file is missing")
            self._miss()
            return None
        if not _intact(digest, data, size):
            self._damaged(fid, digest)
            self._miss()
            return None
        return data

    def _read_run(self, fid: bytes, run: list[tuple[int, int, bytes]]) -> list[tuple[bytes, bytes]] | None:
        """The chunks ``run`` ((offset, size, digest), in offset order) of file ``fid``,
        read at once and each verified; ``None`` if the file is gone or one is damaged."""
        start = run[0][0]
        try:
            blob = memoryview(self._read_file(fid, start, run[-1][0] + run[-1][1] - start))
        except FileNotFoundError:
            return None
        good: list[tuple[bytes, bytes]] = []
        for base, size, digest in run:
            data = bytes(blob[base - start:base - start + size])
            if not _intact(digest, data, size):
                self._damaged(fid, digest)
                return None
            good.append((digest, data))
        return good

    def _damaged(self, fid: bytes, digest: bytes) -> None:
        """Chunk ``digest`` read back from file ``fid`` does not match: count it, drop the file."""
        with self._lock:
            self._corrupt += 1
        self._drop_file(fid, digest, "a chunk does not match its digest")

    def _drop_file(self, fid: bytes, digest: bytes, why: str) -> None:
        """Forget every chunk of cache file ``fid`` and delete it, because of its chunk
        ``digest``; one warning per file (a file already dropped says nothing).

        All of them, not just the bad one: the chunks of a file were written
        together, so damage to one (a torn write, a disk error, someone editing
        the folder) makes the others suspect, and a damaged file left in place
        would hold disk space until its last good chunk was evicted.
        """
        def drop(txn: lmdb.Transaction) -> tuple[list[bytes], int, bool]:
            members = self._members(txn, fid)
            if not members:
                return [], 0, False  # evicted or dropped meanwhile
            _, gone, empty = self._remove(txn, fid, members)
            return members, gone, empty

        try:
            members, gone, empty = self._write(drop)
        except LocalDiskError as exc:  # the caller fetches the chunk again all the same
            log.warning("cache file %s is damaged (%s) and cannot be dropped: %s", self._file_path(fid), why, exc)
            return
        if not members:
            return
        if empty:
            self._pins.delete_when_free([(fid, members)])
        log.warning("cache file %s dropped with its %d chunk(s), to be fetched again: %s (chunk %s)",
                    self._file_path(fid), gone, why, digest.hex())

    def _evict_if_needed(self, total: int) -> None:
        low = int(self.max_size * _LOW_WATER)
        targets = [low] if total > self.max_size else []
        if self.min_free:
            st = os.statvfs(self.directory)
            short = self.min_free - st.f_bavail * st.f_frsize
            if short > 0:
                targets.append(max(0, total - short - (self.max_size - low)))
        if targets:
            self.evict(min(targets))

    # --- last use ----------------------------------------------------------

    def _next_stamp(self) -> int:
        # Strictly increasing within a process, so LRU order is exact here.
        with self._lock:
            self._stamp = max(time.time_ns(), self._stamp + 1)
            return self._stamp

    def _miss(self) -> None:
        with self._lock:
            self._misses += 1

    def _use(self, digest: bytes, hit: bool = True) -> None:
        """Count a hit and batch its last-use time in memory; flush when due."""
        stamp = self._next_stamp()
        with self._lock:
            self._hits += hit
            self._pending[digest] = stamp
            due = (len(self._pending) >= _FLUSH_HITS
                   or time.monotonic() - self._last_flush >= _FLUSH_SECONDS)
        if due:
            self._flush()

    def _flush(self) -> None:
        """Write batched last-use times: one write txn instead of one per hit.

        Best effort: they only order eviction, so a full index loses them (one
        warning until a flush works again) rather than failing the read that flushed.
        """
        with self._lock:
            batch, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
        if not batch:
            return
        try:
            self._write_stamps(batch)
        except LocalDiskError as exc:
            if not self._stamps_lost:
                log.warning("cache: last-use times not recorded: %s", exc)
            self._stamps_lost = True
        else:
            self._stamps_lost = False

    def _write_stamps(self, batch: dict[bytes, int]) -> None:
        self._write(lambda txn: self._put_stamps(txn, batch))

    def _put_stamps(self, txn: lmdb.Transaction, batch: dict[bytes, int]) -> None:
        newest: dict[bytes, int] = {}
        for digest, stamp in batch.items():
            entry = txn.get(digest, db=self._chunks)
            if entry is not None:  # else evicted meanwhile
                fid = _ENTRY.unpack(entry)[1]
                newest[fid] = max(stamp, newest.get(fid, 0))
        for fid, stamp in newest.items():
            row = txn.get(fid, db=self._files)
            if row is None:
                continue
            old, nbytes, count = _FILE.unpack(row)
            if stamp > old:
                txn.delete(_U64.pack(old) + fid, db=self._lru)
                txn.put(_U64.pack(stamp) + fid, b"", db=self._lru)
                txn.put(fid, _FILE.pack(stamp, nbytes, count), db=self._files)

    # --- files -------------------------------------------------------------

    @staticmethod
    def _check_digest(digest: bytes) -> None:
        if not isinstance(digest, bytes) or len(digest) != 16:
            raise ValueError(f"a chunk digest is 16 bytes, got {digest!r}")

    def _delete_file(self, fid: bytes) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._file_path(fid))

    def _file_path(self, fid: bytes) -> str:
        h = fid.hex()
        return os.path.join(self._chunk_dir, h[:2], h)

    def _read_file(self, fid: bytes, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` of a cache file; ``FileNotFoundError`` if it is gone."""
        path = self._file_path(fid)
        if self._direct:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._direct = False  # this file system cannot: buffered from now on
            else:
                try:
                    return _read_direct(fd, offset, length)
                finally:
                    os.close(fd)
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def _write_temp(self, parts: list[bytes | memoryview]) -> str:
        """Write the concatenation of ``parts`` to a new temp file; remove it on any failure.

        No fsync: it cost more than the fetch itself for small chunks (see the
        module docstring for why that is safe).
        """
        tmp = os.path.join(self._tmp_dir, f"{os.getpid()}.{secrets.token_hex(8)}.tmp")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            fd = -1
            if self._direct:
                try:
                    fd = os.open(tmp, flags | os.O_DIRECT, 0o644)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    self._direct = False
            if fd < 0:
                fd = os.open(tmp, flags, 0o644)
            try:
                (_write_direct if self._direct else _write_all)(fd, parts)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp
