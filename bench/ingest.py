#!/usr/bin/env python3
"""Ingest benchmark: how fast data goes into a mountfs store and back out, measured against ``cp -r``.

Parts (``--only``):

- ``a``: 10,000 files of 80-120 KiB in 100 folders; ``b``: 4 files of 256 MiB.
  For each: ``cp -r`` of the tree (the baseline, same disk), then
  create+add_files+upload+finalize into a fresh store, then ``get_local_copy``
  with a fresh cache so every chunk comes from the store.  Target: both at
  least 0.5x the MB/s of ``cp -r``.
- ``delta``, ``insert``: child versions (``ingest_children.py``).
- ``scale``: ``--files`` tiny files (16-64 B) in 1000 folders; ingest time and
  peak RSS (target < 1 GiB).
- ``sync``, ``gc``: a second ``sync_folder`` against stat+hash, and ``gc``
  after deletes on SeaweedFS (``ingest_sync.py``).

Each timed step runs in a fresh interpreter (``ingest_steps.py``, so its peak
RSS is its own) after ``sync`` and, as root, a page-cache drop.  Data is
generated once per work dir from fixed seeds.
Usage: ``python bench/ingest.py [--quick] [--only a,b] ...``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ingest_steps  # noqa: E402
from harness import options  # noqa: E402
from harness.data import GIB, TreeSpec, check_copy, many_spec, remove_tree, sizes, tree_size  # noqa: E402
from harness.report import Row, fmt_bytes, fmt_summary, mb, print_table, stamp, summary  # noqa: E402
from harness.run import BenchRun  # noqa: E402
from harness.steps import Run, clean_env, run_measured, run_step  # noqa: E402
from ingest_children import part_delta, part_insert  # noqa: E402
from ingest_sync import part_gc, part_sync  # noqa: E402

SEED = 1234
SEEDS = {"A": SEED, "delta": SEED + 1, "B": SEED + 2, "scale": SEED + 3}
PARTS = ("a", "b", "delta", "insert", "scale", "sync", "gc")
KEYS = {"a": "A", "b": "B", "delta": "delta", "insert": "insert", "scale": "scale", "sync": "sync", "gc": "gc"}  # part -> key in the JSON
TARGET_RATIO, TARGET_RSS = 0.5, 1 * GIB


class Bench(BenchRun):
    """Stores in the work dir, the environment of the mountfs steps, and collected results."""

    def __init__(self, args: argparse.Namespace):
        super().__init__(args, "ingest", seed=SEED, data={}, parts={})
        self.sizes = sizes(args.quick)
        self.seeds = SEEDS

    def env(self, store: str, cache: str) -> dict[str, str]:
        # MOUNTFS_CONFIG is /dev/null (no settings): a user's config must not change the numbers
        return clean_env(MOUNTFS_STORE=store, MOUNTFS_CACHE_DIR=cache, MOUNTFS_CONFIG=os.devnull)

    def fresh_store(self, key: str) -> str:
        store = self.path(f"store-{key}")
        self.drop_store(store)
        return store

    @staticmethod
    def drop_store(store: str) -> None:
        remove_tree(store)
        remove_tree(store + "-cache")

    def ingest(self, src: str, store: str, name: str, parents: list[str] | None = None, cold: bool = True) -> Run:
        if cold:
            self.cold()
        return run_step(ingest_steps.MODULE, "ingest", {"src": src, "name": name, "parents": parents or []},
                        self.env(store, store + "-cache"))

    def local_copy(self, dataset_id: str, store: str, cache: str) -> Run:
        self.cold()
        return run_step(ingest_steps.MODULE, "local_copy", {"id": dataset_id}, self.env(store, cache))

    @staticmethod
    def phases(result: dict[str, Any]) -> str:
        return "(" + ", ".join(f"{k} {v:.2f}" for k, v in result["phases_s"].items()) + ")"


# ---------------------------------------------------------------- A and B: cp -r vs ingest vs get_local_copy


def part_tree(b: Bench, key: str, spec: TreeSpec) -> None:
    info = b.gen(key, spec, SEEDS[key])
    src, nbytes, nfiles = info["path"], info["bytes"], info["files"]
    runs = []
    for i in range(b.args.repeat):
        run: dict[str, Any] = {}
        dst = b.path(f"cp-{key}")
        remove_tree(dst)
        b.cold()
        cp = run_measured(["cp", "-r", src, dst])
        t0 = time.perf_counter()
        os.sync()
        run["cp"] = {**cp.as_dict(), "sync_s": time.perf_counter() - t0}
        remove_tree(dst)
        b.log(f"{key}[{i}] cp -r: {cp.wall_s:.2f} s (+ sync {run['cp']['sync_s']:.2f} s)")

        store = b.fresh_store(key)
        ing = b.ingest(src, store, f"data-{key}")
        run["ingest"] = ing.as_dict()
        run["store_bytes"] = tree_size(store)[0]
        b.log(f"{key}[{i}] ingest: {ing.result['total_s']:.2f} s {b.phases(ing.result)}, "
              f"peak RSS {fmt_bytes(ing.peak_rss_bytes)}")

        cache = b.path(f"cache-{key}")
        remove_tree(cache)
        glc = b.local_copy(ing.result["id"], store, cache)
        got_bytes, got_files = check_copy(src, glc.result["path"], nbytes, nfiles, f"{key}: local copy", SEED)
        run["local_copy"] = {**glc.as_dict(), "copy_bytes": got_bytes, "copy_files": got_files,
                             "cache_chunk_bytes": tree_size(os.path.join(cache, "chunks"))[0]}
        b.log(f"{key}[{i}] get_local_copy: {glc.result['total_s']:.2f} s, peak RSS {fmt_bytes(glc.peak_rss_bytes)}")
        b.drop_store(store)
        remove_tree(cache)
        runs.append(run)

    cp_rate = [mb(nbytes) / r["cp"]["wall_s"] for r in runs]
    cps_rate = [mb(nbytes) / (r["cp"]["wall_s"] + r["cp"]["sync_s"]) for r in runs]
    ing_rate = [mb(nbytes) / r["ingest"]["result"]["total_s"] for r in runs]
    glc_rate = [mb(nbytes) / r["local_copy"]["result"]["total_s"] for r in runs]
    s: dict[str, Any] = {
        "bytes": nbytes, "files": nfiles,
        "cp_MBps": summary(cp_rate), "cp_sync_MBps": summary(cps_rate),
        "ingest_MBps": summary(ing_rate), "local_copy_MBps": summary(glc_rate),
        "ingest_ratio": summary(i / c for i, c in zip(ing_rate, cp_rate)),
        "ingest_ratio_vs_cp_sync": summary(i / c for i, c in zip(ing_rate, cps_rate)),
        "local_copy_ratio": summary(g / c for g, c in zip(glc_rate, cp_rate)),
        "ingest_peak_rss": summary(r["ingest"]["peak_rss_bytes"] for r in runs),
        "local_copy_peak_rss": summary(r["local_copy"]["peak_rss_bytes"] for r in runs),
        "ingest_phases_s": {k: summary(r["ingest"]["result"]["phases_s"][k] for r in runs)
                            for k in runs[0]["ingest"]["result"]["phases_s"]},
    }
    b.doc["parts"][key] = {"runs": runs, "summary": s}

    def f1(v: float) -> str:
        return f"{v:.1f}"

    def f2(v: float) -> str:
        return f"{v:.2f}"

    ph, P = s["ingest_phases_s"], key
    b.rows += [
        Row(P, f"data: {nfiles} files, {fmt_bytes(nbytes)}", ""),
        Row(P, "cp -r MB/s (baseline)", fmt_summary(s["cp_MBps"], f1)),
        Row(P, "cp -r + sync MB/s", fmt_summary(s["cp_sync_MBps"], f1)),
        Row(P, "ingest MB/s (create+add+upload+finalize)", fmt_summary(s["ingest_MBps"], f1)),
        Row(P, "ingest phases s (add / upload / finalize)",
            " / ".join(f"{ph[k]['median']:.2f}" for k in ("add_files", "upload", "finalize"))),
        Row(P, "ingest / cp -r", fmt_summary(s["ingest_ratio"], f2), f">= {TARGET_RATIO}x",
            s["ingest_ratio"]["median"] >= TARGET_RATIO),
        Row(P, "ingest / (cp -r + sync)", fmt_summary(s["ingest_ratio_vs_cp_sync"], f2)),
        Row(P, "ingest peak RSS", fmt_summary(s["ingest_peak_rss"], fmt_bytes)),
        Row(P, "get_local_copy MB/s", fmt_summary(s["local_copy_MBps"], f1)),
        Row(P, "get_local_copy / cp -r", fmt_summary(s["local_copy_ratio"], f2), f">= {TARGET_RATIO}x",
            s["local_copy_ratio"]["median"] >= TARGET_RATIO),
        Row(P, "get_local_copy peak RSS", fmt_summary(s["local_copy_peak_rss"], fmt_bytes)),
    ]


# ---------------------------------------------------------------- scale: many tiny files


def part_scale(b: Bench) -> None:
    n = b.args.files or b.sizes.many
    spec = many_spec(n)
    info = b.gen(f"scale-{n}", spec, SEEDS["scale"])
    runs: list[dict[str, Any]] = []
    for i in range(b.args.repeat):
        store = b.fresh_store("scale")
        r = b.ingest(info["path"], store, "scale")
        runs.append({"ingest": r.as_dict(), "store_bytes": tree_size(store)[0]})
        b.log(f"scale[{i}] {n} files: {r.result['total_s']:.1f} s {b.phases(r.result)}, "
              f"peak RSS {fmt_bytes(r.peak_rss_bytes)}")
        b.drop_store(store)
    s: dict[str, Any] = {
        "files": n, "bytes": info["bytes"],
        "total_s": summary(r["ingest"]["result"]["total_s"] for r in runs),
        "files_per_s": summary(n / r["ingest"]["result"]["total_s"] for r in runs),
        "peak_rss": summary(r["ingest"]["peak_rss_bytes"] for r in runs),
        "rss_per_file": summary(r["ingest"]["peak_rss_bytes"] / n for r in runs),
        "phases_s": {k: summary(r["ingest"]["result"]["phases_s"][k] for r in runs)
                     for k in runs[0]["ingest"]["result"]["phases_s"]}}
    b.doc["parts"]["scale"] = {"runs": runs, "summary": s}
    ph = s["phases_s"]
    b.rows += [
        Row("scale", f"data: {n} files of {spec.min_size}-{spec.max_size} B in {spec.folders} folders",
            fmt_bytes(info["bytes"])),
        Row("scale", "create+add+upload+finalize s", fmt_summary(s["total_s"], lambda v: f"{v:.1f}")),
        Row("scale", "phases s (add / upload / finalize)",
            " / ".join(f"{ph[k]['median']:.1f}" for k in ("add_files", "upload", "finalize"))),
        Row("scale", "files/s", fmt_summary(s["files_per_s"], lambda v: f"{v:.0f}")),
        Row("scale", "peak RSS", fmt_summary(s["peak_rss"], fmt_bytes), "< 1 GiB", s["peak_rss"]["max"] < TARGET_RSS),
        Row("scale", "peak RSS / files (interpreter included)", fmt_summary(s["rss_per_file"], lambda v: f"{v:.0f} B")),
    ]


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = options.parser("ingest", __doc__ or "", PARTS, quick="small sizes, for a smoke run",
                       work="work folder for data, stores and copies (default: a new /tmp folder, removed at the end); "
                            "generated data in a given folder is kept and reused")
    p.add_argument("--files", type=int, default=None, help="files in the scale part (default 1,000,000; 20,000 with --quick)")
    return options.parse(p, argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    b = Bench(args)
    b.log(f"work dir {b.work}; results -> {args.out}")
    run: dict[str, Callable[[], None]] = {
        "a": lambda: part_tree(b, "A", b.sizes.A), "b": lambda: part_tree(b, "B", b.sizes.B),
        "delta": lambda: part_delta(b), "insert": lambda: part_insert(b), "scale": lambda: part_scale(b),
        "sync": lambda: part_sync(b), "gc": lambda: part_gc(b)}
    try:
        for part in PARTS:
            if part in args.parts:
                t0 = time.perf_counter()
                run[part]()
                b.doc["parts"].setdefault(KEYS[part], {})["seconds"] = time.perf_counter() - t0
                b.save()  # a later failure keeps what was measured so far
    finally:
        b.doc["finished"] = stamp()
        b.close()
    m = b.doc["machine"]
    print(f"\nmountfs ingest benchmark ({'quick' if args.quick else 'full'}, {args.repeat} run(s) per step; "
          f"{m['nproc']} cores, kernel {m['kernel']}, python {m['python']})")
    print(f"page cache dropped before each timed step: {b.dropped_note('timed steps')}; MB = 10^6 bytes; "
          f"ingest and get_local_copy MB/s use the time of the SDK calls in a fresh process")
    print_table(b.rows)
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
