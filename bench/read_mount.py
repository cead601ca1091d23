"""``read.py`` through the mount: A and B served by ``mountfs mount``, chunks fetched from the S3 store.

Per data set: ``mountfs cache clear``, mount, then (A) ``find`` and ``ls -lR``
cold and warm; the reads cold (``drop_caches`` first), warm (B twice: the first
warm pass over a page also moves it to the kernel's active list), for B the
share of its page cache in large folios, and once more with only the page cache
dropped (the daemon's own cache); the daemon's memory, CPU and counters; unmount.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from harness.report import fmt_bytes
from read_bench import THREADS, Bench, Result
from read_pages import large_folio_share


def mounted(b: Bench, i: int, data: dict[str, Any], ids: dict[str, str], res: dict[str, Any]) -> None:
    """Every mountfs pass of repeat ``i`` into ``res`` (``run["mountfs"]``)."""
    for key, part in (("A", "a"), ("B", "b")):
        if part not in b.args.parts:
            continue
        D = data[key]
        b.mounts.cli("cache", "clear")
        m = b.mounts.mount(key, ids[key])
        res[f"{key}_mount_s"] = {"seconds": m.mount_s}

        def timed(k: str, fn: Callable[[], Result], profile: str | None = None) -> Result:
            """One pass into ``res[k]``, profiled as ``<i>-<profile>`` (default ``<i>-<key>-<k>``)."""
            with b.profiler.phase(m.pid, f"{i}-{profile or f'{key}-{k}'}"):
                r = res[k] = b.cpu_phase(m.pid, fn)
            b.say(i, "mountfs", k, r)
            return r

        try:
            if key == "A":
                b.meta(m.mnt, D["files"], lambda k, walk: timed(k, walk))
            threads = THREADS if key == "A" else 1
            b.cold()
            for phase in ("cold", "warm") if key == "A" else ("cold", "warm", "warm2"):
                timed(f"{key}_{phase}", lambda: b.read_fs(m.mnt, D, threads), f"{key}-{phase}")
            if key == "B":
                first = min(os.path.join(d, f) for d, _, fs in os.walk(D["path"]) for f in fs)
                res["B_large_folios"] = {"local": large_folio_share(first),
                                         "mountfs": large_folio_share(os.path.join(m.mnt, os.path.relpath(first, D["path"])))}
                b.log(f"[{i}] page cache of B's first file in large folios: {res['B_large_folios']}")
            # page cache dropped, the daemon's chunk cache kept
            b.cold()
            timed(f"{key}_own_cache", lambda: b.read_fs(m.mnt, D, threads), f"{key}-own_cache")
            res[f"{key}_daemon"] = {**m.probe(), "stats": m.stats()}
            b.log(f"[{i}] mountfs {key} daemon VmHWM {fmt_bytes(res[f'{key}_daemon']['vm_hwm_bytes'])}, "
                  f"CPU {res[f'{key}_daemon']['cpu_s']:.1f} s")
        finally:
            m.stop()
