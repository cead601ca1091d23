"""A version's reading: listings, differences to its parents, lineage, verification of its content.

Parameters mean what they mean in ClearML's ``Dataset`` (see ``sdk.dataset``).
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Iterable

import xxhash

from .. import localcopy
from ..catalog import DatasetRecord, names
from ..errors import MountfsError
from ..session import say
from ..store import FileEntry
from ..store.external import check_unchanged
from .version import EntryView, Origins, Version, diff_tables, entry_views

log = logging.getLogger(__name__)

#: bytes read at a time when hashing a local file
_HASH_BLOCK = 8 << 20


class VersionReading:
    """Answers questions about one version, draft or final.

    ``lookup`` opens another version by id.  The listings take ClearML's
    ``dataset_id``: ``list_files`` then lists this version's files whose
    content came from that version, the changes compare this version with it.
    """

    def __init__(self, version: Version, lookup: Callable[[str], Version]) -> None:
        self._v = version
        self._lookup = lookup

    def list_files(self, dataset_path: str | None = None, recursive: bool = True, dataset_id: str | None = None) -> list[str]:
        """Sorted paths of the version's files, optionally only those matching a path, folder or wildcard.

        ``dataset_id``: only the files whose content came from that version
        (ClearML's ``parent_dataset_id``): this version's own, or an ancestor's
        it holds unchanged.  An id that names no version, and is not in the
        lineage either (a deleted ancestor still is), is ``NotFound``.
        """
        table: Iterable[str] = self._v.table()
        if dataset_id:
            origins = Origins(self._v, self._lookup)
            table = [p for p in table if origins.of(p) == dataset_id]
            if not table and dataset_id not in self._lineage():
                self._lookup(dataset_id)  # raises NotFound for an id that names nothing (a typo)
        if not dataset_path:
            return sorted(table if recursive else (p for p in table if "/" not in p))
        pattern = names.check_dataset_path(dataset_path, "dataset_path")
        return sorted(p for p in table if names.path_matches(p, pattern, recursive))

    def changes(self, dataset_id: str | None = None) -> tuple[list[str], list[str], list[str]]:
        """(added, modified, removed) paths: against the merged parents, or (``dataset_id``) this version
        compared with that one: in this version only, in both with other content, in that one only."""
        if not dataset_id or dataset_id == self._v.id:
            return diff_tables(self._v.table(), self._v.parent_table())
        return diff_tables(self._v.table(), self._lookup(dataset_id).table())

    def _lineage(self) -> set[str]:
        """Ids of this version and its ancestors, deleted ones too (their children still name them)."""
        graph = self.get_dependency_graph()
        return set(graph).union(*graph.values())

    def entries(self) -> dict[str, EntryView]:
        """path -> entry by ClearML's names (``relative_path``, ``hash``, ``parent_dataset_id``, ``link``)."""
        return entry_views(self._v, self._lookup)

    def num_chunks(self, include_parents: bool = True) -> int:
        """Packs holding this version's stored files: all of them, or (``include_parents=False``) only
        those none of its parents' files are in, i.e. the packs this version's own upload added.

        ClearML counts the zip chunks each version uploaded, summed over the
        lineage; a mountfs pack is the unit of upload in the same way.  A
        draft's files not uploaded yet are in no pack and are not counted.
        """
        packs = {c.pack for e in self._v.table().values() for c in e.chunks if c.pack}
        if not include_parents:
            packs -= {c.pack for e in self._v.parent_table().values() for c in e.chunks if c.pack}
        return len(packs)

    def get_dependency_graph(self) -> dict[str, list[str]]:
        """id -> parent ids, for this version and all its ancestors."""
        graph: dict[str, list[str]] = {}
        todo: list[DatasetRecord] = [self._v.record]
        while todo:
            rec = todo.pop()
            if rec.id in graph:
                continue
            graph[rec.id] = list(rec.parents)
            # a parent deleted since (Dataset.delete) is still named as a parent, with no entry of its own
            todo.extend(r for r in map(self._v.session.catalog.get_or_none, rec.parents) if r is not None)
        return graph

    def verify_dataset_hash(
        self, local_copy_path: str | None = None, skip_hash: bool = False, verbose: bool = False
    ) -> list[str]:
        """Paths whose content fails the recorded digests: in ``local_copy_path``, else in the store."""
        entries = sorted(self._v.table().values(), key=lambda e: e.path)
        if local_copy_path:
            bad = [e.path for e in entries if not _local_file_ok(os.path.join(local_copy_path, e.path), e, skip_hash)]
        else:
            bad = self._damaged_in_store(entries)
            bad += self._changed_sources([e for e in entries if e.is_external])
            bad.sort()
        if verbose:
            for p in bad:
                say(f"FAILED: {p}")
        return bad

    def _changed_sources(self, entries: list[FileEntry]) -> list[str]:
        """Paths of external files whose source is gone, unreadable, or of another size or ETag than recorded."""
        bad = []
        for e in entries:
            try:
                backend, key = self._v.session.source(e.url)
                check_unchanged(backend, key, e)
            except MountfsError as exc:
                log.error("verify %s: %s: %s", self._v.id, e.path, exc)
                bad.append(e.path)
        return bad

    def _damaged_in_store(self, entries: list[FileEntry]) -> list[str]:
        """Paths (in order) of stored files whose chunks fail their checks or do not hash to the file's digest.

        Chunks are read a batch at a time; a batch that fails is read again a
        piece at a time, so exactly the files holding a damaged chunk are named.
        """
        store = self._v.store
        bad: dict[str, None] = {}  # an ordered set
        hashers: dict[str, xxhash.xxh3_128] = {}
        for batch in localcopy.batches([e for e in entries if not e.is_external]):
            got: dict[bytes, bytes | memoryview] | None
            try:
                got = store.read_chunks({c.digest: c for p in batch for c in p.chunks}.values())
            except MountfsError:
                got = None
            for p in batch:
                path = p.entry.path
                if path in bad:
                    continue
                try:
                    data = got if got is not None else store.read_chunks(p.chunks)
                except MountfsError as exc:
                    log.error("verify %s: %s: %s", self._v.id, path, exc)
                    bad[path] = None
                    hashers.pop(path, None)
                    continue
                h = hashers.setdefault(path, xxhash.xxh3_128())
                for c in p.chunks:
                    h.update(data[c.digest])
                if p.last == len(p.entry.chunks):
                    del hashers[path]
                    if h.digest() != p.entry.digest:
                        bad[path] = None
        return list(bad)


def _local_file_ok(path: str, e: FileEntry, skip_hash: bool) -> bool:
    """Whether the file at ``path`` has ``e``'s size and (unless ``skip_hash``) its digest.

    An external file added without reading it has no digest: its size is all
    there is to check a local copy against (its ETag names the source's
    version, not a hash of the bytes that can be recomputed here).
    """
    try:
        if os.path.getsize(path) != e.size:
            return False
        if skip_hash or (e.is_external and not e.digest):
            return True
        h = xxhash.xxh3_128()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(_HASH_BLOCK), b""):
                h.update(block)
        return h.digest() == e.digest
    except OSError:
        return False
