#!/usr/bin/env python3
"""Write benchmark: a writable copy (``mountfs mount --writable``) against the same work on local disk.

Parts (``--only``):

- ``seq``: ``--size-seq`` bytes (default 1 GiB) written in 1 MiB ``os.write``
  calls, then ``fsync``, into a new file of the writable mount and into a
  folder on the filesystem that holds the mount's upper layer.  Target: the
  mount >= 0.5x the local MB/s.
- ``rand``: a ``--size-rand`` file (default 256 MiB) created first in each
  place (untimed), then ``--ops`` seeded 4 KiB ``os.pwrite`` calls at 4 KiB
  aligned offsets (the same offsets in both places) and one ``fsync``.
  Target: >= 0.3x the local writes/s.
- ``cp``: ``cp -r`` of data set A (``ingest.py``'s: 10,000 files of 80-120
  KiB in 100 folders, same seed) into the mount and into the local folder;
  reported, no target.
- ``close``: A as a version (SDK ingest, untimed), a writable child of it,
  1% of A's files rewritten in the mount (same sizes, new random bytes), then
  ``mountfs close --no-remount``: bytes the store folder grew by, as % of A's
  bytes (target <= 2%), and its seconds against ``Dataset.create(parent)`` +
  ``add_files`` (a folder holding only the rewritten files, at their paths) +
  ``upload`` + ``finalize`` of the same change on a copy of the store taken
  before the close (``ingest_steps.py``'s ``ingest`` step, in a fresh
  interpreter).  The read-only ``mountfs mount`` of the new version, which a
  plain ``mountfs close DIR`` adds, is timed after it and checked against the
  rewritten files.
- ``floor``: what bounds ``seq`` and ``rand`` in any pyfuse3 filesystem here:
  the same two write loops against a pyfuse3 filesystem whose ``write``
  only counts the request (no disk, no index), with and without the kernel's
  writeback cache; requests and their sizes as the filesystem saw them.

The store is a folder (``MOUNTFS_STORE``); cache, upper layers and daemon
runtime files are in the work dir, next to the local baseline folder, so both
sides write to the same filesystem (checked, and recorded in the JSON).
Before every timed step the page cache is flushed and dropped (root only).
On this VM memory the host got back is slow on first touch (../shared/FUSE-NOTES.md):
the same 1 GiB of 1 MiB ``pwrite`` into new page-cache pages took 2.4 s in one
pass and 0.36 s in the next, so ``seq`` is bimodal on either side; the two
sides swap order in every other repeat, use ``--repeat 3`` or more.
Usage: ``python bench/write.py [--quick] [--only seq,rand,cp,close] ...``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ingest_steps  # noqa: E402
from harness import options  # noqa: E402
from harness.data import GIB, KIB, MIB, check_copy, remove_tree, sizes, tree_files, tree_size  # noqa: E402
from harness.machine import code_state  # noqa: E402
from harness.mounts import Mount, Mounts  # noqa: E402
from harness.procs import alive, cpu_shares, machine_busy, own_cpu_s, proc_cpu_s  # noqa: E402
from harness.profile import PhaseProfiler  # noqa: E402
from harness.report import Row, fmt_bytes, fmt_summary, mb, print_table, stamp, summary  # noqa: E402
from harness.run import BenchRun  # noqa: E402
from harness.steps import clean_env, run_measured, run_step  # noqa: E402
from mountfs.daemon.mounts import RuntimeFiles, mounted_fuse  # noqa: E402

SEED = 1234  # A's seed in ingest.py: a --work folder serves both benches
SEEDS = {"A": SEED, "seq": SEED + 10, "rand": SEED + 11, "edit": SEED + 12}
PARTS = ("seq", "rand", "cp", "close", "floor")
SEQ_BLOCK, RAND_BLOCK = 1 * MIB, 4 * KIB
EDIT_FRACTION = 0.01
TARGET_SEQ, TARGET_RAND, TARGET_CLOSE_PCT = 0.5, 0.3, 2.0
#: full sizes, and --quick's
FULL = {"size_seq": 1 * GIB, "size_rand": 256 * MIB, "ops": 20_000}
QUICK = {"size_seq": 32 * MIB, "size_rand": 16 * MIB, "ops": 1_000}


def parse_size(text: str) -> int:
    """``1G``, ``256M``, ``64K`` (binary units) or plain bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 1G, 256M, 4096)")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]


