"""Garbage collection of one store: delete the packs that no manifest and no draft names any more.

The reachability sweep of DESIGN.md invariant 4, in restic's order (``prune``):
take the store alone (an exclusive lock, ``store/locks.py``: uploads and
finalize hold shared ones, so none runs meanwhile), then plan, then delete.

- Reachable: every pack named in the header of every manifest
  (``datasets/<id>/manifest``) and every draft's saved state
  (``datasets/<id>/state``) present in the store, whether or not a record of
  this catalog names it: a manifest written here for a dataset catalogued
  elsewhere (``output_uri``) keeps its packs too.  A manifest or state that
  cannot be read stops the sweep (what it needs cannot be known).
- Present: the ids listed under ``packs/`` and ``index/``.
- Candidates: present and unreachable, and older than the grace period (the
  younger of a pack and its index counts), so packs of an upload whose draft
  state is not yet saved are kept.  Each goes index first, then pack: an
  indexed chunk is always readable, and a reader of the index never offers a
  chunk whose pack is gone.

Only the catalog's own store is swept (``collect(sess.store())``).  A store
that also holds the drafts of datasets catalogued elsewhere must not be
collected while such a draft has uploaded packs older than the grace period
(their state lives in the other catalog): see docs/FORMAT.md, "Garbage collection".
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable

from ..errors import IntegrityError, ObjectNotFound, UsageError
from ..units import counted, human_size
from . import manifest as manifest_codec
from .layout import DATASETS, INDEX, PACKS, DraftState, Manifest, Pack, PackIndex, parse_dataset_key, parse_pack_key
from .locks import STALE_SECONDS, exclusive_lock, remove_stale
from .store import Store

log = logging.getLogger(__name__)

#: packs younger than this are never collected: an upload in flight may own them
GRACE_SECONDS = 3600.0

#: given the bytes about to be freed, the callback advanced by the bytes of each deleted pack
Progress = Callable[[int], Callable[[int], None]]


@dataclass
class Candidate:
    """An unreachable pack id with what is stored under it."""

    pack_id: str
    size: int = 0  # pack + index bytes
    newest: float = 0.0  # mtime of the younger of its objects
    has_pack: bool = False
    has_index: bool = False


@dataclass
class GcReport:
    """What one ``collect`` freed (or, on a dry run, would free)."""

    store: str
    dry_run: bool
    packs: int = 0
    bytes: int = 0
    young: int = 0  # unreachable, kept for the grace period
    reachable: int = 0
    stale_locks: int = 0
    pack_ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for people."""
        verb = "would free" if self.dry_run else "freed"
        young = f"; {self.young} unreferenced kept (younger than the grace period)" if self.young else ""
        return (f"gc {self.store}: {verb} {counted(self.packs, 'pack')} ({human_size(self.bytes)}); "
                f"{counted(self.reachable, 'pack')} in use{young}")

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def reachable_packs(store: Store) -> set[str]:
    """Every pack id named by a manifest or a draft state in the store."""
    keys = []
    for o in store.backend.list(DATASETS):
        try:
            handle = parse_dataset_key(o.key)
        except UsageError:
            handle = None  # not an object this layout writes under such a name: nothing reads it as a manifest
        if isinstance(handle, (Manifest, DraftState)):
            keys.append(handle.key)

    def packs_of(key: str) -> list[str]:
        where = f"{store.url}/{key}"
        try:
            data = store.backend.get(key)
        except ObjectNotFound:
            return []  # a draft finalized (its state dropped) or a version deleted since the listing
        try:
            header, _ = manifest_codec.iter_decode(data, where)  # the checksum covers the header
        except IntegrityError as exc:
            raise IntegrityError(f"gc stopped, nothing deleted: {exc}") from None
        return list(header["packs"])

    with ThreadPoolExecutor(8) as pool:
        return {p for packs in pool.map(packs_of, keys) for p in packs}


def plan(store: Store, grace_seconds: float = GRACE_SECONDS, now: float | None = None) -> tuple[list[Candidate], int, int]:
    """(packs to delete, count kept for being young, count reachable), without deleting anything."""
    now = time.time() if now is None else now
    reachable = reachable_packs(store)
    present: dict[str, Candidate] = {}
    for prefix in (PACKS, INDEX):
        for o in store.backend.list(prefix):
            try:
                handle = parse_pack_key(o.key)
            except UsageError:
                handle = None
            if handle is None:
                continue  # not ours: never deleted
            c = present.setdefault(handle.pack_id, Candidate(handle.pack_id))
            c.size += o.size
            c.newest = max(c.newest, o.mtime)
            if isinstance(handle, Pack):
                c.has_pack = True
            else:
                c.has_index = True
    unreachable = [c for pid, c in sorted(present.items()) if pid not in reachable]
    old = [c for c in unreachable if now - c.newest >= grace_seconds]
    return old, len(unreachable) - len(old), len(reachable & present.keys())


def collect(
    store: Store,
    *,
    dry_run: bool = False,
    grace_seconds: float = GRACE_SECONDS,
    progress: Progress | None = None,
    stale_seconds: float = STALE_SECONDS,
) -> GcReport:
    """Delete the store's unreachable packs older than ``grace_seconds``; a dry run only reports them.

    ``StoreLocked`` when an upload or finalize holds a fresh lock on the store
    (nothing is deleted then); locks not refreshed for ``stale_seconds`` are
    removed first.
    """
    if grace_seconds < 0:
        raise UsageError(f"grace period {grace_seconds} is negative; give seconds >= 0")
    report = GcReport(store.url, dry_run)
    if dry_run:
        candidates, report.young, report.reachable = plan(store, grace_seconds)
        _count(report, candidates)
        return report
    report.stale_locks = remove_stale(store.backend, stale_seconds)
    with exclusive_lock(store.backend, "gc", stale_seconds):
        candidates, report.young, report.reachable = plan(store, grace_seconds)
        _count(report, candidates)
        advance = progress(report.bytes) if progress else None
        for c in candidates:
            # index first: once it is gone no reader offers the pack's chunks, then the pack itself
            if c.has_index:
                store.backend.delete(PackIndex(c.pack_id).key)
            if c.has_pack:
                store.backend.delete(Pack(c.pack_id).key)
            log.debug("gc: deleted pack %s (%d bytes)", c.pack_id, c.size)
            if advance:
                advance(c.size)
        store.forget_packs(report.pack_ids)
    log.info(report.summary())
    return report


def _count(report: GcReport, candidates: list[Candidate]) -> None:
    report.packs = len(candidates)
    report.bytes = sum(c.size for c in candidates)
    report.pack_ids = [c.pack_id for c in candidates]
