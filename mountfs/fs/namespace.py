"""The catalog as a directory tree: project levels, dataset names, versions, ``latest``, ``.by-id``.

A ``Snapshot`` is one consistent, never-changed view of the catalog.
``Namespace.build`` reads the catalog into a new one (blocking: run it off the
event loop) and returns it without publishing it; whoever owns the event loop
publishes it with one assignment to ``Namespace.current`` (``Tree.update``),
so a lookup sees either the old tree or the new one, never half of each.
Only completed or published versions appear.

Versions are found through their pointers (``catalog/<project>/<name>/<version>``).
A record is read again whenever its version appears at a place it was not at
in the previous snapshot (new, finalized, renamed or moved), so a renamed
dataset shows at its new path after one refresh; a version whose pointer is
gone is left out of the next snapshot (deleted).  Records kept from the
previous snapshot are those still at the same place: a finalized version's
record never changes otherwise.

Records and pointers come from whoever can write the store: a damaged or
crafted one (checked by ``mountfs.catalog``) is left out with one warning and
the rest of the tree is served; a record appears only where its own pointer
puts it, so it cannot take another dataset's place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping, Union

from ..catalog import Catalog, DatasetRecord
from ..catalog.catalog import latest_key
from ..errors import MountfsError

log = logging.getLogger(__name__)

BY_ID = ".by-id"
LATEST = "latest"

#: where a version sits in the catalog: (project, name, version)
Place = tuple[str, str, str]


@dataclass(eq=False)
class Dir:
    """A catalog directory: name -> child (``Dir``, ``Version`` or ``Link``).

    Filled while a snapshot is built, never changed once it is published."""

    children: dict[str, "Dir | Version | Link"] = field(default_factory=dict)
    #: the time of the newest version below (0 for an empty catalog): ``ls -l`` shows when it last changed
    mtime_ns: int = 0


@dataclass(frozen=True)
class Version:
    dataset_id: str


@dataclass(frozen=True)
class Link:
    target: str
    #: the time of the newest version in its folder (not part of what the link is)
    mtime_ns: int = field(default=0, compare=False)


def version_mtime_ns(record: DatasetRecord) -> int:
    """A version's time in the mount: when it was finalized (else created); 0 if the record has none."""
    try:
        return int(datetime.fromisoformat(record.finalized or record.created).timestamp() * 1e9)
    except (TypeError, ValueError):
        return 0


CatalogNode = Union[Dir, Version, Link]


@dataclass(frozen=True)
class Snapshot:
    """The catalog tree at one refresh, and the record of every version in it; never changed once built."""

    root: Dir
    #: dataset id -> record of every visible version
    records: Mapping[str, DatasetRecord]
    #: place -> dataset id of every visible version (what tells two snapshots apart)
    places: Mapping[Place, str]

    def resolve(self, parts: tuple[str, ...]) -> CatalogNode | None:
        node: CatalogNode = self.root
        for p in parts:
            if not isinstance(node, Dir):
                return None
            child = node.children.get(p)
            if child is None:
                return None
            node = child
        return node


def empty_snapshot() -> Snapshot:
    """What an empty catalog shows (and a mount whose first refresh failed): ``.by-id`` alone."""
    return Snapshot(_build_tree({}), {}, {})


class Namespace:
    """The published snapshot of the catalog tree (``current``), and how to build the next one."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.current: Snapshot = empty_snapshot()
        #: pointer key -> (tag, dataset id): the catalog reads a pointer again only when it changed
        self._pointer_ids: dict[str, tuple[str, str]] = {}

    def build(self) -> Snapshot | None:
        """Read the catalog into a new snapshot; None when what is visible did not change.

        Blocking; one build at a time.  Does not publish: assign the result to ``current``.
        """
        cur = self.current
        records: dict[str, DatasetRecord] = {}
        places: dict[Place, str] = {}
        for place, dataset_id in self.catalog.pointers(self._pointer_ids).items():
            rec = cur.records.get(dataset_id) if cur.places.get(place) == dataset_id else None
            if rec is None:
                try:
                    # None: not written yet (a draft being created) or damaged (warned about once)
                    rec = self.catalog.get_or_none(dataset_id)
                except MountfsError as exc:
                    log.info("catalog: skipping %s (%s)", "/".join(place), exc)
                    continue
            if rec is not None and rec.is_final and self.catalog.agrees(place, rec):
                records[dataset_id] = rec
                places[place] = dataset_id
        if places == cur.places:
            return None
        if cur.places.keys() - places.keys():
            # versions disappear only from a store that is still there: an unmounted
            # share or a deleted bucket can list as empty (raises StoreError)
            self.catalog.check_store()
        log.info("catalog: %d versions visible", len(records))
        return Snapshot(_build_tree(records), records, places)

    def refresh(self) -> bool:
        """Build and publish in one go (for callers without an event loop); True when something changed."""
        snapshot = self.build()
        if snapshot is None:
            return False
        self.current = snapshot
        return True

    @staticmethod
    def _build(records: Mapping[str, DatasetRecord]) -> Dir:
        """The folder tree of ``records`` (``_build_tree``)."""
        return _build_tree(records)

    # the published snapshot's, for callers that only read
    @property
    def records(self) -> Mapping[str, DatasetRecord]:
        return self.current.records

    def resolve(self, parts: tuple[str, ...]) -> CatalogNode | None:
        return self.current.resolve(parts)


def _build_tree(records: Mapping[str, DatasetRecord]) -> Dir:
    """The folder tree of ``records``: every version at its place and under ``.by-id``."""
    root = Dir()
    by_id = Dir()
    root.children[BY_ID] = by_id
    for rec in records.values():
        mtime = version_mtime_ns(rec)
        node = root
        on_the_way = [root, by_id]
        for level in rec.project.split("/") + [rec.name]:
            child = node.children.get(level)
            if not isinstance(child, Dir):
                # a level shadowed by a version of the same name loses: versions win
                if child is not None:
                    log.info("catalog: %s hides a project level of the same name", level)
                    break
                child = node.children[level] = Dir()
            node = child
            on_the_way.append(node)
        else:
            node.children[rec.version] = Version(rec.id)
        by_id.children[rec.id] = Version(rec.id)
        for d in on_the_way:
            d.mtime_ns = max(d.mtime_ns, mtime)
    _add_latest(root)
    return root


def _add_latest(root: Dir) -> None:
    """A ``latest`` link in every folder holding versions.

    A loop, not recursion: project levels nest as deep as a record says.  The
    link wins over a project level or dataset named ``latest`` beside versions.
    """
    todo = [root]
    while todo:
        node = todo.pop()
        versions = {name: child.dataset_id for name, child in node.children.items() if isinstance(child, Version)}
        todo.extend(child for name, child in node.children.items() if isinstance(child, Dir) and name != BY_ID)
        if versions:
            if LATEST in node.children:
                log.info("catalog: the %s link hides a project level or dataset named %s", LATEST, LATEST)
            # the one rule of "latest" (``get`` picks the same version): the highest semantic version, ties by newest
            node.children[LATEST] = Link(max(versions, key=lambda v: latest_key(v, versions[v])), node.mtime_ns)