class WritableMount(Mount):
    """``mountfs mount --writable VERSION DIR``: a new draft child of the version, mounted read-write."""

    draft = ""

    def start(self) -> "WritableMount":
        os.makedirs(self.mnt, exist_ok=True)
        self.m.live[self.name] = self
        info = RuntimeFiles(self.m.run_dir, os.path.realpath(self.mnt)).info
        t0 = time.perf_counter()
        self.m.cli("mount", "--writable", self.id, self.mnt, cache=self.cache)
        self.mount_s = time.perf_counter() - t0
        with open(info) as fh:
            d = json.load(fh)
        self.pid, self.draft = d["pid"], d["dataset"]
        self.m.record({"name": self.name, "pid": self.pid, "draft": self.draft, "at": time.time(), "code": code_state()})
        self.m.log(f"mounted a writable child of {self.id} (draft {self.draft}) at {self.mnt} "
                   f"in {self.mount_s:.2f} s, daemon pid {self.pid}")
        return self

    def close_copy(self) -> tuple[float, str]:
        """``mountfs close --no-remount DIR``, timed as a user sees it (CLI start included); its stdout."""
        t0 = time.perf_counter()
        out = self.m.cli("close", "--no-remount", self.mnt, cache=self.cache, timeout=3600)
        wall = time.perf_counter() - t0
        self.m.live.pop(self.name, None)
        deadline = time.monotonic() + 30
        while self.pid and alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.pid and alive(self.pid) or mounted_fuse(self.mnt):
            self.m.live[self.name] = self  # the finally's stop() gets it
            raise RuntimeError(f"the daemon of {self.mnt} (pid {self.pid}) is still there after close")
        return wall, out


class Bench(BenchRun):
    """The store, cache and run dir in the work dir, the local baseline folder, and the mounts."""

    def __init__(self, args: argparse.Namespace):
        dflt = QUICK if args.quick else FULL
        for k, v in dflt.items():
            if getattr(args, k) is None:
                setattr(args, k, v)
        super().__init__(args, "write", seed=SEED, sizes={k: getattr(args, k) for k in FULL}, data={}, parts={},
                         layout={})
        self.sizes = sizes(args.quick)
        self.store, self.cache, self.run_dir = self.path("store"), self.path("cache"), self.path("run")
        self.local = self.path("local")
        self.mounts = Mounts(lambda _c: self.env(self.store, self.cache), self.path("mnt"), self.run_dir,
                             PhaseProfiler(None), self._record_mount, self.log)
        self.scratch: WritableMount | None = None
        self.base_id = ""

    def _record_mount(self, entry: dict[str, Any]) -> None:
        self.doc.setdefault("mounts", []).append(entry)

    def env(self, store: str, cache: str) -> dict[str, str]:
        # MOUNTFS_CONFIG is /dev/null (no settings): a user's config must not change the numbers
        return clean_env(MOUNTFS_STORE=store, MOUNTFS_CACHE_DIR=cache, MOUNTFS_RUN_DIR=self.run_dir,
                         MOUNTFS_CONFIG=os.devnull)

    def cold(self) -> None:
        if self.args.no_drop:
            os.sync()
            self.dropped = False
            return
        super().cold()

    def scratch_mount(self) -> WritableMount:
        """One writable copy of a one-file version for seq, rand and cp (their files never reach a version)."""
        if self.scratch is None:
            src = self.path("scratch-src")
            os.makedirs(src, exist_ok=True)
            with open(os.path.join(src, "README"), "w") as fh:
                fh.write("scratch version of bench/write.py\n")
            r = run_step(ingest_steps.MODULE, "ingest", {"src": src, "name": "scratch"}, self.env(self.store, self.cache))
            self.scratch = WritableMount(self.mounts, "scratch", r.result["id"]).start()
            os.makedirs(self.local, exist_ok=True)
            upper = os.path.join(self.cache, "upper", self.scratch.draft)
            same = os.stat(upper).st_dev == os.stat(self.local).st_dev
            self.doc["layout"] = {"upper": upper, "local": self.local, "same_filesystem": same}
            if not same:
                raise RuntimeError(f"{upper} and {self.local} are on different filesystems")
        return self.scratch

    def targets(self, i: int) -> list[tuple[str, str]]:
        """(side, folder) of both sides in repeat ``i``: local first in even repeats, the mount first in odd
        ones, as the side that runs first after a page-cache drop may pay for fresh memory (module docstring)."""
        sides = [("local", self.local), ("mount", self.scratch_mount().mnt)]
        return sides if i % 2 == 0 else sides[::-1]

    def cleanup(self) -> None:
        """Every mount stopped; stores, caches, copies and daemon logs removed (unless ``--keep``)."""
        self.mounts.stop_all()
        if self.args.keep:
            return
        for d in ("store", "store-sdk", "cache", "cache-sdk", "local", "edits", "mnt", "scratch-src", "run"):
            remove_tree(self.path(d))


@contextmanager
def cpu_phase(pid: int | None) -> Iterator[dict[str, Any]]:
    """CPU seconds of the daemon ``pid`` (if any) and of this process with its children during the block,
    and ``other_cpu_pct``: the machine's share used by anything else (the noise indicator)."""
    out: dict[str, Any] = {}
    m0, own0, d0 = machine_busy(), own_cpu_s(), proc_cpu_s(pid)
    yield out
    daemon, own = proc_cpu_s(pid) - d0, own_cpu_s() - own0
    out.update({"daemon_cpu_s": daemon, "bench_cpu_s": own, **cpu_shares(m0, machine_busy(), own + daemon)})


