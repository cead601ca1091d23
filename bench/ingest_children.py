"""``ingest.py``'s child-version parts: how little a store grows when a version changes a little.

- ``delta``: a child of A with 1% of the files rewritten; bytes the store grows
  by, as a % of the dataset's bytes (target <= 2%).
- ``insert``: a child of B with one byte inserted in the middle of one file;
  new chunks written (target <= 3).

Per repeat the base version is ingested (untimed) into a fresh store, then the
child is added from a hard-linked copy of the tree in which only the changed
files were replaced, so the child re-scans the whole tree as a user would.
"""

from __future__ import annotations

import os
import random
import subprocess
from typing import TYPE_CHECKING, Any

from harness.data import MIB, remove_tree, tree_files, tree_size, write_random_file
from harness.report import Row, fmt_bytes, fmt_summary, summary

if TYPE_CHECKING:
    from ingest import Bench

DELTA_FRACTION = 0.01
TARGET_DELTA_PCT, TARGET_INSERT_CHUNKS = 2.0, 3


def _linked_copy(src: str, dst: str) -> None:
    """``dst`` = ``src`` as hard links: same inodes, so only files replaced later differ."""
    remove_tree(dst)
    subprocess.run(["cp", "-al", src, dst], check=True)


def make_delta_tree(src: str, dst: str, seed: int) -> list[str]:
    """A linked copy of ``src`` with 1% of its files replaced by new random content of the same size."""
    files = tree_files(src)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(files, max(1, round(len(files) * DELTA_FRACTION))))
    _linked_copy(src, dst)
    for rel in chosen:
        p = os.path.join(dst, rel)
        size = os.path.getsize(p)
        os.unlink(p)  # break the link: the parent's file must stay as it is
        write_random_file(p, size, rng)
    os.sync()
    return chosen


def make_insert_tree(src: str, dst: str) -> tuple[str, int]:
    """A linked copy of ``src`` whose first file has one byte inserted in its middle."""
    rel = tree_files(src)[0]
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


def child_version(b: "Bench", key: str, base_src: str, child_src: str) -> list[dict[str, Any]]:
    """Per repeat: a fresh store with the base version (untimed setup), then the timed child version."""
    runs = []
    for i in range(b.args.repeat):
        store = b.fresh_store(key)
        base = b.ingest(base_src, store, f"data-{key}", cold=False)
        before = tree_size(store)[0]
        child = b.ingest(child_src, store, f"data-{key}", parents=[base.result["id"]])
        after = tree_size(store)[0]
        r = child.result
        runs.append({
            "base": base.as_dict(), "child": child.as_dict(),
            "store_bytes_before": before, "store_bytes_after": after, "store_growth_bytes": after - before,
            "new_chunks": r["chunks_in_store"] - base.result["chunks_in_store"],
        })
        b.log(f"{key}[{i}] child: {r['total_s']:.2f} s {b.phases(r)}, store +{fmt_bytes(after - before)}, "
              f"{runs[-1]['new_chunks']} new chunks, changes {r['changes']}")
        b.drop_store(store)
    return runs


def part_delta(b: "Bench") -> None:
    src = b.gen("A", b.sizes.A, b.seeds["A"])["path"]
    dst = b.path("data-A-delta")
    chosen = make_delta_tree(src, dst, b.seeds["delta"])
    runs = child_version(b, "delta", src, dst)
    remove_tree(dst)
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


def part_insert(b: "Bench") -> None:
    src = b.gen("B", b.sizes.B, b.seeds["B"])["path"]
    dst = b.path("data-B-insert")
    rel, offset = make_insert_tree(src, dst)
    runs = child_version(b, "insert", src, dst)
    remove_tree(dst)
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
