"""``mountfs.Dataset``: ClearML Data's ``Dataset`` API over a mountfs store.

Method names, parameters and their meanings follow ``clearml.Dataset``; where
ClearML's parameter has no meaning here (``use_current_task``,
``use_soft_links``, ``alias`` ...) it is accepted and ignored with a debug log.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

from .catalog import PUBLISHED, DatasetRecord
from .catalog import names
from .catalog.catalog import state_key
from .catalog.records import FINAL_STATUSES, new_id
from .changes import OTHER_STORE, DraftChanges
from .errors import NotFound, ObjectNotFound, StateError, UsageError
from .reading import VersionReading
from .session import Session, current
from .store import FileEntry, Store
from .store import manifest as manifest_codec

log = logging.getLogger(__name__)



def default_workers(max_workers: int | None) -> int:
    return max(1, int(max_workers)) if max_workers else (os.cpu_count() or 1)


def _as_id(ds: "str | Dataset") -> str:
    return ds.id if isinstance(ds, Dataset) else str(ds)


class Dataset(DraftChanges, VersionReading):
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
            for e in sess.store(p.storage).get_manifest(p.id, p.manifest_digest):
                if p.storage != storage and e.chunks:
                    e.src = OTHER_STORE + (p.storage or sess.catalog_url)
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
        return bool(e.chunks) and not e.is_external and (not e.chunks[0].pack or e.src.startswith(OTHER_STORE))

    def _table(self) -> dict[str, FileEntry]:
        if self._entries is None:
            if self._rec.is_final:
                entries = self.storage.get_manifest(self.id, self._rec.manifest_digest)
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
            for e in self._sess.store(p.storage).get_manifest(p.id, p.manifest_digest):
                merged[e.path] = e
        return merged
