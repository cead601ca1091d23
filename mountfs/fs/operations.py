"""The thin pyfuse3 adapter: converts types and errors, nothing else.

All logic lives in ``tree.Tree`` (names and attributes) and ``reader.Reader``
(bytes); errnos come from the one table in ``errnos``.  What each operation
answers is written down in docs/SEMANTICS.md.  Operations not defined here get
pyfuse3's default, ENOSYS, which the kernel takes as "not supported":

- ``flush``, ``fsync``: ENOSYS once, then the kernel stops asking and
  answers success itself (docs/FUSE.md item 2: a successful ``flush`` costs
  31% on small files).
- ``getxattr``, ``listxattr``: ENOSYS once, then the kernel answers EOPNOTSUPP.
- ``release``, ``releasedir``, ``forget``: nothing to free; inodes are numbers,
  not objects (``tree``).
- every write (``write``, ``create``, ``mkdir``, ``setattr``, ...): the mount
  is ``ro``, so the kernel answers EROFS before asking.
"""

from __future__ import annotations

import errno
import logging
import os
import stat

import pyfuse3

from ..cache.filetable import KIND_DIR
from .errnos import errno_for
from .reader import Reader
from .tree import KIND_LINK, Attr, Tree

log = logging.getLogger(__name__)

#: ``.`` and ``..`` come first in every listing, at positions 1 and 2
DOTS = 2
#: set by the patched pyfuse3 build (daemon/pyfuse3/): READ carries the inode when fh is 0
NO_OPEN_SUPPORTED = bool(getattr(pyfuse3, "MOUNTFS_NOOPEN_INO", False))

_TYPE = {KIND_DIR: stat.S_IFDIR, KIND_LINK: stat.S_IFLNK}
#: the kernel drops O_CREAT, O_EXCL and O_TRUNC before OPEN and refuses writable opens of an ro
#: mount itself; O_APPEND on a read-only open is harmless (the fd cannot write), and answering it
#: EROFS would depend on whether the kernel still sends OPEN at all (docs/FUSE.md item 5)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR


class Operations(pyfuse3.Operations):
    """pyfuse3 entry points for a read-only ``Tree``."""

    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, tree: Tree, reader: Reader, no_open: bool = NO_OPEN_SUPPORTED):
        super().__init__()
        self.tree = tree
        self.reader = reader
        self.no_open = no_open
        self.uid = os.getuid()
        self.gid = os.getgid()

    def _entry(self, a: Attr) -> pyfuse3.EntryAttributes:
        e = pyfuse3.EntryAttributes()
        e.st_ino = a.ino
        e.generation = 0
        e.entry_timeout = a.timeout
        e.attr_timeout = a.timeout
        e.st_mode = _TYPE.get(a.kind, stat.S_IFREG) | a.mode
        e.st_nlink = 1
        e.st_uid = self.uid
        e.st_gid = self.gid
        e.st_size = a.size
        e.st_blksize = 1 << 20
        e.st_blocks = (a.size + 511) // 512
        e.st_atime_ns = e.st_mtime_ns = e.st_ctime_ns = a.mtime_ns
        return e

    def _fail(self, exc: BaseException, what: str) -> pyfuse3.FUSEError:
        if isinstance(exc, pyfuse3.FUSEError):
            return exc
        return pyfuse3.FUSEError(errno_for(exc, what))

    async def lookup(self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT,
                     ctx: pyfuse3.RequestContext | None = None) -> pyfuse3.EntryAttributes:
        try:
            return self._entry(await self.tree.lookup(parent_inode, os.fsdecode(name)))
        except Exception as exc:
            raise self._fail(exc, f"lookup {name!r}") from None

    async def getattr(self, inode: pyfuse3.InodeT,
                      ctx: pyfuse3.RequestContext | None = None) -> pyfuse3.EntryAttributes:
        try:
            return self._entry(await self.tree.getattr(inode))
        except Exception as exc:
            raise self._fail(exc, f"getattr {inode}") from None

    async def readlink(self, inode: pyfuse3.InodeT, ctx: pyfuse3.RequestContext) -> pyfuse3.FileNameT:
        try:
            return os.fsencode(self.tree.readlink(inode))
        except Exception as exc:
            raise self._fail(exc, f"readlink {inode}") from None

    async def opendir(self, inode: pyfuse3.InodeT, ctx: pyfuse3.RequestContext) -> pyfuse3.FileHandleT:
        return inode

    async def readdir(self, fh: pyfuse3.FileHandleT, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        # positions: 1 after ".", 2 after "..", then the tree's own positions (>= 1) shifted by DOTS,
        # so every position resumes where it was given out (docs/SEMANTICS.md, "Directories")
        try:
            if start_id < DOTS:
                here = await self.tree.getattr(fh)
                dots = [(".", here), ("..", await self._parent(fh, here))]
                for pos, (name, attr) in enumerate(dots[start_id:], start=start_id + 1):
                    if not pyfuse3.readdir_reply(token, os.fsencode(name), self._entry(attr), pos):
                        return
                start_id = DOTS
            after = start_id - DOTS
            while True:
                batch = await self.tree.readdir(fh, after)
                if not batch:
                    return
                for name, attr, pos in batch:
                    if not pyfuse3.readdir_reply(token, os.fsencode(name), self._entry(attr), pos + DOTS):
                        return
                    after = pos
        except Exception as exc:
            raise self._fail(exc, f"readdir {fh}") from None

    async def _parent(self, ino: int, here: Attr) -> Attr:
        """The attributes ``..`` is listed with: the parent's where the tree knows it, else the folder's own.

        Only the inode number and type reach the reader of a listing; ``stat ..``
        and ``cd ..`` go through the kernel's own path walk, never through this."""
        parent = self.tree.parent(ino)
        return here if parent is None or parent == ino else await self.tree.getattr(parent)

    async def open(self, inode: pyfuse3.InodeT, flags: pyfuse3.FlagT, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if flags & _WRITE_FLAGS:  # never sent on an ro mount; kept for safety
            raise pyfuse3.FUSEError(errno.EROFS)
        if self.no_open:
            # the kernel stops sending OPEN/RELEASE for this mount and keeps
            # every file's page cache; READ then carries the inode (docs/FUSE.md item 5)
            raise pyfuse3.FUSEError(errno.ENOSYS)
        fi = pyfuse3.FileInfo(fh=inode)
        fi.keep_cache = True
        return fi

    # pyfuse3 takes any buffer: a read within one chunk goes out without a copy
    async def read(self, fh: pyfuse3.FileHandleT, off: int, size: int) -> bytes | memoryview:  # type: ignore[override]
        try:
            return await self.reader.read(fh, off, size)
        except Exception as exc:
            raise self._fail(exc, f"read ino={fh} off={off} size={size}") from None

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 1 << 20
        s.f_namemax = 255
        return s

    async def access(self, inode: pyfuse3.InodeT, mode: pyfuse3.ModeT, ctx: pyfuse3.RequestContext) -> bool:
        # with default_permissions the kernel checks modes itself and does not ask
        if mode & os.W_OK:
            raise pyfuse3.FUSEError(errno.EROFS)
        return True
