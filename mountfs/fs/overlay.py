"""A writable copy of a draft: the draft's files (lower, read through the cache) under an upper layer.

No FUSE types here: the pyfuse3 adapter is ``fs/writable.py``.  Failures are
``OSError`` with the errno a POSIX filesystem gives (docs/SEMANTICS.md,
"Writable copies"); anything else that escapes is turned into an errno by
``errnos.errno_for``.

Inode numbers are the lower table's for the draft's files and
``cache.upper.UPPER_BASE`` and up for nodes made in the copy; they stay the
same across remounts, since the upper layer keeps them (``cache/upper.py``).

Content of a regular file, in order of what is asked first:

- no row in the upper layer: the lower file, read through the chunk cache;
- a row without data (a chmod, a rename): still the lower file's bytes;
- data and no lower: the data file holds it all (new files, and lower files of
  at most :data:`COPY_WHOLE` bytes, copied up whole on their first write);
- data and a lower file: a large file keeps its unchanged ranges in the store;
  the ranges written (``extents``) are in the data file, bytes at or past
  ``limit`` (the smallest size it was truncated to) and not written read as
  zeros.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterator

import trio

from ..cache.filetable import FileTables
from ..cache.upper import UPPER_BASE, UNode, Upper, UpperTxn

log = logging.getLogger(__name__)

ROOT_INO = 1
#: a lower file up to this size is copied up whole on its first write; larger ones keep their unchanged ranges
COPY_WHOLE = 8 << 20
#: the kernel may keep names and attributes this long: every change goes through it
TIMEOUT = 5.0
_LOWER_PAGE = 4096
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

#: reads a lower file's bytes (lower inode, offset, size) -> bytes
LowerRead = Callable[[int, int, int], Awaitable[bytes | memoryview]]


def _err(code: int, what: str = "") -> OSError:
    return OSError(code, os.strerror(code) + (f": {what}" if what else ""))


@dataclass(frozen=True, slots=True)
class Stat:
    """The attributes of one node, as ``stat`` shows them."""

    ino: int
    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    ctime_ns: int
    atime_ns: int
    rdev: int = 0


@dataclass(slots=True)
class _Handle:
    ino: int
    writable: bool
    append: bool


@dataclass(slots=True)
class _DirHandle:
    ino: int
    entries: list[tuple[bytes, int]] = field(default_factory=list)


def _now() -> int:
    return time.time_ns()


def _name_problem(name: bytes) -> int:
    """The errno for a name the copy cannot take, or 0: a version's paths are UTF-8 (docs/SEMANTICS.md)."""
    if len(name) > 255:
        return errno.ENAMETOOLONG
    try:
        name.decode()
    except UnicodeDecodeError:
        return errno.EINVAL
    return 0


