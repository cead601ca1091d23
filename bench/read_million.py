"""``read.py``'s part ``m``: a version of ``--files`` tiny files (default 1,000,000) mounted with an empty cache.

Times ``mountfs mount`` (it downloads and imports the manifest), the first
``ls`` of the root after it returns, the daemon's memory, ``ls -l`` of one
folder and a ``find`` over everything (``--no-walk`` skips it); then a second
mount with the file table already imported.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from harness.data import remove_tree
from harness.report import fmt_bytes
from read_bench import STEP_TIMEOUT, Bench


def part_million(b: Bench, info: dict[str, Any], dataset_id: str) -> None:
    doc: dict[str, Any] = {"files": info["files"], "folders": info["folders"], "bytes": info["bytes"],
                           "ingest": b.doc["ingest"]["M"]}
    cache = b.path("cache-M")
    remove_tree(cache)  # empty: the mount downloads and imports the manifest
    for attempt in ("first", "again"):
        m = b.mounts.mount(f"M-{attempt}", dataset_id, cache=cache)
        try:
            r: dict[str, Any] = {"mount_s": m.mount_s, "after_mount": m.probe()}
            with b.profiler.phase(m.pid, f"M-{attempt}-ls"):
                t0 = time.perf_counter()
                p = subprocess.run(["ls", m.mnt], capture_output=True, text=True, timeout=STEP_TIMEOUT)
                r["first_ls_s"] = time.perf_counter() - t0
            r["root_entries"] = len(p.stdout.split())
            if p.returncode != 0 or r["root_entries"] != info["folders"]:
                raise RuntimeError(f"ls of the 1M-file root: exit {p.returncode}, {r['root_entries']} entries, "
                                   f"expected {info['folders']}: {p.stderr[-300:]}")
            r["after_ls"] = m.probe()
            b.log(f"M {attempt}: mount {m.mount_s:.2f} s, first ls {r['first_ls_s']:.3f} s, "
                  f"VmHWM {fmt_bytes(r['after_ls']['vm_hwm_bytes'])}, RSS {fmt_bytes(r['after_ls']['vm_rss_bytes'])}")
            if attempt == "first":
                first_dir = sorted(p.stdout.split())[0]
                r["ls_l_one_folder"] = b.shell(f"ls -l {first_dir} > /dev/null", m.mnt)["seconds"]
                if not b.args.no_walk:
                    with b.profiler.phase(m.pid, "M-find"):
                        w = b.cpu_phase(m.pid, lambda: b.find(m.mnt))
                    r["find_all"] = {"seconds": w["seconds"], "count": int(w["out"]), "cpu_s": w["cpu_s"]}
                    r["after_find"] = m.probe()
                    b.log(f"M: find over all {w['out']} files {w['seconds']:.1f} s, "
                          f"VmHWM {fmt_bytes(r['after_find']['vm_hwm_bytes'])}")
            doc[attempt] = r
        finally:
            m.stop()
    remove_tree(cache)
    b.doc["million"] = doc
