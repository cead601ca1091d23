"""Building folders from a version's file table: cached read-only copies and mutable copies."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from .cache import ChunkCache
from .errors import LocalDiskError, UsageError
from .store import FileEntry, Store

log = logging.getLogger(__name__)

#: chunk bytes fetched per batch: big enough for few, large ranged reads
BATCH_BYTES = 64 << 20


def _batches(entries: list[FileEntry]) -> list[list[FileEntry]]:
    out: list[list[FileEntry]] = []
    cur: list[FileEntry] = []
    size = 0
    for e in entries:
        cur.append(e)
        size += e.size
        if size >= BATCH_BYTES:
            out.append(cur)
            cur, size = [], 0
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
) -> None:
    """Write every entry under ``root``; chunks come from the cache, missing ones from the store."""
    for e in entries:
        if e.is_external:
            raise UsageError(f"{e.path} is an external file ({e.url}); external sources are not supported by this version of mountfs")

    def do_batch(batch: list[FileEntry]) -> None:
        refs = {c.digest: c for e in batch for c in e.chunks}
        have: dict[bytes, bytes] = {}
        missing = []
        for d, ref in refs.items():
            data = cache.get(d)
            if data is None:
                missing.append(ref)
            else:
                have[d] = data
        if missing:
            fetched = store.read_chunks(missing)
            for d, data in fetched.items():
                try:
                    cache.put(d, data)
                except LocalDiskError:
                    log.info("cache full while building a copy; going on without caching %s", d.hex())
            have.update(fetched)
        for e in batch:
            _write_file(os.path.join(root, e.path), e, have, read_only)
            if progress:
                progress(e.size)

    try:
        with ThreadPoolExecutor(max(1, max_workers)) as pool:
            for _ in pool.map(do_batch, _batches(entries)):
                pass
    except OSError as exc:
        raise _disk_error(exc, root) from None


def _write_file(path: str, e: FileEntry, chunks: dict[bytes, bytes], read_only: bool) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.chmod(path, 0o600)
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for c in e.chunks:
            os.write(fd, chunks[c.digest])
        mode = e.mode & 0o7777
        os.fchmod(fd, mode & ~0o222 if read_only else mode | 0o200)
    finally:
        os.close(fd)
    os.utime(path, ns=(e.mtime_ns, e.mtime_ns))


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
    entries: list[FileEntry], store: Store, cache: ChunkCache, target: str, *, max_workers: int, progress=None
) -> str:
    """Build (or reuse) the read-only copy at ``target``; it is complete or it is not there."""
    if copy_is_complete(target, entries):
        return target
    parent = os.path.dirname(target.rstrip("/"))
    building = f"{target}.building-{os.getpid()}-{os.urandom(3).hex()}"
    try:
        os.makedirs(parent, exist_ok=True)
        os.makedirs(building)
        write_tree(entries, store, cache, building, read_only=True, max_workers=max_workers, progress=progress)
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
    entries: list[FileEntry], store: Store, cache: ChunkCache, target: str, *, overwrite: bool, max_workers: int, progress=None
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
    write_tree(entries, store, cache, target, read_only=False, max_workers=max_workers, progress=progress)
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
