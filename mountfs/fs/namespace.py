"""The catalog as a directory tree: project levels, dataset names, versions, ``latest``, ``.by-id``.

A ``Namespace`` is rebuilt from the catalog every few seconds (``refresh``,
blocking: run it off the event loop) and swapped in whole, so lookups always
see one consistent snapshot.  Only completed or published versions appear.

Records and pointers come from whoever can write the store: a damaged or
crafted one (checked by ``mountfs.catalog``) is left out with one warning and
the rest of the tree is served; a record appears only where its own pointer
puts it, so it cannot take another dataset's place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..catalog import Catalog, DatasetRecord
from ..catalog.names import version_key
from ..errors import MountfsError

log = logging.getLogger(__name__)

BY_ID = ".by-id"
LATEST = "latest"


@dataclass(frozen=True)
class Dir:
    """A catalog directory: name -> child (``Dir``, ``Version`` or ``Link``)."""

    children: dict[str, "Dir | Version | Link"] = field(default_factory=dict)


@dataclass(frozen=True)
class Version:
    dataset_id: str


@dataclass(frozen=True)
class Link:
    target: str


class Namespace:
    """The current snapshot of the catalog tree, and how to refresh it."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        # an empty catalog still shows .by-id (refresh() rebuilds only on a change)
        self.root = self._build({})
        self.records: dict[str, DatasetRecord] = {}
        self._pointer_ids: dict[str, str] = {}

    def refresh(self) -> bool:
        """Re-read the catalog; return True when what is visible changed."""
        pointers = self.catalog.pointers(self._pointer_ids)
        records: dict[str, DatasetRecord] = {}
        for pointer, dataset_id in pointers.items():
            rec = self.records.get(dataset_id)
            if rec is None:
                try:
                    # None: not written yet (a draft being created) or damaged (warned about once)
                    rec = self.catalog.get_or_none(dataset_id)
                except MountfsError as exc:
                    log.info("catalog: skipping %s (%s)", "/".join(pointer), exc)
                    continue
            if rec is not None and rec.is_final and self.catalog.agrees(pointer, rec):
                records[dataset_id] = rec
        if records.keys() == self.records.keys():
            return False
        if self.records.keys() - records.keys():
            # versions disappear only from a store that is still there
            self.catalog.check_store()
        self.records = records
        self.root = self._build(records)
        log.info("catalog: %d versions visible", len(records))
        return True

    @staticmethod
    def _build(records: dict[str, DatasetRecord]) -> Dir:
        root = Dir()
        by_id = Dir()
        root.children[BY_ID] = by_id
        for rec in records.values():
            node = root
            for level in rec.project.split("/") + [rec.name]:
                child = node.children.get(level)
                if not isinstance(child, Dir):
                    # a level shadowed by a version of the same name loses: versions win
                    if child is not None:
                        log.info("catalog: %s hides a project level of the same name", level)
                        break
                    child = node.children[level] = Dir()
                node = child
            else:
                node.children[rec.version] = Version(rec.id)
            by_id.children[rec.id] = Version(rec.id)
        _add_latest(root)
        return root

    def resolve(self, parts: tuple[str, ...]) -> "Dir | Version | Link | None":
        node: Dir | Version | Link = self.root
        for p in parts:
            if not isinstance(node, Dir):
                return None
            node = node.children.get(p)  # type: ignore[assignment]
            if node is None:
                return None
        return node


def _add_latest(root: Dir) -> None:
    """A ``latest`` link in every folder holding versions.

    A loop, not recursion: project levels nest as deep as a record says.  The
    link wins over a project level or dataset named ``latest`` beside versions.
    """
    todo = [root]
    while todo:
        node = todo.pop()
        versions = [name for name, child in node.children.items() if isinstance(child, Version)]
        todo.extend(child for name, child in node.children.items() if isinstance(child, Dir) and name != BY_ID)
        if versions:
            if LATEST in node.children:
                log.info("catalog: the %s link hides a project level or dataset named %s", LATEST, LATEST)
            node.children[LATEST] = Link(max(versions, key=version_key))
