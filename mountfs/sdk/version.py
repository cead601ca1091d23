"""One version as every part of ``Dataset`` sees it: its session, its record and its file table.

The parts (changes, closing, reading, copies, metadata) are handed a
``Version`` instead of reaching into ``Dataset``; this module also holds the one
merge of parent versions and the test of what still needs uploading, and the
small pieces of ClearML parity every part shares: tags as a list, renumbering a
draft, name patterns, and entries that answer to ClearML's attribute names.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Iterable, Sequence

from ..catalog import DRAFT, UPLOADED, DatasetRecord, names
from ..errors import MountfsError, NotFound, StateError, UsageError
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
    """(added, modified, removed) paths of ``table`` against the merged ``parents``; modified: other content
    (``same_content``: for an external file not read, whose digest is empty, another source, size or tag)."""
    added = sorted(p for p in table if p not in parents)
    modified = sorted(p for p in table if p in parents and not same_content(table[p], parents[p]))
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


# --- ClearML's names ---------------------------------------------------------------


def as_tags(tags: str | Sequence[str] | None, what: str = "tags") -> list[str]:
    """``tags`` as a list: a plain string is one tag (ClearML's ``add_tags("my tag")``), not its letters."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    out: list[str] = []
    for t in tags:
        if not isinstance(t, str):
            raise UsageError(f"{what} must be strings; got {type(t).__name__} {t!r}")
        if t not in out:
            out.append(t)
    return out


def renumber(v: Version, version: str) -> None:
    """Give a draft another version number: claim the new pointer, save the record, then release the old one.

    A number another version holds is refused (``Conflict``) and nothing
    changes.  Between the claim and the release both pointers name this id,
    but only the one the record agrees with counts (``Catalog.agrees``), so a
    crash in between leaves the old number taken, never two versions.
    """
    new = names.check_version(str(version).strip())
    r = v.record
    if new == r.version:
        return
    v.require_draft(f"change its version to {new}")
    old = r.version
    v.session.catalog.claim(r.project, r.name, new, r.id)
    r.version = new
    try:
        v.save_record()
    except BaseException:
        r.version = old
        try:
            v.session.catalog.release(r.project, r.name, new)
        except MountfsError:  # the first failure is the one to report
            pass
        raise
    v.session.catalog.release(r.project, r.name, old)


def name_pattern(partial_name: str | None) -> re.Pattern[str] | None:
    """``list_datasets(partial_name=...)``: a regular expression searched anywhere in the name, ignoring case."""
    if partial_name is None:
        return None
    try:
        return re.compile(partial_name, re.IGNORECASE)
    except re.error as exc:
        raise UsageError(
            f"partial_name {partial_name!r} is not a valid regular expression ({exc}); "
            "escape special characters (re.escape) to match them literally"
        ) from None


def same_content(a: FileEntry, b: FileEntry) -> bool:
    """Whether two entries of one path hold the same bytes (external ones: the same source, size and tag)."""
    return a.size == b.size and a.digest == b.digest and a.url == b.url and a.etag == b.etag


class Origins:
    """path -> id of the version whose files first held that path's current content, read once when asked.

    ClearML's ``parent_dataset_id`` is the version that stored the file.  A
    finalized version's manifest records it (``FileEntry.origin``, written at
    finalize).  Where it does not (a manifest of format 1, or a draft, whose
    recorded origins are not trusted: a squashed draft holds its sources'
    entries but has no parents), it is found by walking the parents: an entry
    equal to one of a parent's came from it (the last parent holding it, as in
    the merge), any other entry from this version itself.  A parent deleted
    since cannot be walked: its files then count as this version's.
    """

    def __init__(self, version: Version, lookup: Callable[[str], Version]) -> None:
        self._v = version
        self._lookup = lookup
        self._memo: dict[str, dict[str, str]] = {}

    def of(self, path: str) -> str:
        return self._origins(self._v).get(path, self._v.id)

    def _origins(self, v: Version) -> dict[str, str]:
        done = self._memo.get(v.id)
        if done is not None:
            return done
        table = v.table()
        recorded = v.record.is_final
        out = {p: (e.origin if recorded else "") or v.id for p, e in table.items()}
        todo = [p for p, e in table.items() if not (recorded and e.origin)]
        for parent_id in v.record.parents if todo else ():
            try:
                parent = self._lookup(parent_id)
            except NotFound:  # a parent deleted since (Dataset.delete): its files count as this version's
                continue
            theirs, above = parent.table(), self._origins(parent)
            for p in todo:
                pe = theirs.get(p)
                if pe is not None and same_content(table[p], pe):
                    out[p] = above.get(p, parent.id)
        self._memo[v.id] = out
        return out


#: every field of ``FileEntry``, copied into each ``EntryView`` whatever fields the format grows
_ENTRY_FIELDS = tuple(f.name for f in dataclasses.fields(FileEntry))


class EntryView(FileEntry):
    """A copy of one ``FileEntry`` that also answers to ClearML's names (``FileEntry`` / ``LinkEntry``).

    ``relative_path`` is the path, ``hash`` the hex xxh3-128 digest (ClearML's
    is SHA-256; "" for an external file not read), ``link`` the source URL of
    an external file (None for a stored one), ``parent_dataset_id`` the
    version the content was stored by (``Origins``; a deleted one's id too).  It is still a
    ``FileEntry``, so mountfs's own fields (``path``, ``digest``, ``chunks``,
    ``url``, ``etag`` ...) read as before; changing it changes nothing stored.
    """

    __slots__ = ("_origins",)

    def __init__(self, entry: FileEntry, origins: Origins) -> None:
        # a field-by-field copy, not FileEntry.__init__(**fields): this runs for every file of a version
        for name in _ENTRY_FIELDS:
            setattr(self, name, getattr(entry, name))
        self._origins = origins

    @property
    def relative_path(self) -> str:
        return self.path

    @property
    def hash(self) -> str:
        return self.digest.hex()

    @property
    def link(self) -> str | None:
        return self.url or None

    @property
    def parent_dataset_id(self) -> str:
        return self._origins.of(self.path)

    def as_dict(self) -> dict[str, Any]:
        """ClearML's ``as_dict()``: the fields by ClearML's names."""
        out: dict[str, Any] = {"relative_path": self.path, "hash": self.hash,
                               "parent_dataset_id": self.parent_dataset_id, "size": self.size}
        if self.url:
            out["link"] = self.url
        return out


def entry_views(version: Version, lookup: Callable[[str], Version]) -> dict[str, EntryView]:
    """path -> ``EntryView`` of every file of ``version``, sharing one ``Origins``."""
    origins = Origins(version, lookup)
    return {p: EntryView(e, origins) for p, e in version.table().items()}
