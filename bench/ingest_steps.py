"""The steps of ``ingest.py``, each run in a fresh interpreter (``harness.steps``); a local store.

``MOUNTFS_STORE`` and ``MOUNTFS_CACHE_DIR`` come from the environment.
"""

from __future__ import annotations

import os
import sys
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


STEPS = {"ingest": step_ingest, "local_copy": step_local_copy}

if __name__ == "__main__":
    sys.exit(step_main(STEPS))
