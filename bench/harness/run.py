"""``BenchRun``: what every bench keeps during one run.

Its work dir, whether the page cache could be dropped before each timed step,
the data sets it generated, its result rows and its JSON document (saved after
every part, so a later failure keeps what was measured).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

from harness.data import TreeSpec, file_list, gen_tree, remove_tree
from harness.machine import machine_info
from harness.procs import drop_caches
from harness.report import Row, fmt_bytes, stamp, write_json


class BenchRun:
    """One run of bench ``bench``; ``doc`` items go into the JSON document after the common header."""

    def __init__(self, args: argparse.Namespace, bench: str, **doc: Any):
        self.args = args
        self.bench = bench
        self.own_work = args.work is None
        self.work = os.path.abspath(args.work or tempfile.mkdtemp(prefix=f"mountfs-bench-{bench}-", dir="/tmp"))
        os.makedirs(self.work, exist_ok=True)
        self.dropped: bool | None = None  # None until the first timed step
        # ``Row``s; read.py's rows are dicts with columns of their own
        self.rows: list[Any] = []
        self.doc: dict[str, Any] = {
            "bench": bench, "started": stamp(), "argv": sys.argv[1:],
            "quick": args.quick, "repeat": args.repeat, "work_dir": self.work,
            "machine": machine_info(self.work), **doc,
        }

    def log(self, msg: str) -> None:
        print(f"[{self.bench} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def path(self, *names: str) -> str:
        return os.path.join(self.work, *names)

    def cold(self) -> None:
        """Before every timed step: flush dirty pages and drop the page cache if allowed."""
        ok = drop_caches()
        self.dropped = ok if self.dropped is None else self.dropped and ok

    def gen(self, key: str, spec: TreeSpec, seed: int, digests: bool = False) -> dict[str, Any]:
        """Data set ``key`` in ``<work>/data-<key>`` (reused if there), recorded in ``doc["data"]``; with
        ``digests`` also its file list with xxh3s (``info["list"]``)."""
        root = self.path(f"data-{key}")
        files, folders, lo, hi = spec
        self.log(f"data {key}: {files} files in {folders} folders, {fmt_bytes(lo)}..{fmt_bytes(hi)} each")
        info = gen_tree(root, files, folders, lo, hi, seed)
        info["path"] = root
        how = "reused" if info["reused"] else f"generated in {info['seconds']:.1f} s"
        self.log(f"data {key}: {fmt_bytes(info['bytes'])} {how}")
        if digests:
            info["list"] = file_list(root, info)
        os.sync()
        self.doc["data"][key] = info
        return info

    def save(self) -> None:
        self.doc["caches_dropped"] = bool(self.dropped)
        self.doc["rows"] = [r.as_dict() if isinstance(r, Row) else r for r in self.rows]
        write_json(self.args.out, self.doc)

    def close(self) -> None:
        """The last save; the work folder goes unless it was given or ``--keep``."""
        self.save()
        if self.own_work and not self.args.keep:
            remove_tree(self.work)

    def dropped_note(self, what: str) -> str:
        """``yes``, or why the cold numbers may not be cold."""
        return "yes" if self.dropped else f"NO (not root?): {what} may read from the page cache"
