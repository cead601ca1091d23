"""A writable copy's upper layer: what changed on top of the draft's files, kept on local disk.

One folder per draft (``<cache>/upper/<draft id>/``, owner-only)::

    index/           LMDB (cache/env.py), opened with sync=False: every file operation is one
                     commit, made durable by ``flush()`` when the writer calls fsync
    data/<ino hex>   the bytes written to one file (sparse), named by its inode number
    lock             flock()ed by the daemon serving the copy: two mounts of one draft are refused

The lower layer is the draft's file table as imported into the cache
(``filetable.FileTables``); its inode numbers (below :data:`UPPER_BASE`) are
the copy's too, so an unchanged file needs no row here.  Sub-databases:

- ``nodes``: inode -> :class:`UNode`, for every node that is new or changed
  (attributes, content, links); a lower node without a row is as the lower
  table says.
- ``dirents``: parent inode + name -> child inode, for *listed* directories
  only: the first change inside a lower directory copies its names (not its
  files, not its subfolders) here, and from then on this is its listing.  So
  a delete is a missing name and a rename of a whole folder is one moved name,
  never a copy of the tree.
- ``extents``: inode + start -> end, the ranges written to a large lower file
  whose unchanged ranges are still read from the store (``UNode.lower``).
- ``meta``: the next inode number, the draft, and the digest of the lower
  table the rows refer to (a remount over another lower table is refused).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import stat
import struct
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, TypeVar

import msgpack

from ..errors import UsageError
from ..store import FileEntry
from .env import CacheEnv, open_env, release_env

T = TypeVar("T")

#: inode numbers from here on are nodes made in the copy; below are the lower table's
UPPER_BASE = 1 << 32
_U64 = struct.Struct(">Q")
_U64x2 = struct.Struct(">QQ")


@dataclass(slots=True)
class UNode:
    """A node of the copy that is new or differs from the lower table.

    ``mode`` is a full ``st_mode`` (type bits included).  Content of a regular
    file: ``lower`` (a lower inode, 0 for none) for bytes below ``limit`` that
    no extent covers; ``data`` when the data file exists.  ``data and not
    lower``: the data file holds the whole content.
    """

    ino: int
    mode: int
    uid: int
    gid: int
    size: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    nlink: int = 1
    rdev: int = 0
    target: bytes = b""
    lower: int = 0
    limit: int = 0
    data: bool = False
    #: directories: the listing is in ``dirents`` (else it is the lower directory ``lower``'s)
    listed: bool = False
    atime_ns: int = 0

    @property
    def kind(self) -> int:
        return stat.S_IFMT(self.mode)

    def pack(self) -> bytes:
        return msgpack.packb([self.mode, self.uid, self.gid, self.size, self.mtime_ns, self.ctime_ns, self.nlink,
                              self.rdev, self.target, self.lower, self.limit, self.data, self.listed, self.atime_ns])

    @classmethod
    def unpack(cls, ino: int, raw: bytes) -> "UNode":
        v = msgpack.unpackb(raw)
        return cls(ino, *v)


def lower_digest(entries: Iterable[FileEntry]) -> str:
    """What identifies a lower table: its paths, sizes and contents in order (inode numbers follow from it)."""
    h = hashlib.blake2b(digest_size=16)
    for e in entries:
        h.update(e.path.encode(errors="surrogateescape") + b"\0" + _U64.pack(e.size) + e.digest + b"\0")
    return h.hexdigest()


class UpperTxn:
    """The changes of one file operation, in one LMDB transaction."""

    def __init__(self, upper: "Upper", txn: Any) -> None:
        self._u = upper
        self._txn = txn

    def node(self, ino: int) -> UNode | None:
        raw = self._txn.get(_U64.pack(ino), db=self._u._nodes)
        return None if raw is None else UNode.unpack(ino, bytes(raw))

    def put(self, node: UNode) -> None:
        self._txn.put(_U64.pack(node.ino), node.pack(), db=self._u._nodes)

    def delete(self, ino: int) -> None:
        self._txn.delete(_U64.pack(ino), db=self._u._nodes)
        self.drop_extents(ino)

    def new_ino(self) -> int:
        raw = self._txn.get(b"next_ino", db=self._u._meta)
        ino = UPPER_BASE if raw is None else _U64.unpack(raw)[0]
        self._txn.put(b"next_ino", _U64.pack(ino + 1), db=self._u._meta)
        return ino

    def dirent(self, parent: int, name: bytes) -> int | None:
        raw = self._txn.get(_U64.pack(parent) + name, db=self._u._dirents)
        return None if raw is None else _U64.unpack(raw)[0]

    def link(self, parent: int, name: bytes, ino: int) -> None:
        self._txn.put(_U64.pack(parent) + name, _U64.pack(ino), db=self._u._dirents)

    def unlink(self, parent: int, name: bytes) -> None:
        self._txn.delete(_U64.pack(parent) + name, db=self._u._dirents)

    def has_children(self, parent: int) -> bool:
        prefix = _U64.pack(parent)
        cur = self._txn.cursor(db=self._u._dirents)
        return bool(cur.set_range(prefix)) and bytes(cur.key()).startswith(prefix)

    def add_extent(self, ino: int, start: int, end: int) -> None:
        """Mark [start, end) written, merging with the extents it touches."""
        db = self._u._extents
        cur = self._txn.cursor(db=db)
        prefix = _U64.pack(ino)

        def mine() -> bool:
            return bytes(cur.key()).startswith(prefix)

        # the extent starting before ``start`` may reach into it
        found = cur.set_range(_U64x2.pack(ino, start))
        if not (found and mine() and _U64x2.unpack(bytes(cur.key()))[1] == start):
            if (cur.prev() if found else cur.last()) and mine():
                s = _U64x2.unpack(bytes(cur.key()))[1]
                e = _U64.unpack(bytes(cur.value()))[0]
                if e >= start:
                    start, end = s, max(end, e)
                    cur.delete()
        # extents starting inside [start, end] are swallowed
        while cur.set_range(_U64x2.pack(ino, start)) and mine():
            s = _U64x2.unpack(bytes(cur.key()))[1]
            if s > end:
                break
            end = max(end, _U64.unpack(bytes(cur.value()))[0])
            cur.delete()
        self._txn.put(_U64x2.pack(ino, start), _U64.pack(end), db=db)

    def clip_extents(self, ino: int, size: int) -> None:
        """Forget what was written at or beyond ``size`` (a truncate)."""
        for s, e in self._u._extents_in(self._txn, ino):
            if s >= size:
                self._txn.delete(_U64x2.pack(ino, s), db=self._u._extents)
            elif e > size:
                self._txn.put(_U64x2.pack(ino, s), _U64.pack(size), db=self._u._extents)

    def drop_extents(self, ino: int) -> None:
        for s, _ in self._u._extents_in(self._txn, ino):
            self._txn.delete(_U64x2.pack(ino, s), db=self._u._extents)


class Upper:
    """The upper layer of one draft's writable copy (module docstring); one process at a time."""

    def __init__(self, directory: str, draft_id: str) -> None:
        """Open (creating if new) the layer in ``directory``.

        Raises :class:`UsageError` if another process serves it."""
        self.directory = directory
        self.draft_id = draft_id
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.makedirs(os.path.join(directory, "data"), mode=0o700, exist_ok=True)
        self._lock_fd = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise UsageError(f"draft {draft_id} is already mounted writable (its upper layer {directory} is in use); "
                             "run `mountfs umount` on that mount first") from None
        self._cenv: CacheEnv | None = None
        try:
            self._cenv = open_env(directory, sync=False)
            self._nodes = self._cenv.db("up_nodes")
            self._dirents = self._cenv.db("up_dirents")
            self._extents = self._cenv.db("up_extents")
            self._meta = self._cenv.db("up_meta")
        except BaseException:
            self.close()
            raise

    def has_changes(self) -> bool:
        with self.cenv.begin() as txn:
            return bool(txn.stat(self._nodes)["entries"])

    @property
    def cenv(self) -> CacheEnv:
        assert self._cenv is not None
        return self._cenv

    def close(self) -> None:
        if self._cenv is not None:
            release_env(self._cenv)
            self._cenv = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # --- the lower table the rows refer to -----------------------------------------

    def save_lower(self, data: bytes, digest: str) -> None:
        """Keep the lower table (manifest-encoded) the rows refer to: a ``close`` replaces the draft's table,
        and one interrupted halfway runs again from this copy."""
        _atomic_write(os.path.join(self.directory, "lower.mfs"), data)
        self.change(lambda t: t._txn.put(b"lower", digest.encode(), db=self._meta))
        self.flush()

    def load_lower(self) -> bytes | None:
        try:
            with open(os.path.join(self.directory, "lower.mfs"), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def set_closing(self, on: bool) -> None:
        """Mark that ``close`` is replacing the draft's table with this copy's files (cleared if it fails
        before that)."""
        self.change(lambda t: t._txn.put(b"closing", b"1" if on else b"0", db=self._meta))
        self.flush()

    def closing(self) -> bool:
        with self.cenv.begin() as txn:
            return bytes(txn.get(b"closing", db=self._meta) or b"0") == b"1"

    def lower_digest(self) -> str:
        with self.cenv.begin() as txn:
            return bytes(txn.get(b"lower", db=self._meta) or b"").decode()

    # --- reading (outside a change) -------------------------------------------------

    def node(self, ino: int) -> UNode | None:
        with self.cenv.begin() as txn:
            raw = txn.get(_U64.pack(ino), db=self._nodes)
        return None if raw is None else UNode.unpack(ino, bytes(raw))

    def dirent(self, parent: int, name: bytes) -> int | None:
        with self.cenv.begin() as txn:
            raw = txn.get(_U64.pack(parent) + name, db=self._dirents)
        return None if raw is None else _U64.unpack(raw)[0]

    def children(self, parent: int) -> list[tuple[bytes, int]]:
        """(name, inode) of a listed directory, by name."""
        prefix = _U64.pack(parent)
        out: list[tuple[bytes, int]] = []
        with self.cenv.begin() as txn:
            cur = txn.cursor(db=self._dirents)
            if cur.set_range(prefix):
                for k, v in cur:
                    k = bytes(k)
                    if not k.startswith(prefix):
                        break
                    out.append((k[8:], _U64.unpack(bytes(v))[0]))
        return out

    def extents(self, ino: int) -> list[tuple[int, int]]:
        with self.cenv.begin() as txn:
            return list(self._extents_in(txn, ino))

    def _extents_in(self, txn: Any, ino: int) -> Iterator[tuple[int, int]]:
        prefix = _U64.pack(ino)
        cur = txn.cursor(db=self._extents)
        out = []
        if cur.set_range(prefix):
            for k, v in cur:
                k = bytes(k)
                if not k.startswith(prefix):
                    break
                out.append((_U64x2.unpack(k)[1], _U64.unpack(bytes(v))[0]))
        return iter(out)

    def nodes(self) -> list[UNode]:
        """Every row (for status and for sweeping orphans)."""
        with self.cenv.begin() as txn:
            return [UNode.unpack(_U64.unpack(bytes(k))[0], bytes(v)) for k, v in txn.cursor(db=self._nodes)]

    # --- changing ------------------------------------------------------------------

    def change(self, fn: Callable[[UpperTxn], T]) -> T:
        """``fn`` in one committed transaction (run again if the map had to grow)."""
        return self.cenv.write(lambda txn: fn(UpperTxn(self, txn)))

    def flush(self) -> None:
        """Make every committed change durable (fsync)."""
        self.cenv.flush()

    def data_path(self, ino: int) -> str:
        return os.path.join(self.directory, "data", f"{ino:x}")

    def open_data(self, ino: int, create: bool) -> int:
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        return os.open(self.data_path(ino), flags, 0o600)

    def remove_data(self, ino: int) -> None:
        try:
            os.unlink(self.data_path(ino))
        except FileNotFoundError:
            pass

    def pending(self) -> tuple[int, int]:
        """(nodes changed, bytes held in data files), for ``mountfs status``."""
        held = 0
        data = os.path.join(self.directory, "data")
        with os.scandir(data) as it:
            for entry in it:
                try:
                    held += entry.stat(follow_symlinks=False).st_blocks * 512
                except OSError:
                    continue
        with self.cenv.begin() as txn:
            return int(txn.stat(self._nodes)["entries"]), held


def upper_dir(cache_dir: str, draft_id: str) -> str:
    """Where the upper layer of ``draft_id``'s writable copy lives."""
    return os.path.join(cache_dir, "upper", draft_id)


def exists(cache_dir: str, draft_id: str) -> bool:
    return os.path.isdir(os.path.join(upper_dir(cache_dir, draft_id), "index"))


def discard(cache_dir: str, draft_id: str) -> None:
    """Remove a draft's upper layer (after it was closed into a version, or on request).

    Refused while a daemon serves it."""
    directory = upper_dir(cache_dir, draft_id)
    if not os.path.isdir(directory):
        return
    fd = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"the writable copy of draft {draft_id} is mounted; unmount it first") from None
        trash = directory + f".trash-{os.getpid()}"
        os.rename(directory, trash)
    finally:
        os.close(fd)
    shutil.rmtree(trash, ignore_errors=True)


def busy(cache_dir: str, draft_id: str) -> bool:
    """Whether a daemon serves the draft's writable copy right now."""
    path = os.path.join(upper_dir(cache_dir, draft_id), "lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def has_changes(cache_dir: str, draft_id: str) -> bool:
    """Whether the draft has a writable copy holding changes (opens it: not while a daemon serves it)."""
    if not exists(cache_dir, draft_id):
        return False
    up = Upper(upper_dir(cache_dir, draft_id), draft_id)
    try:
        return up.has_changes()
    finally:
        up.close()
