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
from ..store import FileEntry, gc, layout
from ..store.format import NoStore
from .closing import pending_entries, seal, send_pending
from .previews import write_version_preview
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
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    if scheme not in ("file", "s3", "gs", "azure"):
        # refused before a version is claimed: a draft recording it could never add or upload a file
        raise UsageError(f"unsupported store URL {url!r} for the dataset's data: use a folder path, file://, "
                         "s3://, gs:// or azure://")
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
        names.check_new_version(dataset_version)
    storage = _storage(sess, output_uri or (parents[-1].storage if parents else ""))
    names.check_new_place(dataset_project, dataset_name)  # bad input starts no store
    # reached now, the data's store before the catalog's: a draft naming a store that cannot be
    # reached could never upload nor be removed, and a typo must not have started a catalog store
    if storage:
        sess.create_store(storage)
    sess.create_store()
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
    close_squashed_dataset: bool = True,
) -> Version:
    """One new finalized version holding the given versions' files merged, with no parents.

    One version is flattened into a root version (its parents' files are all
    in its own table already).  Built directly: the sources are merged once,
    chunks in other stores are copied, and the manifest and then the record are
    written once; no draft state is saved.  When anything fails before the
    record, the claimed version is released again.  ``close_squashed_dataset=False``
    (ClearML's): a draft holding the merged files instead, nothing uploaded yet.
    """
    sources = [sess.catalog.get(i) for i in dataset_ids]
    for project, name in dataset_project_name_pairs:
        sources.append(get(sess, dataset_project=project, dataset_name=name, only_completed=True).record)
    if not sources:
        raise UsageError("squash needs at least one dataset (dataset_ids or dataset_project_name_pairs)")
    for src in sources:
        if not src.is_final:
            raise StateError(f"dataset {src.id} is not finalized; only finalized versions can be squashed")
    names.check_name(dataset_name)
    project = sources[0].project
    storage = _storage(sess, output_url or sources[0].storage)
    if storage:
        sess.create_store(storage)  # reached before a version is claimed, as in create
    entries = merge_versions(sess, sources, into=storage)
    v = _claim(sess, project, dataset_name, None, entries,
               description=f"squashed from {', '.join(s.id for s in sources)}", storage=storage)
    if not close_squashed_dataset:  # a draft like ``create``'s: upload and finalize are the caller's
        v.save_state()
        v.save_record()
        log.info("squashed %d versions into draft %s", len(sources), v.describe())
        return v
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
    write_version_preview(v, {})
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
    """The version with ``dataset_id``, or the latest one matching the rest (``catalog.latest_key``)."""
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
    """The matching versions as dicts: datasets newest first, each one's versions latest first."""
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


# --- delete ---

def delete(
    sess: Session,
    dataset_id: str | None = None,
    dataset_project: str | None = None,
    dataset_name: str | None = None,
    force: bool = False,
    dataset_version: str | None = None,
    entire_dataset: bool = False,
    delete_external_files: bool = False,
) -> list[DatasetRecord]:
    """Remove the matching versions (drafts too) from the catalog; the records deleted, newest first.

    ClearML's rules for what may go: several matches need ``entire_dataset``
    and ``force``; a version that is another's parent needs ``force``.  Every
    check runs before anything is deleted.  Unlike ClearML a child stays whole
    (its manifest holds its parents' files and only references their packs),
    and the packs are freed only by ``mountfs gc`` (``collect_garbage``).
    """
    if delete_external_files:
        raise UsageError("delete_external_files=True: mountfs never deletes the sources of external files "
                         "(other datasets or tools may read them); delete them with the tools of their store")
    if not any((dataset_id, dataset_project, dataset_name)):
        raise UsageError("delete needs dataset_id, or dataset_project and/or dataset_name (and dataset_version)")
    # a version beside an id was silently ignored, and the id's version deleted whatever it was
    if dataset_id and (dataset_project or dataset_name or dataset_version is not None):
        raise UsageError("give either dataset_id or dataset_project/dataset_name/dataset_version, not both")
    if entire_dataset and not force:
        raise UsageError("entire_dataset=True deletes every matching version: it needs force=True too")
    if dataset_id:
        try:
            found = [sess.catalog.get(dataset_id)]
        except NotFound:
            if sess.catalog.drop_leftovers(dataset_id):  # a delete interrupted after the record: completed now
                log.info("removed what an interrupted delete left of dataset %s", dataset_id)
                return []
            raise
    else:
        if dataset_project is not None:
            names.check_project(dataset_project)
        if dataset_version is not None:
            names.check_version(dataset_version)
        found = sess.catalog.find(dataset_project, dataset_name, dataset_version)
    what = dataset_id or "/".join(x for x in (dataset_project, dataset_name, dataset_version) if x)
    if not found:
        raise NotFound(f"no dataset matches {what}; list them with `mountfs search`")
    if len(found) > 1 and not entire_dataset:
        shown = ", ".join(f"{r.project}/{r.name} {r.version}" for r in found[:3]) + (" ..." if len(found) > 3 else "")
        raise UsageError(f"{len(found)} versions match {what} ({shown}); give dataset_version or dataset_id, "
                         "or entire_dataset=True and force=True to delete them all")
    if not force:
        going = {r.id for r in found}
        for parent_id, kids in sess.catalog.children(going).items():
            staying = [k for k in kids if k.id not in going]
            if staying:
                k = staying[0]
                raise StateError(f"dataset {parent_id} is a parent of {k.id} ({k.project}/{k.name} {k.version}"
                                 f"{f' and {len(staying) - 1} more' if len(staying) > 1 else ''}); "
                                 "pass force=True to delete it anyway (its children stay readable)")
    for rec in found:
        sess.catalog.delete_version(rec)
        if rec.storage:  # the manifest is in the store holding the version's data
            try:
                sess.store(rec.storage).backend.delete(layout.Manifest(rec.id).key)
            except NoStore:  # that store is gone, and the manifest with it
                log.warning("data store %s of dataset %s is gone; its record is deleted", rec.storage, rec.id)
        log.info("deleted dataset %s (%s/%s %s)", rec.id, rec.project, rec.name, rec.version)
    return found


def collect_garbage(sess: Session) -> gc.GcReport | None:
    """Run ``mountfs gc`` on the catalog's store after a delete; its report, or None when it could not run.

    The versions are gone whatever happens here: a gc that cannot run now
    (an upload holds the store's lock, the store failed) is warned about, and
    the next ``mountfs gc`` frees the packs.  Packs younger than gc's grace
    period stay until a later gc (an upload in flight may be about to use them).
    """
    try:
        return gc.collect(sess.store())
    except MountfsError as exc:
        log.warning("the versions are deleted, but their packs were not freed: %s; run `mountfs gc` later", exc)
        return None
