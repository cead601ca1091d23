"""``read.py``'s table: medians over repeats against their baselines and targets, and the notes under it.

ratio: MB/s = mountfs/baseline; seconds = baseline/mountfs (a speed, > 1 = mountfs
faster); MiB and the M targets = mountfs/baseline (lower is better).  Passes
during which another process dropped the page cache are left out of the medians
when a clean repeat exists.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any, TextIO

from harness.data import MIB
from harness.report import ok_cell, print_cells, write_json
from read_bench import Bench

# targets (from the issue)
T_A_COLD_VS_PEER = 3.0
T_B_COLD_VS_BOTO3 = 1.0
T_WARM = 0.8
T_LS_VS_JUICEFS = 1.0
T_RSS_VS_JUICEFS = 0.5
T_RSS_FALLBACK = 120 * MIB
T_M_LS_S = 2.0
T_M_RSS = 200 * MIB
WHO = ("local", "boto3", "mountfs")


def _vals(runs: list[dict[str, Any]], who: str, key: str, field: str) -> list[float]:
    """The pass's values over repeats, without passes during which someone else dropped the page cache
    (unless every repeat was hit)."""
    got = [r[who][key] for r in runs if key in r.get(who, {}) and r[who][key].get(field) is not None]
    clean = [x for x in got if not x.get("foreign_drops")]
    return [x[field] for x in (clean or got)]


def med(runs: list[dict[str, Any]], who: str, key: str, field: str = "seconds") -> float | None:
    vals = _vals(runs, who, key, field)
    return statistics.median(vals) if vals else None


def span(runs: list[dict[str, Any]], who: str, key: str, field: str = "seconds", fmt: str = "{:.0f}") -> str:
    """`` (min..max)`` over repeats, or nothing for one repeat."""
    vals = _vals(runs, who, key, field)
    return "" if len(vals) < 2 else f" ({fmt.format(min(vals))}..{fmt.format(max(vals))})"


class Rows(list[dict[str, Any]]):
    """The table's rows: each with its cells and its raw ``values``."""

    def add(self, metric: str, ours: float | None, base: float | None, base_name: str, kind: str,
            target: float | None = None, fmt: str = "{:.1f}", sense: str = ">=", note: str = "", unit: str = "") -> None:
        # kind "rate": ratio = ours/base (higher is better); "time": base/ours (speed, higher is better);
        # "size": ours/base (lower is better)
        ratio = None
        if ours is not None and base:
            ratio = ours / base if kind in ("rate", "size") else (base / ours if ours else None)
        ok = None
        if target is not None and ratio is not None:
            ok = ratio >= target if sense == ">=" else ratio <= target
        self.append({"metric": metric, "mountfs": None if ours is None else fmt.format(ours) + unit + note,
                     "baseline": "" if base is None else f"{fmt.format(base)}{unit} {base_name}".strip(),
                     "ratio": None if ratio is None else f"{ratio:.2f}x",
                     "target": "" if target is None else f"{sense} {target:g}x", "ok": ok,
                     "values": {"mountfs": ours, "baseline": base, "ratio": ratio}})


