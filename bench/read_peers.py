"""``read.py``'s peer baselines: medians from the peer harness's run JSON (``../shared/peers``).

A separate run on the same machine, not the same run: ``--peers FILE...``, or
the newest ``$PEERS_OUT/run-*.json`` (else ``/tmp/peerbench/results``) of the
same preset that measured ``juicefs-default``.
"""

from __future__ import annotations

import glob
import json
import os
import statistics
from typing import Any, Callable

from read_bench import Bench

#: what the table uses of each system: name -> how to read it from one run's system entry
FIELDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "A_cold_MBps": lambda s: s["phases"]["A_cold"]["MBps"],
    "A_warm_MBps": lambda s: s["phases"]["A_warm"]["MBps"],
    "B_cold_MBps": lambda s: s["phases"]["B_cold"]["MBps"],
    "B_warm_MBps": lambda s: s["phases"]["B_warm"]["MBps"],
    "ls_cold_s": lambda s: s["phases"]["meta_ls_cold"]["seconds"],
    "ls_warm_s": lambda s: s["phases"]["meta_ls_warm"]["seconds"],
    "find_cold_s": lambda s: s["phases"]["meta_find_cold"]["seconds"],
    "vm_hwm_bytes": lambda s: s["vmhwm_kb"] * 1024 if s.get("vmhwm_kb") else None,
}


def _newest(quick: bool) -> list[str]:
    out_dir = os.environ.get("PEERS_OUT", "/tmp/peerbench/results")
    preset = "quick" if quick else "full"
    cands = []
    for p in sorted(glob.glob(os.path.join(out_dir, "run-*.json")), key=os.path.getmtime):
        try:
            with open(p) as fh:
                d = json.load(fh)
        except (OSError, ValueError):
            continue
        if d.get("meta", {}).get("dataset", {}).get("preset") == preset and "juicefs-default" in d.get("systems", {}):
            cands.append(p)
    return cands[-1:]


def load_peers(b: Bench) -> dict[str, Any]:
    """``files``, per system its ``kind`` and the medians of :data:`FIELDS`, and ``best_A_cold_mount``:
    the FUSE peer with the best A cold MB/s.  Empty without a peer run."""
    paths = b.args.peers or _newest(b.args.quick)
    runs = []
    for p in paths:
        with open(p) as fh:
            runs.append(json.load(fh))
    if not runs:
        b.log("no peer harness results found (--peers): targets relative to peers use fallbacks or stay open")
        return {}

    def med(system: str, get: Callable[[dict[str, Any]], Any]) -> float | None:
        vals = []
        for d in runs:
            s = d.get("systems", {}).get(system)
            try:
                v = get(s) if s and not s.get("skipped") else None
            except (KeyError, TypeError):
                v = None
            if v is not None:
                vals.append(v)
        return statistics.median(vals) if vals else None

    systems: dict[str, Any] = {}
    for n in sorted({n for d in runs for n in d.get("systems", {})}):
        kind = next((d["systems"][n].get("kind") for d in runs if n in d["systems"] and d["systems"][n].get("kind")), None)
        systems[n] = {"kind": kind, **{field: med(n, get) for field, get in FIELDS.items()}}
    mounts = {n: s for n, s in systems.items() if s["kind"] == "fuse" and n != "mountfs" and s["A_cold_MBps"]}
    best = max(mounts, key=lambda n: mounts[n]["A_cold_MBps"]) if mounts else None
    return {"files": paths, "systems": systems, "best_A_cold_mount": best}