def side_pid(b: "Bench", side: str) -> int | None:
    return b.scratch.pid if side == "mount" and b.scratch is not None else None


def ratio_row(part: str, what: str, s: dict[str, float], target: float | None) -> Row:
    if target is None:
        return Row(part, what, fmt_summary(s, lambda v: f"{v:.2f}"))
    return Row(part, what, fmt_summary(s, lambda v: f"{v:.2f}"), f">= {target}x", s["median"] >= target)


# ---------------------------------------------------------------- seq: 1 MiB writes + fsync


def write_seq(path: str, size: int, seed: int) -> dict[str, float]:
    """``size`` bytes in 1 MiB ``os.write`` calls, then ``fsync``: open to close timed, fsync apart."""
    pool = memoryview(random.Random(seed).randbytes(16 * SEQ_BLOCK))
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        pos = 0
        while pos < size:
            at = pos % len(pool)
            piece = pool[at:at + min(SEQ_BLOCK, size - pos)]
            while piece:
                n = os.write(fd, piece)
                piece, pos = piece[n:], pos + n
        t1 = time.perf_counter()
        os.fsync(fd)
        t2 = time.perf_counter()
    finally:
        os.close(fd)
    t3 = time.perf_counter()
    return {"write_s": t1 - t0, "fsync_s": t2 - t1, "total_s": t3 - t0}


def part_seq(b: Bench) -> None:
    size = b.args.size_seq
    runs: list[dict[str, Any]] = []
    for i in range(b.args.repeat):
        run: dict[str, Any] = {}
        for side, folder in b.targets(i):
            path = os.path.join(folder, "seq.bin")
            b.cold()
            with cpu_phase(side_pid(b, side)) as cpu:
                run[side] = write_seq(path, size, SEEDS["seq"] + i)
            run[side]["cpu"] = cpu
            if os.path.getsize(path) != size:
                raise RuntimeError(f"seq: {path} has {os.path.getsize(path)} B, expected {size}")
            os.unlink(path)
            b.log(f"seq[{i}] {side}: {run[side]['total_s']:.2f} s (fsync {run[side]['fsync_s']:.2f} s)")
        runs.append(run)
    rate = {side: [mb(size) / r[side]["total_s"] for r in runs] for side in ("local", "mount")}
    s = {"bytes": size, "write_bytes": SEQ_BLOCK, "local_MBps": summary(rate["local"]),
         "mount_MBps": summary(rate["mount"]),
         "ratio": summary(m / loc for m, loc in zip(rate["mount"], rate["local"])),
         "mount_fsync_s": summary(r["mount"]["fsync_s"] for r in runs),
         "local_fsync_s": summary(r["local"]["fsync_s"] for r in runs),
         "daemon_cpu_s": summary(r["mount"]["cpu"]["daemon_cpu_s"] for r in runs)}
    b.doc["parts"]["seq"] = {"runs": runs, "summary": s}

    def f1(v: float) -> str:
        return f"{v:.1f}"

    b.rows += [
        Row("seq", f"{fmt_bytes(size)} in 1 MiB writes + fsync", ""),
        Row("seq", "local disk MB/s (baseline)", fmt_summary(s["local_MBps"], f1)),
        Row("seq", "writable mount MB/s", fmt_summary(s["mount_MBps"], f1)),
        Row("seq", "fsync s (local / mount)",
            f"{s['local_fsync_s']['median']:.2f} / {s['mount_fsync_s']['median']:.2f}"),
        Row("seq", "daemon CPU s", fmt_summary(s["daemon_cpu_s"], lambda v: f"{v:.2f}")),
        ratio_row("seq", "mount / local", s["ratio"], TARGET_SEQ),
    ]


# ---------------------------------------------------------------- rand: 4 KiB pwrite + fsync


