"""Sizes as people read them, for every layer that reports one (the CLI, gc's summary, log lines)."""

from __future__ import annotations


def human_size(n: int) -> str:
    """``1536`` -> ``1.5 KiB``; plain bytes below 1 KiB."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
