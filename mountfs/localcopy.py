"""Building folders from a version's file table: cached read-only copies and mutable copies."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from .cache import ChunkCache
from .errors import LocalDiskError, UsageError
from .backends import Backend
from .store import FileEntry, Store
from .store.external import check_unchanged, read_range

log = logging.getLogger(__name__)

#: chunk bytes fetched and written per unit of work: big enough for few, large ranged reads,
#: small enough that memory stays bounded whatever the file sizes
BATCH_BYTES = 32 << 20


@dataclass(slots=True)
class _Piece:
    """Chunks ``first:last`` of one file, which start at byte ``offset`` of it."""

    entry: FileEntry
    first: int
    last: int
    offset: int

    @property
    def chunks(self) -> list:
        return self.entry.chunks[self.first:self.last]


def batches(entries: list[FileEntry]) -> list[list[_Piece]]:
    """Path-order units of at most ~BATCH_BYTES; a large file is split into several pieces."""
    out: list[list[_Piece]] = []
    cur: list[_Piece] = []
    size = 0
    for e in entries:
        first, offset = 0, 0
        for i, c in enumerate(e.chunks):
            size += c.size
            if size >= BATCH_BYTES:
                cur.append(_Piece(e, first, i + 1, offset))
                offset += sum(x.size for x in e.chunks[first:i + 1])
                first = i + 1
                out.append(cur)
                cur, size = [], 0
        if first < len(e.chunks) or not e.chunks:
            cur.append(_Piece(e, first, len(e.chunks), offset))
    if cur:
        out.append(cur)
    return out


def _disk_error(exc: OSError, target: str) -> LocalDiskError:
    if exc.errno == errno.ENOSPC:
        return LocalDiskError(f"no space left on the device while writing {target}; free space or choose another folder")
    return LocalDiskError(f"cannot write {target}: {exc.strerror or exc}")


def write_tree(
    entries: list[FileEntry],
    store: Store,
    cache: ChunkCache,
    root: str,
    *,
    read_only: bool,
    max_workers: int,
    progress: Callable[[int], None] | None = None,
    source: Callable[[str], tuple[Backend, str]] | None = None,
) -> None:
    """Write every entry under ``root``: chunks the cache holds are used, the rest come from the store.

    Fetched chunks are not added to the cache: the folder itself is the copy,
    and caching them too would cost a second write of every byte.
    """
    try:
        # create every file first (sized), so pieces of one file can be written in parallel
        made: set[str] = set()
        for e in entries:
            path = os.path.join(root, e.path)
            parent = os.path.dirname(path)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            if os.path.lexists(path):
                os.chmod(path, 0o600)
                os.unlink(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.ftruncate(fd, e.size)
            finally:
                os.close(fd)

        def do_batch(batch: list[_Piece]) -> None:
            if batch[0].entry.is_external:
                return _write_external(batch[0], root, source, progress)
            refs = {c.digest: c for p in batch for c in p.chunks}
            have: dict[bytes, bytes] = {}
            missing = []
            for d, ref in refs.items():
                data = cache.get(d)
                if data is None:
                    missing.append(ref)
                else:
                    have[d] = data
            if missing:
                have.update(store.read_chunks(missing))
            for p in batch:
                fd = os.open(os.path.join(root, p.entry.path), os.O_WRONLY)
                try:
                    offset = p.offset
                    for c in p.chunks:
                        os.pwrite(fd, have[c.digest], offset)
                        offset += c.size
                finally:
                    os.close(fd)
                if progress:
                    progress(offset - p.offset)

        external = [[_Piece(e, 0, 0, 0)] for e in entries if e.is_external]
        if external and source is None:
            raise UsageError("this copy has external files but no way to open their sources")
        with ThreadPoolExecutor(max(1, max_workers)) as pool:
            for _ in pool.map(do_batch, batches([e for e in entries if not e.is_external]) + external):
                pass
        for e in entries:
            path = os.path.join(root, e.path)
            mode = e.mode & 0o7777
            os.chmod(path, mode & ~0o222 if read_only else mode | 0o200)
            os.utime(path, ns=(e.mtime_ns, e.mtime_ns))
    except OSError as exc:
        raise _disk_error(exc, root) from None


def _write_external(piece: _Piece, root: str, source, progress) -> None:
    """Copy an external file from its source URL, in windows, after checking it did not change."""
    e = piece.entry
    backend, key = source(e.url)
    check_unchanged(backend, key, e)
    fd = os.open(os.path.join(root, e.path), os.O_WRONLY)
    try:
        for offset in range(0, e.size, BATCH_BYTES):
            data = read_range(backend, key, e, offset, min(BATCH_BYTES, e.size - offset))
            os.pwrite(fd, data, offset)
            if progress:
                progress(len(data))
    finally:
        os.close(fd)


def _marker(target: str) -> str:
    return target.rstrip("/") + ".complete"


def copy_is_complete(target: str, entries: list[FileEntry]) -> bool:
    """A cached copy is reusable when its marker is there and every file has its size and mtime."""
    try:
        with open(_marker(target)) as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return False
    if doc.get("count") != len(entries):
        return False
    for e in entries:
        try:
            st = os.stat(os.path.join(target, e.path))
        except OSError:
            return False
        if st.st_size != e.size or st.st_mtime_ns != e.mtime_ns:
            return False
    return True


def build_cached_copy(
    entries: list[FileEntry], store: Store, cache: ChunkCache, target: str, *, max_workers: int, progress=None,
    source=None,
) -> str:
    """Build (or reuse) the read-only copy at ``target``; it is complete or it is not there."""
    if copy_is_complete(target, entries):
        return target
    parent = os.path.dirname(target.rstrip("/"))
    building = f"{target}.building-{os.getpid()}-{os.urandom(3).hex()}"
    try:
        os.makedirs(parent, exist_ok=True)
        os.makedirs(building)
        write_tree(entries, store, cache, building, read_only=True, max_workers=max_workers, progress=progress,
                   source=source)
        if os.path.lexists(_marker(target)):
            os.unlink(_marker(target))
        if os.path.exists(target):
            remove_tree(target)
        os.rename(building, target)
        with open(_marker(target), "w") as fh:
            json.dump({"count": len(entries)}, fh)
    except OSError as exc:
        remove_tree(building)
        raise _disk_error(exc, target) from None
    except BaseException:
        remove_tree(building)
        raise
    return target


def build_mutable_copy(
    entries: list[FileEntry], store: Store, cache: ChunkCache, target: str, *, overwrite: bool, max_workers: int, progress=None,
    source=None,
) -> str:
    """Write a plain writable folder; refuse a non-empty one unless ``overwrite``."""
    if os.path.exists(target) and not os.path.isdir(target):
        raise UsageError(f"{target} exists and is not a folder; choose a folder")
    if os.path.isdir(target) and os.listdir(target):
        if not overwrite:
            raise UsageError(f"{target} is not empty; choose an empty folder or pass overwrite=True (--overwrite)")
        for name in os.listdir(target):
            p = os.path.join(target, name)
            remove_tree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
    try:
        os.makedirs(target, exist_ok=True)
    except OSError as exc:
        raise _disk_error(exc, target) from None
    write_tree(entries, store, cache, target, read_only=False, max_workers=max_workers, progress=progress, source=source)
    return target


def remove_tree(path: str) -> None:
    """rmtree that also removes read-only files."""
    def onerror(func, p, exc_info):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o600)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=onerror) if os.path.exists(path) else None
