"""The read-only tree the daemon serves, without any FUSE types: lookups, attributes, listings.

Inode numbers: the catalog's own directories and links get small numbers
(below ``1 << SLOT_SHIFT``) kept stable for the life of the process; a
mounted version gets a *slot* and its files are ``slot << SLOT_SHIFT | ino``
where ``ino`` numbers the version's imported file table (1 = its root).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

import trio

from ..cache.filetable import KIND_DIR, ROOT_INO, FileTables, Node, version_key
from ..catalog import DatasetRecord
from ..errors import NotFound, UsageError
from ..store import Store
from .namespace import Dir, Link, Namespace, Version

log = logging.getLogger(__name__)

ROOT = 1
SLOT_SHIFT = 40
_LOCAL_MASK = (1 << SLOT_SHIFT) - 1
#: catalog levels change when versions are added: the kernel re-checks them often
CATALOG_TIMEOUT = 1.0
#: a version never changes: let the kernel keep what it learned
VERSION_TIMEOUT = 3600.0

KIND_LINK = 2
#: decoded table entries kept in memory (a few MiB at most)
NODE_CACHE = 4096


@dataclass(frozen=True, slots=True)
class Attr:
    ino: int
    kind: int  # KIND_FILE, KIND_DIR or KIND_LINK
    size: int
    mode: int  # permission bits only
    mtime_ns: int
    timeout: float


@dataclass(frozen=True, slots=True)
class Mounted:
    """A version whose file table is imported and that owns a slot."""

    record: DatasetRecord
    vk: bytes
    store: Store
    mtime_ns: int


def _iso_ns(text: str) -> int:
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1e9)
    except (TypeError, ValueError):
        return 0


class Tree:
    """The namespace plus mounted versions; ``single`` mounts one version at the root."""

    def __init__(
        self,
        tables: FileTables,
        store_for: Callable[[DatasetRecord], Store],
        namespace: Namespace | None = None,
        single: DatasetRecord | None = None,
    ):
        if (namespace is None) == (single is None):
            raise UsageError("a tree serves either the catalog or one version")
        self.tables = tables
        self.namespace = namespace
        self.single = single
        self._store_for = store_for
        self._cat_ino: dict[tuple[str, ...], int] = {(): ROOT}
        self._cat_path: dict[int, tuple[str, ...]] = {ROOT: ()}
        self._slot_of: dict[str, int] = {}
        #: slots handed out for versions that are listed but not opened yet (no import)
        self._reserved: dict[int, DatasetRecord] = {}
        self._reserved_of: dict[str, int] = {}
        self._mounted: dict[int, Mounted] = {}
        self._importing: dict[str, trio.Event] = {}
        self._single_slot = 0
        self._nodes: OrderedDict[tuple[bytes, int], Node] = OrderedDict()

    # --- versions ----------------------------------------------------------------

    def mounted(self) -> list[Mounted]:
        return list(self._mounted.values())

    async def open_version(self, record: DatasetRecord) -> int:
        """Import the version's file table if needed (off the event loop); return its slot."""
        slot = self._slot_of.get(record.id)
        if slot is not None:
            return slot
        event = self._importing.get(record.id)
        if event is not None:
            await event.wait()
            if record.id not in self._slot_of:
                raise NotFound(f"version {record.id} could not be opened")
            return self._slot_of[record.id]
        event = self._importing[record.id] = trio.Event()
        try:
            store = await trio.to_thread.run_sync(self._store_for, record)
            vk = version_key(record.id)
            mtime_ns = _iso_ns(record.finalized or record.created)
            await trio.to_thread.run_sync(self._import, record, store, vk, mtime_ns)
            slot = self._reserve(record)
            self._mounted[slot] = Mounted(record, vk, store, mtime_ns)
            self._slot_of[record.id] = slot
            return slot
        finally:
            del self._importing[record.id]
            event.set()

    def _reserve(self, record: DatasetRecord) -> int:
        """The version's slot, allocated without importing anything."""
        slot = self._slot_of.get(record.id) or self._reserved_of.get(record.id)
        if slot is None:
            slot = len(self._reserved) + 1
            self._reserved[slot] = record
            self._reserved_of[record.id] = slot
        return slot

    async def _ensure_open(self, ino: int) -> None:
        """Import a listed version's table when something inside it is first asked for."""
        slot = ino >> SLOT_SHIFT
        if slot and slot not in self._mounted and slot in self._reserved:
            await self.open_version(self._reserved[slot])

    def _import(self, record: DatasetRecord, store: Store, vk: bytes, mtime_ns: int) -> None:
        if self.tables.info(vk) is not None:
            return
        log.info("import version=%s project=%s name=%s files=%d", record.id, record.project, record.name, record.file_count)
        info = self.tables.import_version(vk, store.iter_manifest(record.id, record.manifest_digest), mtime_ns)
        log.info("imported version=%s files=%d dirs=%d", record.id, info.files, info.dirs)

    async def start(self) -> None:
        """Prepare what must exist before the first request (the single version's table)."""
        if self.single is not None:
            self._single_slot = await self.open_version(self.single)

    # --- inode helpers -------------------------------------------------------------

    def _node(self, vk: bytes, ino: int) -> Node | None:
        """A table entry, from a small LRU: a large file's chunk list is decoded once, not per read."""
        key = (vk, ino)
        node = self._nodes.get(key)
        if node is not None:
            self._nodes.move_to_end(key)
            return node
        node = self.tables.node(vk, ino)
        if node is not None:
            self._remember(key, node)
        return node

    def _remember(self, key: tuple[bytes, int], node: Node) -> None:
        self._nodes[key] = node
        if len(self._nodes) > NODE_CACHE:
            self._nodes.popitem(last=False)

    def next_files(self, m: Mounted, ino: int, count: int) -> list[Node]:
        """The files after ``ino`` in path order (= pack order), for directory prefetch."""
        nodes = self.tables.next_files(m.vk, ino, count)
        for node in nodes:
            self._remember((m.vk, node.ino), node)
        return nodes

    def _split(self, ino: int) -> tuple[Mounted, int] | None:
        if self.single is not None and ino == ROOT:
            return self._mounted[self._single_slot], ROOT_INO
        slot = ino >> SLOT_SHIFT
        if slot == 0:
            return None
        m = self._mounted.get(slot)
        if m is None:
            raise NotFound(f"inode {ino} is not known")
        return m, ino & _LOCAL_MASK

    def _version_ino(self, slot: int, local: int) -> int:
        if self.single is not None and slot == self._single_slot and local == ROOT_INO:
            return ROOT
        return slot << SLOT_SHIFT | local

    def _catalog_ino(self, path: tuple[str, ...]) -> int:
        ino = self._cat_ino.get(path)
        if ino is None:
            ino = self._cat_ino[path] = len(self._cat_ino) + 1
            self._cat_path[ino] = path
        return ino

    def _node_attr(self, slot: int, m: Mounted, node: Node) -> Attr:
        # modes come from a store others can write: no setuid, setgid, sticky or write bit survives
        mode = 0o555 if node.kind == KIND_DIR else (node.mode & 0o555) or 0o444
        return Attr(self._version_ino(slot, node.ino), node.kind, node.size, mode, node.mtime_ns, VERSION_TIMEOUT)

    def _catalog_attr(self, path: tuple[str, ...], node: "Dir | Link") -> Attr:
        ino = self._catalog_ino(path)
        if isinstance(node, Link):
            return Attr(ino, KIND_LINK, len(node.target), 0o777, 0, CATALOG_TIMEOUT)
        return Attr(ino, KIND_DIR, 0, 0o555, 0, CATALOG_TIMEOUT)

    async def _version_root_attr(self, dataset_id: str) -> Attr:
        """A version's root as seen from the catalog: no import until something inside is asked for,
        so listing a dataset's versions stays cheap however many files they hold."""
        assert self.namespace is not None
        rec = self.namespace.records.get(dataset_id)
        if rec is None:
            raise NotFound(f"version {dataset_id} is gone")
        return self._root_attr(self._reserve(rec), rec)

    def _root_attr(self, slot: int, rec: DatasetRecord) -> Attr:
        # the catalog entry may vanish (deleted version): re-check it like a catalog level
        return Attr(self._version_ino(slot, ROOT_INO), KIND_DIR, 0, 0o555, _iso_ns(rec.finalized or rec.created),
                    CATALOG_TIMEOUT)

    # --- the operations --------------------------------------------------------------

    async def lookup(self, parent: int, name: str) -> Attr:
        await self._ensure_open(parent)
        split = self._split(parent)
        if split is not None:
            m, local = split
            slot = self._slot_of[m.record.id]
            child = self.tables.lookup(m.vk, local, name.encode())
            node = self._node(m.vk, child) if child is not None else None
            if node is None:
                raise NotFound(name)
            return self._node_attr(slot, m, node)
        path = self._cat_path.get(parent)
        assert self.namespace is not None
        if path is None:
            raise NotFound(name)
        child_path = path + (name,)
        node = self.namespace.resolve(child_path)
        if node is None:
            raise NotFound(name)
        if isinstance(node, Version):
            return await self._version_root_attr(node.dataset_id)
        return self._catalog_attr(child_path, node)

    def getattr(self, ino: int) -> Attr:
        slot = ino >> SLOT_SHIFT
        if slot and slot not in self._mounted and slot in self._reserved and ino & _LOCAL_MASK == ROOT_INO:
            return self._root_attr(slot, self._reserved[slot])
        split = self._split(ino)
        if split is not None:
            m, local = split
            node = self._node(m.vk, local)
            if node is None:
                raise NotFound(f"inode {ino}")
            attr = self._node_attr(self._slot_of[m.record.id], m, node)
            if local == ROOT_INO:
                return Attr(attr.ino, attr.kind, attr.size, attr.mode, m.mtime_ns, attr.timeout)
            return attr
        path = self._cat_path.get(ino)
        assert self.namespace is not None
        node = self.namespace.resolve(path) if path is not None else None
        if node is None or isinstance(node, Version):
            raise NotFound(f"inode {ino}")
        return self._catalog_attr(path, node)  # type: ignore[arg-type]

    def readlink(self, ino: int) -> str:
        path = self._cat_path.get(ino)
        node = self.namespace.resolve(path) if (path is not None and self.namespace) else None
        if not isinstance(node, Link):
            raise UsageError("not a symbolic link")
        return node.target

    async def readdir(self, ino: int, after: int) -> list[tuple[str, Attr, int]]:
        """Children after position ``after``: (name, attributes, position to resume from)."""
        await self._ensure_open(ino)
        split = self._split(ino)
        if split is not None:
            m, local = split
            slot = self._slot_of[m.record.id]
            out = []
            for name, child in self.tables.children(m.vk, local, after, limit=256):
                node = self._node(m.vk, child)
                if node is not None:
                    out.append((name.decode(errors="surrogateescape"), self._node_attr(slot, m, node), child))
            return out
        path = self._cat_path.get(ino)
        assert self.namespace is not None
        node = self.namespace.resolve(path) if path is not None else None
        if not isinstance(node, Dir):
            raise NotFound(f"inode {ino}")
        out = []
        names = sorted(node.children)
        for pos, name in enumerate(names[after:], start=after + 1):
            child = node.children[name]
            if isinstance(child, Version):
                try:
                    attr = await self._version_root_attr(child.dataset_id)
                except NotFound:
                    continue
            else:
                attr = self._catalog_attr(path + (name,), child)
            out.append((name, attr, pos))
        return out

    def file(self, ino: int) -> tuple[Mounted, Node]:
        """The mounted version and table entry of a regular file, for reads."""
        split = self._split(ino)
        if split is None:
            raise UsageError("not a regular file")
        m, local = split
        node = self._node(m.vk, local)
        if node is None:
            raise NotFound(f"inode {ino}")
        if node.kind == KIND_DIR:
            raise UsageError("is a directory")
        return m, node