def build_rows(b: Bench) -> list[dict[str, Any]]:
    runs, peers = b.doc["runs"], b.doc["peers"]
    ps = peers.get("systems", {})
    jfs = ps.get("juicefs-default", {})
    rows = Rows()
    row = rows.add
    parts = b.args.parts

    def M(who: str, key: str, field: str = "MBps") -> float | None:
        return med(runs, who, key, field)

    if "a" in parts:
        row("A cold MB/s (8 threads, whole files)", M("mountfs", "A_cold"), M("local", "A_cold"), "local cold", "rate",
            note=span(runs, "mountfs", "A_cold", "MBps"))
        best = peers.get("best_A_cold_mount")
        row("A cold MB/s vs best peer mount", M("mountfs", "A_cold"), ps[best]["A_cold_MBps"] if best else None,
            f"({best}, peer run)" if best else "(no peer run)", "rate", T_A_COLD_VS_PEER)
        row("A cold MB/s vs boto3 (1 GET/file, 8 threads)", M("mountfs", "A_cold"), M("boto3", "A_cold"), "boto3", "rate")
        row("A warm MB/s", M("mountfs", "A_warm"), M("local", "A_warm"), "local page cache", "rate", T_WARM,
            note=span(runs, "mountfs", "A_warm", "MBps"))
        row("A own cache MB/s (page cache dropped)", M("mountfs", "A_own_cache"), M("local", "A_cold"), "local cold", "rate")
    if "b" in parts:
        row("B cold MB/s (1 file at a time, 1 MiB reads)", M("mountfs", "B_cold"), M("local", "B_cold"), "local cold", "rate",
            note=span(runs, "mountfs", "B_cold", "MBps"))
        row("B cold MB/s vs boto3 direct (8 x 8 MiB ranges)", M("mountfs", "B_cold"), M("boto3", "B_cold"), "boto3",
            "rate", T_B_COLD_VS_BOTO3)
        row("B warm MB/s (first warm pass)", M("mountfs", "B_warm"), M("local", "B_warm"), "local page cache", "rate",
            T_WARM, note=span(runs, "mountfs", "B_warm", "MBps"))
        row("B warm MB/s, second warm pass", M("mountfs", "B_warm2"), M("local", "B_warm2"), "local page cache", "rate")
        row("B warm MB/s vs local in 4 KiB pages (first pass)", M("mountfs", "B_warm"), M("local4k", "B_warm"),
            "local, 4 KiB pages", "rate")
        row("B warm MB/s vs local in 4 KiB pages (second pass)", M("mountfs", "B_warm2"), M("local4k", "B_warm2"),
            "local, 4 KiB pages", "rate")
        row("B own cache MB/s (page cache dropped)", M("mountfs", "B_own_cache"), M("local", "B_cold"), "local cold", "rate")
        folios = [r["mountfs"]["B_large_folios"] for r in runs if r["mountfs"].get("B_large_folios", {}).get("local") is not None]
        if folios:
            f = folios[-1]
            row("B page cache in large folios, % (why B warm trails local)", 100 * (f["mountfs"] or 0),
                100 * f["local"], "local (ext4)", "rate", fmt="{:.0f}")
    if "a" in parts:
        for k, what in (("find_cold", "find over A cold, s"), ("find_warm", "find over A warm, s"),
                        ("ls_cold", "ls -lR over A cold, s"), ("ls_warm", "ls -lR over A warm, s")):
            row(what, M("mountfs", k, "seconds"), M("local", k, "seconds"), "local", "time", fmt="{:.3f}")
        for k, what in (("ls_cold", "ls -lR over A cold vs juicefs, s"), ("ls_warm", "ls -lR over A warm vs juicefs, s")):
            row(what, M("mountfs", k, "seconds"), jfs.get(f"{k}_s"), "(juicefs-default, peer run)", "time",
                T_LS_VS_JUICEFS, fmt="{:.3f}")
        row("mount s (A, `mountfs mount` returns)", M("mountfs", "A_mount_s", "seconds"), None, "", "time", fmt="{:.2f}")
    hwm = [r["mountfs"][f"{k}_daemon"]["vm_hwm_bytes"] for r in runs for k in ("A", "B") if f"{k}_daemon" in r["mountfs"]]
    if hwm:
        peak = max(hwm)
        if jfs.get("vm_hwm_bytes"):
            row("peak daemon RSS MiB (VmHWM, A and B mounts)", peak / MIB, jfs["vm_hwm_bytes"] / MIB,
                "(juicefs-default, peer run)", "size", T_RSS_VS_JUICEFS, sense="<=")
        else:
            row("peak daemon RSS MiB (VmHWM, A and B mounts)", peak / MIB, T_RSS_FALLBACK / MIB, "(fixed target)",
                "size", 1.0, sense="<=")
    mil = b.doc.get("million") or {}
    if "first" in mil:
        n = mil["files"]
        f = mil["first"]
        row(f"M ({n} files): ingest s (SDK, create..finalize)", mil["ingest"]["total_s"], None, "", "time")
        row("M: `mountfs mount` s (empty cache: manifest import)", f["mount_s"], None, "", "time", fmt="{:.2f}")
        row("M: first ls of the root after mount, s", f["first_ls_s"], T_M_LS_S, "(target)", "size", 1.0,
            fmt="{:.3f}", sense="<=")
        row("M: daemon VmHWM after mount + ls, MiB", f["after_ls"]["vm_hwm_bytes"] / MIB, T_M_RSS / MIB, "(target)",
            "size", 1.0, sense="<=")
        if "find_all" in f:
            row(f"M: find over all files, s (then VmHWM {f['after_find']['vm_hwm_bytes'] / MIB:.0f} MiB)",
                f["find_all"]["seconds"], None, "", "time")
        if "again" in mil:
            row("M: `mountfs mount` s again (table already imported)", mil["again"]["mount_s"], None, "", "time",
                fmt="{:.2f}")
            row("M: first ls of the root, second mount, s", mil["again"]["first_ls_s"], None, "", "time", fmt="{:.3f}")
    return list(rows)


