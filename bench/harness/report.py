"""Numbers and output: summaries over repeats, formats, the result table and the JSON file."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence, TextIO

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def summary(values: Iterable[float]) -> dict[str, float]:
    """``n``, ``median``, ``min``, ``max`` of the values (one per repeat)."""
    vals = list(values)
    return {"n": len(vals), "median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def fmt_summary(s: dict[str, float], fmt: Callable[[float], str]) -> str:
    """``median`` alone for one run (or identical runs), ``median (min..max)`` otherwise."""
    if s["n"] == 1 or s["min"] == s["max"]:
        return fmt(s["median"])
    return f"{fmt(s['median'])} ({fmt(s['min'])}..{fmt(s['max'])})"


def mb(n: float) -> float:
    """bytes -> MB (10^6), the unit of every MB/s in these benches."""
    return n / 1e6


def fmt_bytes(n: float) -> str:
    """``1.50 MiB``: binary units, two decimals."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


@dataclass
class Row:
    """One line of a result table; ``ok`` is None when there is no target."""

    part: str
    metric: str
    value: str
    target: str = ""
    ok: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"part": self.part, "metric": self.metric, "value": self.value, "target": self.target, "ok": self.ok}


def ok_cell(ok: bool | None) -> str:
    """The ``ok?`` column: empty without a target."""
    return "" if ok is None else "ok" if ok else "FAIL"


def print_table(rows: Sequence[Row], file: TextIO = sys.stdout) -> None:
    """``part | metric | value | target | ok?`` as a markdown table."""
    head = ("part", "metric", "value", "target", "ok?")
    print_cells([head, *((r.part, r.metric, r.value, r.target, ok_cell(r.ok)) for r in rows)], file)


def print_cells(cells: Sequence[Sequence[str]], file: TextIO = sys.stdout) -> None:
    """A markdown table; the first row is the header."""
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]

    def line(c: Sequence[str]) -> str:
        return "| " + " | ".join(s.ljust(w) for s, w in zip(c, widths)) + " |"

    print(line(cells[0]), file=file)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=file)
    for c in cells[1:]:
        print(line(c), file=file)
    file.flush()


def stamp() -> str:
    """Local time with its offset, as ``started``/``finished`` are written."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def default_out(bench: str) -> str:
    """``bench/results/<bench>-<stamp>.json``."""
    return os.path.join(BENCH_DIR, "results", f"{bench}-{time.strftime('%Y%m%d-%H%M%S')}.json")


def write_json(path: str, doc: dict[str, Any]) -> None:
    """Write ``doc`` atomically (a crash leaves the previous file or the new one)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=1, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)