def write_rand(path: str, size: int, ops: int, seed: int, verify: bool = True) -> dict[str, Any]:
    """``ops`` 4 KiB ``os.pwrite`` at seeded aligned offsets of an existing file, then ``fsync``; with
    ``verify`` a few blocks read back afterwards (untimed)."""
    rng = random.Random(seed)
    offsets = [rng.randrange(size // RAND_BLOCK) * RAND_BLOCK for _ in range(ops)]
    pool = memoryview(rng.randbytes(256 * RAND_BLOCK))
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY)
    try:
        for j, off in enumerate(offsets):
            at = (j % 256) * RAND_BLOCK
            if os.pwrite(fd, pool[at:at + RAND_BLOCK], off) != RAND_BLOCK:
                raise RuntimeError(f"rand: short pwrite at {off} in {path}")
        t1 = time.perf_counter()
        os.fsync(fd)
        t2 = time.perf_counter()
    finally:
        os.close(fd)
    t3 = time.perf_counter()
    last = {off: j for j, off in enumerate(offsets)}
    if not verify:
        return {"write_s": t1 - t0, "fsync_s": t2 - t1, "total_s": t3 - t0, "distinct_blocks": len(last)}
    with open(path, "rb") as fh:
        for off in random.Random(seed + 1).sample(sorted(last), min(20, len(last))):
            at = (last[off] % 256) * RAND_BLOCK
            fh.seek(off)
            if fh.read(RAND_BLOCK) != pool[at:at + RAND_BLOCK]:
                raise RuntimeError(f"rand: {path} at {off} does not hold the last block written there")
    return {"write_s": t1 - t0, "fsync_s": t2 - t1, "total_s": t3 - t0, "distinct_blocks": len(last)}


def part_rand(b: Bench) -> None:
    size, ops = b.args.size_rand, b.args.ops
    runs: list[dict[str, Any]] = []
    for i in range(b.args.repeat):
        run: dict[str, Any] = {}
        for side, folder in b.targets(i):
            path = os.path.join(folder, "rand.bin")
            create = write_seq(path, size, SEEDS["rand"] + 100 + i)
            b.cold()
            with cpu_phase(side_pid(b, side)) as cpu:
                run[side] = {**write_rand(path, size, ops, SEEDS["rand"] + i), "create_s": create["total_s"]}
            run[side]["cpu"] = cpu
            os.unlink(path)
            b.log(f"rand[{i}] {side}: {ops} writes {run[side]['total_s']:.2f} s "
                  f"(fsync {run[side]['fsync_s']:.2f} s; create {create['total_s']:.2f} s)")
        runs.append(run)
    rate = {side: [ops / r[side]["total_s"] for r in runs] for side in ("local", "mount")}
    s = {"file_bytes": size, "ops": ops, "write_bytes": RAND_BLOCK,
         "local_ops_per_s": summary(rate["local"]), "mount_ops_per_s": summary(rate["mount"]),
         "ratio": summary(m / loc for m, loc in zip(rate["mount"], rate["local"])),
         "mount_us_per_write": summary(1e6 * r["mount"]["write_s"] / ops for r in runs),
         "local_us_per_write": summary(1e6 * r["local"]["write_s"] / ops for r in runs),
         "mount_fsync_s": summary(r["mount"]["fsync_s"] for r in runs),
         "local_fsync_s": summary(r["local"]["fsync_s"] for r in runs),
         "daemon_cpu_us_per_write": summary(1e6 * r["mount"]["cpu"]["daemon_cpu_s"] / ops for r in runs)}
    b.doc["parts"]["rand"] = {"runs": runs, "summary": s}

    def f0(v: float) -> str:
        return f"{v:.0f}"

    b.rows += [
        Row("rand", f"{ops} x 4 KiB pwrite in a {fmt_bytes(size)} file + fsync", ""),
        Row("rand", "local disk writes/s (baseline)", fmt_summary(s["local_ops_per_s"], f0)),
        Row("rand", "writable mount writes/s", fmt_summary(s["mount_ops_per_s"], f0)),
        Row("rand", "us per pwrite, before fsync (local / mount)",
            f"{s['local_us_per_write']['median']:.1f} / {s['mount_us_per_write']['median']:.1f}"),
        Row("rand", "daemon CPU us per write", fmt_summary(s["daemon_cpu_us_per_write"], lambda v: f"{v:.1f}")),
        Row("rand", "fsync s (local / mount)",
            f"{s['local_fsync_s']['median']:.2f} / {s['mount_fsync_s']['median']:.2f}"),
        ratio_row("rand", "mount / local", s["ratio"], TARGET_RAND),
    ]


# ---------------------------------------------------------------- cp: cp -r of A


def part_cp(b: Bench) -> None:
    info = b.gen("A", b.sizes.A, SEEDS["A"])
    src, nbytes, nfiles = info["path"], info["bytes"], info["files"]
    runs: list[dict[str, Any]] = []
    for i in range(b.args.repeat):
        run: dict[str, Any] = {}
        for side, folder in b.targets(i):
            dst = os.path.join(folder, "A")
            b.cold()
            with cpu_phase(side_pid(b, side)) as cpu:
                cp = run_measured(["cp", "-r", src, dst])
            t0 = time.perf_counter()
            os.sync()
            run[side] = {**cp.as_dict(), "sync_s": time.perf_counter() - t0, "cpu": cpu}
            check_copy(src, dst, nbytes, nfiles, f"cp: {side} copy", SEED + i)
            t0 = time.perf_counter()
            shutil.rmtree(dst)
            run[side]["rm_s"] = time.perf_counter() - t0
            b.log(f"cp[{i}] {side}: {cp.wall_s:.2f} s (+ sync {run[side]['sync_s']:.2f} s; rm -r {run[side]['rm_s']:.2f} s)")
        runs.append(run)
    rate = {side: [mb(nbytes) / r[side]["wall_s"] for r in runs] for side in ("local", "mount")}
    rate_s = {side: [mb(nbytes) / (r[side]["wall_s"] + r[side]["sync_s"]) for r in runs] for side in ("local", "mount")}
    s = {"bytes": nbytes, "files": nfiles,
         "local_MBps": summary(rate["local"]), "mount_MBps": summary(rate["mount"]),
         "local_sync_MBps": summary(rate_s["local"]), "mount_sync_MBps": summary(rate_s["mount"]),
         "ratio": summary(m / loc for m, loc in zip(rate["mount"], rate["local"])),
         "ratio_with_sync": summary(m / loc for m, loc in zip(rate_s["mount"], rate_s["local"])),
         "mount_files_per_s": summary(nfiles / r["mount"]["wall_s"] for r in runs),
         "daemon_cpu_us_per_file": summary(1e6 * r["mount"]["cpu"]["daemon_cpu_s"] / nfiles for r in runs)}
    b.doc["parts"]["cp"] = {"runs": runs, "summary": s}

    def f1(v: float) -> str:
        return f"{v:.1f}"

    b.rows += [
        Row("cp", f"cp -r of A: {nfiles} files, {fmt_bytes(nbytes)}", ""),
        Row("cp", "local disk MB/s (+ sync) (baseline)",
            f"{fmt_summary(s['local_MBps'], f1)} ({fmt_summary(s['local_sync_MBps'], f1)})"),
        Row("cp", "writable mount MB/s (+ sync)",
            f"{fmt_summary(s['mount_MBps'], f1)} ({fmt_summary(s['mount_sync_MBps'], f1)})"),
        Row("cp", "writable mount files/s", fmt_summary(s["mount_files_per_s"], lambda v: f"{v:.0f}")),
        Row("cp", "daemon CPU us per file", fmt_summary(s["daemon_cpu_us_per_file"], lambda v: f"{v:.0f}")),
        ratio_row("cp", "mount / local", s["ratio"], None),
        ratio_row("cp", "mount / local, both + sync", s["ratio_with_sync"], None),
    ]


# ---------------------------------------------------------------- close: 1% of A edited, close vs the SDK


def edit_files(b: Bench, src: str, mnt: str, edits: str, seed: int) -> tuple[list[str], int, float]:
    """1% of A's files rewritten in the mount with new random bytes of the same size (``open(..., "wb")``),
    the same bytes in ``edits`` at the same paths; (paths, bytes, seconds spent in the mount)."""
    files = tree_files(src)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(files, max(1, round(len(files) * EDIT_FRACTION))))
    remove_tree(edits)
    spent, total = 0.0, 0
    for rel in chosen:
        data = rng.randbytes(os.path.getsize(os.path.join(src, rel)))
        total += len(data)
        os.makedirs(os.path.dirname(os.path.join(edits, rel)), exist_ok=True)
        with open(os.path.join(edits, rel), "wb") as fh:
            fh.write(data)
        t0 = time.perf_counter()
        with open(os.path.join(mnt, rel), "wb") as fh:
            fh.write(data)
        spent += time.perf_counter() - t0
    return chosen, total, spent


