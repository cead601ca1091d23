"""Lock objects in a store: uploads and finalize share the store, ``mountfs gc`` needs it alone.

Modelled on restic's locks (``internal/restic/lock.go``): a lock is a small
JSON object ``locks/<lock-id>`` (``{"kind": "shared" | "exclusive", "purpose",
"host", "pid", "created", "refreshed"}``, times in seconds since the epoch),
created with a conditional write.  A taker writes its own lock first and then
looks at the others, so of two processes racing for incompatible locks at
least one sees the other and backs off (both may: then both are refused, never
both admitted).  A held lock is rewritten every ``REFRESH_SECONDS`` by a
background thread; one not refreshed for ``STALE_SECONDS`` belongs to a process
that died (or a clock far off) and is ignored by everyone, and removed by the
exclusive taker.  A lock is deleted when its block ends, by an exception too.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Iterator

from ..backends import Backend
from ..errors import AlreadyExists, ObjectNotFound, StoreLocked, UsageError
from .layout import LOCKS, Lock, parse_lock_key

log = logging.getLogger(__name__)

SHARED = "shared"
EXCLUSIVE = "exclusive"
#: a lock not refreshed for this long is stale: its holder is gone
STALE_SECONDS = 30 * 60.0
#: how often a held lock is refreshed (well inside the stale age, so a slow store still keeps it fresh)
REFRESH_SECONDS = 5 * 60.0


@dataclass(frozen=True)
class LockInfo:
    """One lock object as read from the store."""

    lock_id: str
    kind: str
    purpose: str
    host: str
    pid: int
    created: float
    refreshed: float

    def age(self, now: float) -> float:
        """Seconds since the lock was last refreshed."""
        return max(0.0, now - self.refreshed)

    def describe(self, now: float) -> str:
        return (f"{self.kind} lock of {self.purpose or 'unknown'} by pid {self.pid} on {self.host or '?'}, "
                f"refreshed {self.age(now):.0f} s ago ({Lock(self.lock_id).key})")


def read_locks(backend: Backend) -> list[LockInfo]:
    """Every readable lock of the store; an unreadable one counts as fresh and exclusive (unknown holder)."""
    out = []
    for o in backend.list(LOCKS):
        try:
            handle = parse_lock_key(o.key)
        except UsageError:
            handle = None
        if handle is None:
            continue
        try:
            data = json.loads(backend.get(o.key))
            out.append(LockInfo(handle.lock_id, str(data["kind"]), str(data.get("purpose", "")), str(data.get("host", "")),
                                int(data.get("pid", 0)), float(data["created"]), float(data["refreshed"])))
        except ObjectNotFound:
            continue  # released between the listing and the read
        except (ValueError, KeyError, TypeError):
            # damaged or half-known: treat it as held, dated by the object itself, so it still goes stale
            out.append(LockInfo(handle.lock_id, EXCLUSIVE, "unreadable lock", "", 0, o.mtime, o.mtime))
    return out


class StoreLock:
    """A lock this process holds on one store; use ``shared_lock`` / ``exclusive_lock``."""

    def __init__(self, backend: Backend, kind: str, purpose: str, stale_seconds: float = STALE_SECONDS,
                 refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.backend = backend
        self.kind = kind
        self.purpose = purpose
        self.stale_seconds = stale_seconds
        self.refresh_seconds = refresh_seconds
        self.handle = Lock(secrets.token_hex(16))
        self.created = time.time()
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def _body(self, refreshed: float) -> bytes:
        return json.dumps({"kind": self.kind, "purpose": self.purpose, "host": socket.gethostname(),
                           "pid": os.getpid(), "created": self.created, "refreshed": refreshed}).encode()

    def _blocking(self, now: float) -> list[LockInfo]:
        """The other fresh locks this one cannot be held beside."""
        return [lk for lk in read_locks(self.backend)
                if lk.lock_id != self.handle.lock_id and lk.age(now) < self.stale_seconds
                and (self.kind == EXCLUSIVE or lk.kind != SHARED)]

    def acquire(self) -> None:
        """Write the lock, then check the others; ``StoreLocked`` naming a holder if one is in the way."""
        now = time.time()
        blocking = self._blocking(now)
        if not blocking:
            try:
                self.backend.put_if_absent(self.handle.key, self._body(now))
            except AlreadyExists:  # 128 random bits: only a crafted object gets here
                raise StoreLocked(f"lock {self.handle.key} already exists in {self.backend.url}; try again") from None
            # written first, checked second: a racing taker of an incompatible lock sees ours or we see its
            blocking = self._blocking(time.time())
            if blocking:
                self._delete()
        if blocking:
            holder = min(blocking, key=lambda lk: lk.age(now))
            what = "gc needs the store alone" if holder.kind == SHARED else "gc is removing unused packs"
            raise StoreLocked(
                f"store {self.backend.url} is locked ({what}): {holder.describe(now)}; wait for it to end, "
                f"or delete that object if its process is gone (locks go stale after {self.stale_seconds / 60:.0f} min)"
            )
        self._refresher = threading.Thread(target=self._refresh_loop, name="store-lock", daemon=True)
        self._refresher.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                self.backend.put(self.handle.key, self._body(time.time()))
            except Exception as exc:  # a refresh that fails is retried next round; the lock goes stale only after many
                log.warning("could not refresh lock %s in %s: %s", self.handle.key, self.backend.url, exc)

    def _delete(self) -> None:
        try:
            self.backend.delete(self.handle.key)
        except Exception as exc:  # it goes stale on its own; never hide the error that ended the block
            log.warning("could not remove lock %s from %s: %s (it goes stale on its own)", self.handle.key, self.backend.url, exc)

    def release(self) -> None:
        """Stop refreshing and delete the lock object."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join()
        self._delete()


@contextmanager
def _held(lock: StoreLock) -> Iterator[StoreLock]:
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def shared_lock(backend: Backend, purpose: str, stale_seconds: float = STALE_SECONDS) -> AbstractContextManager[StoreLock]:
    """Hold a shared lock for the block (uploads, finalize): refused while a fresh exclusive lock exists."""
    return _held(StoreLock(backend, SHARED, purpose, stale_seconds))


def exclusive_lock(backend: Backend, purpose: str, stale_seconds: float = STALE_SECONDS) -> AbstractContextManager[StoreLock]:
    """Hold the store alone for the block (gc): refused while any other fresh lock exists; stale ones are removed."""
    return _held(StoreLock(backend, EXCLUSIVE, purpose, stale_seconds))


def remove_stale(backend: Backend, stale_seconds: float = STALE_SECONDS) -> int:
    """Delete the locks of processes gone (not refreshed for ``stale_seconds``); how many were removed."""
    now = time.time()
    removed = 0
    for lk in read_locks(backend):
        if lk.age(now) >= stale_seconds:
            log.info("removing stale lock: %s", lk.describe(now))
            backend.delete(Lock(lk.lock_id).key)
            removed += 1
    return removed
