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

Inode 1 is the version's root directory; the others are numbered in path order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable

import msgpack
import xxhash

from ..store.manifest import ChunkRef, FileEntry
from .env import open_env, release_env

FILETABLE_FORMAT = 1
ROOT_INO = 1
KIND_FILE = 0
KIND_DIR = 1

_U32 = struct.Struct(">I")
_BATCH = 20_000


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


def _decode_node(ino: int, raw: bytes) -> Node:
    kind, size, mode, mtime_ns, rows, *external = msgpack.unpackb(raw)
    chunks = tuple(ChunkRef(bytes(r[0]), r[1], bytes(r[2]).hex(), r[3], r[4], r[5]) for r in rows)
    return Node(ino, kind, size, mode, mtime_ns, chunks, *external)


def _pack_chunks(chunks: list[ChunkRef]) -> list:
    return [[c.digest, c.size, bytes.fromhex(c.pack), c.offset, c.length, c.codec] for c in chunks]


class FileTables:
    """Imported file tables in the cache directory's LMDB environment."""

    def __init__(self, directory: str):
        self._cenv = open_env(directory)
        try:
            self._versions = self._cenv.db("ft_versions")
            self._nodes = self._cenv.db("ft_nodes")
            self._names = self._cenv.db("ft_names")
            self._order = self._cenv.db("ft_order")
        except BaseException:  # e.g. a full map: creating a table is a write
            release_env(self._cenv)
            raise

    def close(self) -> None:
        if self._cenv is not None:
            release_env(self._cenv)
            self._cenv = None  # type: ignore[assignment]

    # --- import ----------------------------------------------------------------

    def info(self, vk: bytes) -> TableInfo | None:
        """The table's counts if an import of this version completed, else None."""
        with self._cenv.begin() as txn:
            raw = txn.get(vk, db=self._versions)
        if raw is None:
            return None
        doc = msgpack.unpackb(raw)
        if doc.get("format") != FILETABLE_FORMAT:
            return None
        return TableInfo(doc["files"], doc["dirs"], doc["bytes"])

    def import_version(self, vk: bytes, entries: Iterable[FileEntry], mtime_ns: int) -> TableInfo:
        """Import entries (sorted by path) as the version's table; replaces a partial import."""
        self.drop(vk)
        dirs: dict[str, int] = {"": ROOT_INO}
        next_ino = ROOT_INO + 1
        files = nbytes = 0
        batch: list[tuple[object, bytes, bytes]] = []
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

    def _write(self, batch: list[tuple[object, bytes, bytes]]) -> None:
        batch.sort(key=lambda t: (id(t[0]), t[1]))  # append-friendly order per db
        with self._cenv.begin(write=True) as txn:
            for db, k, v in batch:
                txn.put(k, v, db=db)

    def drop(self, vk: bytes) -> None:
        """Remove a version's table (complete or partial)."""
        with self._cenv.begin(write=True) as txn:
            txn.delete(vk, db=self._versions)
            for db in (self._nodes, self._names, self._order):
                cur = txn.cursor(db=db)
                if cur.set_range(vk):
                    while cur.key()[:10] == vk:
                        if not cur.delete():
                            break

    def imported(self) -> list[bytes]:
        with self._cenv.begin() as txn:
            return [bytes(k) for k, _ in txn.cursor(db=self._versions)]

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
