"""The catalog: dataset records, version pointers and the lookups over them."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator

from ..backends import Backend
from ..errors import AlreadyExists, Conflict, NotFound, ObjectNotFound
from ..store.format import read_or_init
from . import names
from .records import DatasetRecord

log = logging.getLogger(__name__)

_CLAIM_ATTEMPTS = 50


def record_key(dataset_id: str) -> str:
    return f"datasets/{dataset_id}/info.json"


def state_key(dataset_id: str) -> str:
    return f"datasets/{dataset_id}/state"


def metadata_key(dataset_id: str, name: str, ext: str) -> str:
    return f"datasets/{dataset_id}/metadata/{name}.{ext}"


def pointer_key(project: str, name: str, version: str) -> str:
    return f"catalog/{project}/{name}/{version}"


class Catalog:
    """Names, versions and records, kept as small objects in the catalog store."""

    def __init__(self, backend: Backend):
        self.backend = backend

    # --- records -------------------------------------------------------------

    def get(self, dataset_id: str) -> DatasetRecord:
        if not dataset_id or "/" in dataset_id or dataset_id.startswith("."):
            raise NotFound(f"no dataset with id {dataset_id!r}")
        try:
            data = self.backend.get(record_key(dataset_id))
        except ObjectNotFound:
            raise NotFound(f"no dataset with id {dataset_id!r} in {self.backend.url}; check the id with `mountfs search`") from None
        return DatasetRecord.from_json(data, f"{self.backend.url}/{record_key(dataset_id)}")

    def put(self, record: DatasetRecord) -> None:
        self.backend.put(record_key(record.id), record.to_json())

    def all(self) -> Iterator[DatasetRecord]:
        """Every record, newest first (ids are time-ordered)."""
        ids = sorted(
            (o.key.split("/")[1] for o in self.backend.list("datasets/") if o.key.endswith("/info.json")), reverse=True
        )
        with ThreadPoolExecutor(8) as pool:
            for rec in pool.map(self._get_or_none, ids):
                if rec is not None:
                    yield rec

    def _get_or_none(self, dataset_id: str) -> DatasetRecord | None:
        try:
            return self.get(dataset_id)
        except NotFound:
            return None

    def check_store(self) -> None:
        """Raise ``StoreError`` unless the store is still there: an unmounted share or
        a deleted bucket can list as empty, which must not read as "no datasets"."""
        read_or_init(self.backend, create=False)

    # --- version pointers ----------------------------------------------------

    def versions(self, project: str, name: str) -> dict[str, str]:
        """version -> dataset id for one project/name (drafts included)."""
        prefix = f"catalog/{project}/{name}/"
        out: dict[str, str] = {}
        for o in self.backend.list(prefix):
            rest = o.key[len(prefix):]
            if "/" in rest:
                continue  # a nested project's pointers, not ours
            dataset_id = self._pointer_id(o.key)
            if dataset_id:
                out[rest] = dataset_id
        return out

    def pointers(self, known: dict[str, str] | None = None) -> dict[tuple[str, str, str], str]:
        """(project, name, version) -> id of every version in the catalog.

        ``known`` maps pointer keys to ids already read: pointers never change
        once created, so only new ones are fetched (and added to it).
        """
        known = {} if known is None else known
        keys = [o.key for o in self.backend.list("catalog/")]
        new = [k for k in keys if k not in known]
        if new:
            with ThreadPoolExecutor(8) as pool:
                for key, dataset_id in zip(new, pool.map(self._pointer_id, new)):
                    if dataset_id:
                        known[key] = dataset_id
        out = {}
        for key in keys:
            parts = key.split("/")
            if key in known and len(parts) >= 4:
                out[("/".join(parts[1:-2]), parts[-2], parts[-1])] = known[key]
        return out

    def _pointer_id(self, key: str) -> str:
        try:
            return json.loads(self.backend.get(key))["id"]
        except (ObjectNotFound, ValueError, KeyError):
            log.warning("skipping unreadable version pointer %s", key)
            return ""

    def claim(self, project: str, name: str, version: str | None, dataset_id: str) -> str:
        """Create the pointer for (project, name, version) atomically; return the version.

        With no version, the next one after the latest is taken, moving on if
        another writer wins the race.  With an explicit version, losing the
        race is a ``Conflict``.
        """
        body = json.dumps({"id": dataset_id}).encode()
        if version is not None:
            names.check_version(version)
            try:
                self.backend.put_if_absent(pointer_key(project, name, version), body)
            except AlreadyExists:
                raise Conflict(
                    f"version {version} of {project}/{name} already exists; pick another version or leave it out to get the next one"
                ) from None
            return version
        existing = list(self.versions(project, name))
        for _ in range(_CLAIM_ATTEMPTS):
            candidate = names.next_version(existing)
            try:
                self.backend.put_if_absent(pointer_key(project, name, candidate), body)
                return candidate
            except AlreadyExists:
                existing.append(candidate)
        raise Conflict(f"could not claim a new version of {project}/{name}: too many concurrent writers, try again")

    def release(self, project: str, name: str, version: str) -> None:
        self.backend.delete(pointer_key(project, name, version))

    def find(
        self,
        project: str | None = None,
        name: str | None = None,
        version: str | None = None,
        tags: Iterable[str] | None = None,
        statuses: Iterable[str] | None = None,
        partial_name: str | None = None,
    ) -> list[DatasetRecord]:
        """Records matching every given criterion, newest first."""
        if project is not None and name is not None:
            ids = self.versions(project, name)
            if version is not None:
                ids = {version: ids[version]} if version in ids else {}
            records = sorted(
                (r for r in map(self._get_or_none, ids.values()) if r is not None), key=lambda r: r.id, reverse=True
            )
        else:
            records = list(self.all())
        want_tags = set(tags or ())
        want_status = set(statuses) if statuses else None
        out = []
        for r in records:
            if project is not None and r.project != project:
                continue
            if name is not None and r.name != name:
                continue
            if version is not None and r.version != version:
                continue
            if partial_name is not None and partial_name.lower() not in r.name.lower():
                continue
            if want_tags and not want_tags <= set(r.tags):
                continue
            if want_status is not None and r.status not in want_status:
                continue
            out.append(r)
        return out
