"""``read.py``'s baselines, same data, same run: local disk (the ceiling) and boto3 from bucket ``plain``.

Local: ``find`` and ``ls -lR`` over A, then A with 8 threads and B one file at
a time, cold (after ``drop_caches``) and warm (page cache); B again with its
page cache filled in 4 KiB pages, the way this kernel caches a FUSE file.
boto3: B as 8 MiB ranged GETs over 8 threads, A one GET per file over 8 threads.
"""

from __future__ import annotations

from typing import Any

from read_bench import THREADS, Bench, Result
from read_pages import fill_small_pages


def baselines(b: Bench, i: int, data: dict[str, Any], run: dict[str, Any]) -> None:
    """Every baseline pass of repeat ``i`` into ``run["local"]``, ``run["local4k"]`` and ``run["boto3"]``."""
    parts = b.args.parts

    def timed(who: str, k: str, r: Result) -> None:
        run[who][k] = r
        b.say(i, {"local4k": "local, 4 KiB pages"}.get(who, who), k, r)

    if "a" in parts:
        A = data["A"]
        for k, r in b.meta(A["path"], A["files"], lambda k, walk: walk()).items():
            timed("local", k, r)
        b.cold()
        for k in ("A_cold", "A_warm"):
            timed("local", k, b.cpu_phase(None, lambda: b.read_fs(A["path"], A, THREADS)))
    if "b" in parts:
        B = data["B"]
        b.cold()
        for k in ("B_cold", "B_warm", "B_warm2"):
            timed("local", k, b.cpu_phase(None, lambda: b.read_fs(B["path"], B, 1)))
        # the same files with the page cache in 4 KiB pages, like a FUSE file's
        b.cold()
        fill_small_pages(B["path"])
        for k in ("B_warm", "B_warm2"):
            timed("local4k", k, b.cpu_phase(None, lambda: b.read_fs(B["path"], B, 1)))
        b.cold()
        timed("boto3", "B_cold", b.cpu_phase(None, lambda: b.read_s3("B", B, ranged=True)))
    if "a" in parts:
        b.cold()
        timed("boto3", "A_cold", b.cpu_phase(None, lambda: b.read_s3("A", data["A"], ranged=False)))