def _pwrite_some(fd: int, data: bytes | memoryview, off: int) -> int:
    """Write as much of ``data`` at ``off`` as the disk takes: the count written; an error only if nothing was."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        try:
            n = os.pwrite(fd, view[done:], off + done)
        except OSError:
            if done:
                return done
            raise
        if n == 0:
            break
        done += n
    return done


def _pwrite_all(fd: int, data: bytes | memoryview, off: int) -> None:
    """Write all of ``data``; a short write (a full disk) is ENOSPC, never zeros left behind."""
    if _pwrite_some(fd, data, off) < len(data):
        raise _err(errno.ENOSPC)


class Overlay:
    """The writable copy's namespace and bytes (module docstring)."""

    def __init__(self, upper: Upper, tables: FileTables, vk: bytes, lower_read: LowerRead,
                 uid: int, gid: int) -> None:
        self.upper = upper
        self.tables = tables
        self.vk = vk
        self._lower_read = lower_read
        #: owner of the draft's own files: whoever mounted the copy
        self.uid = uid
        self.gid = gid
        #: while ``close`` turns the copy into a version: no new writes (EROFS)
        self.frozen = False
        self._handles: dict[int, _Handle | _DirHandle] = {}
        self._next_fh = 1
        self._open: dict[int, int] = {}
        self._writers: dict[int, int] = {}
        self._fds: dict[int, int] = {}
        self._copying: dict[int, trio.Lock] = {}
        self._sweep_orphans()

    # --- attributes ---------------------------------------------------------------

    def _lower_stat(self, ino: int) -> Stat:
        node = self.tables.node(self.vk, ino) if ino < UPPER_BASE else None
        if node is None:
            raise _err(errno.ENOENT)
        if node.is_dir:
            # 1: "not counted", which keeps find(1) from guessing leaves; a folder's row counts its subfolders
            mode, nlink = stat.S_IFDIR | 0o755, 1
        else:
            # modes come from a store others can write: permission bits only
            mode, nlink = stat.S_IFREG | ((node.mode & 0o777) or 0o644), 1
        return Stat(ino, mode, nlink, self.uid, self.gid, node.size, node.mtime_ns, node.mtime_ns, node.mtime_ns)

    @staticmethod
    def _row_stat(row: UNode) -> Stat:
        return Stat(row.ino, row.mode, row.nlink, row.uid, row.gid, row.size, row.mtime_ns, row.ctime_ns,
                    row.atime_ns or row.mtime_ns, row.rdev)

    def stat(self, ino: int) -> Stat:
        row = self.upper.node(ino)
        return self._row_stat(row) if row is not None else self._lower_stat(ino)

    def _own(self, txn: UpperTxn, ino: int) -> UNode:
        """The node's row, made from the lower table's entry if it has none (not stored yet)."""
        row = txn.node(ino)
        if row is not None:
            return row
        s = self._lower_stat(ino)
        row = UNode(ino, s.mode, s.uid, s.gid, s.size, s.mtime_ns, s.ctime_ns, s.nlink, lower=ino, atime_ns=s.atime_ns)
        if stat.S_ISREG(s.mode):
            row.limit = s.size
        elif stat.S_ISDIR(s.mode):
            row.nlink = 2 + sum(1 for _, c in self._lower_children(ino) if (n := self.tables.node(self.vk, c)) and n.is_dir)
        return row

    def _lower_children(self, lower: int) -> list[tuple[bytes, int]]:
        out: list[tuple[bytes, int]] = []
        after = 0
        while True:
            page = self.tables.children(self.vk, lower, after, limit=_LOWER_PAGE)
            out.extend(page)
            if len(page) < _LOWER_PAGE:
                return out
            after = page[-1][1]

    def _listed(self, txn: UpperTxn, ino: int) -> UNode:
        """The directory's row with its names in the upper layer (copied from the lower directory once)."""
        row = self._own(txn, ino)
        if not stat.S_ISDIR(row.mode):
            raise _err(errno.ENOTDIR)
        if not row.listed:
            if row.lower:
                for name, child in self._lower_children(row.lower):
                    txn.link(ino, name, child)
            row.listed = True
            txn.put(row)
        return row

    def _child(self, parent: int, name: bytes) -> int | None:
        row = self.upper.node(parent)
        if row is not None and row.listed:
            return self.upper.dirent(parent, name)
        if row is not None and not stat.S_ISDIR(row.mode):
            raise _err(errno.ENOTDIR)
        lower = row.lower if row is not None else parent
        if not lower or lower >= UPPER_BASE:
            return None
        return self.tables.lookup(self.vk, lower, name)

    def _is_empty(self, txn: UpperTxn, ino: int) -> bool:
        row = txn.node(ino)
        if row is not None and row.listed:
            return not txn.has_children(ino)
        lower = row.lower if row is not None else ino
        return not lower or not self.tables.children(self.vk, lower, 0, limit=1)

    def _touch(self, row: UNode, now: int) -> None:
        row.mtime_ns = row.ctime_ns = now

    # --- names --------------------------------------------------------------------

    def lookup(self, parent: int, name: bytes) -> Stat:
        if len(name) > 255:  # NAME_MAX: the kernel leaves it to the file system
            raise _err(errno.ENAMETOOLONG)
        child = self._child(parent, name)
        if child is None:
            raise _err(errno.ENOENT)
        return self.stat(child)

    def readlink(self, ino: int) -> bytes:
        row = self.upper.node(ino)
        if row is None or not stat.S_ISLNK(row.mode):
            raise _err(errno.EINVAL)
        return row.target

    def _make(self, parent: int, name: bytes, mode: int, uid: int, gid: int, **kw: object) -> Stat:
        if self.frozen:
            raise _err(errno.EROFS, "the copy is being closed")
        if code := _name_problem(name):
            raise _err(code)
        now = _now()

        def make(txn: UpperTxn) -> UNode:
            p = self._listed(txn, parent)
            if txn.dirent(parent, name) is not None:
                raise _err(errno.EEXIST)
            g = gid
            m = mode
            if p.mode & stat.S_ISGID:  # BSD group semantics of a setgid folder, as ext4
                g = p.gid
                if stat.S_ISDIR(mode):
                    m |= stat.S_ISGID
            row = UNode(txn.new_ino(), m, uid, g, mtime_ns=now, ctime_ns=now, atime_ns=now, **kw)  # type: ignore[arg-type]
            if stat.S_ISDIR(m):
                row.nlink, row.listed = 2, True
            txn.put(row)
            txn.link(parent, name, row.ino)
            if stat.S_ISDIR(m):
                p.nlink += 1  # its ".."
            self._touch(p, now)
            txn.put(p)
            return row

        row = self.upper.change(make)
        if stat.S_ISREG(row.mode) and row.data:
            os.close(self.upper.open_data(row.ino, create=True))
        return self._row_stat(row)

    def mkdir(self, parent: int, name: bytes, mode: int, uid: int, gid: int) -> Stat:
        return self._make(parent, name, stat.S_IFDIR | (mode & 0o7777), uid, gid)

    def mknod(self, parent: int, name: bytes, mode: int, rdev: int, uid: int, gid: int) -> Stat:
        kind = stat.S_IFMT(mode) or stat.S_IFREG
        if kind == stat.S_IFREG:
            return self._make(parent, name, kind | (mode & 0o7777), uid, gid, data=True)
        if kind not in (stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK):
            raise _err(errno.EINVAL)
        return self._make(parent, name, kind | (mode & 0o7777), uid, gid, rdev=rdev)

    def symlink(self, parent: int, name: bytes, target: bytes, uid: int, gid: int) -> Stat:
        if len(target) > 4095:
            raise _err(errno.ENAMETOOLONG)
        return self._make(parent, name, stat.S_IFLNK | 0o777, uid, gid, target=target, size=len(target))

    def create(self, parent: int, name: bytes, mode: int, flags: int, uid: int, gid: int) -> tuple[int, Stat]:
        st = self._make(parent, name, stat.S_IFREG | (mode & 0o7777), uid, gid, data=True)
        return self._new_handle(st.ino, flags), st

    def link(self, ino: int, parent: int, name: bytes) -> Stat:
        if self.frozen:
            raise _err(errno.EROFS, "the copy is being closed")
        if code := _name_problem(name):
            raise _err(code)
        now = _now()

        def link(txn: UpperTxn) -> UNode:
            p = self._listed(txn, parent)
            if txn.dirent(parent, name) is not None:
                raise _err(errno.EEXIST)
            row = self._own(txn, ino)
            if stat.S_ISDIR(row.mode):
                raise _err(errno.EPERM)
            if row.nlink >= 65000:
                raise _err(errno.EMLINK)
            row.nlink += 1
            row.ctime_ns = now
            txn.put(row)
            txn.link(parent, name, ino)
            self._touch(p, now)
            txn.put(p)
            return row

        return self._row_stat(self.upper.change(link))

    def _drop_link(self, txn: UpperTxn, ino: int, now: int, gone: list[int]) -> None:
        """One name of ``ino`` went away: count it down; a node with no name and no opener is deleted."""
        row = self._own(txn, ino)
        row.nlink = 0 if stat.S_ISDIR(row.mode) else row.nlink - 1
        row.ctime_ns = now
        if row.nlink > 0 or self._open.get(ino):
            txn.put(row)  # an open file stays readable and writable through its fd, nlink 0
        else:
            txn.delete(ino)
            gone.append(ino)

    def unlink(self, parent: int, name: bytes) -> None:
        self._remove(parent, name, directory=False)

    def rmdir(self, parent: int, name: bytes) -> None:
        self._remove(parent, name, directory=True)

    def _remove(self, parent: int, name: bytes, directory: bool) -> None:
        if self.frozen:
            raise _err(errno.EROFS, "the copy is being closed")
        now = _now()
        gone: list[int] = []

        def remove(txn: UpperTxn) -> None:
            gone.clear()
            p = self._listed(txn, parent)
            child = txn.dirent(parent, name)
            if child is None:
                raise _err(errno.ENOENT)
            is_dir = stat.S_ISDIR(self._own(txn, child).mode)
            if directory and not is_dir:
                raise _err(errno.ENOTDIR)
            if not directory and is_dir:
                raise _err(errno.EISDIR)
            if is_dir and not self._is_empty(txn, child):
                raise _err(errno.ENOTEMPTY)
            txn.unlink(parent, name)
            self._drop_link(txn, child, now, gone)
            if is_dir:
                p.nlink -= 1
            self._touch(p, now)
            txn.put(p)

        self.upper.change(remove)
        for ino in gone:
            self.upper.remove_data(ino)

    def rename(self, old_parent: int, old: bytes, new_parent: int, new: bytes, flags: int) -> None:
        if self.frozen:
            raise _err(errno.EROFS, "the copy is being closed")
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or flags == RENAME_NOREPLACE | RENAME_EXCHANGE:
            raise _err(errno.EINVAL)
        if code := _name_problem(new):
            raise _err(code)
        now = _now()
        gone: list[int] = []

        def rename(txn: UpperTxn) -> None:
            gone.clear()
            p1 = self._listed(txn, old_parent)
            p2 = self._listed(txn, new_parent) if new_parent != old_parent else p1
            src = txn.dirent(old_parent, old)
            if src is None:
                raise _err(errno.ENOENT)
            dst = txn.dirent(new_parent, new)
            moved = self._own(txn, src)
            if flags & RENAME_EXCHANGE:
                if dst is None:
                    raise _err(errno.ENOENT)
                other = self._own(txn, dst)
                txn.link(old_parent, old, dst)
                txn.link(new_parent, new, src)
                other.ctime_ns = now
                txn.put(other)
                if stat.S_ISDIR(moved.mode):
                    p1.nlink -= 1
                    p2.nlink += 1
                if stat.S_ISDIR(other.mode):
                    p2.nlink -= 1
                    p1.nlink += 1
            else:
                if dst is not None and flags & RENAME_NOREPLACE:
                    raise _err(errno.EEXIST)
                if dst == src:
                    return  # two names of one file: nothing happens (POSIX)
                if dst is not None:
                    target = self._own(txn, dst)
                    if stat.S_ISDIR(moved.mode) and not stat.S_ISDIR(target.mode):
                        raise _err(errno.ENOTDIR)
                    if not stat.S_ISDIR(moved.mode) and stat.S_ISDIR(target.mode):
                        raise _err(errno.EISDIR)
                    if stat.S_ISDIR(target.mode) and not self._is_empty(txn, dst):
                        raise _err(errno.ENOTEMPTY)
                    self._drop_link(txn, dst, now, gone)
                    if stat.S_ISDIR(target.mode):
                        p2.nlink -= 1
                txn.unlink(old_parent, old)
                txn.link(new_parent, new, src)
                if stat.S_ISDIR(moved.mode):
                    p1.nlink -= 1
                    p2.nlink += 1
            moved = self._own(txn, src)
            moved.ctime_ns = now
            txn.put(moved)
            for p in {p1.ino: p1, p2.ino: p2}.values():
                self._touch(p, now)
                txn.put(p)

        self.upper.change(rename)
        for ino in gone:
            self.upper.remove_data(ino)

    # --- attributes changed --------------------------------------------------------

    async def setattr(self, ino: int, *, mode: int | None = None, uid: int | None = None, gid: int | None = None,
                      size: int | None = None, atime_ns: int | None = None, mtime_ns: int | None = None) -> Stat:
        if self.frozen:
            raise _err(errno.EROFS, "the copy is being closed")
        if size is not None:
            st = self.stat(ino)
            if stat.S_ISDIR(st.mode):
                raise _err(errno.EISDIR)
            if not stat.S_ISREG(st.mode):
                raise _err(errno.EINVAL)
            try:
                await self._truncate(ino, size)
            finally:
                self._close_unused(ino)
        now = _now()

        def change(txn: UpperTxn) -> UNode:
            row = self._own(txn, ino)
            if mode is not None:
                row.mode = stat.S_IFMT(row.mode) | (mode & 0o7777)
            if uid is not None:
                row.uid = uid
            if gid is not None:
                row.gid = gid
            if mtime_ns is not None:
                row.mtime_ns = mtime_ns
            if atime_ns is not None:
                row.atime_ns = atime_ns
            row.ctime_ns = now
            txn.put(row)
            return row

        return self._row_stat(self.upper.change(change))

    async def _truncate(self, ino: int, size: int) -> None:
        row = await self._writable(ino)
        fd = self._fd(ino)
        os.ftruncate(fd, size)
        now = _now()

        def truncate(txn: UpperTxn) -> None:
            r = txn.node(ino)
            assert r is not None
            if r.lower:
                txn.clip_extents(ino, size)
                r.limit = min(r.limit, size)
            r.size = size
            self._touch(r, now)
            txn.put(r)

        self.upper.change(truncate)
        del row

    # --- content ------------------------------------------------------------------

    def _close_unused(self, ino: int) -> None:
        """Close the data file of a file no handle holds (opened for a truncate by path)."""
        if not self._open.get(ino):
            fd = self._fds.pop(ino, None)
            if fd is not None:
                os.close(fd)

    def _fd(self, ino: int) -> int:
        fd = self._fds.get(ino)
        if fd is None:
            fd = self._fds[ino] = self.upper.open_data(ino, create=True)
        return fd

    async def _writable(self, ino: int) -> UNode:
        """The node's row with a data file to write to: copy-up on first write (module docstring)."""
        row = self.upper.node(ino)
        if row is not None and row.data:
            return row
        lock = self._copying.setdefault(ino, trio.Lock())
        async with lock:
            row = self.upper.node(ino)
            if row is not None and row.data:
                return row
            row = self.upper.change(lambda txn: self._own(txn, ino))
            if not stat.S_ISREG(row.mode):
                raise _err(errno.EINVAL)
            fd = self._fd(ino)
            os.ftruncate(fd, 0)
            if row.lower and row.size <= COPY_WHOLE:
                pos = 0
                while pos < row.limit:
                    piece = await self._lower_read(row.lower, pos, min(row.limit - pos, 4 << 20))
                    if not piece:
                        break
                    _pwrite_all(fd, piece, pos)
                    pos += len(piece)
                row.lower = row.limit = 0
            os.ftruncate(fd, row.size)
            row.data = True
            final = row
            self.upper.change(lambda txn: txn.put(final))
        self._copying.pop(ino, None)
        return row

    def _new_handle(self, ino: int, flags: int) -> int:
        fh = self._next_fh
        self._next_fh += 1
        writable = bool(flags & (os.O_WRONLY | os.O_RDWR))
        self._handles[fh] = _Handle(ino, writable, bool(flags & os.O_APPEND))
        self._open[ino] = self._open.get(ino, 0) + 1
        if writable:
            self._writers[ino] = self._writers.get(ino, 0) + 1
        return fh

    async def open(self, ino: int, flags: int) -> int:
        st = self.stat(ino)
        if stat.S_ISDIR(st.mode):
            raise _err(errno.EISDIR)
        if flags & (os.O_WRONLY | os.O_RDWR):
            if self.frozen:
                raise _err(errno.EROFS, "the copy is being closed")
            await self._writable(ino)
            if flags & os.O_TRUNC:
                await self._truncate(ino, 0)
        return self._new_handle(ino, flags)

    def _handle(self, fh: int) -> _Handle:
        h = self._handles.get(fh)
        if not isinstance(h, _Handle):
            raise _err(errno.EBADF)
        return h

    async def read(self, fh: int, off: int, size: int) -> bytes | memoryview:
        ino = self._handle(fh).ino
        row = self.upper.node(ino)
        if row is None:
            return await self._lower_read(ino, off, size)
        end = min(off + size, row.size)
        if off >= end:
            return b""
        if not row.data:
            return await self._lower_read(row.lower, off, end - off) if row.lower else bytes(end - off)
        fd = self._fd(ino)
        if not row.lower:
            got = os.pread(fd, end - off, off)
            return got + bytes(end - off - len(got)) if len(got) < end - off else got
        return await self._read_mixed(row, fd, off, end)

    async def _read_mixed(self, row: UNode, fd: int, off: int, end: int) -> bytes:
        """A large lower file with written ranges: each byte from where it is now (module docstring)."""
        out: list[bytes | memoryview] = []
        pos = off
        for s, e in [*self.upper.extents(row.ino), (1 << 63, 1 << 63)]:
            if e <= pos:
                continue
            if pos >= end:
                break
            gap_end = min(s, end)
            if pos < gap_end:  # not written: the lower file below the limit, zeros past it
                lower_end = min(gap_end, row.limit)
                if pos < lower_end:
                    out.append(await self._lower_read(row.lower, pos, lower_end - pos))
                    pos = lower_end
                if pos < gap_end:
                    out.append(bytes(gap_end - pos))
                    pos = gap_end
            if pos < end and s <= pos < e:
                hi = min(e, end)
                got = os.pread(fd, hi - pos, pos)
                out.append(got + bytes(hi - pos - len(got)))
                pos = hi
        return b"".join(out)

    async def write(self, fh: int, off: int, data: bytes) -> int:
        h = self._handle(fh)
        if self.frozen:
            raise _err(errno.EROFS, "the copy is being closed")
        if not h.writable:
            raise _err(errno.EBADF)
        ino = h.ino
        row = await self._writable(ino)
        if h.append:
            off = row.size
        # the kernel is told what the disk took: a short count, or ENOSPC when nothing fit
        n = _pwrite_some(self._fd(ino), data, off)
        now = _now()

        def wrote(txn: UpperTxn) -> None:
            r = txn.node(ino)
            assert r is not None
            if r.lower:
                txn.add_extent(ino, off, off + n)
            r.size = max(r.size, off + n)
            self._touch(r, now)
            txn.put(r)

        self.upper.change(wrote)
        return n

    async def fsync(self, fh: int) -> None:
        ino = self._handle(fh).ino
        fd = self._fds.get(ino)
        if fd is not None:
            await trio.to_thread.run_sync(os.fsync, fd)
        await trio.to_thread.run_sync(self.upper.flush)

    async def fsync_all(self) -> None:
        for fd in list(self._fds.values()):
            await trio.to_thread.run_sync(os.fsync, fd)
        await trio.to_thread.run_sync(self.upper.flush)

    def release(self, fh: int) -> None:
        h = self._handles.pop(fh, None)
        if not isinstance(h, _Handle):
            return
        ino = h.ino
        if h.writable:
            self._writers[ino] -= 1
            if not self._writers[ino]:
                del self._writers[ino]
        self._open[ino] -= 1
        if self._open[ino]:
            return
        del self._open[ino]
        fd = self._fds.pop(ino, None)
        if fd is not None:
            os.close(fd)
        row = self.upper.node(ino)
        if row is not None and row.nlink == 0 and not stat.S_ISDIR(row.mode):
            self.upper.change(lambda txn: txn.delete(ino))
            self.upper.remove_data(ino)

    def writers(self) -> list[int]:
        """Inodes open for writing right now."""
        return sorted(self._writers)

    # --- folders ------------------------------------------------------------------

    def opendir(self, ino: int) -> int:
        row = self.upper.node(ino)
        if row is not None and not stat.S_ISDIR(row.mode):
            raise _err(errno.ENOTDIR)
        if row is not None and row.listed:
            entries = self.upper.children(ino)
        else:
            lower = row.lower if row is not None else ino
            if row is None and not stat.S_ISDIR(self._lower_stat(ino).mode):
                raise _err(errno.ENOTDIR)
            entries = self._lower_children(lower) if lower else []
        fh = self._next_fh
        self._next_fh += 1
        # one listing per opendir: names added or removed meanwhile show at the next opendir.
        # "." and ".." first (positions 1 and 2, so every position still resumes); the parent is not
        # recorded, so ".." carries the folder's own inode: `cd ..` and `stat ..` walk the path instead
        self._handles[fh] = _DirHandle(ino, [(b".", ino), (b"..", ino), *entries])
        return fh

    def readdir(self, fh: int, start: int) -> Iterator[tuple[bytes, Stat, int]]:
        h = self._handles.get(fh)
        if not isinstance(h, _DirHandle):
            raise _err(errno.EBADF)
        for pos in range(start, len(h.entries)):
            name, child = h.entries[pos]
            try:
                st = self.stat(child)
            except OSError:
                continue  # removed since the listing was taken
            yield name, st, pos + 1

    def releasedir(self, fh: int) -> None:
        self._handles.pop(fh, None)

    def statfs(self) -> os.statvfs_result:
        return os.statvfs(self.upper.directory)

    # --- the whole copy -----------------------------------------------------------

    def walk(self) -> Iterator[tuple[str, Stat, UNode | None]]:
        """(path, attributes, upper row or None) of every node below the root, parents first."""
        stack: list[tuple[str, int]] = [("", ROOT_INO)]
        while stack:
            prefix, ino = stack.pop()
            row = self.upper.node(ino)
            if row is not None and row.listed:
                entries = self.upper.children(ino)
            else:
                lower = row.lower if row is not None else ino
                entries = self._lower_children(lower) if lower else []
            for name, child in entries:
                path = prefix + name.decode(errors="surrogateescape")
                crow = self.upper.node(child)
                st = self._row_stat(crow) if crow is not None else self._lower_stat(child)
                yield path, st, crow
                if stat.S_ISDIR(st.mode):
                    stack.append((path + "/", child))

    def lower_paths(self) -> dict[int, str]:
        """Lower inode -> its path in the draft's table."""
        out: dict[int, str] = {}
        stack: list[tuple[str, int]] = [("", ROOT_INO)]
        while stack:
            prefix, ino = stack.pop()
            for name, child in self._lower_children(ino):
                path = prefix + name.decode(errors="surrogateescape")
                node = self.tables.node(self.vk, child)
                if node is None:
                    continue
                if node.is_dir:
                    stack.append((path + "/", child))
                else:
                    out[child] = path
        return out

    async def materialize(self, row: UNode) -> None:
        """Fill a large file's unwritten ranges below its limit from the lower file: its data file then holds it
        all (before ``close`` chunks it)."""
        fd = self._fd(row.ino)
        pos = 0
        for s, e in [*self.upper.extents(row.ino), (row.size, row.size)]:
            stop = min(s, row.limit)
            while pos < stop:
                piece = await self._lower_read(row.lower, pos, min(stop - pos, 4 << 20))
                if not piece:
                    break
                _pwrite_all(fd, piece, pos)
                pos += len(piece)
            pos = max(pos, e)
        row.lower = row.limit = 0
        final = row

        def done(txn: UpperTxn) -> None:
            txn.drop_extents(final.ino)
            txn.put(final)

        self.upper.change(done)

    def _sweep_orphans(self) -> None:
        """Files unlinked while open when the daemon stopped: nobody can open them again."""
        for row in self.upper.nodes():
            if row.nlink == 0 and not stat.S_ISDIR(row.mode):
                self.upper.change(lambda txn, i=row.ino: txn.delete(i))  # type: ignore[misc]
                self.upper.remove_data(row.ino)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
