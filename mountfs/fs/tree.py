"""The read-only tree the daemon serves, without any FUSE types: lookups, attributes, listings.

The tree owns no logic of its own: it hands every request to the *view* that
owns the inode (``View``).  A catalog mount has a ``CatalogView`` (the
catalog's folders and ``latest`` links, from the published ``Snapshot``) and
one object per version the catalog has shown: ``PendingVersion`` until its
file table is opened, ``VersionView`` once it is, ``GoneVersion`` after the
version left the catalog.  A writable copy of a version is meant to be one
more ``View`` in a slot of its own.

Inode numbers are ``slot << SLOT_SHIFT | local``.  Slot 0 is the catalog
(its inodes numbered 1, 2, ... by first sight of their path) or, in a
single-version mount, that version (so its root is inode 1).  A version gets
a slot the first time the catalog shows it and keeps it, by dataset id, for
the life of the process (also when it leaves the catalog and comes back);
``local`` numbers its imported file table (1 = its root).  So every inode
number means the same file for as long as the daemon runs.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol

import trio

from ..cache.filetable import KIND_DIR, ROOT_INO, FileTables, Node, version_key
from ..catalog import DatasetRecord
from ..errors import IsADirectory, NotFound, ObjectNotFound, UsageError, VersionGone
from ..store import Store
from .namespace import Dir, Link, Namespace, Snapshot, Version, version_mtime_ns

log = logging.getLogger(__name__)

ROOT = 1
SLOT_SHIFT = 40
LOCAL_MASK = (1 << SLOT_SHIFT) - 1
#: catalog levels (and version roots, which a refresh may remove) are re-checked by the kernel after this
CATALOG_TIMEOUT = 1.0
#: a version never changes: let the kernel keep what it learned (docs/FUSE.md item 1)
VERSION_TIMEOUT = 3600.0

KIND_LINK = 2
#: decoded table entries kept in memory (a few MiB at most)
NODE_CACHE = 4096
#: entries of a version's folder per readdir page
READDIR_PAGE = 256


@dataclass(frozen=True, slots=True)
class Attr:
    ino: int
    kind: int  # KIND_FILE, KIND_DIR or KIND_LINK
    size: int
    mode: int  # permission bits only
    mtime_ns: int
    timeout: float


#: one readdir entry: (name, attributes, position to resume from)
Entry = tuple[str, Attr, int]


@dataclass(frozen=True, slots=True)
class Mounted:
    """A version whose file table is imported and that owns a slot (what the reader needs of it)."""

    record: DatasetRecord
    vk: bytes
    store: Store
    mtime_ns: int
    #: ``slot << SLOT_SHIFT``: the version's inode numbers are ``base | local``
    base: int = 0


class View(Protocol):
    """What the tree asks of whatever owns a slot's inodes.

    ``ino`` is always the full inode number.  Lookups, attributes and listings
    may need I/O (opening a version's table), so they are awaitable; ``file``
    is on every read's path and must answer from memory or the local table.
    """

    #: attributes of the view's root (the catalog root, or the version's root folder)
    root: Attr

    async def lookup(self, parent: int, name: str) -> Attr: ...

    async def getattr(self, ino: int) -> Attr: ...

    async def readdir(self, ino: int, after: int) -> list[Entry]: ...

    def readlink(self, ino: int) -> str: ...

    def file(self, ino: int) -> tuple[Mounted, Node]: ...


def _version_mtime(record: DatasetRecord) -> int:
    return version_mtime_ns(record)


def _root_attr(base: int, mtime_ns: int, timeout: float) -> Attr:
    return Attr(base | ROOT_INO, KIND_DIR, 0, 0o555, mtime_ns, timeout)


class _Nodes:
    """Decoded table entries by full inode number, a small LRU shared by every version:
    a large file's chunk list is decoded once, not once per read."""

    __slots__ = ("_tables", "_lru")

    def __init__(self, tables: FileTables):
        self._tables = tables
        self._lru: OrderedDict[int, Node] = OrderedDict()

    def get(self, ino: int, vk: bytes) -> Node | None:
        node = self._lru.get(ino)
        if node is not None:
            self._lru.move_to_end(ino)
            return node
        node = self._tables.node(vk, ino & LOCAL_MASK)
        if node is not None:
            self.remember(ino, node)
        return node

    def remember(self, ino: int, node: Node) -> None:
        self._lru[ino] = node
        if len(self._lru) > NODE_CACHE:
            self._lru.popitem(last=False)

    def forget_slot(self, slot: int) -> None:
        for ino in [i for i in self._lru if i >> SLOT_SHIFT == slot]:
            del self._lru[ino]


class VersionView:
    """One version's files, from its imported file table (which never changes)."""

    def __init__(self, tables: FileTables, nodes: _Nodes, mounted: Mounted, root_timeout: float):
        self.mounted = mounted
        self.record = mounted.record
        self.root = _root_attr(mounted.base, mounted.mtime_ns, root_timeout)
        self._tables = tables
        self._nodes = nodes

    def _attr(self, node: Node) -> Attr:
        if node.ino == ROOT_INO:
            return self.root
        # modes come from a store others can write: no setuid, setgid, sticky or write bit survives
        mode = 0o555 if node.kind == KIND_DIR else (node.mode & 0o555) or 0o444
        return Attr(self.mounted.base | node.ino, node.kind, node.size, mode, node.mtime_ns, VERSION_TIMEOUT)

    async def lookup(self, parent: int, name: str) -> Attr:
        m = self.mounted
        # surrogateescape: a name that is not UTF-8 is simply not there (ENOENT), never an error
        child = self._tables.lookup(m.vk, parent & LOCAL_MASK, name.encode(errors="surrogateescape"))
        node = self._nodes.get(m.base | child, m.vk) if child is not None else None
        if node is None:
            raise NotFound(name)
        return self._attr(node)

    async def getattr(self, ino: int) -> Attr:
        if ino & LOCAL_MASK == ROOT_INO:
            return self.root
        node = self._nodes.get(ino, self.mounted.vk)
        if node is None:
            raise NotFound(f"inode {ino}")
        return self._attr(node)

    async def readdir(self, ino: int, after: int) -> list[Entry]:
        m = self.mounted
        out: list[Entry] = []
        for name, child in self._tables.children(m.vk, ino & LOCAL_MASK, after, limit=READDIR_PAGE):
            node = self._nodes.get(m.base | child, m.vk)
            if node is not None:
                out.append((name.decode(errors="surrogateescape"), self._attr(node), child))
        return out

    def readlink(self, ino: int) -> str:
        raise UsageError("not a symbolic link")

    def file(self, ino: int) -> tuple[Mounted, Node]:
        node = self._nodes.get(ino, self.mounted.vk)
        if node is None:
            raise NotFound(f"inode {ino}")
        if node.kind == KIND_DIR:
            raise IsADirectory(f"inode {ino} is a directory")
        return self.mounted, node


class _Opening:
    """One attempt at opening a version's table, shared by every request that arrives meanwhile."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: Exception | None = None


class PendingVersion:
    """A version the mount shows whose file table is not open yet.

    Its root answers from the record, so listing a dataset's versions imports
    nothing; the first request for anything inside opens the table (once,
    however many requests race) and the tree puts a ``VersionView`` in its place.
    """

    def __init__(self, tree: "Tree", slot: int, record: DatasetRecord, root_timeout: float):
        self.tree = tree
        self.slot = slot
        self.record = record
        self.root_timeout = root_timeout
        self.root = _root_attr(slot << SLOT_SHIFT, _version_mtime(record), root_timeout)
        self.opening: _Opening | None = None

    async def lookup(self, parent: int, name: str) -> Attr:
        return await (await self.tree.open_pending(self)).lookup(parent, name)

    async def getattr(self, ino: int) -> Attr:
        if ino & LOCAL_MASK == ROOT_INO:
            return self.root
        return await (await self.tree.open_pending(self)).getattr(ino)

    async def readdir(self, ino: int, after: int) -> list[Entry]:
        return await (await self.tree.open_pending(self)).readdir(ino, after)

    def readlink(self, ino: int) -> str:
        raise UsageError("not a symbolic link")

    def file(self, ino: int) -> tuple[Mounted, Node]:
        # the kernel reads only files it looked up, and a lookup opens the table: this is a file
        # held open while its version left the catalog and came back (docs/SEMANTICS.md)
        raise ObjectNotFound(f"inode {ino}: version {self.record.id} is not open again yet; "
                             "open the file again by its path")


class GoneVersion:
    """A version that left the catalog while the kernel may still hold its inodes (open files,
    a working directory): names and attributes are ESTALE, reads EIO (docs/SEMANTICS.md)."""

    def __init__(self, record: DatasetRecord, root: Attr):
        self.record = record
        self.root = root

    def _gone(self) -> VersionGone:
        r = self.record
        return VersionGone(f"version {r.id} ({r.project}/{r.name} {r.version}) left the catalog")

    async def lookup(self, parent: int, name: str) -> Attr:
        raise self._gone()

    async def getattr(self, ino: int) -> Attr:
        raise self._gone()

    async def readdir(self, ino: int, after: int) -> list[Entry]:
        raise self._gone()

    def readlink(self, ino: int) -> str:
        raise self._gone()

    def file(self, ino: int) -> tuple[Mounted, Node]:
        r = self.record
        raise ObjectNotFound(f"version {r.id} ({r.project}/{r.name} {r.version}) left the catalog: "
                             "its files are no longer served")


class CatalogView:
    """The catalog's folders and ``latest`` links (slot 0 of a catalog mount), from the published snapshot.

    Catalog inodes are numbered by path on first sight and keep their number
    while the daemon runs, whether or not the path exists in later snapshots.
    """

    def __init__(self, tree: "Tree", namespace: Namespace):
        self.tree = tree
        self.namespace = namespace
        self.root = Attr(ROOT, KIND_DIR, 0, 0o555, 0, CATALOG_TIMEOUT)
        self._ino: dict[tuple[str, ...], int] = {(): ROOT}
        self._path: dict[int, tuple[str, ...]] = {ROOT: ()}

    def _number(self, path: tuple[str, ...]) -> int:
        ino = self._ino.get(path)
        if ino is None:
            ino = self._ino[path] = len(self._ino) + 1
            self._path[ino] = path
        return ino

    def _attr(self, path: tuple[str, ...], node: Dir | Link) -> Attr:
        ino = self._number(path)
        if isinstance(node, Link):
            return Attr(ino, KIND_LINK, len(node.target), 0o777, node.mtime_ns, CATALOG_TIMEOUT)
        return Attr(ino, KIND_DIR, 0, 0o555, node.mtime_ns, CATALOG_TIMEOUT)

    def _entry(self, snapshot: Snapshot, path: tuple[str, ...], node: Dir | Version | Link) -> Attr:
        if isinstance(node, Version):
            return self.tree.version_root(snapshot, node.dataset_id)
        return self._attr(path, node)

    async def lookup(self, parent: int, name: str) -> Attr:
        path = self._path.get(parent)
        if path is None:
            raise NotFound(name)
        snapshot = self.namespace.current
        child_path = path + (name,)
        node = snapshot.resolve(child_path)
        if node is None:
            raise NotFound(name)
        return self._entry(snapshot, child_path, node)

    async def getattr(self, ino: int) -> Attr:
        path = self._path.get(ino)
        node = self.namespace.current.resolve(path) if path is not None else None
        if path is None or node is None or isinstance(node, Version):
            raise NotFound(f"inode {ino}")
        return self._attr(path, node)

    async def readdir(self, ino: int, after: int) -> list[Entry]:
        path = self._path.get(ino)
        snapshot = self.namespace.current  # one snapshot for the whole page
        node = snapshot.resolve(path) if path is not None else None
        if path is None or not isinstance(node, Dir):
            raise NotFound(f"inode {ino}")
        out: list[Entry] = []
        names = sorted(node.children)
        for pos, name in enumerate(names[after:], start=after + 1):
            try:
                attr = self._entry(snapshot, path + (name,), node.children[name])
            except NotFound:
                continue
            out.append((name, attr, pos))
        return out

    def parent(self, ino: int) -> int | None:
        """The inode of a catalog folder's parent (None for the root)."""
        path = self._path.get(ino)
        return self._ino.get(path[:-1]) if path else None

    def readlink(self, ino: int) -> str:
        path = self._path.get(ino)
        node = self.namespace.current.resolve(path) if path is not None else None
        if not isinstance(node, Link):
            raise UsageError("not a symbolic link")
        return node.target

    def file(self, ino: int) -> tuple[Mounted, Node]:
        path = self._path.get(ino)
        if path is not None and isinstance(self.namespace.current.resolve(path), Dir):
            raise IsADirectory(f"inode {ino} is a directory")
        raise UsageError("not a regular file")


class Tree:
    """The views of one mount, by slot; ``single`` mounts one version at the root."""

    def __init__(
        self,
        tables: FileTables,
        store_for: Callable[[DatasetRecord], Store],
        namespace: Namespace | None = None,
        single: DatasetRecord | None = None,
        single_key: bytes | None = None,
    ):
        if (namespace is None) == (single is None):
            raise UsageError("a tree serves either the catalog or one version")
        self.tables = tables
        self.namespace = namespace
        self.single = single
        #: the single version's table key, when it is not ``version_key(id)`` (a draft's writable copy)
        self._single_key = single_key
        self._store_for = store_for
        self._nodes = _Nodes(tables)
        self._views: dict[int, View] = {}
        #: the slot of every version ever shown: a version keeps its inode numbers
        self._slot_of: dict[str, int] = {}
        self._next_slot = 1
        #: versions whose table is being imported right now: a drop must not race an import
        self._importing: set[str] = set()
        if single is not None:
            self._slot_of[single.id] = 0
            self._views[0] = PendingVersion(self, 0, single, VERSION_TIMEOUT)
        else:
            assert namespace is not None
            self._views[0] = CatalogView(self, namespace)

    # --- dispatch: the only place that reads the slot bits of an inode -----------------

    def view(self, ino: int) -> View:
        """The view owning ``ino``."""
        view = self._views.get(ino >> SLOT_SHIFT)
        if view is None:
            raise NotFound(f"inode {ino} is not known")
        return view

    # the coroutine of the view itself: no wrapper coroutine per request
    def lookup(self, parent: int, name: str) -> Awaitable[Attr]:
        return self.view(parent).lookup(parent, name)

    def getattr(self, ino: int) -> Awaitable[Attr]:
        return self.view(ino).getattr(ino)

    def readdir(self, ino: int, after: int) -> Awaitable[list[Entry]]:
        """Children after position ``after``: (name, attributes, position to resume from)."""
        return self.view(ino).readdir(ino, after)

    def readlink(self, ino: int) -> str:
        return self.view(ino).readlink(ino)

    def parent(self, ino: int) -> int | None:
        """The parent folder of folder ``ino`` where the tree knows it (catalog folders), else None.

        A version's folders do not record their parent, and a version's root
        has two (its name and ``.by-id``); only ``..`` in a listing asks."""
        view = self._views.get(ino >> SLOT_SHIFT)
        return view.parent(ino) if isinstance(view, CatalogView) else None

    def file(self, ino: int) -> tuple[Mounted, Node]:
        """The mounted version and table entry of a regular file, for reads."""
        return self.view(ino).file(ino)

    def next_files(self, m: Mounted, ino: int, count: int) -> list[Node]:
        """The files after local inode ``ino`` in path order (= pack order), for directory prefetch."""
        nodes = self.tables.next_files(m.vk, ino, count)
        for node in nodes:
            self._nodes.remember(m.base | node.ino, node)
        return nodes

    def mounted(self) -> list[Mounted]:
        """The versions whose tables are open."""
        return [v.mounted for v in self._views.values() if isinstance(v, VersionView)]

    # --- versions: slots, opening, leaving ----------------------------------------------

    async def start(self) -> None:
        """Prepare what must exist before the first request (the single version's table)."""
        view = self._views[0]
        if isinstance(view, PendingVersion):
            await self.open_pending(view)

    def version_root(self, snapshot: Snapshot, dataset_id: str) -> Attr:
        """A version's root as the catalog shows it; gives the version a slot (and a pending view)."""
        record = snapshot.records.get(dataset_id)
        if record is None:
            raise NotFound(f"version {dataset_id} is gone")
        slot = self._slot_of.get(dataset_id)
        if slot is None:
            slot = self._slot_of[dataset_id] = self._next_slot
            self._next_slot += 1
        view = self._views.get(slot)
        if view is None or isinstance(view, GoneVersion):  # new, or back in the catalog
            view = self._views[slot] = PendingVersion(self, slot, record, CATALOG_TIMEOUT)
        return view.root

    async def open_pending(self, pending: PendingVersion) -> View:
        """Open a pending version's table (off the event loop); return the view now in its slot."""
        attempt = pending.opening
        if attempt is None:
            attempt = pending.opening = _Opening()
            try:
                view = await self._open(pending)
            except BaseException as exc:
                attempt.error = exc if isinstance(exc, Exception) else NotFound(
                    f"opening version {pending.record.id} was interrupted")
                pending.opening = None  # the next request tries again
                attempt.done.set()
                raise
            if self._views.get(pending.slot) is pending:  # not retired meanwhile
                self._views[pending.slot] = view
            attempt.done.set()
        else:
            await attempt.done.wait()
            if attempt.error is not None:
                raise copy.copy(attempt.error)
        # the VersionView, or a GoneVersion if the version left the catalog while it was opened
        return self._views[pending.slot]

    async def _open(self, pending: PendingVersion) -> VersionView:
        record = pending.record
        store = await trio.to_thread.run_sync(self._store_for, record)
        vk = self._single_key if self._single_key and pending.slot == 0 else version_key(record.id)
        mtime_ns = _version_mtime(record)
        self._importing.add(record.id)
        try:
            await trio.to_thread.run_sync(self._import, record, store, vk, mtime_ns)
        finally:
            self._importing.discard(record.id)
        mounted = Mounted(record, vk, store, mtime_ns, pending.slot << SLOT_SHIFT)
        return VersionView(self.tables, self._nodes, mounted, pending.root_timeout)

    def _import(self, record: DatasetRecord, store: Store, vk: bytes, mtime_ns: int) -> None:
        if self.tables.info(vk) is not None:
            return
        log.info("import version=%s project=%s name=%s files=%d", record.id, record.project, record.name, record.file_count)
        info = self.tables.import_version(vk, store.iter_manifest(record.id, record.manifest_digest), mtime_ns)
        log.info("imported version=%s files=%d dirs=%d", record.id, info.files, info.dirs)

    def publish(self, snapshot: Snapshot) -> set[str]:
        """Make ``snapshot`` the catalog the mount shows, in one assignment (call it in the event loop).

        Versions no longer in it stop being served (``GoneVersion``).  Returns
        the dataset ids whose file tables must be kept: the snapshot's, and any
        being imported right now (an import must not race a drop).
        """
        assert self.namespace is not None, "a single-version mount has no catalog"
        previous, self.namespace.current = self.namespace.current, snapshot
        for dataset_id, slot in self._slot_of.items():
            view = self._views.get(slot)
            if dataset_id in snapshot.records or not isinstance(view, (PendingVersion, VersionView)):
                continue
            record = previous.records.get(dataset_id, view.record)  # where it was last (renamed since opened?)
            self._views[slot] = GoneVersion(record, view.root)
            self._nodes.forget_slot(slot)
            if isinstance(view, VersionView):
                log.info("version %s (%s/%s %s) left the catalog: its open files get EIO from now on",
                         dataset_id, record.project, record.name, record.version)
        return set(snapshot.records) | self._importing