def close_run(b: Bench, i: int, src: str, sdk_store: str) -> dict[str, Any]:
    w = WritableMount(b.mounts, f"A{i}", b.base_id).start()
    chosen, edited, edit_s = edit_files(b, src, w.mnt, b.path("edits"), SEEDS["edit"] + i)
    diff = json.loads(b.mounts.cli("diff", "--json", w.mnt))
    b.log(f"close[{i}] {len(chosen)} files rewritten in the mount ({fmt_bytes(edited)}) in {edit_s:.2f} s; "
          f"diff: {len(diff['modified'])} modified, {len(diff['added'])} added, {len(diff['removed'])} removed")
    before = tree_size(b.store)[0]
    b.cold()
    # the daemon exits at the end of the close: its CPU is not in ``cpu`` (other_cpu_pct counts it)
    with cpu_phase(None) as close_cpu:
        close_s, out = w.close_copy()
    growth = tree_size(b.store)[0] - before
    b.log(f"close[{i}] {close_s:.2f} s, store +{fmt_bytes(growth)}: {out.strip()}")

    ro = Mount(b.mounts, f"A{i}-ro", w.draft).start()
    try:
        for rel in chosen[:5]:
            if subprocess.run(["cmp", "-s", os.path.join(b.path("edits"), rel), os.path.join(ro.mnt, rel)]).returncode:
                raise RuntimeError(f"close: {rel} in the new version differs from what was written")
        kept = next(rel for rel in tree_files(src) if rel not in set(chosen))
        if subprocess.run(["cmp", "-s", os.path.join(src, kept), os.path.join(ro.mnt, kept)]).returncode:
            raise RuntimeError(f"close: unchanged {kept} differs in the new version")
    finally:
        ro.stop()

    sdk_before = tree_size(sdk_store)[0]
    b.cold()
    with cpu_phase(None) as sdk_cpu:
        sdk = run_step(ingest_steps.MODULE, "ingest", {"src": b.path("edits"), "name": "A", "parents": [b.base_id]},
                       b.env(sdk_store, b.path("cache-sdk")))
    sdk_growth = tree_size(sdk_store)[0] - sdk_before
    b.log(f"close[{i}] SDK child: {sdk.result['total_s']:.2f} s (process {sdk.wall_s:.2f} s), "
          f"store +{fmt_bytes(sdk_growth)}, changes {sdk.result['changes']}")
    remove_tree(b.path("edits"))
    return {"draft": w.draft, "files_edited": len(chosen), "bytes_edited": edited, "edit_s": edit_s,
            "diff": {k: len(v) for k, v in diff.items()}, "close_s": close_s, "close_out": out.strip(), "close_cpu": close_cpu, "sdk_cpu": sdk_cpu,
            "store_growth_bytes": growth, "remount_s": ro.mount_s,
            "sdk": sdk.as_dict(), "sdk_store_growth_bytes": sdk_growth}


