"""Chunks that reads in this process are using, and the cache files that wait for them.

A read pins a chunk before it looks the chunk up in the index and unpins it
once its bytes are in memory; eviction (``chunks.py``) skips files with a
pinned chunk, and deletes the files it emptied only through
:meth:`Pins.delete_when_free`, after its transaction committed.  A file whose
chunk was pinned in the moment between the eviction's decision and its commit
(the read found the entry in the snapshot before the commit) waits here,
doomed, until the last such pin goes.

Ordering: a pin is taken before the lookup; the doomed set is filled, then
looked at with the pins of that moment (:meth:`_reap`); a read unpins, then
looks whether anything is doomed.  So either the eviction's look sees the pin
gone and deletes the file, or the read's look comes after the file was doomed
and deletes it: a file is never deleted under a read, and never left behind.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable


class Pins:
    """Pins of one :class:`~mountfs.cache.chunks.ChunkCache`; safe to share between threads.

    ``delete`` removes a cache file by its id (a missing one is fine)."""

    def __init__(self, delete: Callable[[bytes], None]) -> None:
        self._delete = delete
        self._lock = threading.Lock()  # guards _counts and _doomed
        #: pins of :meth:`hold` (read-ahead of many chunks, ``ChunkCache.pin``)
        self._counts: dict[bytes, int] = {}
        #: pins of single reads, one item each.  Appending and removing are each
        #: one atomic step under the GIL: the hot path takes no lock, and a copy
        #: of the list is a consistent snapshot
        self._reading: list[bytes] = []
        #: files evicted while one of their chunks was pinned: file id -> its chunks
        self._doomed: dict[bytes, list[bytes]] = {}

    def start_read(self, digest: bytes) -> None:
        """Pin one chunk for one read (the hot path: no lock)."""
        self._reading.append(digest)

    def end_read(self, digest: bytes) -> None:
        """Undo one :meth:`start_read`."""
        self._reading.remove(digest)
        if self._doomed:  # after the unpin (module docstring)
            self._reap()

    def hold(self, digests: Iterable[bytes]) -> None:
        """Pin ``digests`` (one count each) until :meth:`release`."""
        with self._lock:
            counts = self._counts
            for d in digests:
                counts[d] = counts.get(d, 0) + 1

    def release(self, digests: Iterable[bytes]) -> None:
        """Undo one :meth:`hold`; raises ``ValueError`` for a chunk not held."""
        with self._lock:
            counts = self._counts
            for d in digests:
                n = counts.pop(d, 0)
                if n == 0:
                    raise ValueError(f"chunk {d.hex()} is not pinned")
                if n > 1:
                    counts[d] = n - 1
        if self._doomed:
            self._reap()

    def now(self) -> set[bytes]:
        """Every chunk pinned at this moment."""
        with self._lock:
            return self._now()

    def _now(self) -> set[bytes]:
        pins = set(self._counts)
        pins.update(self._reading.copy())
        return pins

    def delete_when_free(self, files: list[tuple[bytes, list[bytes]]]) -> None:
        """Delete ``files`` ((file id, its chunks)), whose index entries a committed
        transaction removed, now or, for one with a pinned chunk, when that pin goes."""
        if files:
            with self._lock:
                for fid, members in files:
                    self._doomed[fid] = members
            self._reap()

    def _reap(self) -> None:
        with self._lock:
            pins = self._now()
            ready = [fid for fid, members in self._doomed.items() if pins.isdisjoint(members)]
            for fid in ready:
                del self._doomed[fid]
        for fid in ready:
            self._delete(fid)

    def forget_doomed(self) -> list[bytes]:
        """Take the doomed files' ids, to delete them now (the cache closes, or was cleared)."""
        with self._lock:
            doomed, self._doomed = list(self._doomed), {}
        return doomed

    def idle(self) -> bool:
        """Nothing pinned and nothing waiting (for tests and checks)."""
        with self._lock:
            return not self._counts and not self._reading and not self._doomed
