"""``mountfs.Dataset``: ClearML Data's ``Dataset`` API over a mountfs store.

Method names, parameters and their meanings follow ``clearml.Dataset``; where
ClearML's parameter has no meaning here (``use_current_task``,
``use_soft_links``, ``alias`` ...) it is accepted and ignored with a debug log.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import logging
import os
import posixpath
import sys
from typing import Any, Iterable, Sequence

import xxhash

from . import ingest, localcopy
from .catalog import COMPLETED, DRAFT, PUBLISHED, UPLOADED, DatasetRecord
from .catalog import names
from .catalog.catalog import metadata_key, state_key
from .catalog.records import FINAL_STATUSES, new_id, now_iso
from .errors import (
    MountfsError,
    NotFound,
    ObjectNotFound,
    StateError,
    TransientStoreError,
    UsageError,
)
from .session import Session, current, progress_bar
from .store import ChunkRef, FileEntry, Store
from .store import manifest as manifest_codec
from .store.chunker import read_source_chunks
from .store.upload import upload_chunks

log = logging.getLogger(__name__)

#: ``src`` of a draft entry whose chunks live in another store than the draft's
_OTHER_STORE = "mountfs-store:"


def _default_workers(max_workers: int | None) -> int:
    return max(1, int(max_workers)) if max_workers else (os.cpu_count() or 1)


def _as_id(ds: "str | Dataset") -> str:
    return ds.id if isinstance(ds, Dataset) else str(ds)


class Dataset:
    """One version of a dataset: a draft open for changes, or a finalized, immutable version."""

    def __init__(self, record: DatasetRecord, session: Session, entries: dict[str, FileEntry] | None = None):
        # use Dataset.create() or Dataset.get(); this constructor is internal
        self._rec = record
        self._sess = session
        self._entries = entries

    # ------------------------------------------------------------------ lookup

    @classmethod
    def create(
        cls,
        dataset_name: str | None = None,
        dataset_project: str | None = None,
        dataset_tags: Sequence[str] | None = None,
        parent_datasets: Sequence["str | Dataset"] | None = None,
        use_current_task: bool = False,
        dataset_version: str | None = None,
        output_uri: str | None = None,
        description: str | None = None,
    ) -> "Dataset":
        """Create a new draft version.

        :param dataset_name: name of the dataset (a directory name in the mount)
        :param dataset_project: project, may be nested (``vision/detection``)
        :param dataset_tags: tags for searching
        :param parent_datasets: ids (or ``Dataset`` objects) of finalized versions whose files
            this version starts from; merged in order, a later parent overriding an earlier one
        :param use_current_task: accepted for ClearML compatibility; ignored
        :param dataset_version: semantic version (``1.0``, ``1.0.1``); by default the latest
            version of this project/name with its last component incremented, ``1.0.0`` for the first
        :param output_uri: store where this version's data is uploaded (default: the catalog's store)
        :param description: free text
        """
        if use_current_task:
            log.debug("use_current_task is a ClearML task feature; ignored")
        sess = current()
        parents = [sess.catalog.get(_as_id(p)) for p in (parent_datasets or [])]
        for p in parents:
            if not p.is_final:
                raise StateError(f"parent dataset {p.id} ({p.project}/{p.name} {p.version}) is not finalized; finalize it first")
        if parents and (dataset_name is None or dataset_project is None):
            dataset_name = dataset_name or parents[-1].name
            dataset_project = dataset_project or parents[-1].project
        if dataset_name is None or dataset_project is None:
            raise UsageError("a dataset needs dataset_name and dataset_project (or a parent to inherit them from)")
        names.check_project(dataset_project)
        names.check_name(dataset_name)
        if dataset_version is not None:
            names.check_version(dataset_version)
        storage = output_uri or (parents[-1].storage if parents else "")
        if storage:
            from .backends import normalize_url

            storage = normalize_url(storage)
            if storage == sess.catalog_url:
                storage = ""
        # merge the parents before claiming a version, so a broken parent claims nothing
        entries = cls._merge_parents(sess, parents, storage)
        dataset_id = new_id()
        version = sess.catalog.claim(dataset_project, dataset_name, dataset_version, dataset_id)
        rec = DatasetRecord(
            id=dataset_id,
            project=dataset_project,
            name=dataset_name,
            version=version,
            parents=[p.id for p in parents],
            tags=list(dataset_tags or []),
            description=description or "",
            storage=storage,
        )
        ds = cls(rec, sess, entries)
        ds._save_state()
        sess.catalog.put(rec)
        log.info("created dataset %s %s/%s %s", rec.id, rec.project, rec.name, rec.version)
        return ds

    @classmethod
    def squash(
        cls,
        dataset_name: str,
        dataset_ids: Sequence["str | Dataset"] | None = None,
        dataset_project_name_pairs: Sequence[tuple[str, str]] | None = None,
        output_url: str | None = None,
    ) -> "Dataset":
        """Merge finalized versions into one new, finalized version with no parents.

        Files are merged in the order given, a later dataset overriding an
        earlier one.  Chunks already in the target store are not copied again.

        :param dataset_name: name of the new dataset (in the first dataset's project)
        :param dataset_ids: ids (or ``Dataset`` objects) to merge
        :param dataset_project_name_pairs: ``(project, name)`` pairs: the latest completed version of each
        :param output_url: store for the new version's data (default: the first dataset's)
        """
        sess = current()
        sources = [sess.catalog.get(_as_id(d)) for d in (dataset_ids or [])]
        for project, name in dataset_project_name_pairs or []:
            sources.append(cls.get(dataset_project=project, dataset_name=name, only_completed=True)._rec)
        if len(sources) < 2:
            raise UsageError("squash needs at least two datasets (dataset_ids or dataset_project_name_pairs)")
        for src in sources:
            if not src.is_final:
                raise StateError(f"dataset {src.id} is not finalized; only finalized versions can be squashed")
        ds = cls.create(dataset_name, sources[0].project, output_uri=output_url or sources[0].storage or None,
                        description=f"squashed from {', '.join(s.id for s in sources)}")
        ds._entries = cls._merge_parents(sess, sources, ds._rec.storage)
        ds._save_state()
        ds.finalize(auto_upload=True)
        return ds

    @staticmethod
    def _merge_parents(sess: Session, parents: list[DatasetRecord], storage: str) -> dict[str, FileEntry]:
        merged: dict[str, FileEntry] = {}
        for p in parents:
            for e in sess.store(p.storage).get_manifest(p.id):
                if p.storage != storage and e.chunks:
                    e.src = _OTHER_STORE + (p.storage or sess.catalog_url)
                merged[e.path] = e
        return merged

    @classmethod
    def get(
        cls,
        dataset_id: str | None = None,
        dataset_project: str | None = None,
        dataset_name: str | None = None,
        dataset_tags: Sequence[str] | None = None,
        only_completed: bool = False,
        only_published: bool = False,
        include_archived: bool = False,
        auto_create: bool = False,
        writable_copy: bool = False,
        dataset_version: str | None = None,
        alias: str | None = None,
        overridable: bool = False,
        shallow_search: bool = False,
        **kwargs: Any,
    ) -> "Dataset":
        """Get a dataset version by id, or the most recent one matching project/name/tags/version.

        :param only_completed: only finalized (completed or published) versions
        :param only_published: only published versions
        :param auto_create: create a new draft when nothing matches
        :param writable_copy: return a new draft child of the match, open for changes
        """
        for ignored in ("alias", "overridable", "shallow_search", "include_archived"):
            if locals()[ignored]:
                log.debug("%s is a ClearML server feature; ignored", ignored)
        sess = current()
        statuses = (PUBLISHED,) if only_published else FINAL_STATUSES if only_completed else None
        if dataset_id:
            rec = sess.catalog.get(dataset_id)
            found = [rec] if statuses is None or rec.status in statuses else []
        else:
            if dataset_project is not None:
                names.check_project(dataset_project)
            if dataset_version is not None:
                names.check_version(dataset_version)
            found = sess.catalog.find(
                dataset_project, dataset_name, dataset_version, dataset_tags, statuses
            )
        if not found:
            if auto_create and not dataset_id:
                return cls.create(dataset_name, dataset_project, dataset_tags, dataset_version=dataset_version)
            what = dataset_id or "/".join(x for x in (dataset_project, dataset_name, dataset_version) if x) or "any dataset"
            extra = " (completed)" if only_completed else " (published)" if only_published else ""
            raise NotFound(f"no dataset{extra} matches {what}; list them with `mountfs search`")
        ds = cls(found[0], sess)
        if writable_copy:
            if not ds.is_final():
                raise StateError(f"dataset {ds.id} is a draft; writable_copy needs a finalized version")
            return cls.create(ds.name, ds.project, ds.tags, parent_datasets=[ds.id])
        return ds

    @staticmethod
    def list_datasets(
        dataset_project: str | None = None,
        partial_name: str | None = None,
        tags: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        only_completed: bool = True,
        recursive_project_search: bool = True,
        include_archived: bool = True,
    ) -> list[dict[str, Any]]:
        """Datasets matching the filters, newest first, as dicts (id, name, project, version, tags, status, created)."""
        sess = current()
        statuses = FINAL_STATUSES if only_completed else None
        out = []
        for r in sess.catalog.find(tags=tags, statuses=statuses, partial_name=partial_name):
            if dataset_project is not None:
                inside = recursive_project_search and r.project.startswith(dataset_project.rstrip("/") + "/")
                if r.project != dataset_project and not inside:
                    continue
            if ids is not None and r.id not in ids:
                continue
            out.append(
                {"id": r.id, "name": r.name, "project": r.project, "version": r.version, "tags": list(r.tags),
                 "status": r.status, "created": r.created, "file_count": r.file_count, "total_size": r.total_size}
            )
        return out

    # -------------------------------------------------------------- properties

    @property
    def id(self) -> str:
        return self._rec.id

    @property
    def name(self) -> str:
        return self._rec.name

    @property
    def project(self) -> str:
        return self._rec.project

    @property
    def version(self) -> str:
        return self._rec.version

    @property
    def tags(self) -> list[str]:
        return list(self._rec.tags)

    @tags.setter
    def tags(self, values: Sequence[str]) -> None:
        self._rec.tags = list(values or [])
        self._sess.catalog.put(self._rec)

    @property
    def status(self) -> str:
        return self._rec.status

    @property
    def description(self) -> str:
        return self._rec.description

    @property
    def record(self) -> DatasetRecord:
        """The dataset record as stored in the catalog."""
        return self._rec

    @property
    def file_entries_dict(self) -> dict[str, FileEntry]:
        """path -> file entry (size, digest, chunks ...) of every file in this version."""
        return dict(self._table())

    @property
    def storage(self) -> Store:
        """The store holding this version's data."""
        return self._sess.store(self._rec.storage)

    def is_final(self) -> bool:
        """True once finalized (completed or published): the content can no longer change."""
        return self._rec.is_final

    def is_dirty(self) -> bool:
        """True while files were added that are not uploaded yet."""
        return any(self._pending(e) for e in self._table().values())

    def __repr__(self) -> str:
        r = self._rec
        return f"<Dataset {r.project}/{r.name} {r.version} id={r.id} status={r.status}>"

    # ------------------------------------------------------------- internals

    @staticmethod
    def _pending(e: FileEntry) -> bool:
        return bool(e.chunks) and not e.is_external and (not e.chunks[0].pack or e.src.startswith(_OTHER_STORE))

    def _table(self) -> dict[str, FileEntry]:
        if self._entries is None:
            if self._rec.is_final:
                entries = self.storage.get_manifest(self.id)
            else:
                key = state_key(self.id)
                try:
                    data = self._sess.catalog.backend.get(key)
                except ObjectNotFound:
                    raise StateError(f"draft {self.id} has no saved state; it was left half-created, create a new one") from None
                entries = manifest_codec.decode(data, f"{self._sess.catalog.backend.url}/{key}")[1]
            self._entries = {e.path: e for e in entries}
        return self._entries

    def _save_state(self) -> None:
        data = manifest_codec.encode(self._table().values(), kind="draft")
        self._sess.catalog.backend.put(state_key(self.id), data)

    def _require_draft(self, action: str) -> None:
        if self._rec.is_final:
            raise StateError(
                f"dataset {self.id} ({self.project}/{self.name} {self.version}) is finalized and cannot be changed; "
                f"cannot {action}: create a child version with Dataset.create(parent_datasets=[...])"
            )

    def _parent_table(self) -> dict[str, FileEntry]:
        parents = [self._sess.catalog.get(p) for p in self._rec.parents]
        merged: dict[str, FileEntry] = {}
        for p in parents:
            for e in self._sess.store(p.storage).get_manifest(p.id):
                merged[e.path] = e
        return merged

    # ----------------------------------------------------------- changing it

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
        total = sum(os.path.getsize(src) for src, _ in items) if bar else 0
        table = self._table()
        changed = 0
        with progress_bar(total, "hashing", bar) as advance:
            for src, dpath, cut in ingest.cut_all(items, self.storage.params, _default_workers(max_workers), advance):
                old = table.get(dpath)
                if old is not None and old.digest == cut.digest and not old.is_external:
                    continue
                # a one-chunk file's chunk digest is its file digest: share the object (millions of small files)
                chunks = [ChunkRef(cut.digest if d == cut.digest else d, s) for d, s in cut.chunks]
                table[dpath] = FileEntry(dpath, cut.size, cut.mode, cut.mtime_ns, cut.digest, chunks, src=src)
                changed += 1
                if verbose:
                    print(f"{'modified' if old else 'added'}: {dpath}", file=sys.stderr)
        del items
        if changed:
            self._save_state()
            self._mark_changed()
        return changed

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
        table = self._table()
        changed = 0
        for url, dpath, info in sorted(found, key=lambda t: t[1]):
            old = table.get(dpath)
            if old is not None and old.url == url and old.etag == info.etag and old.size == info.size:
                continue
            table[dpath] = FileEntry(dpath, info.size, 0o444, int(info.mtime * 1e9), b"", [], url=url, etag=info.etag)
            changed += 1
            if verbose:
                print(f"{'modified' if old else 'added'}: {dpath} -> {url}", file=sys.stderr)
        if changed:
            self._save_state()
            self._mark_changed()
        return changed

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
            return [(url, names.check_dataset_path(posixpath.join(prefix, name) if prefix else name), info)]
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
            out.append((f"{url}/{rel}", names.check_dataset_path(posixpath.join(prefix, rel) if prefix else rel), obj))
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
            doomed = [p for p in table if self._path_matches(p, pattern, recursive)]
        for p in doomed:
            del table[p]
            if verbose:
                print(f"removed: {p}", file=sys.stderr)
        if doomed:
            self._save_state()
            self._mark_changed()
        return len(doomed)

    @staticmethod
    def _path_matches(path: str, pattern: str, recursive: bool) -> bool:
        if pattern in ("", "*") and recursive:
            return True
        if path == pattern or path.startswith(pattern.rstrip("/") + "/") and recursive:
            return True
        if not fnmatch.fnmatchcase(path, pattern):
            return False
        # without recursion '*' must not reach into sub-folders
        return recursive or posixpath.dirname(path) == posixpath.dirname(pattern)

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
                        max_workers=_default_workers(max_workers), progress=advance,
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
        if e.src.startswith(_OTHER_STORE):
            other = self._sess.store(e.src[len(_OTHER_STORE):])

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
                e.src = _OTHER_STORE + old
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
            added, modified, removed = self._diff(table, parents)
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

    # ------------------------------------------------------------- reading it

    def list_files(self, dataset_path: str | None = None, recursive: bool = True, dataset_id: str | None = None) -> list[str]:
        """Paths of the files in this version, optionally filtered by a path or wildcard."""
        table = self._other(dataset_id)._table()
        if not dataset_path:
            paths = table if recursive else [p for p in table if "/" not in p]
            return sorted(paths)
        pattern = names.check_dataset_path(dataset_path, "dataset_path")
        return sorted(p for p in table if self._path_matches(p, pattern, recursive))

    def _other(self, dataset_id: str | None) -> "Dataset":
        return self if not dataset_id or dataset_id == self.id else Dataset.get(dataset_id=dataset_id)

    @staticmethod
    def _diff(table: dict[str, FileEntry], parents: dict[str, FileEntry]) -> tuple[list[str], list[str], list[str]]:
        added = sorted(p for p in table if p not in parents)
        modified = sorted(p for p in table if p in parents and table[p].digest != parents[p].digest)
        removed = sorted(p for p in parents if p not in table)
        return added, modified, removed

    def list_added_files(self, dataset_id: str | None = None) -> list[str]:
        """Files in this version that none of its parents has."""
        ds = self._other(dataset_id)
        return ds._diff(ds._table(), ds._parent_table())[0]

    def list_modified_files(self, dataset_id: str | None = None) -> list[str]:
        """Files whose content differs from the parents'."""
        ds = self._other(dataset_id)
        return ds._diff(ds._table(), ds._parent_table())[1]

    def list_removed_files(self, dataset_id: str | None = None) -> list[str]:
        """Files the parents have that this version removed."""
        ds = self._other(dataset_id)
        return ds._diff(ds._table(), ds._parent_table())[2]

    def get_dependency_graph(self) -> dict[str, list[str]]:
        """id -> parent ids, for this version and all its ancestors."""
        graph: dict[str, list[str]] = {}
        todo = [self._rec]
        while todo:
            rec = todo.pop()
            if rec.id in graph:
                continue
            graph[rec.id] = list(rec.parents)
            todo.extend(self._sess.catalog.get(p) for p in rec.parents)
        return graph

    def _select(self, part: int | None, num_parts: int | None, files: Iterable[str] | None) -> list[FileEntry]:
        entries = sorted(self._table().values(), key=lambda e: e.path)
        if files is not None:
            wanted = [names.check_dataset_path(f, "file") for f in ([files] if isinstance(files, str) else files)]
            chosen = [e for e in entries if any(self._path_matches(e.path, w, True) for w in wanted)]
            missing = [w for w in wanted if not any(self._path_matches(e.path, w, True) for e in entries)]
            if missing:
                raise NotFound(f"{missing[0]!r} is not in dataset {self.id}; see `mountfs list --id {self.id}`")
            entries = chosen
        if num_parts is not None or part is not None:
            if num_parts is None or part is None or not (0 <= int(part) < int(num_parts)):
                raise UsageError(f"part must be in 0..num_parts-1 (got part={part}, num_parts={num_parts})")
            # contiguous slices balanced by bytes, so each part is a few large reads
            total = sum(e.size for e in entries) or 1
            out, offset = [], 0
            for i, e in enumerate(entries):
                share = (offset * num_parts // total) if total > 1 else (i * num_parts // max(1, len(entries)))
                if min(share, num_parts - 1) == part:
                    out.append(e)
                offset += e.size
            entries = out
        return entries

    def get_local_copy(
        self,
        use_soft_links: bool | None = None,
        part: int | None = None,
        num_parts: int | None = None,
        raise_on_error: bool = True,
        max_workers: int | None = None,
        files: Sequence[str] | None = None,
        show_progress: bool = False,
    ) -> str | None:
        """A read-only folder with this version's files, built from the local cache and reused when complete.

        :param part: with ``num_parts``, only slice ``part`` (0-based) of ``num_parts`` disjoint slices
        :param files: only these paths (or folders, or wildcards)
        :param max_workers: parallel fetch/write threads (default: logical cores)
        :param show_progress: show a progress bar while fetching
        """
        if use_soft_links:
            log.debug("use_soft_links: local copies are always plain files; ignored")
        try:
            if not self.is_final():
                raise StateError(f"dataset {self.id} is not finalized; get a local copy of a finalized version")
            entries = self._select(part, num_parts, files)
            suffix = ""
            if num_parts is not None:
                suffix += f".part{part}of{num_parts}"
            if files is not None:
                suffix += ".files-" + hashlib.sha1("\0".join(sorted(e.path for e in entries)).encode()).hexdigest()[:12]
            target = os.path.join(self._sess.config.cache_dir, "copies", self.id + suffix)
            with progress_bar(sum(e.size for e in entries), "fetching", show_progress) as advance:
                return localcopy.build_cached_copy(
                    entries, self.storage, self._sess.cache, target, max_workers=_default_workers(max_workers),
                    progress=advance, source=self._sess.source,
                )
        except MountfsError as exc:
            if raise_on_error:
                raise
            log.error("get_local_copy of %s failed: %s", self.id, exc)
            return None

    def get_mutable_local_copy(
        self,
        target_folder: str | os.PathLike[str],
        overwrite: bool = False,
        part: int | None = None,
        num_parts: int | None = None,
        raise_on_error: bool = True,
        max_workers: int | None = None,
        show_progress: bool = False,
    ) -> str | None:
        """Write this version's files into ``target_folder`` as plain writable files.

        :param overwrite: empty a non-empty ``target_folder`` first (else it is refused)
        :param show_progress: show a progress bar while copying
        """
        try:
            if not self.is_final():
                raise StateError(f"dataset {self.id} is not finalized; copy a finalized version")
            entries = self._select(part, num_parts, None)
            with progress_bar(sum(e.size for e in entries), "copying", show_progress) as advance:
                return localcopy.build_mutable_copy(
                    entries, self.storage, self._sess.cache, os.path.abspath(str(target_folder)),
                    overwrite=overwrite, max_workers=_default_workers(max_workers), progress=advance,
                    source=self._sess.source,
                )
        except MountfsError as exc:
            if raise_on_error:
                raise
            log.error("get_mutable_local_copy of %s failed: %s", self.id, exc)
            return None

    def verify_dataset_hash(
        self, local_copy_path: str | None = None, skip_hash: bool = False, verbose: bool = False
    ) -> list[str]:
        """Check content against the recorded digests; return the paths that fail.

        With ``local_copy_path`` the files of that folder are checked (``skip_hash``:
        sizes only); without it every chunk of the version is read from the store
        and checked (``skip_hash`` does not apply there).
        """
        bad: list[str] = []
        entries = sorted(self._table().values(), key=lambda e: e.path)
        if local_copy_path:
            for e in entries:
                p = os.path.join(local_copy_path, e.path)
                try:
                    ok = os.path.getsize(p) == e.size
                    if ok and not skip_hash:
                        h = xxhash.xxh3_128()
                        with open(p, "rb") as fh:
                            for block in iter(lambda: fh.read(8 << 20), b""):
                                h.update(block)
                        ok = h.digest() == e.digest
                except OSError:
                    ok = False
                if not ok:
                    bad.append(e.path)
        else:
            store = self.storage
            hashers: dict[str, Any] = {}
            for batch in localcopy.batches([e for e in entries if not e.is_external]):
                try:
                    got = store.read_chunks({c.digest: c for p in batch for c in p.chunks}.values())
                except MountfsError as exc:
                    log.error("verify %s: %s", self.id, exc)
                    bad.extend(p.entry.path for p in batch if p.entry.path not in bad)
                    continue
                for p in batch:
                    h = hashers.setdefault(p.entry.path, xxhash.xxh3_128())
                    for c in p.chunks:
                        h.update(got[c.digest])
                    if p.last == len(p.entry.chunks):
                        del hashers[p.entry.path]
                        if h.digest() != p.entry.digest and p.entry.path not in bad:
                            bad.append(p.entry.path)
        for p in bad:
            if verbose:
                print(f"FAILED: {p}", file=sys.stderr)
        return bad

    # ---------------------------------------------------------------- metadata

    def set_metadata(self, metadata: Any, metadata_name: str = "metadata", ui_visible: bool = True) -> None:
        """Attach a JSON-able object or a pandas DataFrame under ``metadata_name``."""
        names.check_component(metadata_name, "metadata_name")
        kind = "json"
        try:
            import pandas as pd
        except ImportError:
            pd = None
        if pd is not None and isinstance(metadata, pd.DataFrame):
            kind, data = "pandas", metadata.to_json(orient="table").encode()
        else:
            try:
                data = json.dumps(metadata).encode()
            except (TypeError, ValueError) as exc:
                raise UsageError(f"metadata {metadata_name!r} is not JSON-able ({exc}); pass dicts, lists, numbers, strings or a DataFrame") from None
        self._sess.catalog.backend.put(metadata_key(self.id, metadata_name, "json"), data)
        self._rec.metadata[metadata_name] = {"type": kind}
        self._sess.catalog.put(self._rec)

    def get_metadata(self, metadata_name: str = "metadata") -> Any:
        """The object stored by ``set_metadata`` under ``metadata_name`` (``None`` if there is none)."""
        info = self._rec.metadata.get(metadata_name)
        if info is None:
            return None
        data = self._sess.catalog.backend.get(metadata_key(self.id, metadata_name, "json"))
        if info.get("type") == "pandas":
            import pandas as pd

            return pd.read_json(io.StringIO(data.decode()), orient="table")
        return json.loads(data)
