"""Catalog operations: creating a draft, squashing versions into one, finding and listing versions,
renaming a dataset and moving it to another project.

Each takes the session explicitly and returns ``Version`` parts (or plain
records), which ``sdk.dataset.Dataset`` wraps; ids stand in for ``Dataset``
objects here.  Parameters mean what they mean in ClearML's ``Dataset``.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from ..backends import normalize_url
from ..catalog import PUBLISHED, DatasetRecord, names
from ..catalog.records import FINAL_STATUSES, new_id
from ..errors import MountfsError, NotFound, StateError, UsageError
from ..session import Session
from ..store import FileEntry
from .closing import pending_entries, seal, send_pending
from .version import Version, merge_versions, name_pattern

log = logging.getLogger(__name__)


def by_id(sess: Session, dataset_id: str) -> Version:
    """The version with ``dataset_id``, whatever its status."""
    return Version(sess, sess.catalog.get(dataset_id))


def _storage(sess: Session, url: str) -> str:
    """A record's ``storage`` for a store URL: normalized, and "" for the catalog's own store."""
    if not url:
        return ""
    url = normalize_url(url)
    return "" if url == sess.catalog_url else url




def _claim(
    sess: Session, project: str, name: str, version: str | None, entries: dict[str, FileEntry], **fields: Any
) -> Version:
    """Take the next (or the given) version number of project/name for a new id; the record is not written."""
    dataset_id = new_id()
    claimed = sess.catalog.claim(project, name, version, dataset_id)
    rec = DatasetRecord(id=dataset_id, project=project, name=name, version=claimed, **fields)
    return Version(sess, rec, entries)


def create(
    sess: Session,
    dataset_name: str | None,
    dataset_project: str | None,
    dataset_tags: Sequence[str] | None = None,
    parent_ids: Sequence[str] = (),
    dataset_version: str | None = None,
    output_uri: str | None = None,
    description: str | None = None,
) -> Version:
    """A new draft: claims its version, saves its state (the parents' files merged) and its record."""
    parents = [sess.catalog.get(p) for p in parent_ids]
    for p in parents:
        if not p.is_final:
            raise StateError(f"parent dataset {p.id} ({p.project}/{p.name} {p.version}) is not finalized; finalize it first")
    if parents and (dataset_name is None or dataset_project is None):  # a child inherits what it does not say
        dataset_name = dataset_name or parents[-1].name
        dataset_project = dataset_project or parents[-1].project
    if dataset_name is None or dataset_project is None:
        raise UsageError("a dataset needs dataset_name and dataset_project (or a parent to inherit them from)")
    names.check_project(dataset_project)
    names.check_name(dataset_name)
    if dataset_version is not None:
        names.check_version(dataset_version)
    storage = _storage(sess, output_uri or (parents[-1].storage if parents else ""))
    # merged before claiming a version, so a broken parent claims nothing
    entries = merge_versions(sess, parents, into=storage)
    v = _claim(sess, dataset_project, dataset_name, dataset_version, entries,
               parents=[p.id for p in parents], tags=list(dataset_tags or []), description=description or "",
               storage=storage)
    v.save_state()
    v.save_record()
    log.info("created dataset %s", v.describe())
    return v


def squash(
    sess: Session,
    dataset_name: str,
    dataset_ids: Sequence[str] = (),
    dataset_project_name_pairs: Sequence[tuple[str, str]] = (),
    output_url: str | None = None,
) -> Version:
    """One new finalized version holding the given versions' files merged, with no parents.

    Built directly: the sources are merged once, chunks in other stores are
    copied, and the manifest and then the record are written once; no draft
    state is saved.  When anything fails before the record, the claimed
    version is released again.
    """
    sources = [sess.catalog.get(i) for i in dataset_ids]
    for project, name in dataset_project_name_pairs:
        sources.append(get(sess, dataset_project=project, dataset_name=name, only_completed=True).record)
    if len(sources) < 2:
        raise UsageError("squash needs at least two datasets (dataset_ids or dataset_project_name_pairs)")
    for src in sources:
        if not src.is_final:
            raise StateError(f"dataset {src.id} is not finalized; only finalized versions can be squashed")
    names.check_name(dataset_name)
    project = sources[0].project
    storage = _storage(sess, output_url or sources[0].storage)
    entries = merge_versions(sess, sources, into=storage)
    v = _claim(sess, project, dataset_name, None, entries,
               description=f"squashed from {', '.join(s.id for s in sources)}", storage=storage)
    try:
        pending = pending_entries(v)
        if pending:
            send_pending(v, pending)
        closed = seal(v, {})
    except BaseException:
        try:
            sess.catalog.release(project, dataset_name, v.record.version)
        except MountfsError as exc:  # the first failure is the one to report
            log.warning("could not release version %s of %s/%s: %s", v.record.version, project, dataset_name, exc)
        raise
    sess.catalog.put(closed)
    v.record = closed
    log.info("squashed %d versions into %s: %d files", len(sources), v.describe(), closed.file_count)
    return v


def get(
    sess: Session,
    dataset_id: str | None = None,
    dataset_project: str | None = None,
    dataset_name: str | None = None,
    dataset_tags: Sequence[str] | None = None,
    only_completed: bool = False,
    only_published: bool = False,
    auto_create: bool = False,
    writable_copy: bool = False,
    dataset_version: str | None = None,
) -> Version:
    """The version with ``dataset_id``, or the most recent one matching the rest."""
    statuses = (PUBLISHED,) if only_published else FINAL_STATUSES if only_completed else None
    if dataset_id:
        rec = sess.catalog.get(dataset_id)
        found = [rec] if statuses is None or rec.status in statuses else []
    else:
        if dataset_project is not None:
            names.check_project(dataset_project)
        if dataset_version is not None:
            names.check_version(dataset_version)
        found = sess.catalog.find(dataset_project, dataset_name, dataset_version, dataset_tags, statuses)
    if not found:
        if auto_create and not dataset_id:
            return create(sess, dataset_name, dataset_project, dataset_tags, dataset_version=dataset_version)
        what = dataset_id or "/".join(x for x in (dataset_project, dataset_name, dataset_version) if x) or "any dataset"
        extra = " (completed)" if only_completed else " (published)" if only_published else ""
        raise NotFound(f"no dataset{extra} matches {what}; list them with `mountfs search`")
    rec = found[0]
    if writable_copy:
        if not rec.is_final:
            raise StateError(f"dataset {rec.id} is a draft; writable_copy needs a finalized version")
        return create(sess, rec.name, rec.project, rec.tags, parent_ids=[rec.id])
    return Version(sess, rec)


def list_datasets(
    sess: Session,
    dataset_project: str | None = None,
    partial_name: str | None = None,
    tags: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    only_completed: bool = True,
    recursive_project_search: bool = True,
) -> list[dict[str, Any]]:
    """The matching versions, newest first, as dicts."""
    statuses = FINAL_STATUSES if only_completed else None
    out = []
    pattern = name_pattern(partial_name)  # a regular expression, as ClearML's
    for r in sess.catalog.find(tags=tags, statuses=statuses):
        if pattern is not None and not pattern.search(r.name):
            continue
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


def rename(sess: Session, new_dataset_name: str, dataset_project: str, dataset_name: str) -> list[DatasetRecord]:
    """Give every version of ``dataset_project/dataset_name`` (drafts included) the name ``new_dataset_name``."""
    return _move(sess, dataset_project, dataset_name, dataset_project, new_dataset_name)


def move_to_project(sess: Session, new_dataset_project: str, dataset_project: str, dataset_name: str) -> list[DatasetRecord]:
    """Move every version of ``dataset_project/dataset_name`` (drafts included) to ``new_dataset_project``."""
    return _move(sess, dataset_project, dataset_name, new_dataset_project, dataset_name)


def _move(sess: Session, project: str, name: str, new_project: str, new_name: str) -> list[DatasetRecord]:
    # the source is checked too: it becomes part of keys, and a typo should say what is wrong
    names.check_project(project)
    names.check_name(name)
    try:
        names.check_project(new_project)
    except UsageError as exc:  # the rule's message does not say which project it read
        raise UsageError(f"new project {names.shown(new_project)}: {exc}") from None
    moved = sess.catalog.move_dataset(project, name, new_project, new_name)
    log.info("moved %d versions of %s/%s to %s/%s", len(moved), project, name, new_project, new_name)
    return moved