def part_close(b: Bench) -> None:
    info = b.gen("A", b.sizes.A, SEEDS["A"])
    src, nbytes = info["path"], info["bytes"]
    base = run_step(ingest_steps.MODULE, "ingest", {"src": src, "name": "A"}, b.env(b.store, b.cache))
    b.base_id = base.result["id"]
    b.log(f"close: A ingested as {b.base_id} in {base.result['total_s']:.1f} s (untimed setup)")
    sdk_store = b.path("store-sdk")
    remove_tree(sdk_store)
    shutil.copytree(b.store, sdk_store)  # the same base version, for the SDK's child
    runs = [close_run(b, i, src, sdk_store) for i in range(b.args.repeat)]
    pct = [100.0 * r["store_growth_bytes"] / nbytes for r in runs]
    s: dict[str, Any] = {
        "dataset_bytes": nbytes, "files_edited": runs[0]["files_edited"],
        "bytes_edited": summary(r["bytes_edited"] for r in runs),
        "upload": {"close_growth_bytes": summary(r["store_growth_bytes"] for r in runs),
                   "close_growth_pct": summary(pct),
                   "sdk_growth_bytes": summary(r["sdk_store_growth_bytes"] for r in runs)},
        "time": {"close_s": summary(r["close_s"] for r in runs),
                 "sdk_s": summary(r["sdk"]["result"]["total_s"] for r in runs),
                 "sdk_process_s": summary(r["sdk"]["wall_s"] for r in runs),
                 "sdk_over_close": summary(r["sdk"]["result"]["total_s"] / r["close_s"] for r in runs),
                 "remount_s": summary(r["remount_s"] for r in runs),
                 "edit_s": summary(r["edit_s"] for r in runs)},
        "modified": {"diff": [r["diff"]["modified"] for r in runs],
                     "sdk": [r["sdk"]["result"]["changes"]["modified"] for r in runs]},
    }
    b.doc["parts"]["close"] = {"base": base.as_dict(), "runs": runs, "summary": s}
    n, up, tm = s["files_edited"], s["upload"], s["time"]
    mods_ok = all(m == n for m in s["modified"]["diff"] + s["modified"]["sdk"])

    def f2(v: float) -> str:
        return f"{v:.2f}"

    b.rows += [
        Row("close", f"A ({fmt_bytes(nbytes)}): files rewritten in the mount "
                     f"({fmt_bytes(s['bytes_edited']['median'])}, {100 * s['bytes_edited']['median'] / nbytes:.2f}%)",
            str(n)),
        Row("close", "modified per `mountfs diff` / the SDK child",
            f"{','.join(map(str, s['modified']['diff']))} / {','.join(map(str, s['modified']['sdk']))}",
            f"== {n}", mods_ok),
        Row("close", "store growth by close", fmt_summary(up["close_growth_bytes"], fmt_bytes)),
        Row("close", "store growth by close, % of A", fmt_summary(up["close_growth_pct"], lambda v: f"{v:.2f}%"),
            f"<= {TARGET_CLOSE_PCT}%", up["close_growth_pct"]["median"] <= TARGET_CLOSE_PCT),
        Row("close", "store growth by the SDK child (same change)", fmt_summary(up["sdk_growth_bytes"], fmt_bytes)),
        Row("close", "`mountfs close --no-remount` s (CLI process)", fmt_summary(tm["close_s"], f2)),
        Row("close", "SDK create+add_files+upload+finalize s (process)",
            f"{fmt_summary(tm['sdk_s'], f2)} ({fmt_summary(tm['sdk_process_s'], f2)})"),
        Row("close", "SDK s / close s (> 1: close is faster)", fmt_summary(tm["sdk_over_close"], f2)),
        Row("close", "read-only `mountfs mount` of the new version s", fmt_summary(tm["remount_s"], f2)),
        Row("close", "rewriting the files in the mount s", fmt_summary(tm["edit_s"], f2)),
    ]


# ---------------------------------------------------------------- floor: a pyfuse3 filesystem that does nothing

