"""External files: entries that point at a source URL instead of holding chunks."""

from __future__ import annotations

from ..backends import Backend
from ..errors import SourceChanged
from .manifest import FileEntry


def check_unchanged(backend: Backend, key: str, entry: FileEntry) -> None:
    """Refuse to serve a source whose size or ETag/generation differ from when it was added."""
    info = backend.stat(key)
    if info.size != entry.size or (entry.etag and info.etag != entry.etag):
        raise SourceChanged(
            f"external file {entry.url} changed since it was added to the dataset "
            f"(size {entry.size} -> {info.size}, tag {entry.etag!r} -> {info.etag!r}); "
            "add it again in a new version"
        )


def read_range(backend: Backend, key: str, entry: FileEntry, offset: int, length: int) -> bytes:
    """``length`` bytes of the source from ``offset``; a short answer is an error, never served."""
    data = backend.get_range(key, offset, length)
    expected = max(0, min(length, entry.size - offset))
    if len(data) != expected:
        raise SourceChanged(f"external file {entry.url} returned {len(data)} bytes where {expected} were expected; "
                            "it changed since it was added")
    return data
