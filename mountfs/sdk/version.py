"""One version as every part of ``Dataset`` sees it: its session, its record and its file table.

The parts (changes, closing, reading, copies, metadata) are handed a
``Version`` instead of reaching into ``Dataset``; this module also holds the one
merge of parent versions and the test of what still needs uploading.
"""

from __future__ import annotations

from typing import Iterable

from ..catalog import DRAFT, UPLOADED, DatasetRecord
from ..errors import StateError
from ..session import Session
from ..store import FileEntry, Store
from ..store import manifest as manifest_codec

#: ``src`` of a draft entry whose chunks live in another store than the draft's (a parent's, or the store
#: the draft used before ``upload(output_url=...)``): the upload copies them over
OTHER_STORE = "mountfs-store:"


def is_pending(e: FileEntry) -> bool:
    """Whether the entry's chunks still have to be sent to the version's store."""
    return bool(e.chunks) and not e.is_external and (not e.chunks[0].pack or e.src.startswith(OTHER_STORE))


def merge_versions(sess: Session, records: Iterable[DatasetRecord], into: str | None = None) -> dict[str, FileEntry]:
    """The files of the finalized ``records`` merged in order, a later one overriding an earlier one.

    ``into``: the ``storage`` of the version being built from them; an entry
    whose chunks are in another store is marked (``OTHER_STORE``) to be copied
    there at upload.  ``None`` leaves the entries as stored (to compare with).
    """
    merged: dict[str, FileEntry] = {}
    for rec in records:
        for e in sess.store(rec.storage).get_manifest(rec.id, rec.manifest_digest):
            if into is not None and rec.storage != into and e.chunks:
                e.src = OTHER_STORE + (rec.storage or sess.catalog_url)
            merged[e.path] = e
    return merged


def diff_tables(table: dict[str, FileEntry], parents: dict[str, FileEntry]) -> tuple[list[str], list[str], list[str]]:
    """(added, modified, removed) paths of ``table`` against the merged ``parents``."""
    added = sorted(p for p in table if p not in parents)
    modified = sorted(p for p in table if p in parents and table[p].digest != parents[p].digest)
    removed = sorted(p for p in parents if p not in table)
    return added, modified, removed


class Version:
    """A version's record and file table, shared by the parts of one ``Dataset``.

    The table is read on first use: a finalized version's manifest, or the
    state a draft saved in the catalog.  ``entries`` is a table already at hand
    (a new draft's merged parents).
    """

    def __init__(self, session: Session, record: DatasetRecord, entries: dict[str, FileEntry] | None = None) -> None:
        self.session = session
        self.record = record
        self._entries = entries

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def store(self) -> Store:
        """The store holding this version's packs and manifest."""
        return self.session.store(self.record.storage)

    def describe(self) -> str:
        """``<id> (<project>/<name> <version>)``, for messages."""
        r = self.record
        return f"{r.id} ({r.project}/{r.name} {r.version})"

    def table(self) -> dict[str, FileEntry]:
        """path -> entry of every file; the same dict on every call, which a draft's changes edit in place."""
        if self._entries is None:
            if self.record.is_final:
                entries = self.store.get_manifest(self.id, self.record.manifest_digest)
            else:
                saved = self.session.catalog.read_draft_state(self.id)
                if saved is None:
                    raise StateError(f"draft {self.id} has no saved state; it was left half-created, create a new one")
                data, where = saved
                entries = manifest_codec.decode(data, where)[1]
            self._entries = {e.path: e for e in entries}
        return self._entries

    def parent_table(self) -> dict[str, FileEntry]:
        """The parents' files merged, as this version started from them."""
        return merge_versions(self.session, [self.session.catalog.get(p) for p in self.record.parents])

    def is_dirty(self) -> bool:
        """Whether some files are not uploaded yet."""
        return any(is_pending(e) for e in self.table().values())

    def save_state(self) -> None:
        """Save a draft's table, so another process (or a later call) continues from it."""
        self.session.catalog.write_draft_state(self.id, manifest_codec.encode(self.table().values(), kind="draft"))

    def save_record(self) -> None:
        self.session.catalog.put(self.record)

    def require_draft(self, action: str) -> None:
        if self.record.is_final:
            raise StateError(
                f"dataset {self.describe()} is finalized and cannot be changed; "
                f"cannot {action}: create a child version with Dataset.create(parent_datasets=[...])"
            )

    def mark_changed(self) -> None:
        """An uploaded draft whose files changed needs uploading again."""
        if self.record.status == UPLOADED:
            self.record.status = DRAFT
            self.save_record()
