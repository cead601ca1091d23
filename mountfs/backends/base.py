"""The one interface every storage backend implements.

Backends are small and dumb: keys are ``/``-separated strings relative to the
store root, values are bytes.  Retries, concurrency limits and timing are
wrappers around a backend (``mountfs.backends.retry``), never inside one.
Each backend maps its service's errors onto ``ObjectNotFound``,
``AlreadyExists``, ``PermissionDenied`` and ``TransientStoreError``.
"""

from __future__ import annotations

import abc
import bisect
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Iterable, Iterator, Sequence

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

from ..errors import StoreError


@dataclass(frozen=True)
class ObjectInfo:
    """What ``stat`` and ``list`` report about one object."""

    key: str
    size: int
    #: ETag, generation or mtime-based tag: changes whenever the content does
    etag: str = ""
    mtime: float = 0.0


class Backend(abc.ABC):
    """A flat key -> bytes store rooted at ``url``."""

    #: the URL this backend was opened with, without credentials
    url: str

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """Return the whole object; ``ObjectNotFound`` if it is missing."""

    @abc.abstractmethod
    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Return ``length`` bytes from ``offset`` (fewer only at end of object)."""

    def get_ranges(self, key: str, offset: int, spans: list[tuple[int, int]]) -> list[bytes | memoryview]:
        """The bytes of each ``(start, length)`` of ``spans`` (sorted, not overlapping,
        relative to ``offset``), read with one ranged request; the gaps are skipped.

        Backends that can read a response piece by piece override this, so a
        fetch of many chunks never holds them in one more buffer.
        """
        if not spans:
            return []
        blob = memoryview(self.get_range(key, offset, spans[-1][0] + spans[-1][1]))
        return [blob[start:start + length] for start, length in spans]

    @abc.abstractmethod
    def put(self, key: str, data: bytes | memoryview) -> None:
        """Write the object atomically: readers see the old or the new bytes, never a part."""

    def put_parts(self, key: str, parts: list[bytes | memoryview]) -> None:
        """Write the concatenation of ``parts`` atomically; backends override to avoid the join."""
        self.put(key, b"".join(parts))

    def stage_parts(self, key: str, parts: list[bytes | memoryview]) -> "Staged":
        """Write ``parts`` now but let the caller choose when the object becomes durable and visible.

        ``commit()`` on the result makes it so; ``discard()`` drops it.  Where a
        write is durable when it returns (object stores) the object is simply
        written here.  A local folder defers the ``fsync`` and the rename, so
        waiting for the disk overlaps with writing the next objects.
        """
        self.put_parts(key, parts)
        return Staged()

    def put_file(self, key: str, fh: BinaryIO, size: int) -> None:
        """Write the object from an open file; backends override to stream large objects."""
        self.put(key, fh.read())

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> None:
        """Create the object only if no object has that key; else ``AlreadyExists``."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """All objects whose key starts with ``prefix``, recursively, in key order."""

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size and tag of one object; ``ObjectNotFound`` if it is missing."""

    def exists(self, key: str) -> bool:
        from ..errors import ObjectNotFound

        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def close(self) -> None:
        """Release connections; the backend must not be used afterwards."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class Staged:
    """An object written by ``stage_parts``; this base one is already in place."""

    def commit(self) -> None:
        """Make the object durable and visible under its key."""

    def discard(self) -> None:
        """Drop a staged object that will not be committed (already-committed objects stay)."""


class Prefixed:
    """Object names of a store rooted at a folder of a bucket or container: ``<prefix>/<key>``."""

    url: str
    _root: str

    def _root_at(self, base_url: str, prefix: str) -> None:
        """Set ``url`` and the name prefix for the folder ``prefix`` of ``base_url``."""
        folder = prefix.strip("/")
        self._root = folder + "/" if folder else ""
        self.url = base_url + (f"/{folder}" if folder else "")

    def _key(self, key: str) -> str:
        if not key or key.startswith("/"):
            raise StoreError(f"invalid object key {key!r}")
        return self._root + key


def first_line(text: str) -> str:
    """The first line of a server message, bounded: enough to act on, never a dump."""
    text = (text or "").strip()
    return text.splitlines()[0][:300] if text else "no message"


def in_key_order(pages: Iterable[ObjectInfo], already_sorted: bool) -> Iterator[ObjectInfo]:
    """A listing in key order: streamed when the service sorts (AWS, GCS, Azure), else gathered and sorted.

    S3-compatible servers and emulators need not list in byte order (SeaweedFS
    walks its folders, so ``a/b`` comes before ``a-b``).
    """
    if already_sorted:
        yield from pages
    else:
        yield from sorted(pages, key=lambda o: o.key)


def split_parts(parts: list[bytes | memoryview], piece: int) -> list[list[memoryview]]:
    """The concatenation of ``parts`` cut into pieces of ``piece`` bytes (the last one
    shorter), each a list of views: multipart uploads without joining or copying."""
    out: list[list[memoryview]] = [[]]
    room = piece
    for part in parts:
        view = memoryview(part).cast("B")
        while len(view):
            if room == 0:
                out.append([])
                room = piece
            take = view[:room]
            out[-1].append(take)
            room -= len(take)
            view = view[len(take):]
    return [p for p in out if p]


class PartsReader(io.RawIOBase):
    """A seekable file over a list of buffers, so a pack can be sent without joining it."""

    def __init__(self, parts: Sequence[bytes | memoryview]):
        self._parts = [memoryview(p).cast("B") for p in parts if len(p)]
        self._starts = []
        pos = 0
        for p in self._parts:
            self._starts.append(pos)
            pos += len(p)
        self.size = pos
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, min(self.size, base + offset))
        return self._pos

    def readinto(self, buf: "WriteableBuffer") -> int:
        out = memoryview(buf).cast("B")
        done = 0
        while done < len(out) and self._pos < self.size:
            i = bisect.bisect_right(self._starts, self._pos) - 1
            part = self._parts[i]
            at = self._pos - self._starts[i]
            n = min(len(out) - done, len(part) - at)
            out[done:done + n] = part[at:at + n]
            done += n
            self._pos += n
        return done
