"""``transfer.py``'s summary and table: medians (min..max) over the runs of a part, and the printed report.

``--report JSON`` rebuilds the table of a saved run from its raw numbers with this code.
"""

from __future__ import annotations

import json
import os
import statistics
from typing import Any, Callable

from harness.data import MIB
from harness.report import Row, fmt_bytes, fmt_summary, mb, print_table, summary
from transfer_steps import THREADS

#: (part, direction) -> minimum mountfs/boto3 MB/s ratio
TARGETS = {("A", "upload"): 3.0, ("B", "upload"): 1.0, ("A", "download"): 2.0, ("B", "download"): 1.0}
TARGET_RSS = 300 * MIB
STEPS = ("boto3_upload", "boto3_download", "mountfs_upload", "mountfs_download")


def reqs(counts: dict[str, int]) -> str:
    """``total (Op n, Op n, ...)``, the biggest first."""
    items = sorted(counts.items(), key=lambda kv: -kv[1])
    return f"{sum(counts.values())} (" + ", ".join(f"{k} {v}" for k, v in items) + ")"


def _cpu(runs: list[dict[str, Any]], step: str) -> str:
    """``client + server`` CPU seconds of a step (medians over the runs)."""
    c = statistics.median(r[step]["cpu_s"]["step"] for r in runs)
    w = statistics.median(r[step]["cpu_s"]["seaweedfs"] for r in runs)
    return f"{c:.1f} + {w:.1f}"


def summarize(key: str, runs: list[dict[str, Any]], nbytes: int, nfiles: int) -> tuple[dict[str, Any], list[Row]]:
    """Medians (min..max) over the runs of one part, and its table rows."""

    def rate(seconds: Callable[[dict[str, Any]], float]) -> list[float]:
        return [mb(nbytes) / seconds(r) for r in runs]

    # boto3: client creation + transfer (runs before client_s was recorded: transfer only)
    bu = rate(lambda r: r["boto3_upload"]["result"]["seconds"] + r["boto3_upload"]["result"].get("client_s", 0.0))
    bd = rate(lambda r: r["boto3_download"]["result"]["seconds"] + r["boto3_download"]["result"].get("client_s", 0.0))
    mu = rate(lambda r: r["mountfs_upload"]["result"]["phases_s"]["upload"])
    mi = rate(lambda r: r["mountfs_upload"]["result"]["total_s"])
    md = rate(lambda r: r["mountfs_download"]["result"]["total_s"])
    mg = rate(lambda r: r["mountfs_download"]["result"]["phases_s"]["get_local_copy"])
    s: dict[str, Any] = {
        "bytes": nbytes, "files": nfiles,
        "boto3_upload_MBps": summary(bu), "mountfs_upload_MBps": summary(mu), "mountfs_ingest_MBps": summary(mi),
        "upload_ratio": summary(m / x for m, x in zip(mu, bu)),
        "ingest_ratio": summary(m / x for m, x in zip(mi, bu)),
        "boto3_download_MBps": summary(bd), "mountfs_download_MBps": summary(md),
        "download_ratio": summary(m / x for m, x in zip(md, bd)),
        "mountfs_get_local_copy_only_MBps": summary(mg),
        "get_local_copy_only_ratio": summary(m / x for m, x in zip(mg, bd)),
        "mountfs_phases_s": {k: summary(r["mountfs_upload"]["result"]["phases_s"][k] for r in runs)
                             for k in runs[0]["mountfs_upload"]["result"]["phases_s"]},
        "peak_rss": {st: summary(r[st]["peak_rss_bytes"] for r in runs) for st in STEPS},
        "other_cpu_pct": {st: summary(r[st]["other_cpu_pct"] for r in runs) for st in STEPS},
    }
    r0 = runs[0]
    ph = s["mountfs_phases_s"]
    tu, td = TARGETS[(key, "upload")], TARGETS[(key, "download")]
    bu_obj, mu_obj = r0["boto3_upload"]["bucket"], r0["mountfs_upload"]["bucket"]
    packs = mu_obj["by_prefix"].get("packs", {}).get("objects", 0)
    how_up = "put_object per file" if r0["boto3_upload"]["result"]["big_files"] == 0 else "upload_file, multipart"
    how_dl = "get_object per file" if r0["boto3_download"]["result"]["big_files"] == 0 else "download_file, ranged"

    def f1(v: float) -> str:
        return f"{v:.1f}"

    def f2(v: float) -> str:
        return f"{v:.2f}"

    def rss(step: str, what: str) -> Row:
        target = step.startswith("mountfs")  # the target applies to mountfs; boto3's is for reference
        return Row(key, what, fmt_summary(s["peak_rss"][step], fmt_bytes), f"< {fmt_bytes(TARGET_RSS)}" if target else "",
                   s["peak_rss"][step]["max"] < TARGET_RSS if target else None)

    def ratio(what: str, name: str, target: float | None = None) -> Row:
        if target is None:
            return Row(key, what, fmt_summary(s[name], f2))
        return Row(key, what, fmt_summary(s[name], f2), f">= {target:g}x", s[name]["median"] >= target)

    P = key
    rows = [
        Row(P, f"data: {nfiles} files, {fmt_bytes(nbytes)}", ""),
        Row(P, f"boto3 upload MB/s ({THREADS} threads, {how_up})", fmt_summary(s["boto3_upload_MBps"], f1)),
        Row(P, "mountfs upload() MB/s", fmt_summary(s["mountfs_upload_MBps"], f1)),
        ratio("upload: mountfs upload() / boto3", "upload_ratio", tu),
        Row(P, "mountfs phases s (add_files / upload / finalize)",
            " / ".join(f"{ph[k]['median']:.2f}" for k in ("add_files", "upload", "finalize"))),
        Row(P, "mountfs create+add+upload+finalize MB/s", fmt_summary(s["mountfs_ingest_MBps"], f1)),
        ratio("  ... / boto3 upload", "ingest_ratio"),
        Row(P, "objects in bucket: boto3 / mountfs (packs)", f"{bu_obj['objects']} / {mu_obj['objects']} ({packs})"),
        Row(P, "upload requests: boto3", reqs(r0["boto3_upload"]["result"]["requests"])),
        Row(P, "upload requests: mountfs upload()", reqs(r0["mountfs_upload"]["result"]["upload_requests"])),
        Row(P, "upload CPU s, client + SeaweedFS: boto3 / mountfs (whole ingest)",
            f"{_cpu(runs, 'boto3_upload')} / {_cpu(runs, 'mountfs_upload')}"),
        rss("boto3_upload", "upload peak RSS: boto3"),
        rss("mountfs_upload", "upload peak RSS: mountfs (whole ingest)"),
        Row(P, f"boto3 download MB/s ({THREADS} threads, {how_dl})", fmt_summary(s["boto3_download_MBps"], f1)),
        Row(P, "mountfs get_local_copy MB/s", fmt_summary(s["mountfs_download_MBps"], f1)),
        ratio("download: mountfs / boto3", "download_ratio", td),
        Row(P, "mountfs get_local_copy() alone MB/s (no Dataset.get)", fmt_summary(s["mountfs_get_local_copy_only_MBps"], f1)),
        ratio("  ... / boto3 download", "get_local_copy_only_ratio"),
        Row(P, "download requests: boto3 (listing not timed)", reqs(r0["boto3_download"]["result"]["requests"])),
        Row(P, "download requests: mountfs (get + get_local_copy)", reqs(r0["mountfs_download"]["result"]["requests"])),
        Row(P, "download CPU s, client + SeaweedFS: boto3 / mountfs",
            f"{_cpu(runs, 'boto3_download')} / {_cpu(runs, 'mountfs_download')}"),
        rss("boto3_download", "download peak RSS: boto3"),
        rss("mountfs_download", "download peak RSS: mountfs"),
        Row(P, "other CPU % (boto3 up/down, mountfs up/down)",
            " / ".join(f"{s['other_cpu_pct'][k]['median']:.0f}" for k in STEPS)),
    ]
    return s, rows


