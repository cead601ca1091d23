"""Retries around any backend: backends stay dumb, this decides when to try again.

Only ``TransientStoreError`` is retried (timeouts, throttling, resets, 5xx),
with exponential backoff and full jitter, bounded both in attempts and in
total time, so a dead server turns into an error within seconds instead of a
hang.  This is the only retry layer (the cloud clients' own retries are off),
and ``BUDGET`` is the one place its numbers and the backends' per-attempt
timeouts are written.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator, TypeVar

from ..errors import AlreadyExists, ObjectNotFound, TransientStoreError
from .base import Backend, ObjectInfo, Staged

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class StoreBudget:
    """How long a store may take, for every backend and the mount's reads.

    An attempt ends after ``connect_timeout`` without a connection, or
    ``read_timeout`` without an answer; a retry starts only within
    ``retry_window`` of the first attempt.  So against a store that stopped
    answering (it still accepts connections) an operation ends within
    ``retry_window + read_timeout``, before ``read_deadline``.  A read through a
    mount gets its bytes or EIO within ``read_deadline`` of reaching the daemon
    whatever the client library does (its timeouts are configurable): the
    reader enforces that in the event loop (``mountfs.fs.reader``).
    """

    #: per attempt: seconds to connect, and the longest silence while waiting for an answer
    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    #: attempts of one operation, and the backoff between them (full jitter)
    attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 4.0
    #: no retry starts later than this after the operation's first attempt
    retry_window: float = 5.0
    #: a read through a mount: from the request reaching the daemon to its bytes or EIO
    read_deadline: float = 10.0
    #: the longest silence while a conditional create (claiming a version number) waits for its
    #: answer: servers queue racing creators of one key behind a lock (SeaweedFS ~1 s each, so 8
    #: racers wait up to ~8 s under load), and no mount read ever waits on one
    conditional_write_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.retry_window + self.read_timeout > self.read_deadline:
            raise ValueError(f"store budget: retries ({self.retry_window} s) plus one unanswered attempt "
                             f"({self.read_timeout} s) must end within the read deadline ({self.read_deadline} s)")


#: the budget every backend and mount uses
BUDGET = StoreBudget()


class _Budget:
    """Attempts and time left for one operation."""

    def __init__(self, owner: "RetryingBackend", op: str, key: str) -> None:
        self.owner, self.op, self.key = owner, op, key
        self.attempt = 1
        self.start = owner._clock()

    def progress(self) -> None:
        """The operation moved forward (a listing yielded): start counting afresh."""
        self.attempt = 1
        self.start = self.owner._clock()

    def wait_or_raise(self, exc: TransientStoreError) -> None:
        """Sleep before the next attempt, or re-raise ``exc`` when the budget is spent."""
        o = self.owner
        elapsed = o._clock() - self.start
        # full jitter: many clients hitting one throttled server spread out
        delay = o._rng.uniform(0, min(o.max_delay, o.base_delay * 2 ** (self.attempt - 1)))
        if self.attempt >= o.attempts or elapsed + delay > o.total_timeout:
            # exc already names the operation, key and store
            log.warning("giving up after %d attempts in %.1fs: %s", self.attempt, elapsed, exc)
            raise exc
        log.info("retry %d/%d in %.2fs: %s", self.attempt, o.attempts - 1, delay, exc)
        o._sleep(delay)
        self.attempt += 1


class RetryingBackend(Backend):
    """Wraps ``inner`` and retries its transient failures; everything else passes through.

    ``total_timeout``: no retry starts later than this after the first attempt
    (an attempt under way is bounded by the backend's own timeouts).
    """

    def __init__(
        self,
        inner: Backend,
        *,
        attempts: int = BUDGET.attempts,
        total_timeout: float = BUDGET.retry_window,
        base_delay: float = BUDGET.base_delay,
        max_delay: float = BUDGET.max_delay,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.url = inner.url
        self.attempts = max(1, attempts)
        self.total_timeout = total_timeout
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    def _call(self, op: str, key: str, fn: Callable[[], T]) -> T:
        budget = _Budget(self, op, key)
        while True:
            try:
                return fn()
            except TransientStoreError as exc:
                budget.wait_or_raise(exc)

    def get(self, key: str) -> bytes:
        return self._call("get", key, lambda: self.inner.get(key))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self._call("ranged get", key, lambda: self.inner.get_range(key, offset, length))

    def get_ranges(self, key: str, offset: int, spans: list[tuple[int, int]]) -> list[bytes | memoryview]:
        return self._call("ranged get", key, lambda: self.inner.get_ranges(key, offset, spans))

    def put(self, key: str, data: bytes | memoryview) -> None:
        self._call("put", key, lambda: self.inner.put(key, data))

    def put_parts(self, key: str, parts: list[bytes | memoryview]) -> None:
        self._call("put", key, lambda: self.inner.put_parts(key, parts))

    def stage_parts(self, key: str, parts: list[bytes | memoryview]) -> Staged:
        return self._call("put", key, lambda: self.inner.stage_parts(key, parts))

    def put_file(self, key: str, fh: BinaryIO, size: int) -> None:
        # a retry must send the file from where this call found it
        try:
            start = fh.tell() if fh.seekable() else None
        except OSError:
            start = None

        def attempt() -> None:
            if start is not None:
                fh.seek(start)
            self.inner.put_file(key, fh, size)

        if start is None:  # a pipe cannot be re-read: one attempt only
            return self.inner.put_file(key, fh, size)
        self._call("upload", key, attempt)

    def put_if_absent(self, key: str, data: bytes) -> None:
        # An attempt can succeed on the server while its answer is lost; the
        # retry then finds "our" object and would report a lost race.  So after
        # a transient failure, AlreadyExists with our own bytes means we won.
        failed_before = False

        def attempt() -> None:
            nonlocal failed_before
            try:
                self.inner.put_if_absent(key, data)
            except TransientStoreError:
                failed_before = True
                raise
            except AlreadyExists:
                if failed_before and self._holds(key, data):
                    log.info("conditional put of %r on %s had succeeded before its answer was lost", key, self.url)
                    return
                raise

        self._call("conditional put", key, attempt)

    def _holds(self, key: str, data: bytes) -> bool:
        try:
            return self._call("get", key, lambda: self.inner.get(key)) == bytes(data)
        except ObjectNotFound:
            return False

    def delete(self, key: str) -> None:
        self._call("delete", key, lambda: self.inner.delete(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # listings are in key order, so a retry resumes after the last key
        # handed out instead of repeating it
        budget = _Budget(self, "list", prefix or "/")
        last: str | None = None
        while True:
            try:
                for info in self.inner.list(prefix):
                    if last is not None and info.key <= last:
                        continue
                    yield info
                    last = info.key
                    budget.progress()
                return
            except TransientStoreError as exc:
                budget.wait_or_raise(exc)

    def stat(self, key: str) -> ObjectInfo:
        return self._call("stat", key, lambda: self.inner.stat(key))

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # backend-specific extras (e.g. S3Backend.bucket) stay reachable
        if name == "inner":  # not yet set (copy/pickle): avoid recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"RetryingBackend({self.inner!r})"
