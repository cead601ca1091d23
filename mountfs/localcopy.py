"""Building folders from a version's file table: cached read-only copies and mutable copies.

A copy is written from a manifest anyone who can write to the store could
have crafted, into a folder someone else may be able to change while it is
written (a shared target, a planted symlink).  Manifest paths are validated
where they are decoded; here every file is reached openat-style from the
copy's root: each folder opened with O_NOFOLLOW relative to its parent's fd,
each file created with O_EXCL|O_NOFOLLOW and reopened only if it is still the
same inode, and modes and times set through the file's own fd.  So nothing
outside the copy is ever written, truncated, chmod-ed or removed, and a copy
that fails removes exactly what it created.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import stat
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable

from .backends import Backend
from .cache import ChunkCache
from .errors import LocalDiskError, UsageError
from .store import ChunkRef, FileEntry, Store
from .store.external import check_unchanged, read_range

log = logging.getLogger(__name__)

#: chunk bytes fetched and written per unit of work: big enough for few, large ranged reads,
#: small enough that memory stays bounded whatever the file sizes
BATCH_BYTES = 32 << 20

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITE = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
#: folder fds one copy keeps open: paths come sorted, so the last few folders serve nearly every file
_OPEN_DIRS = 64
#: what opening a name without following it says when a link (or a file) stands where a folder or file must be
_IN_THE_WAY = (errno.ELOOP, errno.ENOTDIR)
#: the folders of a cached read-only copy, once filled: nobody adds, removes or renames anything in it
READ_ONLY_DIR = 0o555

Source = Callable[[str], tuple[Backend, str]]


@dataclass(slots=True)
class _Piece:
    """Chunks ``first:last`` of one file, which start at byte ``offset`` of it."""

    entry: FileEntry
    first: int
    last: int
    offset: int

    @property
    def chunks(self) -> list[ChunkRef]:
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


def copy_mode(mode: int, read_only: bool) -> int:
    """The permission bits a copied file gets from the mode its store recorded.

    A store is written by whoever can write to the bucket or share, so its
    modes are not trusted.  setuid, setgid and sticky bits are dropped: a copy
    is owned by the user making it, and a setuid file of theirs that others
    may execute would run as them.  Write bits for group and others are
    dropped too: a world-writable file would let anyone change the data the
    user copied.  The owner can always read, and write a mutable copy.
    """
    return (mode & 0o555) | 0o400 if read_only else (mode & 0o755) | 0o600


def _disk_error(exc: OSError, target: str) -> LocalDiskError:
    if exc.errno == errno.ENOSPC:
        return LocalDiskError(f"no space left on the device while writing {target}; free space or choose another folder")
    return LocalDiskError(f"cannot write {target}: {exc.strerror or exc}")


class _Folder:
    """A folder tree reached only through fds from its root: a symlink inside it is never followed.

    Thread-safe: folder fds are looked up, used and evicted under one lock,
    so no fd is closed while another thread opens a file through it.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        # the root is the caller's own choice of folder (it may be a link to one); below it nothing is followed
        self._root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        #: folders this copy made, parents first
        self.made_dirs: list[str] = []
        #: whether ``seal`` made the folders read-only
        self.sealed = False

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        os.close(self._root_fd)

    def _dir(self, folder: str, create: bool) -> int:
        """The fd of ``folder`` ("" = the root), opening (with ``create``, making) what is missing; lock held."""
        if not folder:
            return self._root_fd
        fd = self._fds.get(folder)
        if fd is not None:
            self._fds.move_to_end(folder)
            return fd
        # from the nearest open ancestor down, a component at a time (a loop, not recursion: trees can be deep)
        fd, start, cut = self._root_fd, 0, len(folder)
        while (cut := folder.rfind("/", 0, cut)) > 0:
            parent = self._fds.get(folder[:cut])
            if parent is not None:
                fd, start = parent, cut + 1
                break
        while True:
            end = folder.find("/", start)
            end = len(folder) if end < 0 else end
            fd = self._open_dir(fd, folder[:end], folder[start:end], create)
            if end == len(folder):
                return fd
            start = end + 1

    def _open_dir(self, parent_fd: int, path: str, name: str, create: bool) -> int:
        if create:
            try:
                os.mkdir(name, 0o777, dir_fd=parent_fd)
                self.made_dirs.append(path)
            except FileExistsError:
                pass  # ours from an earlier file, or in the way: the O_NOFOLLOW open tells
        try:
            fd = os.open(name, _DIR, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno not in _IN_THE_WAY:
                raise
            raise LocalDiskError(
                f"cannot write {self.root}: {path!r} is a symbolic link or a file where the copy needs a folder "
                "(a copy never follows links out of its folder); remove it and try again"
            ) from None
        self._fds[path] = fd
        if len(self._fds) > _OPEN_DIRS:
            os.close(self._fds.popitem(last=False)[1])
        return fd

    def create(self, path: str) -> int:
        """Create file ``path`` (and its folders) for writing; anything already there is an error, never replaced."""
        head, _, name = path.rpartition("/")
        with self._lock:
            try:
                return os.open(name, _CREATE, 0o600, dir_fd=self._dir(head, True))
            except FileExistsError:
                raise LocalDiskError(
                    f"cannot write {self.root}: {path!r} is already there, a file or link the copy did not make; "
                    "remove it and try again"
                ) from None

    def open(self, path: str, inode: int) -> int:
        """Open file ``path`` for writing if it is still the file ``inode`` this copy created, following no link."""
        head, _, name = path.rpartition("/")
        with self._lock:
            try:
                fd = os.open(name, _WRITE, dir_fd=self._dir(head, False))
            except OSError as exc:
                if exc.errno not in (*_IN_THE_WAY, errno.ENOENT):
                    raise
                fd = -1
        if fd >= 0 and os.fstat(fd).st_ino == inode:
            return fd
        if fd >= 0:
            os.close(fd)
        raise LocalDiskError(
            f"cannot write {self.root}: {path!r} was replaced while the copy was written (a copy never follows "
            "links out of its folder); remove it and try again"
        )

    def lstat(self, path: str) -> os.stat_result | None:
        """``path``'s own status (a link is not followed), None if it or a folder on the way is not there."""
        head, _, name = path.rpartition("/")
        with self._lock:
            try:
                return os.stat(name, dir_fd=self._dir(head, False), follow_symlinks=False)
            except (OSError, LocalDiskError):
                return None

    def seal(self) -> None:
        """Make the root and every folder this copy made read-only (``READ_ONLY_DIR``), through their own fds."""
        self.sealed = True
        self._dir_modes(READ_ONLY_DIR)

    def _dir_modes(self, mode: int) -> None:
        with self._lock:
            os.fchmod(self._root_fd, mode)
            for path in self.made_dirs:
                os.fchmod(self._dir(path, False), mode)

    def remove(self, files: Iterable[str]) -> None:
        """Best effort: remove ``files`` (the ones this copy created), then the folders it made, deepest first."""
        if self.sealed:  # a failure after the last write: writable again first (never a folder left unsealed)
            with contextlib.suppress(OSError, LocalDiskError):
                self._dir_modes(0o700)
        with self._lock:
            for path in files:
                head, _, name = path.rpartition("/")
                with contextlib.suppress(OSError, LocalDiskError):
                    os.unlink(name, dir_fd=self._dir(head, False))
            for path in reversed(self.made_dirs):
                head, _, name = path.rpartition("/")
                # not empty (someone else's file is in it) or replaced: it stays
                with contextlib.suppress(OSError, LocalDiskError):
                    os.rmdir(name, dir_fd=self._dir(head, False))
            self.made_dirs.clear()


def write_tree(
    entries: list[FileEntry],
    store: Store,
    cache: ChunkCache,
    root: str,
    *,
    read_only: bool,
    max_workers: int,
    progress: Callable[[int], None] | None = None,
    source: Source | None = None,
) -> None:
    """Write every entry under the existing folder ``root``: chunks the cache holds are used, the rest come from the store.

    Fetched chunks are not added to the cache: the folder itself is the copy,
    and caching them too would cost a second write of every byte.  With
    ``read_only`` the files keep no write bit and, once all are written,
    ``root`` and every folder in it become ``READ_ONLY_DIR`` (``remove_tree``
    makes them writable again to remove them).  On any
    failure the files and folders this call created are removed again, so no
    zero-filled file is left looking like data; nothing else is touched.
    """
    external = [[_Piece(e, 0, 0, 0)] for e in entries if e.is_external]
    if external and source is None:
        raise UsageError("this copy has external files but no way to open their sources")
    work = batches([e for e in entries if not e.is_external]) + external
    try:
        folder = _Folder(root)
    except OSError as exc:
        raise _disk_error(exc, root) from None
    created = 0
    try:
        try:
            # every file first (sized), so pieces of one file can be written in parallel
            files: dict[str, list[int]] = {}  # path -> [inode, pieces not written yet]
            for e in entries:
                fd = folder.create(e.path)
                created += 1
                try:
                    os.ftruncate(fd, e.size)
                    files[e.path] = [os.fstat(fd).st_ino, 0]
                finally:
                    os.close(fd)
            for batch in work:
                for p in batch:
                    files[p.entry.path][1] += 1
            _write_pieces(work, files, folder, store, cache, read_only, max_workers, progress, source)
            if read_only:  # last: its folders were written into until now
                folder.seal()
        except OSError as exc:
            raise _disk_error(exc, root) from None
    except BaseException:
        folder.remove(e.path for e in entries[:created])
        raise
    finally:
        folder.close()


def _write_pieces(
    work: list[list[_Piece]], files: dict[str, list[int]], folder: _Folder, store: Store, cache: ChunkCache,
    read_only: bool, max_workers: int, progress: Callable[[int], None] | None, source: Source | None,
) -> None:
    """Fill the created files, in parallel; the piece written last sets its file's mode and time."""
    lock = threading.Lock()

    def done(fd: int, e: FileEntry) -> None:
        with lock:
            files[e.path][1] -= 1
            last = files[e.path][1] == 0
        if last:  # every other piece of the file is written: its time must come after their writes
            os.fchmod(fd, copy_mode(e.mode, read_only))
            os.utime(fd, ns=(e.mtime_ns, e.mtime_ns))

    def do_batch(batch: list[_Piece]) -> None:
        if batch[0].entry.is_external:
            e = batch[0].entry
            assert source is not None  # write_tree refuses external files without one
            backend, key = source(e.url)
            check_unchanged(backend, key, e)
            fd = folder.open(e.path, files[e.path][0])
            try:
                _write_external(fd, e, backend, key, progress)
                done(fd, e)
            finally:
                os.close(fd)
            return
        refs = {c.digest: c for p in batch for c in p.chunks}
        have: dict[bytes, bytes | memoryview] = {}
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
            fd = folder.open(p.entry.path, files[p.entry.path][0])
            try:
                offset = p.offset
                for c in p.chunks:
                    os.pwrite(fd, have[c.digest], offset)
                    offset += c.size
                done(fd, p.entry)
            finally:
                os.close(fd)
            if progress:
                progress(offset - p.offset)

    pool = ThreadPoolExecutor(max(1, max_workers))
    try:
        for _ in pool.map(do_batch, work):
            pass
    finally:
        # on a failure, batches not started yet are dropped instead of fetched for nothing
        pool.shutdown(wait=True, cancel_futures=True)


def _write_external(fd: int, e: FileEntry, backend: Backend, key: str, progress: Callable[[int], None] | None) -> None:
    """Copy an external file from its source, in windows (it was checked unchanged just before)."""
    for offset in range(0, e.size, BATCH_BYTES):
        data = read_range(backend, key, e, offset, min(BATCH_BYTES, e.size - offset))
        os.pwrite(fd, data, offset)
        if progress:
            progress(len(data))


def _marker(target: str) -> str:
    return target.rstrip("/") + ".complete"


def copy_is_complete(target: str, entries: list[FileEntry]) -> bool:
    """A cached copy is reusable when its marker is there and every file is a plain file of its size and mtime."""
    try:
        with open(_marker(target)) as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return False
    if not isinstance(doc, dict) or doc.get("count") != len(entries):
        return False
    try:
        folder = _Folder(target)
    except OSError:
        return False
    try:
        for e in entries:
            st = folder.lstat(e.path)
            if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != e.size or st.st_mtime_ns != e.mtime_ns:
                return False
    finally:
        folder.close()
    return True


def _write_marker(target: str, count: int) -> None:
    marker = _marker(target)
    if os.path.lexists(marker):
        os.unlink(marker)
    fd = os.open(marker, _CREATE, 0o644)
    with os.fdopen(fd, "w") as fh:
        json.dump({"count": count}, fh)


def build_cached_copy(
    entries: list[FileEntry], store: Store, cache: ChunkCache, target: str, *, max_workers: int,
    progress: Callable[[int], None] | None = None, source: Source | None = None,
) -> str:
    """Build (or reuse) the read-only copy at ``target``; it is complete or it is not there."""
    if copy_is_complete(target, entries):
        _set_dir_modes(target, READ_ONLY_DIR)  # one built before folders were sealed too
        return target
    parent = os.path.dirname(target.rstrip("/"))
    building = f"{target}.building-{os.getpid()}-{os.urandom(3).hex()}"
    try:
        os.makedirs(parent, exist_ok=True)
        os.mkdir(building)
        write_tree(entries, store, cache, building, read_only=True, max_workers=max_workers, progress=progress,
                   source=source)
        if os.path.lexists(_marker(target)):
            os.unlink(_marker(target))
        remove_tree(target)
        os.rename(building, target)
        _write_marker(target, len(entries))
    except OSError as exc:
        remove_tree(building)
        raise _disk_error(exc, target) from None
    except BaseException:
        remove_tree(building)
        raise
    return target


def build_mutable_copy(
    entries: list[FileEntry], store: Store, cache: ChunkCache, target: str, *, overwrite: bool, max_workers: int,
    progress: Callable[[int], None] | None = None, source: Source | None = None,
) -> str:
    """Write a plain writable folder; refuse a non-empty one unless ``overwrite``.

    On a failure what the copy created is removed again (and ``target`` itself
    if the copy made it); the user's own files are never touched, except that
    ``overwrite`` empties the folder first, as asked.
    """
    if os.path.exists(target) and not os.path.isdir(target):
        raise UsageError(f"{target} exists and is not a folder; choose a folder")
    existed = os.path.isdir(target)
    try:
        if existed and os.listdir(target):
            if not overwrite:
                raise UsageError(f"{target} is not empty; choose an empty folder or pass overwrite=True (--overwrite)")
            for name in os.listdir(target):
                remove_tree(os.path.join(target, name))
        os.makedirs(target, exist_ok=True)
    except OSError as exc:
        raise _disk_error(exc, target) from None
    try:
        write_tree(entries, store, cache, target, read_only=False, max_workers=max_workers, progress=progress,
                   source=source)
    except BaseException:
        if not existed:
            with contextlib.suppress(OSError):
                os.rmdir(target)
        raise
    return target


def _set_dir_modes(path: str, mode: int | None) -> None:
    """Set every folder of the tree at ``path`` to ``mode`` (None: add the owner's rwx), best effort.

    Each folder is opened without following a link and changed through its own
    fd; links to folders are neither entered nor changed."""
    for top, _, _ in os.walk(path):
        with contextlib.suppress(OSError):
            fd = os.open(top, _DIR)
            try:
                old = stat.S_IMODE(os.fstat(fd).st_mode)
                new = old | 0o700 if mode is None else mode
                if new != old:
                    os.fchmod(fd, new)
            finally:
                os.close(fd)


def _unseal(path: str) -> None:
    """Give the owner back write access to every folder of the tree at ``path`` (a cached copy's are read-only)."""
    _set_dir_modes(path, None)


def remove_tree(path: str) -> None:
    """Remove a file, a link (not what it points to) or a folder tree, read-only parts included.

    Every place that removes a cached copy (replacing an incomplete one, a
    failed build) comes here: its folders are made writable first."""
    def onerror(func: Callable[[str], object], p: str, exc_info: object) -> None:
        # a read-only folder stops the removal: make it writable and retry, but chmod only real
        # folders (lstat), never through a link to somewhere else
        try:
            for folder in (os.path.dirname(p), p):
                if stat.S_ISDIR(os.lstat(folder).st_mode):
                    os.chmod(folder, 0o700)
            func(p)
        except OSError:
            pass

    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        _unseal(path)
        shutil.rmtree(path, onerror=onerror)
    else:
        os.unlink(path)
