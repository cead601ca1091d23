"""``ingest.py``'s lifecycle parts: ``sync_folder`` of a folder that changed a little, and ``gc`` after deletes.

- ``sync``: a folder of 10,000 files (A; ``--quick``: 1,000) as a first version
  by ``sync_folder`` + upload + finalize, then 1% of its files rewritten (same
  size, new bytes) and a child version by ``sync_folder`` again.  Measured: the
  second ``sync_folder``'s seconds against the least any sync must do, which is
  to stat every file and hash the changed ones (xxh3 of their bytes, read cold);
  target: <= 3x that.
- ``gc``: on SeaweedFS, 100 chained versions of a small folder (``--quick``: 20;
  each adds a few files and removes one), the newest half deleted
  (``Dataset.delete(force=True, gc=False)``), then ``gc.collect(store,
  grace_seconds=0)`` timed: seconds, backend list calls and objects listed,
  packs and bytes freed.  The newest half, because a deleted version's pack is
  freed only when no kept version names it: an older deleted version's files
  live on in its children.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from typing import TYPE_CHECKING, Any

import ingest_steps
from harness.data import KIB, TreeSpec, remove_tree, tree_files, write_random_file
from harness.report import Row, fmt_bytes, fmt_summary, summary
from harness.servers import mountfs_env, start_seaweed, stop_seaweed, write_mountfs_config
from harness.steps import run_step

if TYPE_CHECKING:
    from ingest import Bench

SYNC_FRACTION, TARGET_SYNC_RATIO = 0.01, 3.0
QUICK_SYNC = TreeSpec(1_000, 10, 80 * KIB, 120 * KIB)
GC_VERSIONS, GC_VERSIONS_QUICK, GC_ADD, GC_SIZES = 100, 20, 3, (1 * KIB, 16 * KIB)


def stat_and_hash(root: str, changed: list[str]) -> dict[str, float]:
    """The floor of any sync: ``os.stat`` of every file under ``root`` and xxh3 of the bytes of ``changed``."""
    import xxhash

    t0 = time.perf_counter()
    n = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            os.stat(os.path.join(dirpath, name))
            n += 1
    t1 = time.perf_counter()
    for rel in changed:
        h = xxhash.xxh3_64()
        with open(os.path.join(root, rel), "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    t2 = time.perf_counter()
    return {"stat_s": t1 - t0, "hash_s": t2 - t1, "total_s": t2 - t0, "files": n}


def part_sync(b: "Bench") -> None:
    key, spec = ("sync", QUICK_SYNC) if b.args.quick else ("A", b.sizes.A)
    src = b.gen(key, spec, b.seeds["A"])["path"]
    runs = []
    for i in range(b.args.repeat):
        store, tree = b.fresh_store("sync"), b.path("data-sync-work")
        remove_tree(tree)
        subprocess.run(["cp", "-al", src, tree], check=True)  # hard links: the rewrite below leaves src as it is
        env = b.env(store, store + "-cache")
        base = run_step(ingest_steps.MODULE, "sync_version", {"src": tree, "name": "sync"}, env).result
        files = tree_files(tree)
        rng = random.Random(b.seeds["delta"] + i)
        changed = sorted(rng.sample(files, max(1, round(len(files) * SYNC_FRACTION))))
        for rel in changed:
            p = os.path.join(tree, rel)
            size = os.path.getsize(p)
            os.unlink(p)  # break the link, then the same size with new bytes
            write_random_file(p, size, rng)
        b.cold()
        child = run_step(ingest_steps.MODULE, "sync_version",
                         {"src": tree, "name": "sync", "parent": base["id"]}, env).result
        b.cold()
        floor = stat_and_hash(tree, changed)
        runs.append({"base": base, "child": child, "floor": floor, "changed": len(changed),
                     "ratio": child["sync_s"] / floor["total_s"]})
        b.log(f"sync[{i}] second sync_folder {child['sync_s']:.2f} s (removed/added/modified "
              f"{child['removed']}/{child['added']}/{child['modified']}); stat+hash {floor['total_s']:.2f} s")
        remove_tree(tree)
        b.drop_store(store)
    nchanged = runs[0]["changed"]
    s = {"files": spec.files, "changed": nchanged,
         "first_sync_s": summary(r["base"]["sync_s"] for r in runs),
         "sync_s": summary(r["child"]["sync_s"] for r in runs),
         "sync_upload_s": summary(r["child"]["sync_s"] + r["child"]["upload_s"] for r in runs),
         "floor_s": summary(r["floor"]["total_s"] for r in runs), "ratio": summary(r["ratio"] for r in runs),
         "ratio_with_upload": summary((r["child"]["sync_s"] + r["child"]["upload_s"]) / r["floor"]["total_s"]
                                      for r in runs),
         "detected_modified": [r["child"]["modified"] for r in runs]}
    b.doc["parts"]["sync"] = {"runs": runs, "summary": s}

    def f2(v: float) -> str:
        return f"{v:.2f}"

    def f3(v: float) -> str:
        return f"{v:.3f}"

    b.rows += [
        Row("sync", f"data: {spec.files} files, {nchanged} rewritten (same size)", ""),
        Row("sync", "modified files sync_folder reports", ",".join(map(str, s["detected_modified"])),
            f"== {nchanged}", all(m == nchanged for m in s["detected_modified"])),
        Row("sync", "first sync_folder s", fmt_summary(s["first_sync_s"], f3)),
        Row("sync", "second sync_folder s", fmt_summary(s["sync_s"], f3)),
        Row("sync", "stat every file + xxh3 of the changed s", fmt_summary(s["floor_s"], f3)),
        Row("sync", "second sync_folder / (stat + hash)", fmt_summary(s["ratio"], f2), f"<= {TARGET_SYNC_RATIO:g}x",
            s["ratio"]["median"] <= TARGET_SYNC_RATIO),
        # sync_folder only stats; the changed files' bytes are read (chunked, hashed) by upload()
        Row("sync", "second sync_folder + upload s", fmt_summary(s["sync_upload_s"], f3)),
        Row("sync", "(second sync_folder + upload) / (stat + hash)", fmt_summary(s["ratio_with_upload"], f2)),
    ]


def part_gc(b: "Bench") -> None:
    versions = GC_VERSIONS_QUICK if b.args.quick else GC_VERSIONS
    server = start_seaweed(b.path("seaweedfs"), b.log)
    runs = []
    try:
        config = write_mountfs_config(b.path("mountfs.toml"), server)
        for i in range(b.args.repeat):
            store = server.store_url(server.new_bucket(f"gc{i}"), "ds")
            env = mountfs_env(store, config, b.path(f"gc-cache{i}"), b.path("run"), no_aws_keys=True)
            src = b.path("data-gc")
            remove_tree(src)
            setup = run_step(ingest_steps.MODULE, "gc_versions",
                             {"src": src, "versions": versions, "add": GC_ADD, "min_size": GC_SIZES[0],
                              "max_size": GC_SIZES[1], "seed": b.seeds["A"] + i, "delete_from": versions // 2},
                             env).result
            b.cold()
            r = run_step(ingest_steps.MODULE, "gc", {}, env).result
            runs.append({"versions": len(setup["ids"]), "deleted": len(setup["deleted"]), **r})
            b.log(f"gc[{i}] {r['gc_s']:.2f} s, {r['list_calls']} list calls, {r['objects_listed']} objects listed, "
                  f"{r['packs_freed']} packs ({fmt_bytes(r['bytes_freed'])}) freed, {r['packs_reachable']} kept")
            remove_tree(src)
            remove_tree(b.path(f"gc-cache{i}"))
    finally:
        stop_seaweed(server, b.log)
        remove_tree(b.path("seaweedfs"))
    s: dict[str, Any] = {"versions": versions, "deleted": runs[0]["deleted"],
                         **{k: summary(r[k] for r in runs)
                            for k in ("gc_s", "list_calls", "objects_listed", "packs_freed", "bytes_freed",
                                      "packs_reachable")}}
    b.doc["parts"]["gc"] = {"runs": runs, "summary": s}

    def n0(v: float) -> str:
        return f"{v:.0f}"

    b.rows += [
        Row("gc", f"data: {versions} versions (+{GC_ADD} files, -1 each), newest {s['deleted']} deleted", ""),
        Row("gc", "gc.collect(grace_seconds=0) s", fmt_summary(s["gc_s"], lambda v: f"{v:.2f}")),
        Row("gc", "backend list calls / objects listed",
            f"{fmt_summary(s['list_calls'], n0)} / {fmt_summary(s['objects_listed'], n0)}"),
        Row("gc", "packs freed / kept", f"{fmt_summary(s['packs_freed'], n0)} / {fmt_summary(s['packs_reachable'], n0)}"),
        Row("gc", "bytes freed", fmt_summary(s["bytes_freed"], fmt_bytes)),
    ]
