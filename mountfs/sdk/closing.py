"""Closing a draft: uploading its new chunks, sealing it into a finalized version, publishing it.

``send_pending`` and ``seal`` are also how ``lifecycle.squash`` builds its
version directly, without a draft in between.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Iterator

from ..backends import normalize_url
from ..catalog import COMPLETED, PUBLISHED, UPLOADED, DatasetRecord
from ..catalog.records import now_iso
from ..errors import IntegrityError, MountfsError, StateError
from ..session import Session, default_workers, progress_bar, say
from ..store import FileEntry
from ..store.chunker import read_source_chunks
from ..store.locks import shared_lock
from ..store.upload import ChunkSource, UploadStats, upload_chunks
from ..units import counted, human_size
from .previews import write_version_preview
from .version import OTHER_STORE, Origins, Version, diff_tables, is_pending, same_content

log = logging.getLogger(__name__)

#: ``upload(chunk_size=None)``: target pack size
DEFAULT_PACK_MIB = 32


def pending_entries(version: Version) -> list[FileEntry]:
    """The entries whose chunks the version's store still lacks, in path order (packs are written in it)."""
    return sorted((e for e in version.table().values() if is_pending(e)), key=lambda e: e.path)


def send_pending(
    version: Version,
    pending: list[FileEntry],
    *,
    compress: bool = True,
    pack_size: int = DEFAULT_PACK_MIB << 20,
    max_workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    each: Callable[[FileEntry], None] | None = None,
) -> UploadStats:
    """Upload the chunks of ``pending`` that the store lacks, then point the entries at where they landed.

    ``each`` is called with each entry as the upload starts reading it (``upload(verbose=True)``'s lines).

    Transient store failures are retried per request by the store's retry
    layer (``backends.retry.BUDGET``), the only one; an upload that fails
    anyway can be run again, and sends only what did not land.
    """
    store = version.store

    def sources() -> Iterator[ChunkSource]:
        for e in pending:
            if each is not None:
                each(e)
            yield _chunk_source(version.session, e)

    stats = upload_chunks(
        store, sources(), compression=compress, pack_size=pack_size,
        max_workers=default_workers(max_workers), progress=progress,
    )
    index = store.chunk_index(refresh=False)
    for e in pending:
        e.chunks = [index[c.digest] if c.digest in index else c for c in e.chunks]
        e.src = ""
    return stats


def _chunk_source(sess: Session, e: FileEntry) -> ChunkSource:
    """Where the upload reads ``e``'s chunks: another store (``OTHER_STORE``) or the local file it was cut from."""
    sizes = [(c.digest, c.size) for c in e.chunks]
    if e.src.startswith(OTHER_STORE):
        other = sess.store(e.src[len(OTHER_STORE):])

        def read_other() -> Iterator[tuple[bytes, bytes | memoryview]]:
            got = other.read_chunks(e.chunks)
            for c in e.chunks:
                yield c.digest, got[c.digest]

        return sizes, read_other

    def read_local() -> Iterator[tuple[bytes, bytes]]:
        yield from read_source_chunks(e.src, e.size, e.mtime_ns, sizes)

    return sizes, read_local


def seal(version: Version, parents: dict[str, FileEntry]) -> DatasetRecord:
    """Write the version's manifest; return its record as completed (not written yet: the caller writes
    it last, since until then the version is not complete, DESIGN.md invariant 1).

    ``parents``: the merged parents' files, for the record's added/modified/removed counts and each
    entry's origin (``record_origins``).
    """
    table = version.table()
    record_origins(version, parents)
    # `mountfs gc` may have run since the upload: a version must never name a pack that is gone
    missing = version.store.missing_packs({c.pack for e in table.values() for c in e.chunks if c.pack})
    if missing:
        raise IntegrityError(
            f"dataset {version.id} names {counted(len(missing), 'pack')} no longer in store {version.store.url} "
            f"(e.g. {missing[0]}, removed by `mountfs gc`); add the files again in a new draft"
        )
    added, modified, removed = diff_tables(table, parents)
    digest = version.store.put_manifest(version.id, table.values(), meta={"id": version.id})
    return dataclasses.replace(
        version.record,
        manifest_digest=digest.hex(),
        file_count=len(table),
        total_size=sum(e.size for e in table.values()),
        changes={"added": len(added), "modified": len(modified), "removed": len(removed)},
        status=COMPLETED,
        finalized=now_iso(),
    )


def record_origins(version: Version, parents: dict[str, FileEntry]) -> None:
    """Set each entry's ``origin`` as the manifest records it: an entry holding the content of the merged
    parents' entry keeps that entry's origin, any other (new, modified, or a squash's, which has no parents)
    is the version's own.

    What a draft's state says is not trusted: it is derived again here.  A parent manifest of format 1
    records no origin; those entries are found by walking the lineage (``Origins``), once, here.
    """
    table = version.table()
    unrecorded = []
    for p, e in table.items():
        pe = parents.get(p)
        if pe is not None and same_content(e, pe):
            e.origin = pe.origin
            if not e.origin:
                unrecorded.append(p)
        else:
            e.origin = version.id
    if unrecorded:
        sess = version.session
        origins = Origins(version, lambda dataset_id: Version(sess, sess.catalog.get(dataset_id)))
        for p in unrecorded:
            table[p].origin = origins.of(p)


