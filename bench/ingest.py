#!/usr/bin/env python3
"""Ingest benchmark: how fast data goes into a mountfs store and back out, measured against ``cp -r``.

Parts (``--only``):

- ``a``: 10,000 files of 80-120 KiB in 100 folders; ``b``: 4 files of 256 MiB.
  For each: ``cp -r`` of the tree (the baseline, same disk), then
  create+add_files+upload+finalize into a fresh store, then ``get_local_copy``
  with a fresh cache so every chunk comes from the store.  Target: both at
  least 0.5x the MB/s of ``cp -r``.
- ``delta``: a child of A with 1% of the files rewritten; bytes the store grows
  by, as a % of the dataset's bytes (target <= 2%).
- ``insert``: a child of B with one byte inserted in the middle of one file;
  new chunks written (target <= 3).
- ``scale``: ``--files`` tiny files (16-64 B) in 1000 folders; ingest time and
  peak RSS (target < 1 GiB).

Each timed step runs in a fresh interpreter (so its peak RSS is its own) after
``sync`` and, as root, a page-cache drop.  Data is generated once per work dir
from fixed seeds.  Usage: ``python bench/ingest.py [--quick] [--only a,b] ...``
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Row, fmt_bytes, fmt_summary, mb, summary  # noqa: E402

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
SEED = 1234
PARTS = ("a", "b", "delta", "insert", "scale")
SCRIPT = os.path.abspath(__file__)
KEYS = {"a": "A", "b": "B", "delta": "delta", "insert": "insert", "scale": "scale"}  # part -> key in the JSON
#: data set sizes: (files, folders, min size, max size)
FULL = {"A": (10_000, 100, 80 * KIB, 120 * KIB), "B": (4, 1, 256 * MIB, 256 * MIB), "scale_files": 1_000_000}
QUICK = {"A": (500, 10, 80 * KIB, 120 * KIB), "B": (2, 1, 16 * MIB, 16 * MIB), "scale_files": 20_000}
SCALE_FOLDERS, SCALE_SIZES = 1000, (16, 64)
DELTA_FRACTION = 0.01
TARGET_RATIO, TARGET_DELTA_PCT, TARGET_INSERT_CHUNKS, TARGET_RSS = 0.5, 2.0, 3, 1 * GIB


# ------------------------------------------------------------------ steps (run in a fresh interpreter)



def step_ingest(a: dict[str, Any]) -> dict[str, Any]:
    """create + add_files + upload + finalize of one folder; MOUNTFS_STORE comes from the environment."""
    from mountfs import Dataset

    t0 = time.perf_counter()
    ds = Dataset.create(dataset_name=a["name"], dataset_project="bench", parent_datasets=a.get("parents") or None)
    t1 = time.perf_counter()
    changed = ds.add_files(a["src"])
    t2 = time.perf_counter()
    ds.upload(show_progress=False)
    t3 = time.perf_counter()
    ds.finalize()
    t4 = time.perf_counter()
    rec = ds.record
    return {
        "id": ds.id,
        "phases_s": {"create": t1 - t0, "add_files": t2 - t1, "upload": t3 - t2, "finalize": t4 - t3},
        "total_s": t4 - t0,
        "files": rec.file_count,
        "bytes": rec.total_size,
        "changed": changed,
        "changes": rec.changes,
        # outside the timed region: how many chunks the store holds now
        "chunks_in_store": len(ds.storage.chunk_index(refresh=True)),
        "vm_hwm_bytes": common.vm_hwm(),
    }


def step_local_copy(a: dict[str, Any]) -> dict[str, Any]:
    """Dataset.get + get_local_copy of a finalized version; MOUNTFS_CACHE_DIR is fresh."""
    from mountfs import Dataset

    t0 = time.perf_counter()
    ds = Dataset.get(dataset_id=a["id"])
    t1 = time.perf_counter()
    path = ds.get_local_copy()
    t2 = time.perf_counter()
    return {"path": path, "phases_s": {"get": t1 - t0, "get_local_copy": t2 - t1}, "total_s": t2 - t0,
            "vm_hwm_bytes": common.vm_hwm()}


STEPS = {"ingest": step_ingest, "local_copy": step_local_copy}


# ------------------------------------------------------------------ the driver


class Bench(common.BenchRun):
    """Work dir, environment for mountfs steps, cache dropping, and collected results."""

    def __init__(self, args: argparse.Namespace):
        super().__init__(args, "ingest", seed=SEED, data={}, parts={})
        self.sizes = QUICK if args.quick else FULL

    def env(self, store: str, cache: str) -> dict[str, str]:
        # MOUNTFS_CONFIG points at a missing file: a user's config must not change the numbers
        return common.clean_env(MOUNTFS_STORE=store, MOUNTFS_CACHE_DIR=cache, MOUNTFS_CONFIG=self.path("no-config.toml"))

    def ingest(self, src: str, store: str, name: str, parents: list[str] | None = None, cold: bool = True) -> common.Run:
        if cold:
            self.cold()
        return common.run_step(SCRIPT, "ingest", {"src": src, "name": name, "parents": parents or []},
                               self.env(store, store + "-cache"))

    def local_copy(self, dataset_id: str, store: str, cache: str) -> common.Run:
        self.cold()
        return common.run_step(SCRIPT, "local_copy", {"id": dataset_id}, self.env(store, cache))

    def gen(self, key: str, root: str, spec: tuple[int, int, int, int], seed: int) -> dict[str, Any]:
        files, folders, lo, hi = spec
        log(f"data {key}: {files} files in {folders} folders, {fmt_bytes(lo)}..{fmt_bytes(hi)} each")
        info = common.gen_tree(root, files, folders, lo, hi, seed)
        os.sync()
        self.doc["data"][key] = {**info, "path": root}
        how = "reused" if info["reused"] else f"generated in {info['seconds']:.1f} s"
        log(f"data {key}: {fmt_bytes(info['bytes'])} {how}")
        return info


def log(msg: str) -> None:
    print(f"[ingest {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _ratio_ok(x: float) -> bool:
    return x >= TARGET_RATIO


# ---------------------------------------------------------------- A and B: cp -r vs ingest vs get_local_copy


def part_tree(b: Bench, key: str, spec: tuple[int, int, int, int], seed: int) -> None:
    src = b.path(f"data-{key}")
    info = b.gen(key, src, spec, seed)
    nbytes, nfiles = info["bytes"], info["files"]
    runs = []
    for i in range(b.args.repeat):
        run: dict[str, Any] = {}
        dst = b.path(f"cp-{key}")
        common.remove_tree(dst)
        b.cold()
        cp = common.run_measured(["cp", "-r", src, dst])
        t0 = time.perf_counter()
        os.sync()
        run["cp"] = {**cp.as_dict(), "sync_s": time.perf_counter() - t0}
        common.remove_tree(dst)
        log(f"{key}[{i}] cp -r: {cp.wall_s:.2f} s (+ sync {run['cp']['sync_s']:.2f} s)")

        store = b.path(f"store-{key}")
        common.remove_tree(store)
        common.remove_tree(store + "-cache")
        ing = b.ingest(src, store, f"data-{key}")
        run["ingest"] = ing.as_dict()
        run["store_bytes"] = common.tree_size(store)[0]
        log(f"{key}[{i}] ingest: {ing.result['total_s']:.2f} s {_phases(ing.result)}, peak RSS {fmt_bytes(ing.peak_rss_bytes)}")

        cache = b.path(f"cache-{key}")
        common.remove_tree(cache)
        glc = b.local_copy(ing.result["id"], store, cache)
        got_bytes, got_files = common.tree_size(glc.result["path"])
        run["local_copy"] = {**glc.as_dict(), "copy_bytes": got_bytes, "copy_files": got_files,
                             "cache_chunk_bytes": common.tree_size(os.path.join(cache, "chunks"))[0]}
        if (got_bytes, got_files) != (nbytes, nfiles):
            raise RuntimeError(f"{key}: local copy has {got_files} files / {got_bytes} B, expected {nfiles} / {nbytes}")
        _check_sample(src, glc.result["path"])
        log(f"{key}[{i}] get_local_copy: {glc.result['total_s']:.2f} s, peak RSS {fmt_bytes(glc.peak_rss_bytes)}")
        for p in (store, store + "-cache", cache):
            common.remove_tree(p)
        runs.append(run)

    cp_rate = [mb(nbytes) / r["cp"]["wall_s"] for r in runs]
    cps_rate = [mb(nbytes) / (r["cp"]["wall_s"] + r["cp"]["sync_s"]) for r in runs]
    ing_rate = [mb(nbytes) / r["ingest"]["result"]["total_s"] for r in runs]
    glc_rate = [mb(nbytes) / r["local_copy"]["result"]["total_s"] for r in runs]
    s = {
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

    P = key
    f1, f2, fr = (lambda v: f"{v:.1f}"), (lambda v: f"{v:.2f}"), (lambda v: fmt_bytes(v))
    ph = s["ingest_phases_s"]
    b.rows += [
        Row(P, f"data: {nfiles} files, {fmt_bytes(nbytes)}", ""),
        Row(P, "cp -r MB/s (baseline)", fmt_summary(s["cp_MBps"], f1)),
        Row(P, "cp -r + sync MB/s", fmt_summary(s["cp_sync_MBps"], f1)),
        Row(P, "ingest MB/s (create+add+upload+finalize)", fmt_summary(s["ingest_MBps"], f1)),
        Row(P, "ingest phases s (add / upload / finalize)",
            " / ".join(f"{ph[k]['median']:.2f}" for k in ("add_files", "upload", "finalize"))),
        Row(P, "ingest / cp -r", fmt_summary(s["ingest_ratio"], f2), f">= {TARGET_RATIO}x", _ratio_ok(s["ingest_ratio"]["median"])),
        Row(P, "ingest / (cp -r + sync)", fmt_summary(s["ingest_ratio_vs_cp_sync"], f2)),
        Row(P, "ingest peak RSS", fmt_summary(s["ingest_peak_rss"], fr)),
        Row(P, "get_local_copy MB/s", fmt_summary(s["local_copy_MBps"], f1)),
        Row(P, "get_local_copy / cp -r", fmt_summary(s["local_copy_ratio"], f2), f">= {TARGET_RATIO}x",
            _ratio_ok(s["local_copy_ratio"]["median"])),
        Row(P, "get_local_copy peak RSS", fmt_summary(s["local_copy_peak_rss"], fr)),
    ]


def _phases(result: dict[str, Any]) -> str:
    return "(" + ", ".join(f"{k} {v:.2f}" for k, v in result["phases_s"].items()) + ")"


def _check_sample(src: str, copy: str, n: int = 5) -> None:
    """Byte-compare a few files of the copy with their source (sizes were checked for all)."""
    files = common.tree_files(src)
    for rel in random.Random(SEED).sample(files, min(n, len(files))):
        if subprocess.run(["cmp", "-s", os.path.join(src, rel), os.path.join(copy, rel)]).returncode != 0:
            raise RuntimeError(f"local copy differs from the source: {rel}")


# ---------------------------------------------------------------- delta and insert: child versions


def _linked_copy(src: str, dst: str) -> None:
    """``dst`` = ``src`` as hard links: same inodes, so only files replaced later differ."""
    common.remove_tree(dst)
    subprocess.run(["cp", "-al", src, dst], check=True)


def make_delta_tree(src: str, dst: str, seed: int) -> list[str]:
    """A linked copy of ``src`` with 1% of its files replaced by new random content of the same size."""
    files = common.tree_files(src)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(files, max(1, round(len(files) * DELTA_FRACTION))))
    _linked_copy(src, dst)
    for rel in chosen:
        p = os.path.join(dst, rel)
        size = os.path.getsize(p)
        os.unlink(p)  # break the link: the parent's file must stay as it is
        common.write_random_file(p, size, rng)
    os.sync()
    return chosen


def make_insert_tree(src: str, dst: str) -> tuple[str, int]:
    """A linked copy of ``src`` whose first file has one byte inserted in its middle."""
    rel = common.tree_files(src)[0]
    _linked_copy(src, dst)
    p, orig = os.path.join(dst, rel), os.path.join(src, rel)
    mid = os.path.getsize(orig) // 2
    os.unlink(p)
    with open(orig, "rb") as fin, open(p, "wb") as fout:
        left = mid
        while left:
            block = fin.read(min(left, 16 * MIB))
            fout.write(block)
            left -= len(block)
        fout.write(b"\xa5")
        while block := fin.read(16 * MIB):
            fout.write(block)
    os.sync()
    return rel, mid


def child_version(b: Bench, key: str, base_src: str, child_src: str) -> list[dict[str, Any]]:
    """Per repeat: a fresh store with the base version (untimed setup), then the timed child version."""
    runs = []
    for i in range(b.args.repeat):
        store = b.path(f"store-{key}")
        common.remove_tree(store)
        common.remove_tree(store + "-cache")
        base = b.ingest(base_src, store, f"data-{key}", cold=False)
        before = common.tree_size(store)[0]
        child = b.ingest(child_src, store, f"data-{key}", parents=[base.result["id"]])
        after = common.tree_size(store)[0]
        r = child.result
        runs.append({
            "base": base.as_dict(), "child": child.as_dict(),
            "store_bytes_before": before, "store_bytes_after": after, "store_growth_bytes": after - before,
            "new_chunks": r["chunks_in_store"] - base.result["chunks_in_store"],
        })
        log(f"{key}[{i}] child: {r['total_s']:.2f} s {_phases(r)}, store +{fmt_bytes(after - before)}, "
            f"{runs[-1]['new_chunks']} new chunks, changes {r['changes']}")
        common.remove_tree(store)
        common.remove_tree(store + "-cache")
    return runs


def part_delta(b: Bench) -> None:
    src = b.path("data-A")
    b.gen("A", src, b.sizes["A"], SEED)
    dst = b.path("data-A-delta")
    chosen = make_delta_tree(src, dst, SEED + 1)
    runs = child_version(b, "delta", src, dst)
    common.remove_tree(dst)
    nbytes = runs[0]["child"]["result"]["bytes"]
    changed_bytes = sum(os.path.getsize(os.path.join(src, rel)) for rel in chosen)
    pct = [100.0 * r["store_growth_bytes"] / nbytes for r in runs]
    s = {"dataset_bytes": nbytes, "modified_files": len(chosen), "modified_bytes": changed_bytes,
         "modified_pct": 100.0 * changed_bytes / nbytes, "growth_pct": summary(pct),
         "growth_bytes": summary(r["store_growth_bytes"] for r in runs),
         "child_s": summary(r["child"]["result"]["total_s"] for r in runs),
         "detected_modified": [r["child"]["result"]["changes"]["modified"] for r in runs]}
    b.doc["parts"]["delta"] = {"runs": runs, "summary": s}
    mod_ok = all(m == len(chosen) for m in s["detected_modified"])
    b.rows += [
        Row("delta", f"files rewritten ({fmt_bytes(changed_bytes)}, {s['modified_pct']:.2f}% of bytes)", str(len(chosen))),
        Row("delta", "modified files the child records", ",".join(map(str, s["detected_modified"])), f"== {len(chosen)}", mod_ok),
        Row("delta", "store growth", fmt_summary(s["growth_bytes"], fmt_bytes)),
        Row("delta", "store growth % of dataset bytes", fmt_summary(s["growth_pct"], lambda v: f"{v:.2f}%"),
            f"<= {TARGET_DELTA_PCT}%", s["growth_pct"]["median"] <= TARGET_DELTA_PCT),
        Row("delta", "child create+add+upload+finalize s", fmt_summary(s["child_s"], lambda v: f"{v:.2f}")),
    ]


def part_insert(b: Bench) -> None:
    src = b.path("data-B")
    b.gen("B", src, b.sizes["B"], SEED + 2)
    dst = b.path("data-B-insert")
    rel, offset = make_insert_tree(src, dst)
    runs = child_version(b, "insert", src, dst)
    common.remove_tree(dst)
    s = {"file": rel, "offset": offset, "new_chunks": summary(r["new_chunks"] for r in runs),
         "growth_bytes": summary(r["store_growth_bytes"] for r in runs),
         "child_s": summary(r["child"]["result"]["total_s"] for r in runs),
         "base_chunks": runs[0]["base"]["result"]["chunks_in_store"]}
    b.doc["parts"]["insert"] = {"runs": runs, "summary": s}
    b.rows += [
        Row("insert", f"1 byte inserted at {fmt_bytes(offset)} of {rel}", f"{s['base_chunks']} chunks before"),
        Row("insert", "new chunks written", fmt_summary(s["new_chunks"], lambda v: f"{v:.0f}"),
            f"<= {TARGET_INSERT_CHUNKS}", s["new_chunks"]["median"] <= TARGET_INSERT_CHUNKS),
        Row("insert", "bytes written to the store", fmt_summary(s["growth_bytes"], fmt_bytes)),
        Row("insert", "child create+add+upload+finalize s", fmt_summary(s["child_s"], lambda v: f"{v:.2f}")),
    ]


# ---------------------------------------------------------------- scale: many tiny files


def part_scale(b: Bench) -> None:
    n = b.args.files or b.sizes["scale_files"]
    src = b.path(f"data-scale-{n}")
    info = b.gen(f"scale-{n}", src, (n, SCALE_FOLDERS, *SCALE_SIZES), SEED + 3)
    runs = []
    for i in range(b.args.repeat):
        store = b.path("store-scale")
        common.remove_tree(store)
        common.remove_tree(store + "-cache")
        r = b.ingest(src, store, "scale")
        runs.append({"ingest": r.as_dict(), "store_bytes": common.tree_size(store)[0]})
        log(f"scale[{i}] {n} files: {r.result['total_s']:.1f} s {_phases(r.result)}, peak RSS {fmt_bytes(r.peak_rss_bytes)}")
        common.remove_tree(store)
        common.remove_tree(store + "-cache")
    s = {"files": n, "bytes": info["bytes"],
         "total_s": summary(r["ingest"]["result"]["total_s"] for r in runs),
         "files_per_s": summary(n / r["ingest"]["result"]["total_s"] for r in runs),
         "peak_rss": summary(r["ingest"]["peak_rss_bytes"] for r in runs),
         "rss_per_file": summary(r["ingest"]["peak_rss_bytes"] / n for r in runs),
         "phases_s": {k: summary(r["ingest"]["result"]["phases_s"][k] for r in runs)
                      for k in runs[0]["ingest"]["result"]["phases_s"]}}
    b.doc["parts"]["scale"] = {"runs": runs, "summary": s}
    ph = s["phases_s"]
    b.rows += [
        Row("scale", f"data: {n} files of {SCALE_SIZES[0]}-{SCALE_SIZES[1]} B in {SCALE_FOLDERS} folders", fmt_bytes(info["bytes"])),
        Row("scale", "create+add+upload+finalize s", fmt_summary(s["total_s"], lambda v: f"{v:.1f}")),
        Row("scale", "phases s (add / upload / finalize)",
            " / ".join(f"{ph[k]['median']:.1f}" for k in ("add_files", "upload", "finalize"))),
        Row("scale", "files/s", fmt_summary(s["files_per_s"], lambda v: f"{v:.0f}")),
        Row("scale", "peak RSS", fmt_summary(s["peak_rss"], fmt_bytes), "< 1 GiB", s["peak_rss"]["max"] < TARGET_RSS),
        Row("scale", "peak RSS / files (interpreter included)", fmt_summary(s["rss_per_file"], lambda v: f"{v:.0f} B")),
    ]


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="JSON results (default bench/results/ingest-<stamp>.json)")
    p.add_argument("--work", default=None, help="work folder for data, stores and copies (default: a new /tmp folder, "
                   "removed at the end); generated data in a given folder is kept and reused")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts out of {','.join(PARTS)}")
    p.add_argument("--files", type=int, default=None, help="files in the scale part (default 1,000,000; 20,000 with --quick)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each timed step (median/min/max are reported)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    a = p.parse_args(argv)
    common.parse_parts(p, a, PARTS)
    a.out = a.out or common.default_out("ingest")
    return a


def main(argv: list[str] | None = None) -> int:
    if common.step_main(STEPS, argv):
        return 0
    args = parse_args(argv)
    b = Bench(args)
    log(f"work dir {b.work}; results -> {args.out}")
    run = {"a": lambda: part_tree(b, "A", b.sizes["A"], SEED), "b": lambda: part_tree(b, "B", b.sizes["B"], SEED + 2),
           "delta": lambda: part_delta(b), "insert": lambda: part_insert(b), "scale": lambda: part_scale(b)}
    try:
        for part in PARTS:
            if part in args.parts:
                t0 = time.perf_counter()
                run[part]()
                b.doc["parts"].setdefault(KEYS[part], {})["seconds"] = time.perf_counter() - t0
                b.save()  # a later failure keeps what was measured so far
    finally:
        b.doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        b.save()
        if b.own_work and not args.keep:
            common.remove_tree(b.work)
    dropped = "yes" if b.dropped else "NO (not root?): timed steps may read from the page cache"
    print(f"\nmountfs ingest benchmark ({'quick' if args.quick else 'full'}, {args.repeat} run(s) per step; "
          f"{b.doc['machine']['nproc']} cores, kernel {b.doc['machine']['kernel']}, python {b.doc['machine']['python']})")
    print(f"page cache dropped before each timed step: {dropped}; MB = 10^6 bytes; "
          f"ingest and get_local_copy MB/s use the time of the SDK calls in a fresh process")
    common.print_table(b.rows)
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
