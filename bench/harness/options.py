"""The options every bench takes: ``--out --work --quick --only --repeat --keep``."""

from __future__ import annotations

import argparse
from typing import Sequence

from harness.report import default_out


def parser(bench: str, doc: str, parts: Sequence[str], *, work: str, quick: str, only: str | None = None,
           repeat: str = "runs of each timed step (median/min/max are reported)") -> argparse.ArgumentParser:
    """A parser with the common options (bench-specific help texts); the bench adds its own, then :func:`parse`."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--out", default=None, help=f"JSON results (default bench/results/{bench}-<stamp>.json)")
    p.add_argument("--work", default=None, help=work)
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--only", default=",".join(parts), help=only or f"comma-separated parts out of {','.join(parts)}")
    p.add_argument("--repeat", type=int, default=1, help=repeat)
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.set_defaults(bench=bench, all_parts=tuple(parts))
    return p


def parse(p: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse; ``--only a,b`` into ``args.parts`` (unknown parts and ``--repeat`` below 1 refused); ``--out`` defaulted."""
    a = p.parse_args(argv)
    a.parts = [x.strip().lower() for x in a.only.split(",") if x.strip()]
    bad = [x for x in a.parts if x not in a.all_parts]
    if bad or a.repeat < 1:
        p.error(f"unknown part(s) {bad}; choose from {','.join(a.all_parts)}" if bad else "--repeat must be >= 1")
    a.out = a.out or default_out(a.bench)
    return a