class DraftClosing:
    """Takes one draft through upload and finalize, and a finalized version to published."""

    def __init__(self, version: Version) -> None:
        self._v = version

    def upload(
        self,
        show_progress: bool = True,
        verbose: bool = False,
        output_url: str | None = None,
        compression: Any = None,
        chunk_size: int | None = None,
        max_workers: int | None = None,
        retries: int = 3,
    ) -> None:
        """Send the draft's new chunks, in packs; the draft is then ``uploaded``."""
        v = self._v
        v.require_draft("upload")
        if output_url:
            url = normalize_url(output_url)
            url = "" if url == v.session.catalog_url else url
            if url != v.record.storage:
                self._move_storage(url)
        v.session.create_store(v.record.storage)  # a write: the data store may be started here (and said so)
        pending = pending_entries(v)
        # ``retries`` is ClearML's and accepted, but not a loop here: the store's retry layer is the only
        # one (see send_pending), and a second one on top multiplied the time before a dead store is reported
        # shared lock until the state names the packs: from then on `mountfs gc` counts them as reachable
        with shared_lock(v.store.backend, "upload"), \
                progress_bar(sum(e.size for e in pending), "uploading", show_progress) as advance:
            stats = send_pending(
                v, pending, compress=not (compression is False or compression in (0, "none", "stored")),
                # ClearML's -1 ("one archive for the whole change") has no meaning with content-defined
                # chunks in packs: it is the default pack size, as None is
                pack_size=int(chunk_size) << 20 if chunk_size and chunk_size > 0 else DEFAULT_PACK_MIB << 20,
                max_workers=max_workers, progress=advance,
                each=(lambda e: say(f"uploading: {e.path} ({human_size(e.size)})")) if verbose else None,
            )
            v.save_state()
        v.record.status = UPLOADED
        v.save_record()
        log.info(
            "uploaded %s: %d new chunks (%d bytes) in %d packs, %d already stored",
            v.id, stats.chunks_new, stats.bytes_new, stats.packs, stats.chunks_known,
        )
        if verbose:
            sent = human_size(stats.bytes_sent)
            sent = f" ({sent} compressed)" if sent != human_size(stats.bytes_new) else ""
            say(f"uploaded {human_size(stats.bytes_new)} of new data in {_count(stats.packs, 'pack')}{sent}: "
                f"{_count(len(pending), 'file')}, {_count(stats.chunks_known, 'chunk')} already in the store")

    def _move_storage(self, url: str) -> None:
        """Make ``url`` the draft's store: chunks already uploaded to the old one are copied at upload."""
        old = self._v.record.storage or self._v.session.catalog_url
        self._v.session.create_store(url)  # reached (and started) before the draft names it
        for e in self._v.table().values():
            if e.chunks and e.chunks[0].pack and not e.src:
                e.src = OTHER_STORE + old
        self._v.record.storage = url

    def finalize(self, verbose: bool = False, raise_on_error: bool = True, auto_upload: bool = False) -> bool:
        """Seal the draft (manifest, then record); True once it is finalized."""
        v = self._v
        try:
            if v.record.is_final:
                return True
            if v.is_dirty():
                if not auto_upload:
                    raise StateError(
                        f"dataset {v.id} has files that are not uploaded; call upload() first or finalize(auto_upload=True)"
                    )
                self.upload(show_progress=verbose, verbose=verbose)
            with shared_lock(v.store.backend, "finalize"):  # gc waits until the record names the manifest
                parents = v.parent_table()
                closed = seal(v, parents)
                v.session.catalog.put(closed)
            v.record = closed
            v.session.catalog.drop_draft_state(v.id)
            write_version_preview(v, parents)  # after the record: a preview never delays or fails a version
            log.info("finalized %s: %d files", v.describe(), closed.file_count)
            return True
        except MountfsError as exc:
            if raise_on_error:
                raise
            log.error("finalize of %s failed: %s", v.id, exc)
            return False

    def publish(self, raise_on_error: bool = True) -> bool:
        """Mark a finalized version published; True once it is."""
        rec = self._v.record
        if rec.status == PUBLISHED:
            return True
        if rec.status != COMPLETED:
            if raise_on_error:
                raise StateError(f"dataset {rec.id} is not finalized; finalize it before publishing")
            return False
        rec.status = PUBLISHED
        rec.published = now_iso()
        self._v.save_record()
        return True


def _count(n: int, noun: str) -> str:
    """``1 pack``, ``2 packs``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
