"""The pyfuse3 adapter of a writable copy (``overlay.Overlay``): converts types and errors, nothing else.

What each operation does and answers is in docs/SEMANTICS.md ("Writable
copies").  Not defined here, so ENOSYS, which the kernel takes as "not
supported": extended attributes (the kernel then answers EOPNOTSUPP),
``access`` (``default_permissions``: the kernel checks modes itself).
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

import pyfuse3

from . import overlay
from .errnos import errno_for
from .overlay import Overlay, Stat

log = logging.getLogger(__name__)

_RENAME = {pyfuse3.RENAME_NOREPLACE: overlay.RENAME_NOREPLACE, pyfuse3.RENAME_EXCHANGE: overlay.RENAME_EXCHANGE}


def _fail(exc: BaseException, what: str) -> pyfuse3.FUSEError:
    if isinstance(exc, pyfuse3.FUSEError):
        return exc
    if isinstance(exc, OSError) and exc.errno:
        if exc.errno in (errno.EIO, errno.ENOSPC):
            log.error("%s: %s", what, exc)
        return pyfuse3.FUSEError(exc.errno)
    return pyfuse3.FUSEError(errno_for(exc, what))


def _entry(st: Stat) -> pyfuse3.EntryAttributes:
    e = pyfuse3.EntryAttributes()
    e.st_ino = pyfuse3.InodeT(st.ino)
    e.generation = 0
    e.entry_timeout = e.attr_timeout = overlay.TIMEOUT
    e.st_mode = pyfuse3.ModeT(st.mode)
    e.st_nlink = st.nlink
    e.st_uid = st.uid
    e.st_gid = st.gid
    e.st_rdev = st.rdev
    e.st_size = st.size
    e.st_blksize = 1 << 16
    e.st_blocks = (st.size + 511) // 512
    e.st_atime_ns = st.atime_ns
    e.st_mtime_ns = st.mtime_ns
    e.st_ctime_ns = st.ctime_ns
    return e


class WritableOperations(pyfuse3.Operations):
    """pyfuse3 entry points for an ``Overlay``."""

    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, ov: Overlay) -> None:
        super().__init__()
        self.ov = ov

    async def lookup(self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT,
                     ctx: pyfuse3.RequestContext | None = None) -> pyfuse3.EntryAttributes:
        try:
            return _entry(self.ov.lookup(parent_inode, name))
        except Exception as exc:
            raise _fail(exc, f"lookup {name!r}") from None

    async def getattr(self, inode: pyfuse3.InodeT,
                      ctx: pyfuse3.RequestContext | None = None) -> pyfuse3.EntryAttributes:
        try:
            return _entry(self.ov.stat(inode))
        except Exception as exc:
            raise _fail(exc, f"getattr {inode}") from None

    async def setattr(self, inode: pyfuse3.InodeT, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: pyfuse3.FileHandleT | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        try:
            kw: dict[str, Any] = {}
            if fields.update_mode:
                kw["mode"] = attr.st_mode
            if fields.update_uid:
                kw["uid"] = attr.st_uid
            if fields.update_gid:
                kw["gid"] = attr.st_gid
            if fields.update_size:
                kw["size"] = attr.st_size
            if fields.update_mtime:
                kw["mtime_ns"] = attr.st_mtime_ns
            if fields.update_atime:
                kw["atime_ns"] = attr.st_atime_ns
            return _entry(await self.ov.setattr(inode, **kw))
        except Exception as exc:
            raise _fail(exc, f"setattr {inode}") from None

    async def readlink(self, inode: pyfuse3.InodeT, ctx: pyfuse3.RequestContext) -> pyfuse3.FileNameT:
        try:
            return pyfuse3.FileNameT(self.ov.readlink(inode))
        except Exception as exc:
            raise _fail(exc, f"readlink {inode}") from None

    async def mknod(self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT, mode: pyfuse3.ModeT, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        try:
            return _entry(self.ov.mknod(parent_inode, name, mode, rdev, ctx.uid, ctx.gid))
        except Exception as exc:
            raise _fail(exc, f"mknod {name!r}") from None

    async def mkdir(self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT, mode: pyfuse3.ModeT,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        try:
            return _entry(self.ov.mkdir(parent_inode, name, mode, ctx.uid, ctx.gid))
        except Exception as exc:
            raise _fail(exc, f"mkdir {name!r}") from None

    async def unlink(self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT, ctx: pyfuse3.RequestContext) -> None:
        try:
            self.ov.unlink(parent_inode, name)
        except Exception as exc:
            raise _fail(exc, f"unlink {name!r}") from None

    async def rmdir(self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT, ctx: pyfuse3.RequestContext) -> None:
        try:
            self.ov.rmdir(parent_inode, name)
        except Exception as exc:
            raise _fail(exc, f"rmdir {name!r}") from None

    async def symlink(self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT, target: pyfuse3.FileNameT,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        try:
            return _entry(self.ov.symlink(parent_inode, name, target, ctx.uid, ctx.gid))
        except Exception as exc:
            raise _fail(exc, f"symlink {name!r}") from None

    async def rename(self, parent_inode_old: pyfuse3.InodeT, name_old: pyfuse3.FileNameT,
                     parent_inode_new: pyfuse3.InodeT, name_new: pyfuse3.FileNameT, flags: pyfuse3.FlagT,
                     ctx: pyfuse3.RequestContext) -> None:
        try:
            ours = 0
            for theirs, mine in _RENAME.items():
                if flags & theirs:
                    ours |= mine
                    flags = pyfuse3.FlagT(flags & ~theirs)
            if flags:
                raise OSError(errno.EINVAL, "unknown rename flags")
            self.ov.rename(parent_inode_old, name_old, parent_inode_new, name_new, ours)
        except Exception as exc:
            raise _fail(exc, f"rename {name_old!r} -> {name_new!r}") from None

    async def link(self, inode: pyfuse3.InodeT, new_parent_inode: pyfuse3.InodeT, new_name: pyfuse3.FileNameT,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        try:
            return _entry(self.ov.link(inode, new_parent_inode, new_name))
        except Exception as exc:
            raise _fail(exc, f"link {new_name!r}") from None

    async def open(self, inode: pyfuse3.InodeT, flags: pyfuse3.FlagT, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        try:
            fi = pyfuse3.FileInfo(fh=pyfuse3.FileHandleT(await self.ov.open(inode, flags)))
        except Exception as exc:
            raise _fail(exc, f"open {inode}") from None
        # every change passes through the kernel: what it cached stays right
        fi.keep_cache = True
        return fi

    async def create(self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT, mode: pyfuse3.ModeT,
                     flags: pyfuse3.FlagT, ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        try:
            fh, st = self.ov.create(parent_inode, name, mode, flags, ctx.uid, ctx.gid)
        except Exception as exc:
            raise _fail(exc, f"create {name!r}") from None
        fi = pyfuse3.FileInfo(fh=pyfuse3.FileHandleT(fh))
        fi.keep_cache = True
        return fi, _entry(st)

    async def read(self, fh: pyfuse3.FileHandleT, off: int, size: int) -> bytes | memoryview:  # type: ignore[override]
        try:
            return await self.ov.read(fh, off, size)
        except Exception as exc:
            raise _fail(exc, f"read fh={fh} off={off} size={size}") from None

    async def write(self, fh: pyfuse3.FileHandleT, off: int, buf: bytes) -> int:
        try:
            return await self.ov.write(fh, off, buf)
        except Exception as exc:
            raise _fail(exc, f"write fh={fh} off={off} size={len(buf)}") from None

    async def flush(self, fh: pyfuse3.FileHandleT) -> None:
        return None

    async def fsync(self, fh: pyfuse3.FileHandleT, datasync: bool) -> None:
        try:
            await self.ov.fsync(fh)
        except Exception as exc:
            raise _fail(exc, f"fsync fh={fh}") from None

    async def release(self, fh: pyfuse3.FileHandleT) -> None:
        try:
            self.ov.release(fh)
        except Exception as exc:
            raise _fail(exc, f"release fh={fh}") from None

    async def opendir(self, inode: pyfuse3.InodeT, ctx: pyfuse3.RequestContext) -> pyfuse3.FileHandleT:
        try:
            return pyfuse3.FileHandleT(self.ov.opendir(inode))
        except Exception as exc:
            raise _fail(exc, f"opendir {inode}") from None

    async def readdir(self, fh: pyfuse3.FileHandleT, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        try:
            for name, st, pos in self.ov.readdir(fh, start_id):
                if not pyfuse3.readdir_reply(token, pyfuse3.FileNameT(name), _entry(st), pos):
                    return
        except Exception as exc:
            raise _fail(exc, f"readdir {fh}") from None

    async def releasedir(self, fh: pyfuse3.FileHandleT) -> None:
        self.ov.releasedir(fh)

    async def fsyncdir(self, fh: pyfuse3.FileHandleT, datasync: bool) -> None:
        try:
            await self.ov.fsync_all()
        except Exception as exc:
            raise _fail(exc, f"fsyncdir {fh}") from None

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        try:
            v = self.ov.statfs()
        except Exception as exc:
            raise _fail(exc, "statfs") from None
        s = pyfuse3.StatvfsData()
        s.f_bsize, s.f_frsize = v.f_bsize, v.f_frsize
        s.f_blocks, s.f_bfree, s.f_bavail = v.f_blocks, v.f_bfree, v.f_bavail
        s.f_files, s.f_ffree, s.f_favail = v.f_files, v.f_ffree, v.f_favail
        s.f_namemax = 255
        return s