def print_report(doc: dict[str, Any], rows: list[Row]) -> None:
    m = doc["machine"]
    dropped = "yes" if doc.get("caches_dropped") else "NO (not root?): timed steps may read from the page cache"
    print(f"\nmountfs transfer benchmark vs boto3 on SeaweedFS 127.0.0.1 ({'quick' if doc['quick'] else 'full'}, "
          f"{doc['repeat']} run(s) per step; {m['nproc']} cores, kernel {m['kernel']}, python {m['python']})")
    print(f"page cache dropped before each timed step: {dropped}; MB = 10^6 bytes; mountfs MB/s use the SDK calls' "
          f"time in a fresh process (upload() alone for the upload ratio), boto3 MB/s client creation + transfer; "
          f"ratio = mountfs / boto3 (> 1: mountfs faster)" + ("; py-spy attached" if doc.get("profile") else ""))
    print_table(rows)


def report(path: str) -> int:
    """``--report``: the table of a saved run, rebuilt from its raw numbers."""
    with open(path) as fh:
        doc = json.load(fh)
    rows: list[Row] = []
    for key, p in doc["parts"].items():
        if p.get("runs"):
            d = doc["data"][key]
            rows += summarize(key, p["runs"], d["bytes"], d["files"])[1]
    print_report(doc, rows)
    if any("client_s" not in r["boto3_upload"]["result"] for p in doc["parts"].values() for r in p.get("runs", ())):
        print("note: a run from before boto3's client creation was timed: its boto3 MB/s are the transfer's alone, "
              "and its mountfs times include importing boto3 (~0.1-0.2 s)")
    print(f"\nJSON: {os.path.abspath(path)}")
    return 0
