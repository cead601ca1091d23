"""Sizes as people read them, for every layer that reports one (the CLI, gc's summary, log lines)."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def human_size(n: int) -> str:
    """``1536`` -> ``1.5 KiB``; plain bytes below 1 KiB; beyond YiB in scientific notation, never 20 digits."""
    size = float(n)
    if size < 0:
        return f"-{human_size(-n)}"
    for unit in _UNITS:
        if size < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(size)} B"
            return f"{size:.1f} {unit}" if size < 1024 else f"{size:.3g} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def counted(n: int, word: str, plural: str | None = None) -> str:
    """``counted(1, "file")`` -> ``1 file``, ``counted(3, "file")`` -> ``3 files``: no ``file(s)`` in what people read."""
    return f"{n} {word if n == 1 else (plural or word + 's')}"
