"""``read.py``'s S part: small files read in a shuffled order by worker processes, like a DataLoader.

S is 6,000 files of 40-160 KiB in 50 class folders (``--quick``: 600 in 10).
Each pass: ``mountfs cache clear`` (a fresh cache folder), mount, page cache
dropped, then ``workers`` processes (4 and 8) read every file whole in one
seeded random permutation dealt round-robin (``DataLoader(shuffle=True)``'s
shape), each file checked against its xxh3.  Against local disk, same files,
same orders, same run; mountfs also in directory order (8 threads) for
reference.

``--baseline-pythonpath DIR`` also runs every mountfs pass with a daemon
started with ``PYTHONPATH=DIR`` (a copy of the package with the old reader),
labelled ``before``: before and after in one run.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from typing import Any

from harness.data import KIB, TreeSpec
from harness.mounts import Mounts
from harness.report import mb
from read_bench import SEED, Bench, Result

FULL = TreeSpec(6_000, 50, 40 * KIB, 160 * KIB)
QUICK = TreeSpec(600, 10, 40 * KIB, 160 * KIB)
WORKERS = (4, 8)
#: the daemon's counters kept per pass
PATTERN_STATS = ("reads", "read_hits", "chunk_misses", "read_ahead_hits", "read_ahead_from_cache", "fetches",
                 "bytes_fetched", "bytes_read", "fetch_errors", "read_pattern")


def _read_share(args: tuple[str, list[list[Any]], bool]) -> tuple[int, int, list[str]]:
    """One worker process: read its files whole, in order; (bytes, bad files, errors)."""
    import xxhash

    root, files, verify = args
    total = bad = 0
    errors: list[str] = []
    buf = bytearray(1 << 20)
    for rel, size, digest in files:
        h = xxhash.xxh3_64() if verify else None
        n = 0
        try:
            with open(os.path.join(root, rel), "rb", buffering=0) as fh:
                while k := fh.readinto(buf):
                    if h is not None:
                        h.update(memoryview(buf)[:k])
                    n += k
        except OSError as exc:
            errors.append(f"{rel}: {exc}")
        if n != size or (h is not None and h.hexdigest() != digest):
            bad += 1
        total += n
    return total, bad, errors[:5]


def shuffled_read(root: str, files: list[list[Any]], workers: int, seed: int, verify: bool) -> Result:
    """Every file once, in one seeded permutation dealt round-robin to ``workers`` processes."""
    order = list(files)
    random.Random(seed).shuffle(order)
    shares = [(root, order[w::workers], verify) for w in range(workers)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        t0 = time.perf_counter()
        got = pool.map(_read_share, shares)
        dt = time.perf_counter() - t0
    total = sum(g[0] for g in got)
    bad = sum(g[1] for g in got)
    errors = [e for g in got for e in g[2]]
    if bad:
        raise RuntimeError(f"{bad} of {len(files)} files read from {root} are short or wrong: {errors}")
    return {"bytes": total, "files": len(files), "seconds": dt, "MBps": mb(total) / dt, "workers": workers}


def _file_list(info: dict[str, Any]) -> list[list[Any]]:
    import json

    with open(info["list"]) as fh:
        out: list[list[Any]] = json.load(fh)
    return out


def part_shuffled(b: Bench, i: int, info: dict[str, Any], dataset_id: str, res: dict[str, Any]) -> None:
    """Every S pass of repeat ``i`` into ``res``: local disk, then mountfs (``before`` too if asked)."""
    files = _file_list(info)
    seed = SEED + 10 + i
    for w in WORKERS:
        b.cold()
        r = res.setdefault("local", {})[f"shuffled_{w}"] = b.cpu_phase(
            None, lambda: shuffled_read(info["path"], files, w, seed, b.args.verify))
        b.say(i, "local", f"S shuffled, {w} processes, cold", r)
    labels = [("after", None)]
    if b.args.baseline_pythonpath:
        labels.insert(0, ("before", os.path.abspath(b.args.baseline_pythonpath)))
    for label, pythonpath in labels:
        mounts = b.mounts if pythonpath is None else _mounts_with(b, pythonpath)
        out = res.setdefault(label, {})
        passes = [(f"shuffled_{w}", w) for w in WORKERS] + [("dir_order_8", 0)]
        for key, w in passes:
            cache = b.path(f"cache-S-{label}")
            mounts.cli("cache", "clear", cache=cache)
            m = mounts.mount(f"S-{label}", dataset_id, cache=cache)
            try:
                b.cold()
                if w:
                    fn = lambda: shuffled_read(m.mnt, files, w, seed, b.args.verify)  # noqa: E731
                else:
                    fn = lambda: b.read_fs(m.mnt, info, 8)  # noqa: E731
                r = out[key] = b.cpu_phase(m.pid, fn)
                r["daemon"] = _pattern_stats(mounts, m)
                b.say(i, f"mountfs {label}", f"S {key}, cold", r)
                st = r["daemon"]
                b.log(f"[{i}]   fetches {st.get('fetches')}, fetched {mb(st.get('bytes_fetched', 0)):.0f} MB, "
                      f"read_ahead_from_cache {st.get('read_ahead_from_cache')}, pattern {st.get('read_pattern')}")
            finally:
                m.stop()


def _mounts_with(b: Bench, pythonpath: str) -> Mounts:
    """Mounts whose daemons run the package found first on ``pythonpath`` (the code from before)."""
    def env(cache: str | None = None) -> dict[str, str]:
        e = b.env(cache)
        e["PYTHONPATH"] = pythonpath + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
        return e

    return Mounts(env, b.path("mnt"), b.path("run"), b.profiler, b._record_mount, b.log)


def _pattern_stats(mounts: Mounts, m: Any) -> dict[str, Any]:
    import json

    rows = json.loads(mounts.cli("status", "--json", cache=m.cache, timeout=30))
    row: dict[str, Any] = next((r for r in rows if r.get("pid") == m.pid), {})
    return {k: row[k] for k in PATTERN_STATS if k in row}


def print_shuffled(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The S table (first repeat's figures; medians over repeats): MB/s, and the daemon's request counts."""
    import statistics

    runs = [r["S"] for r in doc["runs"] if "S" in r]
    if not runs:
        return []
    rows: list[dict[str, Any]] = []
    keys = [f"shuffled_{w}" for w in WORKERS] + ["dir_order_8"]
    for who in ("local", "before", "after"):
        for key in keys:
            vals = [r[who][key] for r in runs if key in r.get(who, {})]
            if not vals:
                continue
            st = vals[0].get("daemon", {})
            fetched = st.get("bytes_fetched", 0)
            rows.append({"reader": who, "pass": key, "MBps": statistics.median(v["MBps"] for v in vals),
                         "fetches": st.get("fetches"),
                         "req_per_GB": round(st["fetches"] / (fetched / 1e9), 1) if fetched else None,
                         "fetched_MB": round(mb(fetched)) if st else None,
                         "from_cache": st.get("read_ahead_from_cache")})
    local = {r["pass"]: r["MBps"] for r in rows if r["reader"] == "local"}
    print("\nS: 6,000 files of 40-160 KiB in 50 folders, cold (empty mountfs cache, page cache dropped), "
          "read once in a seeded random order by worker processes")
    print(f"{'reader':<8} {'pass':<13} {'MB/s':>8} {'x local':>8} {'fetches':>8} {'req/GB':>7} {'fetched MB':>10} "
          f"{'ra_from_cache':>13}")
    for r in rows:
        ratio = r["MBps"] / local[r["pass"]] if r["pass"] in local and r["reader"] != "local" else None
        print(f"{r['reader']:<8} {r['pass']:<13} {r['MBps']:>8.0f} {'' if ratio is None else f'{ratio:.2f}':>8} "
              f"{'' if r['fetches'] is None else r['fetches']:>8} {'' if r['req_per_GB'] is None else r['req_per_GB']:>7} "
              f"{'' if r['fetched_MB'] is None else r['fetched_MB']:>10} "
              f"{'' if r['from_cache'] is None else r['from_cache']:>13}")
    return rows