#: one regular file ``f``; ``write`` counts requests by size and answers at once; ``fsync`` writes the counts
NULL_FS = r"""
import collections, errno, json, stat, sys
import pyfuse3, trio
MNT, STATS, WB = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
class Null(pyfuse3.Operations):
    enable_writeback_cache = WB
    def __init__(self):
        super().__init__(); self.size = 0; self.sizes = collections.Counter()
    def _attr(self, ino):
        e = pyfuse3.EntryAttributes(); e.st_ino = ino; e.entry_timeout = e.attr_timeout = 5.0; e.st_blksize = 1 << 16
        if ino == pyfuse3.ROOT_INODE:
            e.st_mode, e.st_nlink = stat.S_IFDIR | 0o755, 2
        else:
            e.st_mode, e.st_nlink, e.st_size = stat.S_IFREG | 0o644, 1, self.size
        return e
    async def lookup(self, parent, name, ctx=None):
        if parent == pyfuse3.ROOT_INODE and name == b"f":
            return self._attr(pyfuse3.ROOT_INODE + 1)
        raise pyfuse3.FUSEError(errno.ENOENT)
    async def getattr(self, ino, ctx=None):
        return self._attr(ino)
    async def setattr(self, ino, attr, fields, fh, ctx):
        if fields.update_size:
            self.size = attr.st_size
        return self._attr(ino)
    async def open(self, ino, flags, ctx):
        fi = pyfuse3.FileInfo(fh=1); fi.keep_cache = True; return fi
    async def read(self, fh, off, size):
        return bytes(max(0, min(size, self.size - off)))
    async def write(self, fh, off, buf):
        self.sizes[len(buf)] += 1; self.size = max(self.size, off + len(buf)); return len(buf)
    async def flush(self, fh):
        return None
    async def fsync(self, fh, datasync):
        with open(STATS, "w") as f:
            json.dump({str(k): v for k, v in self.sizes.items()}, f)
    async def release(self, fh):
        return None
pyfuse3.init(Null(), MNT, set(pyfuse3.default_options) | {"fsname=mountfs-bench-null"})
try:
    trio.run(pyfuse3.main)
finally:
    pyfuse3.close(unmount=True)
"""


def mounted_at(path: str) -> bool:
    """Is any filesystem mounted at ``path`` (``mounted_fuse`` knows only mountfs's own)?"""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4].replace("\\040", " ") == real for line in fh)


def null_fs_run(b: Bench, writeback: bool) -> dict[str, Any]:
    mnt, stats = b.path("mnt", "null"), b.path("null-stats.json")
    os.makedirs(mnt, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", NULL_FS, mnt, stats, "1" if writeback else "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not mounted_at(mnt):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the null filesystem did not mount: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}")
            time.sleep(0.02)
        path = os.path.join(mnt, "f")

        def counts() -> dict[str, int]:
            with open(stats) as fh:
                return {k: int(v) for k, v in json.load(fh).items()}

        with cpu_phase(proc.pid) as seq_cpu:
            seq = write_seq(path, b.args.size_seq, SEEDS["seq"])
        seq_req = counts()
        with cpu_phase(proc.pid) as rand_cpu:
            rand = write_rand(path, b.args.size_rand, b.args.ops, SEEDS["rand"], verify=False)
        after = counts()
        rand_req = {k: v - seq_req.get(k, 0) for k, v in after.items() if v - seq_req.get(k, 0)}
        return {"seq": {**seq, "requests": seq_req, "cpu": seq_cpu}, "rand": {**rand, "requests": rand_req, "cpu": rand_cpu}}
    finally:
        if mounted_at(mnt):
            subprocess.run(["fusermount3", "-u", mnt], check=False)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            subprocess.run(["fusermount3", "-uz", mnt], check=False)
        if os.path.exists(stats):
            os.unlink(stats)


