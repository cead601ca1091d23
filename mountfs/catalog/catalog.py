"""The catalog: dataset records, version pointers, drafts' state, metadata, and the lookups over them.

Every object it reads or writes is named by a handle of ``store.layout``; nothing above it builds a key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Iterable, Iterator

from ..backends import Backend
from ..errors import AlreadyExists, Conflict, IntegrityError, MountfsError, NotFound, ObjectNotFound, UsageError
from ..store import layout
from ..store.format import read_or_init
from . import names
from .records import DatasetRecord

log = logging.getLogger(__name__)

_CLAIM_ATTEMPTS = 50


def newest_first(records: Iterable[DatasetRecord]) -> list[DatasetRecord]:
    """``records`` newest first: by the millisecond their id was made, then by version number.

    Two versions created in the same millisecond (a script, a fast squash)
    must not come out in the order of their ids' random tails: "the latest"
    is then the higher version.
    """
    return sorted(records, key=lambda r: (r.id[:12], names.version_key(r.version), r.id), reverse=True)


def latest_key(version: str, dataset_id: str) -> tuple[tuple[int, ...], str, tuple[int, ...], str]:
    """The one order of "the latest" among the versions of one project/name (ClearML's ``get``):
    the highest semantic version, ties by the newest.

    ``1.0`` and ``1.0.0`` are the same semantic version (trailing zeros do not
    count, as in ClearML's ``packaging`` versions): the newer id (ids are
    time-ordered) is the latest; within one millisecond, the longer spelling,
    then the id.  Used by ``get``, the next automatic version, the mount's
    ``latest`` link and ``find``'s order within a dataset.
    """
    return names.semantic_key(version), dataset_id[:12], names.version_key(version), dataset_id


def latest_first(records: Iterable[DatasetRecord]) -> list[DatasetRecord]:
    """``records`` with each dataset's versions latest first (``latest_key``).

    Records of several datasets keep the places their dataset's records had
    (a search stays newest first across datasets): a dataset's places are
    filled with its own versions, latest first.
    """
    listed = list(records)
    groups: dict[tuple[str, str], list[DatasetRecord]] = defaultdict(list)
    for r in listed:
        groups[r.project, r.name].append(r)
    ordered = {k: iter(sorted(g, key=lambda r: latest_key(r.version, r.id), reverse=True)) for k, g in groups.items()}
    return [next(ordered[r.project, r.name]) for r in listed]


class Catalog:
    """Names, versions and records, kept as small objects in the catalog store."""

    def __init__(self, backend: Backend):
        self.backend = backend
        #: (object key, digest of what was read) of each unusable object already warned about:
        #: the daemon re-reads the catalog every few seconds and must not repeat itself
        self._reported: set[tuple[str, bytes]] = set()
        self._report_lock = threading.Lock()

    # --- records -------------------------------------------------------------

    def get(self, dataset_id: str) -> DatasetRecord:
        """The record of ``dataset_id``; ``NotFound``, or ``IntegrityError`` when it is damaged."""
        return self._decode(dataset_id, self._read(dataset_id))

    def _read(self, dataset_id: str) -> bytes:
        try:
            key = layout.Record(dataset_id).key  # checks the id: it becomes part of a key and a folder name
        except UsageError:
            raise NotFound(f"no dataset with id {names.shown(dataset_id)}") from None
        try:
            return self.backend.get(key)
        except ObjectNotFound:
            raise NotFound(f"no dataset with id {dataset_id!r} in {self.backend.url}; check the id with `mountfs search`") from None

    def _decode(self, dataset_id: str, data: bytes) -> DatasetRecord:
        return DatasetRecord.from_json(data, self._where(layout.Record(dataset_id).key), dataset_id)

    def _where(self, key: str) -> str:
        """An object's location as messages print it."""
        return f"{self.backend.url}/{key}"

    def drop_record(self, dataset_id: str) -> None:
        """Delete the record of ``dataset_id`` (absent is fine); its pointer and data are the caller's."""
        self.backend.delete(layout.Record(dataset_id).key)

    def put(self, record: DatasetRecord) -> None:
        """Write ``record``.  Its project and name change only by ``move_dataset``: a writer holding
        a record read before its version was renamed or moved (a draft object opened earlier) keeps
        the new place, and ``record`` is updated to it, instead of writing a record no pointer names."""
        stored = self.get_or_none(record.id)
        if stored is not None and (stored.project, stored.name) != (record.project, record.name):
            here = (stored.project, stored.name, stored.version)
            if (self._holder(here) == record.id
                    and self._holder((record.project, record.name, record.version)) != record.id):
                log.info("dataset %s was moved to %s/%s; keeping its new place", record.id, stored.project, stored.name)
                record.project, record.name = stored.project, stored.name
        self._write(record)

    def _write(self, record: DatasetRecord) -> None:
        self.backend.put(layout.Record(record.id).key, record.to_json())

    def all(self) -> list[DatasetRecord]:
        """Every usable record, newest first (ids are time-ordered).

        Skipped, with one warning each: damaged records, and records that the
        pointer of their version does not name (a crafted record standing in
        for another dataset's version, or claiming one nobody created).
        """
        ids = sorted(self._listed_ids(), reverse=True)
        with ThreadPoolExecutor(8) as pool:
            records = [rec for rec in pool.map(self.get_or_none, ids) if rec is not None]
        # listed after the records: a pointer is created before its record, so each record read has its pointer listed
        pointer_keys = {o.key for o in self.backend.list(layout.POINTERS)}
        return newest_first(self._claimed(records, pointer_keys))

    def _listed_ids(self) -> Iterator[str]:
        for o in self.backend.list(layout.DATASETS):
            try:
                record = layout.parse_record(o.key)
            except UsageError as exc:
                self._report(o.key, b"", f"catalog: skipping {o.key!r}: {exc}")
                continue
            if record is not None:  # else the manifest, metadata, previews ... of a dataset
                yield record.dataset_id

    def get_or_none(self, dataset_id: str) -> DatasetRecord | None:
        """The record, or None when it is missing or damaged (a damaged one is warned about once)."""
        try:
            data = self._read(dataset_id)
        except NotFound:
            return None
        try:
            return self._decode(dataset_id, data)
        except IntegrityError as exc:
            self._report(layout.Record(dataset_id).key, data, f"catalog: {exc} (skipped)")
            return None

    def _claimed(self, records: list[DatasetRecord], pointer_keys: set[str]) -> list[DatasetRecord]:
        """The records that the pointer of their version names.  A pointer is read only when
        several records claim its version: otherwise its existence is enough."""
        claims: dict[tuple[str, str, str], list[DatasetRecord]] = defaultdict(list)
        for rec in records:
            claims[rec.project, rec.name, rec.version].append(rec)
        kept: set[str] = set()
        for pointer, recs in claims.items():
            key = layout.Pointer(*pointer).key
            if key not in pointer_keys:
                owner = ""
            else:
                owner = recs[0].id if len(recs) == 1 else self._pointer_id(key)
            kept.update(r.id for r in recs if self.agrees(pointer, r, owner))
        return [r for r in records if r.id in kept]

    def agrees(self, pointer: tuple[str, str, str], rec: DatasetRecord, owner: str | None = None) -> bool:
        """Is ``rec`` the version that the pointer at ``(project, name, version)`` names?  When not, warn once.

        ``owner`` is the id the pointer holds ("" if there is no pointer); by
        default ``rec.id``, so only the pointer's path is compared with the record.
        """
        owner = rec.id if owner is None else owner
        key = layout.Pointer(*pointer).key
        if (rec.project, rec.name, rec.version) != pointer and self._moving(pointer, rec):
            log.debug("catalog: %s is being moved; shown at %s/%s only", rec.id, rec.project, rec.name)
            return False
        if (rec.project, rec.name, rec.version) != pointer:
            problem = (f"version pointer {key} names dataset {rec.id}, whose record says "
                       f"{rec.project}/{rec.name} {rec.version}; skipping that pointer")
        elif rec.id != owner:
            held = f"version pointer {key} names dataset {owner}" if owner else f"there is no version pointer {key}"
            problem = f"record {rec.id} says {rec.project}/{rec.name} {rec.version}, but {held}; skipping that record"
        else:
            return True
        self._report(key, f"{owner}\0{rec.id}\0{rec.project}\0{rec.name}\0{rec.version}".encode(),
                     f"catalog: {problem} (fix or delete the pointer or the record)")
        return False

    def _moving(self, pointer: tuple[str, str, str], rec: DatasetRecord) -> bool:
        """Is the disagreement of ``rec`` with the pointer at ``pointer`` a move under way?

        A move (``move_dataset``) leaves two pointers naming one version for a
        moment (or, after a crash, until it is run again): the new one before the
        record says the new place, the old one after.  It is one only when the
        version number is the same and the pointer at the place the record says
        names this record too: then the version is shown there, and only there,
        so nothing is served at a place its record does not say; the other
        pointer is passed over without a warning.
        """
        return pointer[2] == rec.version and self._holder((rec.project, rec.name, rec.version)) == rec.id

    def _holder(self, place: tuple[str, str, str]) -> str:
        """The id the pointer at ``place`` names; "" when there is none (or it is unusable)."""
        try:
            key = layout.Pointer(*place).key
        except UsageError:
            return ""
        return self._pointer_id(key)

    def _report(self, key: str, content: bytes, message: str) -> None:
        """Warn about an unusable object once for what it holds (again if it changes)."""
        mark = (key, hashlib.blake2b(content, digest_size=16).digest())
        with self._report_lock:
            if mark in self._reported:
                return
            self._reported.add(mark)
        log.warning("%s", message)

    def check_store(self) -> None:
        """Raise ``StoreError`` unless the store is still there: an unmounted share or
        a deleted bucket can list as empty, which must not read as "no datasets"."""
        read_or_init(self.backend, create=False)

    # --- a draft's state and a dataset's metadata -----------------------------

    def read_draft_state(self, dataset_id: str) -> tuple[bytes, str] | None:
        """The saved state of draft ``dataset_id`` and where it was read (for messages); None when there is none."""
        key = layout.DraftState(dataset_id).key
        try:
            return self.backend.get(key), self._where(key)
        except ObjectNotFound:
            return None

    def write_draft_state(self, dataset_id: str, data: bytes) -> None:
        self.backend.put(layout.DraftState(dataset_id).key, data)

    def drop_draft_state(self, dataset_id: str) -> None:
        """Delete a draft's state (at finalize); one that is already gone is fine (as for every backend delete)."""
        self.backend.delete(layout.DraftState(dataset_id).key)

    def write_metadata(self, dataset_id: str, name: str, data: bytes, ext: str = "json") -> None:
        """Store one metadata object; ``UsageError`` if ``name`` or ``ext`` is not one usable name."""
        self.backend.put(layout.Metadata(dataset_id, name, ext).key, data)

    def read_metadata(self, dataset_id: str, name: str, ext: str = "json") -> bytes:
        """A metadata object ``write_metadata`` stored; ``NotFound`` when there is none."""
        key = layout.Metadata(dataset_id, name, ext).key
        try:
            return self.backend.get(key)
        except ObjectNotFound:
            raise NotFound(
                f"dataset {dataset_id} has no metadata {names.shown(name)} ({self._where(key)} is missing); "
                "store it with set_metadata"
            ) from None

    # --- version pointers ----------------------------------------------------

    def versions(self, project: str, name: str) -> dict[str, str]:
        """version -> dataset id for one project/name (drafts included); unusable pointers are skipped."""
        out: dict[str, str] = {}
        for o in self.backend.list(layout.pointer_prefix(project, name)):
            pointer = self._parse_pointer(o.key)
            if pointer is None or pointer[:2] != (project, name):
                continue  # unusable, or a pointer of a project nested below ours
            dataset_id = self._pointer_id(o.key)
            if dataset_id:
                out[pointer[2]] = dataset_id
        return out

    def pointers(self, known: dict[str, tuple[str, str]] | None = None) -> dict[tuple[str, str, str], str]:
        """(project, name, version) -> id of every version in the catalog.

        ``known`` maps pointer keys to (listing tag, id) already read: only
        pointers that are new or whose tag changed (deleted and written again,
        e.g. for another dataset) are fetched; keys no longer listed are dropped
        from it, so a version deleted and claimed again is read afresh.
        """
        known = {} if known is None else known
        parsed = {o.key: (p, o.etag) for o in self.backend.list(layout.POINTERS) if (p := self._parse_pointer(o.key))}
        for key in [k for k, (tag, _) in known.items() if k not in parsed or parsed[k][1] != tag]:
            del known[key]
        new = [k for k in parsed if k not in known]
        if new:
            with ThreadPoolExecutor(8) as pool:
                for key, dataset_id in zip(new, pool.map(self._pointer_id, new)):
                    if dataset_id:
                        known[key] = (parsed[key][1], dataset_id)
        return {pointer: known[key][1] for key, (pointer, _) in parsed.items() if key in known}

    def _parse_pointer(self, key: str) -> tuple[str, str, str] | None:
        """(project, name, version) of a pointer key, or None (warned once) if its path breaks the name rules:
        whatever a pointer's path holds becomes directories in the mount."""
        try:
            pointer = layout.parse_pointer(key)  # None: a folder marker
            if pointer is not None:
                names.check_version(pointer.version)  # the layout checks a key's parts; the catalog what a version is
        except UsageError as exc:
            self._report(key, b"", f"catalog: skipping version pointer {key!r}: {exc}")
            return None
        return None if pointer is None else (pointer.project, pointer.name, pointer.version)

    def _pointer_id(self, key: str) -> str:
        """The dataset id a pointer holds; "" when it is gone or unusable (warned once)."""
        try:
            data = self.backend.get(key)
        except ObjectNotFound:
            return ""  # released (a failed create) between the listing and now
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            doc = None
        try:
            return names.check_component(doc.get("id") if isinstance(doc, dict) else None, "dataset id")
        except UsageError as exc:
            self._report(key, data, f"catalog: skipping unreadable version pointer {key} (not {{\"id\": ...}}: {exc})")
            return ""

    def claim(self, project: str, name: str, version: str | None, dataset_id: str) -> str:
        """Create the pointer for (project, name, version) atomically; return the version.

        With no version, the next one after the latest is taken, moving on if
        another writer wins the race.  With an explicit version, losing the
        race is a ``Conflict``; so is another spelling of the same number
        (``1.0.0`` beside ``1.0``).  The first version of a dataset also checks
        its place (``check_place``).  Both are checked again once the pointer
        exists: of two writers racing for places that collide, at least one sees
        the other and gives its pointer back (at worst both do), never neither.
        """
        body = json.dumps({"id": dataset_id}).encode()
        if version is not None:
            names.check_new_version(version)
        around = self._around(project, name)
        new_dataset = not any(p[:2] == (project, name) for p in around)
        if new_dataset:
            around = self._around(project, name, wide=True)
            self.check_place(project, name, around)
        if version is not None:
            self._check_spelling(project, name, version, dataset_id, around)
            try:
                self.backend.put_if_absent(layout.Pointer(project, name, version).key, body)
            except AlreadyExists:
                raise Conflict(
                    f"version {version} of {project}/{name} already exists; pick another version or leave it out to get the next one"
                ) from None
            return self._recheck(project, name, version, dataset_id, new_dataset)
        existing = self.versions(project, name)
        # the latest by the one rule (``latest_key``), then each number another writer took first
        latest = [max(existing.items(), key=lambda p: latest_key(*p))[0]] if existing else []
        for _ in range(_CLAIM_ATTEMPTS):
            candidate = names.next_version(latest)
            try:
                self.backend.put_if_absent(layout.Pointer(project, name, candidate).key, body)
            except AlreadyExists:
                latest = [candidate]
                continue
            return self._recheck(project, name, candidate, dataset_id, new_dataset)
        raise Conflict(f"could not claim a new version of {project}/{name}: too many concurrent writers, try again")

    def _around(self, project: str, name: str, wide: bool = False) -> list[tuple[str, str, str]]:
        """The version pointers of project/name and of the projects below it; ``wide``, also those of the
        datasets above it (those all lie below the path's first two levels: one listing)."""
        levels = f"{project}/{name}".split("/")
        prefix = f"{layout.POINTERS}{'/'.join(levels[:2])}/" if wide else layout.pointer_prefix(project, name)
        out = []
        for o in self.backend.list(prefix):
            pointer = self._parse_pointer(o.key)
            if pointer is not None:
                out.append(pointer)
        return out

    def check_place(self, project: str, name: str, around: list[tuple[str, str, str]] | None = None,
                    moving: tuple[str, str] | None = None) -> None:
        """Refuse a new dataset at project/name where the path is taken: a path is a project or a dataset,
        never both (docs/FORMAT.md, "Catalog pointers"), and ``latest`` and dotted versions are no names.

        ``around`` is what ``_around`` listed, ``moving`` a dataset being moved
        there (its own versions do not count).  Datasets an older store already
        holds at such paths are still read; only new ones are refused.
        """
        names.check_new_place(project, name)
        path = f"{project}/{name}"
        for p, n, _ in self._around(project, name, wide=True) if around is None else around:
            if (p, n) in ((project, name), moving):
                continue
            if p == path or p.startswith(path + "/"):
                raise Conflict(f"{path} is a project (it holds dataset {p}/{n}); a path is a project or a dataset, "
                               "never both: choose another name")
            above = f"{p}/{n}"
            if project == above or project.startswith(above + "/"):
                raise Conflict(f"{above} is a dataset, so it cannot hold project {project}; a path is a project or a "
                               "dataset, never both: choose another project")

    def _check_spelling(self, project: str, name: str, version: str, dataset_id: str,
                        around: list[tuple[str, str, str]]) -> None:
        """Refuse ``version`` when project/name has the same number spelled otherwise (``1.0`` for ``1.0.0``),
        unless that pointer is ``dataset_id``'s own (a draft renumbered to another spelling)."""
        number = names.semantic_key(version)
        for p, n, v in around:
            if (p, n) == (project, name) and v != version and names.semantic_key(v) == number:
                if self._holder((p, n, v)) != dataset_id:
                    raise Conflict(f"version {version} of {project}/{name} exists as {v}; name it {v}, "
                                   "or pick another version")

    def _recheck(self, project: str, name: str, version: str, dataset_id: str, new_dataset: bool) -> str:
        """``claim``'s checks again with its pointer in place; on a collision the pointer is given back."""
        around = self._around(project, name, wide=new_dataset)
        try:
            if new_dataset:
                self.check_place(project, name, around)
            self._check_spelling(project, name, version, dataset_id, around)
        except MountfsError as exc:
            self.release(project, name, version)
            raise Conflict(f"{exc} (created by another writer just now)") from None
        return version

    def release(self, project: str, name: str, version: str) -> None:
        self.backend.delete(layout.Pointer(project, name, version).key)

    # --- moving versions (rename, move to another project) ---------------------

    def move_dataset(self, project: str, name: str, new_project: str, new_name: str) -> list[DatasetRecord]:
        """Move every version of ``project/name`` (drafts included) to ``new_project/new_name``; the moved records.

        ``Conflict`` before anything changes when the target has a version that
        is not one of this move's.  Each version keeps its id and version number;
        in this order, so that a crash anywhere leaves every version reachable
        under the old or the new name (docs/FORMAT.md, "Moving a dataset"):

        1. the new pointer, created with a conditional write and marked
           ``"moved_from"`` (how a re-run knows the target's versions as its own);
        2. the record, with the new project and name;
        3. the old pointer, deleted.

        Then 4. each new pointer is rewritten without the mark.  Running the
        same call again after a crash completes the move.
        """
        names.check_project(new_project)
        names.check_name(new_name)
        if (project, name) == (new_project, new_name):
            raise UsageError(f"{project}/{name} is already there; give another name or project")
        source = self.versions(project, name)
        target = self._marked_versions(new_project, new_name)
        # a mark from here on any target pointer: this move was started (on an empty target) and is run again
        resumed = any(origin == (project, name) for _, origin in target.values())
        if not source and not resumed:
            raise NotFound(f"no dataset {project}/{name}; list them with `mountfs search`")
        if not target and not resumed:
            self.check_place(new_project, new_name, moving=(project, name))
        if target and not resumed:
            shown = sorted(target, key=names.version_key)
            raise Conflict(
                f"{new_project}/{new_name} already exists (version {', '.join(shown[:5])}"
                f"{' ...' if len(shown) > 5 else ''}); pick another name, or move or delete that dataset first"
            )
        plan: list[tuple[str, DatasetRecord]] = []
        for version in sorted(source, key=names.version_key):
            dataset_id = source[version]
            if version in target and target[version][0] != dataset_id:
                raise Conflict(f"version {version} of {new_project}/{new_name} already exists; "
                               "pick another name, or move or delete that version first")
            rec = self.get_or_none(dataset_id)
            here = None if rec is None else (rec.project, rec.name, rec.version)
            if rec is None or here not in ((project, name, version), (new_project, new_name, version)):
                # not a version of this dataset: a pointer being created, or a damaged or crafted one
                log.warning("catalog: version pointer %s names no record of that version; not moved",
                            layout.Pointer(project, name, version).key)
                continue
            plan.append((version, rec))
        moved = []
        origin = {"project": project, "name": name}
        for version, rec in plan:
            if version not in target:  # 1. (there already: a re-run; a race lost is refused inside)
                self._claim_marked((new_project, new_name, version), rec.id, origin)
            if (rec.project, rec.name) != (new_project, new_name):  # 2.
                rec = replace(rec, project=new_project, name=new_name)
                self._write(rec)
            self.release(project, name, version)  # 3.
            moved.append(rec)
        marked = {v: i for v, (i, o) in target.items() if o == (project, name)}
        marked.update((version, rec.id) for version, rec in plan)
        for version, dataset_id in marked.items():  # 4.
            self.backend.put(layout.Pointer(new_project, new_name, version).key, json.dumps({"id": dataset_id}).encode())
        # and the versions an interrupted run of this move had moved already
        done = {r.id for r in moved}
        moved += [r for r in (self.get_or_none(i) for i in marked.values() if i not in done) if r is not None]
        return moved

    # --- deleting a version -------------------------------------------------------

    def children(self, dataset_ids: Iterable[str]) -> dict[str, list[DatasetRecord]]:
        """id -> the usable records (drafts included) that name it as a parent, for each of ``dataset_ids``."""
        wanted = set(dataset_ids)
        out: dict[str, list[DatasetRecord]] = {i: [] for i in wanted}
        for rec in self.all():
            for parent in rec.parents:
                if parent in wanted:
                    out[parent].append(rec)
        return out

    def delete_version(self, rec: DatasetRecord) -> None:
        """Remove one version from the catalog: its pointer, draft state, metadata, record, then the rest.

        In this order, so that a crash anywhere leaves the version either whole
        or gone (docs/FORMAT.md, "Deleting a version"): without its pointer no
        listing, lookup by name or mount shows it; the record goes after
        everything it describes.  The packs stay (other versions may share
        them); ``mountfs gc`` frees those no manifest needs.  A manifest in
        another store (``output_uri``) is the caller's.
        """
        place = (rec.project, rec.name, rec.version)
        if self._holder(place) == rec.id:  # never another dataset's pointer (one claimed since, or crafted)
            self.release(*place)
        self.drop_draft_state(rec.id)
        objects = self._objects_of(rec.id)
        for key in (k for k, h in objects if isinstance(h, layout.Metadata)):
            self.backend.delete(key)
        self.drop_record(rec.id)
        for key in (k for k, h in objects if not isinstance(h, (layout.Metadata, layout.Record))):
            self.backend.delete(key)  # the manifest (or a state listed late): no record names them any more

    def drop_leftovers(self, dataset_id: str) -> int:
        """Delete what a delete interrupted after the record left of ``dataset_id`` (its manifest); how many."""
        try:
            objects = self._objects_of(dataset_id)
        except UsageError:  # not an id at all: nothing of it can be stored
            return 0
        for key, _ in objects:
            self.backend.delete(key)
        return len(objects)

    def _objects_of(self, dataset_id: str) -> list[tuple[str, layout.DatasetHandle]]:
        """(key, handle) of each object of ``dataset_id`` this layout writes (its reports and preview
        too: they go with the version); other objects are left alone."""
        prefix = layout.Record(dataset_id).key.rsplit("/", 1)[0] + "/"
        out: list[tuple[str, layout.DatasetHandle]] = []
        for o in self.backend.list(prefix):
            try:
                handle = layout.parse_dataset_key(o.key)
            except UsageError:
                continue
            if handle is not None and handle.dataset_id == dataset_id:
                out.append((o.key, handle))
        return out

    def _marked_versions(self, project: str, name: str) -> dict[str, tuple[str, tuple[str, str] | None]]:
        """version -> (id, the (project, name) it is being moved from, or None) of every pointer of project/name."""
        out: dict[str, tuple[str, tuple[str, str] | None]] = {}
        for o in self.backend.list(layout.pointer_prefix(project, name)):
            pointer = self._parse_pointer(o.key)
            if pointer is None or pointer[:2] != (project, name):
                continue
            try:
                doc = json.loads(self.backend.get(o.key))
            except ObjectNotFound:
                continue
            except (ValueError, RecursionError):
                doc = None  # an unreadable pointer still holds its place: it counts as another dataset's
            doc = doc if isinstance(doc, dict) else {}
            dataset_id, mark = doc.get("id"), doc.get("moved_from")
            origin = None
            if isinstance(mark, dict) and isinstance(mark.get("project"), str) and isinstance(mark.get("name"), str):
                origin = (str(mark["project"]), str(mark["name"]))
            out[pointer[2]] = (dataset_id if isinstance(dataset_id, str) else "", origin)
        return out

    def _claim_marked(self, place: tuple[str, str, str], dataset_id: str, origin: dict[str, str]) -> None:
        key = layout.Pointer(*place).key
        try:
            self.backend.put_if_absent(key, json.dumps({"id": dataset_id, "moved_from": origin}).encode())
        except AlreadyExists:
            if self._pointer_id(key) != dataset_id:  # created by another writer since we looked
                raise Conflict(f"version {place[2]} of {place[0]}/{place[1]} was just created by another writer; "
                               "pick another name") from None

    def find(
        self,
        project: str | None = None,
        name: str | None = None,
        version: str | None = None,
        tags: Iterable[str] | None = None,
        statuses: Iterable[str] | None = None,
        partial_name: str | None = None,
    ) -> list[DatasetRecord]:
        """Records matching every given criterion, newest first, and each dataset's versions latest first
        (``latest_first``: ``[0]`` of one project/name is its latest); unusable records are skipped with a warning.

        ``version`` matches by number: ``1.0`` finds ``1.0.0`` (one number has one spelling in a store, though an
        old store may hold two; then the exact spelling wins)."""
        number = names.semantic_key(version) if version is not None and names.is_version(version) else None

        def same_version(v: str) -> bool:
            return v == version or (number is not None and names.is_version(v) and names.semantic_key(v) == number)

        if project is not None and name is not None:
            names.check_project(project)
            names.check_name(name)
            ids = self.versions(project, name)
            if version is not None:
                ids = {version: ids[version]} if version in ids else {v: i for v, i in ids.items() if same_version(v)}
            found = ((v, self.get_or_none(i)) for v, i in ids.items())
            records = newest_first(r for v, r in found if r is not None and self.agrees((project, name, v), r))
        else:
            records = self.all()
        want_tags = set(tags or ())
        want_status = set(statuses) if statuses else None
        out = []
        for r in records:
            if project is not None and r.project != project:
                continue
            if name is not None and r.name != name:
                continue
            if version is not None and not same_version(r.version):
                continue
            if partial_name is not None and partial_name.lower() not in r.name.lower():
                continue
            if want_tags and not want_tags <= set(r.tags):
                continue
            if want_status is not None and r.status not in want_status:
                continue
            out.append(r)
        if version is not None and any(r.version == version for r in out):
            out = [r for r in out if r.version == version]
        return latest_first(out)
