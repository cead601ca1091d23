"""``mountfs gc [--dry-run] [--grace SECONDS] [--json]``: one summary line, JSON for scripts, one line per error."""

from __future__ import annotations

import re

from mountfs import Dataset
from mountfs.backends.file import FileBackend
from mountfs.store.layout import PACKS, Manifest, Pointer, Record
from mountfs.store.locks import shared_lock


def _orphaned_version(env, mountfs) -> FileBackend:
    """A finalized version whose pointer, record and manifest are gone (what a delete leaves): its packs are garbage."""
    mountfs("create", "--project", "p", "--name", "ds")
    mountfs("add", "--files", env.data)
    mountfs("close")
    ds = Dataset.get(dataset_project="p", dataset_name="ds")
    backend = FileBackend(env.store)
    for key in (Pointer("p", "ds", ds.version).key, Record(ds.id).key, Manifest(ds.id).key):
        backend.delete(key)
    return backend


def test_dry_run_then_gc(env, mountfs) -> None:
    backend = _orphaned_version(env, mountfs)
    packs = [o.key for o in backend.list(PACKS)]
    assert packs
    out = mountfs("gc", "--dry-run", "--grace", "0").stdout
    assert re.fullmatch(rf"gc \S+: would free {len(packs)} packs? \(\d+(\.\d)? \S+\); 0 packs in use\n", out), out
    assert [o.key for o in backend.list(PACKS)] == packs
    young = mountfs("gc").stdout  # the default grace period keeps packs this young
    assert "freed 0 packs" in young and f"{len(packs)} unreferenced kept" in young
    report = mountfs.json("gc", "--grace", "0")
    assert (report["packs"], report["dry_run"], report["young"]) == (len(packs), False, 0) and report["bytes"] > 0
    assert list(backend.list(PACKS)) == []


def test_bad_grace_and_a_locked_store_are_one_line(env, mountfs) -> None:
    assert "--grace -1 is negative" in mountfs.fails("gc", "--grace", "-1", code=2)
    backend = _orphaned_version(env, mountfs)
    with shared_lock(backend, "upload"):
        line = mountfs.fails("gc", "--grace", "0", code=5)
    assert "is locked (gc needs the store alone): shared lock of upload by pid" in line
    assert list(backend.list(PACKS))