def part_floor(b: Bench) -> None:
    size, ops = b.args.size_seq, b.args.ops
    runs = [{"write_through": null_fs_run(b, False), "writeback": null_fs_run(b, True)} for _ in range(b.args.repeat)]
    for r in runs:
        for mode in ("write_through", "writeback"):
            b.log(f"floor {mode}: seq {r[mode]['seq']['total_s']:.2f} s, {sum(r[mode]['seq']['requests'].values())} "
                  f"requests; rand {r[mode]['rand']['total_s']:.2f} s, {sum(r[mode]['rand']['requests'].values())} requests")
    s: dict[str, Any] = {}
    for mode in ("write_through", "writeback"):
        s[mode] = {"seq_MBps": summary(mb(size) / r[mode]["seq"]["total_s"] for r in runs),
                   "seq_requests": summary(sum(r[mode]["seq"]["requests"].values()) for r in runs),
                   "seq_request_sizes": runs[0][mode]["seq"]["requests"],
                   "rand_ops_per_s": summary(ops / r[mode]["rand"]["total_s"] for r in runs),
                   "rand_us_per_write": summary(1e6 * r[mode]["rand"]["write_s"] / ops for r in runs),
                   "rand_fsync_s": summary(r[mode]["rand"]["fsync_s"] for r in runs),
                   "rand_requests": summary(sum(r[mode]["rand"]["requests"].values()) for r in runs)}
    local = b.doc["parts"].get("rand", {}).get("summary", {}).get("local_ops_per_s")
    local_seq = b.doc["parts"].get("seq", {}).get("summary", {}).get("local_MBps")
    b.doc["parts"]["floor"] = {"runs": runs, "summary": s}

    def f0(v: float) -> str:
        return f"{v:.0f}"

    for mode, label in (("write_through", "null pyfuse3 fs"), ("writeback", "null pyfuse3 fs, writeback cache")):
        m = s[mode]
        big = max(m["seq_request_sizes"].items(), key=lambda kv: kv[1], default=("0", 0))
        b.rows += [
            Row("floor", f"{label}: seq MB/s (requests; most of {fmt_bytes(int(big[0]))})",
                f"{fmt_summary(m['seq_MBps'], lambda v: f'{v:.0f}')} ({m['seq_requests']['median']:.0f})"),
            Row("floor", f"{label}: rand writes/s (requests; us per pwrite; fsync s)",
                f"{fmt_summary(m['rand_ops_per_s'], f0)} ({m['rand_requests']['median']:.0f}; "
                f"{m['rand_us_per_write']['median']:.1f}; {m['rand_fsync_s']['median']:.2f})"),
        ]
        if local_seq:
            b.rows.append(Row("floor", f"{label}: seq / local disk (this run)",
                              f"{m['seq_MBps']['median'] / local_seq['median']:.2f}"))
        if local:
            b.rows.append(Row("floor", f"{label}: rand / local disk (this run)",
                              f"{m['rand_ops_per_s']['median'] / local['median']:.2f}"))


# ---------------------------------------------------------------- main


def other_cpu(node: Any) -> list[float]:
    """Every ``other_cpu_pct`` recorded under ``node``."""
    if isinstance(node, dict):
        here = [float(node["other_cpu_pct"])] if "other_cpu_pct" in node else []
        return here + [x for v in node.values() for x in other_cpu(v)]
    if isinstance(node, list):
        return [x for v in node for x in other_cpu(v)]
    return []


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = options.parser("write", __doc__ or "", PARTS, quick="small sizes, for a smoke run",
                       work="work folder (default: a new /tmp folder, removed at the end); generated data in a "
                            "given folder is kept and reused, stores, caches and copies are always removed")
    p.add_argument("--json", dest="out", default=None, help="the same as --out")
    p.add_argument("--size-seq", type=parse_size, default=None, help="bytes of the seq part (default 1G; --quick 32M)")
    p.add_argument("--size-rand", type=parse_size, default=None,
                   help="file size of the rand part (default 256M; --quick 16M)")
    p.add_argument("--ops", type=int, default=None, help="4 KiB writes of the rand part (default 20000; --quick 1000)")
    p.add_argument("--no-drop", action="store_true",
                   help="sync but do not drop the page cache before timed steps (smoke runs next to other work)")
    a = options.parse(p, argv)
    if a.ops is not None and a.ops < 1 or a.size_rand is not None and a.size_rand < RAND_BLOCK:
        p.error("--ops must be >= 1 and --size-rand >= 4K")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM as an exception, so the finally below still unmounts and cleans up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    b = Bench(args)
    b.log(f"work dir {b.work}; results -> {args.out}")
    run: dict[str, Callable[[], None]] = {"seq": lambda: part_seq(b), "rand": lambda: part_rand(b),
                                          "cp": lambda: part_cp(b), "close": lambda: part_close(b),
                                          "floor": lambda: part_floor(b)}
    try:
        for part in PARTS:
            if part in args.parts:
                t0 = time.perf_counter()
                run[part]()
                b.doc["parts"].setdefault(part, {})["seconds"] = time.perf_counter() - t0
                b.save()  # a later failure keeps what was measured so far
    finally:
        b.doc["finished"] = stamp()
        try:
            b.cleanup()
        finally:
            b.close()
    m = b.doc["machine"]
    print(f"\nmountfs write benchmark ({'quick' if args.quick else 'full'}, {args.repeat} run(s) per step; "
          f"{m['nproc']} cores, kernel {m['kernel']}, python {m['python']}; "
          f"disk {m['disk'].get('fstype', '?')} {m['disk'].get('device', '')})")
    drop = "NO (--no-drop)" if args.no_drop else b.dropped_note("timed steps")
    print(f"page cache dropped before each timed step: {drop}; MB = 10^6 bytes; local = a folder on the "
          f"filesystem of the mount's upper layer")
    print_table(b.rows)
    other = other_cpu(b.doc["parts"])
    if other:
        print(f"other CPU on the machine during timed steps (anything but the bench, its children and the daemon): "
              f"median {sorted(other)[len(other) // 2]:.0f}%, max {max(other):.0f}%; above ~20% the figures are noisy")
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
