"""The steps of ``ingest.py``, each run in a fresh interpreter (``harness.steps``); a local store.

``MOUNTFS_STORE`` and ``MOUNTFS_CACHE_DIR`` come from the environment (the ``gc`` steps: a SeaweedFS store).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import sdk  # noqa: E402
from harness.steps import step_main, vm_hwm  # noqa: E402

MODULE = os.path.abspath(__file__)


def step_ingest(a: dict[str, Any]) -> dict[str, Any]:
    """create + add_files + upload + finalize of one folder, as a child of ``parents`` if given."""
    ing = sdk.ingest(a["src"], a["name"], "bench", parents=a.get("parents") or None)
    rec = ing.ds.record
    return {
        "id": ing.ds.id, "phases_s": ing.phases_s, "total_s": ing.total_s,
        "files": rec.file_count, "bytes": rec.total_size, "changed": ing.changed, "changes": rec.changes,
        # outside the timed region: how many chunks the store holds now
        "chunks_in_store": len(ing.ds.storage.chunk_index(refresh=True)),
        "vm_hwm_bytes": vm_hwm(),
    }


def step_local_copy(a: dict[str, Any]) -> dict[str, Any]:
    """Dataset.get + get_local_copy of a finalized version; MOUNTFS_CACHE_DIR is fresh."""
    return {**sdk.local_copy(a["id"]), "vm_hwm_bytes": vm_hwm()}


def step_sync_version(a: dict[str, Any]) -> dict[str, Any]:
    """create (child of ``parent`` if given) + sync_folder + upload + finalize; sync_folder timed on its own."""
    from mountfs import Dataset

    parents = [a["parent"]] if a.get("parent") else None
    ds = Dataset.create(dataset_name=a["name"], dataset_project="bench", parent_datasets=parents)
    t0 = time.perf_counter()
    removed, added, modified = ds.sync_folder(a["src"])
    t1 = time.perf_counter()
    ds.upload(show_progress=False)
    t2 = time.perf_counter()
    ds.finalize()
    t3 = time.perf_counter()
    return {"id": ds.id, "sync_s": t1 - t0, "upload_s": t2 - t1, "finalize_s": t3 - t2,
            "removed": removed, "added": added, "modified": modified, "vm_hwm_bytes": vm_hwm()}


def step_gc_versions(a: dict[str, Any]) -> dict[str, Any]:
    """``versions`` chained versions of a small folder (each adds ``add`` files, removes one), then
    ``Dataset.delete(force=True, gc=False)`` of the ids at ``delete_from`` and after; untimed setup."""
    import random

    from mountfs import Dataset

    rng = random.Random(a["seed"])
    root, n = a["src"], 0
    ids: list[str] = []
    os.makedirs(root, exist_ok=True)
    for v in range(a["versions"]):
        for _ in range(a["add"]):
            with open(os.path.join(root, f"f{n:06d}.bin"), "wb") as fh:
                fh.write(rng.randbytes(rng.randint(a["min_size"], a["max_size"])))
            n += 1
        if v:
            os.unlink(os.path.join(root, rng.choice(sorted(os.listdir(root)))))
        ds = Dataset.create(dataset_name="gc", dataset_project="bench", parent_datasets=ids[-1:] or None)
        ds.sync_folder(root)
        ds.upload(show_progress=False)
        ds.finalize()
        ids.append(ds.id)
    deleted = ids[a["delete_from"]:]
    for dataset_id in deleted:
        Dataset.delete(dataset_id=dataset_id, force=True, gc=False)
    return {"ids": ids, "deleted": deleted, "files_written": n}


def step_gc(a: dict[str, Any]) -> dict[str, Any]:
    """``mountfs.store.gc.collect(store, grace_seconds=0)`` timed; the store's ``backend.list`` calls and the
    objects they yield are counted by wrapping the method on this process's backend instance."""
    from mountfs.session import current
    from mountfs.store import gc

    store = current().store()
    backend = store.backend
    counts = {"list_calls": 0, "objects_listed": 0}
    inner = backend.list

    def counted(prefix: str = "") -> Any:
        counts["list_calls"] += 1
        for o in inner(prefix):
            counts["objects_listed"] += 1
            yield o

    backend.list = counted  # this process only: nothing else uses the instance
    t0 = time.perf_counter()
    report = gc.collect(store, grace_seconds=0)
    t1 = time.perf_counter()
    return {"gc_s": t1 - t0, **counts, "packs_freed": report.packs, "bytes_freed": report.bytes,
            "packs_reachable": report.reachable, "young": report.young, "vm_hwm_bytes": vm_hwm()}


STEPS = {"ingest": step_ingest, "local_copy": step_local_copy, "sync_version": step_sync_version,
         "gc_versions": step_gc_versions, "gc": step_gc}

if __name__ == "__main__":
    sys.exit(step_main(STEPS))