def print_rows(rows: list[dict[str, Any]], file: TextIO = sys.stdout) -> None:
    head = ("metric", "mountfs", "baseline", "ratio", "target", "ok?")
    print_cells([head, *((r["metric"], r["mountfs"] or "-", r["baseline"] or "-", r["ratio"] or "-", r["target"],
                          ok_cell(r["ok"])) for r in rows)], file)


def print_report(b: Bench) -> None:
    """The header, the table, and the notes: foreign page-cache drops, noise, the daemon's code."""
    m, doc, args = b.doc["machine"], b.doc, b.args
    print(f"\nmountfs read benchmark ({'quick' if args.quick else 'full'}, {args.repeat} repeat(s); "
          f"{m['nproc']} cores, kernel {m['kernel']}, python {m['python']}); "
          f"page cache dropped: {b.dropped_note('cold passes')}")
    print("MB = 10^6 bytes. ratio: MB/s = mountfs/baseline; seconds = baseline/mountfs (speed, >1 = mountfs faster); "
          "MiB and the M targets = mountfs/baseline (lower is better).")
    if doc["peers"]:
        print(f"peer baselines from {', '.join(doc['peers']['files'])} (a separate run on this machine)")
    print_rows(doc.get("rows", []))
    noise = {who: [r[who][k]["other_cpu_pct"] for r in doc["runs"] for k in r.get(who, {})
                   if isinstance(r[who][k], dict) and "other_cpu_pct" in r[who][k]] for who in WHO}
    doc["noise_other_cpu_pct"] = {k: v for k, v in noise.items() if v}
    hit = [f"{who} {k} [{i}]" for i, r in enumerate(doc["runs"]) for who in WHO
           for k, x in r.get(who, {}).items() if isinstance(x, dict) and x.get("foreign_drops")]
    if hit:
        print(f"passes during which another process dropped the page cache (left out of the medians): {', '.join(hit)}")
    if any(noise.values()):
        print("noise: share of the machine's CPU used by other work during the timed passes (median, max): " +
              ", ".join(f"{who} {statistics.median(v):.0f}%, {max(v):.0f}%" for who, v in noise.items() if v))
        write_json(args.out, doc)
    codes = sorted({f"{mt['code'].get('commit')}{'+dirty' if mt['code'].get('mountfs_dirty') else ''}"
                    for mt in doc.get("mounts", []) if mt.get("code")})
    if codes:
        print(f"daemon code (commit of the working tree at each mount): {', '.join(codes)}")
    if doc["experiment"]:
        print(f"EXPERIMENT: {doc['experiment']}")
    print(f"\nJSON: {args.out}")
