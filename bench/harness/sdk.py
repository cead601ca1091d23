"""The mountfs SDK calls the benches time, inside a step process (store, keys and cache from the environment).

Imports of mountfs happen before the first timestamp, so no timed region pays for them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Ingested:
    """A finalized version and how long each SDK call took (``create``, ``add_files``, ``upload``, ``finalize``)."""

    ds: Any
    changed: int
    phases_s: dict[str, float]
    total_s: float


def ingest(src: str, name: str, project: str, parents: list[str] | None = None, workers: int | None = None,
           before_upload: Callable[[], None] | None = None,
           after_upload: Callable[[], None] | None = None) -> Ingested:
    """``Dataset.create`` + ``add_files(src)`` + ``upload`` + ``finalize``, each timed.

    ``before_upload`` and ``after_upload`` run right before and after ``upload()`` (snapshots of request
    counters), inside the upload's and the finalize's interval.
    """
    from mountfs import Dataset

    t0 = time.perf_counter()
    ds = Dataset.create(dataset_name=name, dataset_project=project, parent_datasets=parents or None)
    t1 = time.perf_counter()
    changed = ds.add_files(src, max_workers=workers)
    t2 = time.perf_counter()
    if before_upload is not None:
        before_upload()
    ds.upload(show_progress=False, max_workers=workers)
    t3 = time.perf_counter()
    if after_upload is not None:
        after_upload()
    ds.finalize()
    t4 = time.perf_counter()
    return Ingested(ds, changed, {"create": t1 - t0, "add_files": t2 - t1, "upload": t3 - t2, "finalize": t4 - t3},
                    t4 - t0)


def local_copy(dataset_id: str, workers: int | None = None) -> dict[str, Any]:
    """``Dataset.get`` + ``get_local_copy`` of a finalized version: ``path``, ``phases_s``, ``total_s``."""
    from mountfs import Dataset

    t0 = time.perf_counter()
    ds = Dataset.get(dataset_id=dataset_id)
    t1 = time.perf_counter()
    path = ds.get_local_copy(max_workers=workers)
    t2 = time.perf_counter()
    return {"path": path, "phases_s": {"get": t1 - t0, "get_local_copy": t2 - t1}, "total_s": t2 - t0}
