"""Changing a draft: adding and removing files, uploading, finalizing, publishing.

Mixed into ``mountfs.Dataset``; parameters mean what they mean in ClearML.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import sys
from typing import Any, Iterable, Sequence

from . import ingest
from .catalog import COMPLETED, DRAFT, PUBLISHED, UPLOADED
from .catalog import names
from .catalog.catalog import state_key
from .catalog.records import now_iso
from .errors import MountfsError, ObjectNotFound, StateError, TransientStoreError, UsageError
from .reading import diff_tables
from .session import default_workers, progress_bar
from .store import ChunkRef, FileEntry
from .store.chunker import read_source_chunks
from .store.manifest import tree_conflict
from .store.upload import upload_chunks

log = logging.getLogger(__name__)

#: ``src`` of a draft entry whose chunks live in another store than the draft's
OTHER_STORE = "mountfs-store:"


class DraftChanges:
    """What a draft offers besides reading (the changing half of ``Dataset``)."""

    def add_files(
        self,
        path: str | os.PathLike[str],
        wildcard: str | Sequence[str] | None = None,
        local_base_folder: str | None = None,
        dataset_path: str | None = None,
        recursive: bool = True,
        verbose: bool = False,
        max_workers: int | None = None,
        show_progress: bool = False,
    ) -> int:
        """Add a file or a folder's files to the draft; return how many were added or changed.

        :param path: a file or folder on local disk
        :param wildcard: pattern(s) on file names or relative paths (``*.jpg``), string or list
        :param local_base_folder: files are stored relative to this folder instead of ``path``
        :param dataset_path: folder inside the dataset to put the files under
        :param recursive: descend into sub-folders
        :param verbose: print each file added and show a progress bar
        :param max_workers: threads hashing files (default: logical cores)
        :param show_progress: show a progress bar while hashing
        """
        self._require_draft("add files")
        items = ingest.scan(str(path), wildcard, local_base_folder, dataset_path, recursive)
        if not items:
            log.info("add_files(%s): no files matched", path)
            return 0
        bar = verbose or show_progress
        total = sum(size for _, _, size in items) if bar else 0
        table = self._table()
        self._check_tree(dpath for _, dpath, _ in items)
        new: dict[str, FileEntry] = {}
        with progress_bar(total, "hashing", bar) as advance:
            for src, dpath, cut in ingest.cut_all(items, self.storage.params, default_workers(max_workers), advance):
                old = table.get(dpath)
                if old is not None and old.digest == cut.digest and not old.is_external:
                    continue
                # a one-chunk file's chunk digest is its file digest: share the object (millions of small files)
                chunks = [ChunkRef(cut.digest if d == cut.digest else d, s) for d, s in cut.chunks]
                new[dpath] = FileEntry(dpath, cut.size, cut.mode, cut.mtime_ns, cut.digest, chunks, src=src)
                if verbose:
                    print(f"{'modified' if old else 'added'}: {dpath}", file=sys.stderr)
        del items
        return self._commit(new)

    def _check_tree(self, paths: Iterable[str]) -> None:
        """Refuse paths that would make one name both a file and a folder (``a`` and ``a/b``), before any work."""
        conflict = tree_conflict(sorted(set(self._table()).union(paths)))
        if conflict:
            raise UsageError(
                f"cannot add these files: {conflict}; a path cannot be both a file and a folder: "
                "remove one with remove_files() or add under another dataset_path"
            )

    def _commit(self, new: dict[str, FileEntry]) -> int:
        """Put ``new`` into the draft's table and save it; if that fails the table is as it was, and usable."""
        if not new:
            return 0
        table = self._table()
        before = {p: table.get(p) for p in new}
        table.update(new)
        try:
            self._save_state()
        except BaseException:
            for p, e in before.items():
                if e is None:
                    del table[p]
                else:
                    table[p] = e
            raise
        self._mark_changed()
        return len(new)

    def add_external_files(
        self,
        source_url: str | Sequence[str],
        wildcard: str | Sequence[str] | None = None,
        dataset_path: str | None = None,
        recursive: bool = True,
        verbose: bool = False,
        max_workers: int | None = None,
    ) -> int:
        """Add files that stay where they are (s3://, gs://, azure://, http(s)://, file://); return how many.

        A folder URL adds every object under it.  Entries keep the source URL,
        size and ETag/generation: a source that changes later is reported when
        it is read instead of serving different bytes.

        :param source_url: one URL or a list of them
        :param wildcard: pattern(s) on object names or relative paths
        :param dataset_path: folder inside the dataset to put the files under
        :param recursive: include objects in sub-folders of a folder URL
        """
        self._require_draft("add external files")
        urls = [source_url] if isinstance(source_url, str) else list(source_url)
        patterns = [wildcard] if isinstance(wildcard, str) else (list(wildcard) if wildcard else None)
        prefix = names.check_dataset_path(dataset_path or "")
        found: list[tuple[str, str, Any]] = []  # (url, path in dataset, ObjectInfo)
        for url in urls:
            found.extend(self._expand_source(str(url), prefix, patterns, recursive))
        found.sort(key=lambda t: t[1])
        names.check_distinct((url, dpath) for url, dpath, _ in found)
        self._check_tree(dpath for _, dpath, _ in found)
        table = self._table()
        new: dict[str, FileEntry] = {}
        for url, dpath, info in found:
            old = table.get(dpath)
            if old is not None and old.url == url and old.etag == info.etag and old.size == info.size:
                continue
            new[dpath] = FileEntry(dpath, info.size, 0o444, int(info.mtime * 1e9), b"", [], url=url, etag=info.etag)
            if verbose:
                print(f"{'modified' if old else 'added'}: {dpath} -> {url}", file=sys.stderr)
        return self._commit(new)

    def _expand_source(self, url: str, prefix: str, patterns: list[str] | None, recursive: bool):
        from .backends import normalize_url, open_backend

        url = normalize_url(url)
        if "://" not in url:
            url = "file://" + url
        try:
            backend, key = self._sess.source(url)
            info = backend.stat(key)
        except (ObjectNotFound, UsageError):
            info = None
        if info is not None:  # one object
            name = url.rsplit("/", 1)[-1]
            if patterns and not ingest.matches(name, patterns):
                return []
            return [(url, names.found_path(prefix, name, url), info)]
        if url.startswith(("http://", "https://")):
            raise UsageError(f"cannot add {url}: it does not exist (HTTP sources must name files)")
        folder = open_backend(url, self._sess.config)
        out = []
        for obj in folder.list(""):
            rel = obj.key
            if not recursive and "/" in rel:
                continue
            if patterns and not ingest.matches(rel, patterns):
                continue
            out.append((f"{url}/{rel}", names.found_path(prefix, rel, f"{url}/{rel}"), obj))
        if not out:
            raise UsageError(f"cannot add {url}: no such object, and no objects under it as a folder")
        return out

    def remove_files(self, dataset_path: str, recursive: bool = True, verbose: bool = False) -> int:
        """Remove files matching ``dataset_path`` (a path, folder or wildcard); return how many."""
        self._require_draft("remove files")
        table = self._table()
        if "://" in dataset_path:
            # an external file's source URL (or a wildcard over URLs)
            doomed = [p for p, e in table.items() if e.url and fnmatch.fnmatchcase(e.url, dataset_path.rstrip("/"))
                      or e.url.startswith(dataset_path.rstrip("/") + "/") and recursive]
        else:
            pattern = names.check_dataset_path(dataset_path, "dataset_path")
            doomed = [p for p in table if names.path_matches(p, pattern, recursive)]
        for p in doomed:
            del table[p]
            if verbose:
                print(f"removed: {p}", file=sys.stderr)
        if doomed:
            self._save_state()
            self._mark_changed()
        return len(doomed)

    def _mark_changed(self) -> None:
        if self._rec.status == UPLOADED:
            self._rec.status = DRAFT
            self._sess.catalog.put(self._rec)

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
        """Upload the added files' new chunks, in packs, to the dataset's store.

        Chunks the store already holds (from any dataset) are not sent again, so
        a retried upload only sends what did not land.

        :param output_url: store to upload to, if not the one given at create
        :param compression: ``None`` = zstd where it pays; ``False``/``"none"``/``0`` = store raw
        :param chunk_size: target pack size in MiB (default 32)
        :param max_workers: packs compressed and sent in parallel (default: logical cores)
        :param retries: times a transient store failure restarts the upload
        """
        self._require_draft("upload")
        if output_url:
            from .backends import normalize_url

            url = normalize_url(output_url)
            url = "" if url == self._sess.catalog_url else url
            if url != self._rec.storage:
                self._move_storage(url)
        store = self.storage
        table = self._table()
        pending = [e for e in sorted(table.values(), key=lambda e: e.path) if self._pending(e)]
        compress = not (compression is False or compression in (0, "none", "stored"))
        pack_size = int(chunk_size) << 20 if chunk_size else 32 << 20
        total = sum(e.size for e in pending)
        for attempt in range(max(0, retries) + 1):
            try:
                with progress_bar(total, "uploading", show_progress) as advance:
                    stats = upload_chunks(
                        store, (self._source(e) for e in pending), compression=compress, pack_size=pack_size,
                        max_workers=default_workers(max_workers), progress=advance,
                    )
                break
            except TransientStoreError as exc:
                if attempt >= retries:
                    raise
                log.warning("upload of %s failed (%s); retrying (%d/%d)", self.id, exc, attempt + 1, retries)
        index = store.chunk_index(refresh=False)
        for e in pending:
            e.chunks = [index[c.digest] if c.digest in index else c for c in e.chunks]
            e.src = ""
        self._save_state()
        self._rec.status = UPLOADED
        self._sess.catalog.put(self._rec)
        log.info(
            "uploaded %s: %d new chunks (%d bytes) in %d packs, %d already stored",
            self.id, stats.chunks_new, stats.bytes_new, stats.packs, stats.chunks_known,
        )
        if verbose:
            print(f"uploaded {stats.bytes_new} new bytes in {stats.packs} packs", file=sys.stderr)

    def _source(self, e: FileEntry):
        sizes = [(c.digest, c.size) for c in e.chunks]
        if e.src.startswith(OTHER_STORE):
            other = self._sess.store(e.src[len(OTHER_STORE):])

            def read_other():
                got = other.read_chunks(e.chunks)
                for c in e.chunks:
                    yield c.digest, got[c.digest]

            return sizes, read_other
        return sizes, lambda: read_source_chunks(e.src, e.size, e.mtime_ns, sizes)

    def _move_storage(self, url: str) -> None:
        old = self._rec.storage or self._sess.catalog_url
        for e in self._table().values():
            if e.chunks and e.chunks[0].pack and not e.src:
                e.src = OTHER_STORE + old
        self._rec.storage = url

    def finalize(self, verbose: bool = False, raise_on_error: bool = True, auto_upload: bool = False) -> bool:
        """Close the version: write its manifest and mark it completed; it never changes after this.

        :param auto_upload: upload pending files first instead of failing
        :param raise_on_error: raise on failure (else log it and return False)
        """
        try:
            if self._rec.is_final:
                return True
            if self.is_dirty():
                if not auto_upload:
                    raise StateError(
                        f"dataset {self.id} has files that are not uploaded; call upload() first or finalize(auto_upload=True)"
                    )
                self.upload(show_progress=verbose, verbose=verbose)
            table = self._table()
            parents = self._parent_table()
            added, modified, removed = diff_tables(table, parents)
            digest = self.storage.put_manifest(self.id, table.values(), meta={"id": self.id})
            rec = self._rec
            rec.manifest_digest = digest.hex()
            rec.file_count = len(table)
            rec.total_size = sum(e.size for e in table.values())
            rec.changes = {"added": len(added), "modified": len(modified), "removed": len(removed)}
            rec.status = COMPLETED
            rec.finalized = now_iso()
            # the record is written last: until then the version is not complete (invariant 1)
            self._sess.catalog.put(rec)
            self._sess.catalog.backend.delete(state_key(self.id))
            log.info("finalized %s %s/%s %s: %d files", rec.id, rec.project, rec.name, rec.version, rec.file_count)
            return True
        except MountfsError as exc:
            if raise_on_error:
                raise
            log.error("finalize of %s failed: %s", self.id, exc)
            return False

    def publish(self, raise_on_error: bool = True) -> bool:
        """Mark a finalized version as published."""
        if self._rec.status == PUBLISHED:
            return True
        if self._rec.status != COMPLETED:
            if raise_on_error:
                raise StateError(f"dataset {self.id} is not finalized; finalize it before publishing")
            return False
        self._rec.status = PUBLISHED
        self._rec.published = now_iso()
        self._sess.catalog.put(self._rec)
        return True
