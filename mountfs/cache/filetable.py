"""File tables of mounted versions, imported from manifests into LMDB.

A mounted version's lookups and directory listings are B-tree range scans in
the cache's LMDB environment instead of a million-entry dict in memory.
Versions are immutable, so a table imported once serves every later mount and
daemon restart until it is dropped.

Sub-databases (keys start with the version key ``vk``: the 10 bytes of the
dataset id)::

    ft_versions  vk                         -> msgpack {files, dirs, bytes, format}   (import complete)
    ft_nodes     vk | ino u32               -> msgpack [kind, size, mode, mtime_ns, chunks]
    ft_names     vk | parent u32 | name     -> child ino u32       (lookup)
    ft_order     vk | parent u32 | child u32 -> name               (readdir, resumable by ino)
    ft_users     vk | token (8 bytes)        -> b""                 (a process uses the table)

Inode 1 is the version's root directory; the others are numbered in path order.

Tables go when their version does: :meth:`FileTables.retain` (the daemon's
catalog refresh) drops every table but those it is given, and
:meth:`FileTables.clear` (`mountfs cache clear`) drops them all.  Neither
drops a table another live process is using: a process that opened a table
(:meth:`~FileTables.info` found it, or it imported it) is recorded in
``ft_users`` under a token, and holds an exclusive ``flock`` on
``<dir>/leases/<token>`` while its tables are open.  A lock dies with its
process, wherever its pid lives (a container sharing the folder), so a lease
whose file is missing or unlocked is stale and is forgotten.  The caller's own
process is never protected that way: it says what it keeps.  A table is
dropped in batches of writes (a million-file table must not hold the writer
lock for seconds), its ``ft_versions`` row first and its nodes last, so a
half-dropped table is never complete and is still found by the next drop.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import struct
import threading
from dataclasses import dataclass
from typing import Any, Iterable

import lmdb
import msgpack
import xxhash

from ..errors import LocalDiskError, MountfsError
from ..store.manifest import ChunkRef, FileEntry
from .env import CacheEnv, open_env, release_env

log = logging.getLogger(__name__)

FILETABLE_FORMAT = 1
ROOT_INO = 1
KIND_FILE = 0
KIND_DIR = 1

_U32 = struct.Struct(">I")
_BATCH = 20_000
#: entries deleted per write transaction when a table is dropped
_DROP_BATCH = 50_000
_VK = 10  # bytes of a version key


def version_key(dataset_id: str) -> bytes:
    """10 bytes naming a version inside the tables."""
    try:
        raw = bytes.fromhex(dataset_id)
        if len(raw) == 10:
            return raw
    except ValueError:
        pass
    return xxhash.xxh3_128_digest(dataset_id.encode())[:10]


@dataclass(frozen=True, slots=True)
class Node:
    """One file or directory of a mounted version."""

    ino: int
    kind: int
    size: int
    mode: int
    mtime_ns: int
    chunks: tuple[ChunkRef, ...] = ()
    #: external files: the source URL and its ETag/generation when added
    url: str = ""
    etag: str = ""

    @property
    def is_dir(self) -> bool:
        return self.kind == KIND_DIR


@dataclass(frozen=True, slots=True)
class TableInfo:
    files: int
    dirs: int
    bytes: int


def _decode_node(ino: int, raw: bytes | memoryview) -> Node:
    kind, size, mode, mtime_ns, rows, *external = msgpack.unpackb(raw)
    chunks = tuple(ChunkRef(bytes(r[0]), r[1], bytes(r[2]).hex(), r[3], r[4], r[5]) for r in rows)
    return Node(ino, kind, size, mode, mtime_ns, chunks, *external)


def _pack_chunks(chunks: Iterable[ChunkRef]) -> list[list[object]]:
    return [[c.digest, c.size, bytes.fromhex(c.pack), c.offset, c.length, c.codec] for c in chunks]


class _Lease:
    """This process's claim on the tables it uses in one cache directory (module docstring)."""

    def __init__(self, cenv: CacheEnv) -> None:
        self.cenv = cenv
        self.refs = 0
        self.token = secrets.token_bytes(8)
        self.fd = -1  # the locked lease file, once a table is used
        self.vks: set[bytes] = set()  # recorded in ft_users
        self.lock = threading.Lock()

    def path(self, token: bytes) -> str:
        return os.path.join(self.cenv.directory, "leases", token.hex())

    def take(self) -> bool:
        """Create and lock this process's lease file (once); False if the folder does not allow it."""
        if self.fd >= 0:
            return True
        folder = os.path.dirname(self.path(self.token))
        tmp = f"{self.path(self.token)}.{os.getpid()}.tmp"
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # locked before it has its name: a file under a lease's name is never unlocked while its owner lives
                os.rename(tmp, self.path(self.token))
            except BaseException:
                os.close(fd)
                raise
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            log.debug("cache %s: no lease file (%s); other processes may drop tables in use here",
                      self.cenv.directory, exc)
            return False
        self.fd = fd
        return True

    def give_back(self) -> None:
        """Forget this process's uses (the last FileTables of the directory closed)."""
        if self.vks:
            with contextlib.suppress(MountfsError, lmdb.Error):
                users = self.cenv.db("ft_users")
                keys = [vk + self.token for vk in self.vks]
                self.cenv.write(lambda txn: [txn.delete(k, db=users) for k in keys])
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.unlink(self.path(self.token))
            os.close(self.fd)
            self.fd = -1

    def alive(self, token: bytes) -> bool:
        """Whether the process that holds lease ``token`` still runs (its file is locked)."""
        if token == self.token:
            return False  # this process: the caller decides what it keeps
        try:
            fd = os.open(self.path(token), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError:
            return True  # cannot tell: keep its tables
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True  # locked by its owner (EWOULDBLOCK), or cannot tell: keep its tables
        else:
            with contextlib.suppress(OSError):  # stale: its owner died
                os.unlink(self.path(token))
            return False
        finally:
            os.close(fd)


_leases: dict[str, _Lease] = {}
_leases_lock = threading.Lock()


class FileTables:
    """Imported file tables in the cache directory's LMDB environment."""

    def __init__(self, directory: str):
        self._cenv = open_env(directory)
        self._closed = False
        try:
            self._versions = self._cenv.db("ft_versions")
            self._nodes = self._cenv.db("ft_nodes")
            self._names = self._cenv.db("ft_names")
            self._order = self._cenv.db("ft_order")
            self._users = self._cenv.db("ft_users")
        except BaseException:  # e.g. a full map: creating a table is a write
            release_env(self._cenv)
            raise
        with _leases_lock:
            lease = _leases.get(self._cenv.directory)
            if lease is None or lease.cenv is not self._cenv:
                lease = _leases[self._cenv.directory] = _Lease(self._cenv)
            lease.refs += 1
        self._lease = lease

    def close(self) -> None:
        """Give the environment back; the last FileTables of a directory also gives up its lease."""
        if self._closed:
            return
        self._closed = True
        cenv = self._cenv
        with _leases_lock:
            self._lease.refs -= 1
            last = self._lease.refs == 0
            if last and _leases.get(cenv.directory) is self._lease:
                del _leases[cenv.directory]
        if last:
            self._lease.give_back()
        release_env(cenv)

    # --- use by this process ------------------------------------------------------

    def _use(self, vk: bytes) -> None:
        """Record that this process uses table ``vk`` (once), so that another
        process's :meth:`retain` or :meth:`clear` keeps it.  Best effort: a folder
        that refuses the write leaves the table unprotected, not the mount broken."""
        lease = self._lease
        with lease.lock:
            if vk in lease.vks or not lease.take():
                return
            try:
                self._cenv.write(lambda txn: txn.put(vk + lease.token, b"", db=self._users))
            except LocalDiskError as exc:
                log.debug("cache %s: use of table %s not recorded: %s", self._cenv.directory, vk.hex(), exc)
                return
            lease.vks.add(vk)

    def _used_elsewhere(self, txn: lmdb.Transaction, vk: bytes) -> bool:
        """Whether another live process uses table ``vk``; forgets stale uses (in ``txn``, a write)."""
        cur = txn.cursor(db=self._users)
        stale: list[bytes] = []
        used = False
        if cur.set_range(vk):
            for key in cur.iternext(values=False):
                if key[:_VK] != vk:
                    break
                token = bytes(key[_VK:])
                if token == self._lease.token:
                    continue
                if self._lease.alive(token):
                    used = True
                    break
                stale.append(bytes(key))
        for key in stale:
            txn.delete(key, db=self._users)
        return used

    # --- import ----------------------------------------------------------------

    def info(self, vk: bytes) -> TableInfo | None:
        """The table's counts if an import of this version completed, else None.

        A table found is recorded as used by this process (module docstring)."""
        with self._cenv.begin() as txn:
            raw = txn.get(vk, db=self._versions)
        if raw is None:
            return None
        doc = msgpack.unpackb(raw)
        if doc.get("format") != FILETABLE_FORMAT:
            return None
        self._use(vk)
        return TableInfo(doc["files"], doc["dirs"], doc["bytes"])

    def import_version(self, vk: bytes, entries: Iterable[FileEntry], mtime_ns: int) -> TableInfo:
        """Import entries (sorted by path) as the version's table; replaces a partial import.

        Raises :class:`DiskFull` when the disk fills (what was written is dropped again)."""
        self._use(vk)  # before anything is written: another process's retain() keeps it from now on
        self.drop(vk)
        try:
            return self._import(vk, entries, mtime_ns)
        except LocalDiskError:
            with contextlib.suppress(MountfsError, lmdb.Error):
                self.drop(vk)  # a partial table is useless; give its space back if we can
            raise

    def _import(self, vk: bytes, entries: Iterable[FileEntry], mtime_ns: int) -> TableInfo:
        dirs: dict[str, int] = {"": ROOT_INO}
        next_ino = ROOT_INO + 1
        files = nbytes = 0
        batch: list[tuple[Any, bytes, bytes]] = []
        dir_node = msgpack.packb([KIND_DIR, 0, 0o555, mtime_ns, []])
        batch.append((self._nodes, vk + _U32.pack(ROOT_INO), dir_node))

        def link(parent: int, ino: int, name: str) -> None:
            nb = name.encode()
            batch.append((self._names, vk + _U32.pack(parent) + nb, _U32.pack(ino)))
            batch.append((self._order, vk + _U32.pack(parent) + _U32.pack(ino), nb))

        for e in entries:
            head, _, name = e.path.rpartition("/")
            parent = dirs.get(head)
            if parent is None:
                # create the missing ancestors, outermost first
                parts = head.split("/")
                parent = ROOT_INO
                for i in range(len(parts)):
                    sub = "/".join(parts[: i + 1])
                    ino = dirs.get(sub)
                    if ino is None:
                        ino = dirs[sub] = next_ino
                        next_ino += 1
                        batch.append((self._nodes, vk + _U32.pack(ino), dir_node))
                        link(parent, ino, parts[i])
                    parent = ino
            ino = next_ino
            next_ino += 1
            node = [KIND_FILE, e.size, e.mode & 0o7777, e.mtime_ns, _pack_chunks(e.chunks)]
            if e.url:
                node += [e.url, e.etag]
            batch.append((self._nodes, vk + _U32.pack(ino), msgpack.packb(node)))
            link(parent, ino, name)
            files += 1
            nbytes += e.size
            if len(batch) >= _BATCH:
                self._write(batch)
                batch = []
        info = TableInfo(files, len(dirs), nbytes)
        batch.append((self._versions, vk, msgpack.packb({"files": files, "dirs": len(dirs), "bytes": nbytes,
                                                         "format": FILETABLE_FORMAT})))
        self._write(batch)
        return info

    def _write(self, batch: list[tuple[Any, bytes, bytes]]) -> None:
        batch.sort(key=lambda t: (id(t[0]), t[1]))  # append-friendly order per db

        def put(txn: lmdb.Transaction) -> None:  # runs again if the map grew: puts overwrite
            for db, k, v in batch:
                txn.put(k, v, db=db)

        self._cenv.write(put)

    # --- dropping ------------------------------------------------------------------

    def drop(self, vk: bytes) -> None:
        """Remove a version's table (complete or partial), whoever uses it."""
        while not self._cenv.write(lambda txn: self._delete_some(txn, vk)):
            pass

    def retain(self, version_ids: Iterable[str]) -> int:
        """Drop the table of every version whose dataset id is not in ``version_ids``
        (complete or partial imports); return how many were dropped.

        Tables another live process uses are kept (module docstring); this
        process's own are not, so pass every version it still serves.  A drop
        of a large table takes a while: call it off the event loop."""
        keep = {version_key(v) for v in version_ids}
        return sum(self._drop_unused(vk) for vk in self._stored() - keep)

    def clear(self) -> int:
        """Drop every table no other live process uses (`mountfs cache clear`); return how many."""
        return sum(self._drop_unused(vk) for vk in self._stored())

    def _stored(self) -> set[bytes]:
        """Version keys with anything stored: complete tables and partial ones (nodes)."""
        with self._cenv.begin() as txn:
            out = {bytes(k) for k in txn.cursor(db=self._versions).iternext(values=False)}
            cur = txn.cursor(db=self._nodes)
            ok = cur.first()
            while ok:  # one seek per version, not one step per node
                vk = bytes(cur.key()[:_VK])
                out.add(vk)
                n = int.from_bytes(vk, "big") + 1
                ok = n < 1 << (8 * _VK) and cur.set_range(n.to_bytes(_VK, "big"))
        return out

    def _drop_unused(self, vk: bytes) -> bool:
        """Drop table ``vk`` unless another live process uses it; whether it went.

        The check runs in each batch's own transaction: a process that starts
        using the table meanwhile (its use is a write, so it comes between two
        batches) stops the drop, and its import starts with a drop of its own."""
        while True:
            done = self._drop_batch(vk)
            if done is None:
                return False
            if done:
                return True

    def _drop_batch(self, vk: bytes) -> bool | None:
        """One transaction of :meth:`_drop_unused`: ``None`` if another live process
        uses the table, else whether nothing of it is left."""
        def batch(txn: lmdb.Transaction) -> bool | None:
            if self._used_elsewhere(txn, vk):
                return None
            return self._delete_some(txn, vk)

        return self._cenv.write(batch)

    def _delete_some(self, txn: lmdb.Transaction, vk: bytes) -> bool:
        """Delete up to :data:`_DROP_BATCH` entries of table ``vk``; whether none is left."""
        txn.delete(vk, db=self._versions)  # first: the table is not complete from now on
        left = _DROP_BATCH
        for db in (self._names, self._order, self._nodes):  # nodes last: how _stored finds a half-dropped table
            cur = txn.cursor(db=db)
            if cur.set_range(vk):
                while left > 0 and cur.key()[:_VK] == vk:
                    if not cur.delete():
                        break
                    left -= 1
            if left == 0:
                return False
        return True

    def imported(self) -> list[bytes]:
        """Version keys of the complete tables."""
        with self._cenv.begin() as txn:
            return [bytes(k) for k in txn.cursor(db=self._versions).iternext(values=False)]

    # --- queries ---------------------------------------------------------------

    def node(self, vk: bytes, ino: int) -> Node | None:
        with self._cenv.begin() as txn:
            raw = txn.get(vk + _U32.pack(ino), db=self._nodes)
        return None if raw is None else _decode_node(ino, raw)

    def lookup(self, vk: bytes, parent: int, name: bytes) -> int | None:
        with self._cenv.begin() as txn:
            raw = txn.get(vk + _U32.pack(parent) + name, db=self._names)
        return None if raw is None else _U32.unpack(raw)[0]

    def children(self, vk: bytes, parent: int, after: int = 0, limit: int = 1000) -> list[tuple[bytes, int]]:
        """(name, ino) of a directory's children with ino > ``after``, in ino order."""
        prefix = vk + _U32.pack(parent)
        out: list[tuple[bytes, int]] = []
        with self._cenv.begin() as txn:
            cur = txn.cursor(db=self._order)
            if not cur.set_range(prefix + _U32.pack(after + 1)):
                return out
            for k, v in cur:
                if k[:14] != prefix or len(out) >= limit:
                    break
                out.append((bytes(v), _U32.unpack(k[14:18])[0]))
        return out

    def next_files(self, vk: bytes, ino: int, count: int) -> list[Node]:
        """The files numbered after ``ino`` (the next files in path order), for prefetch."""
        out: list[Node] = []
        with self._cenv.begin() as txn:
            cur = txn.cursor(db=self._nodes)
            if not cur.set_range(vk + _U32.pack(ino + 1)):
                return out
            for k, raw in cur:
                if k[:10] != vk or len(out) >= count:
                    break
                node = _decode_node(_U32.unpack(k[10:14])[0], raw)
                if node.kind == KIND_FILE:
                    out.append(node)
        return out
