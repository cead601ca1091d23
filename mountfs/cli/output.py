"""Printing results: JSON for scripts, aligned tables and binary sizes for people."""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Sequence

import click

from ..units import human_size

__all__ = ["echo_json", "echo_table", "human_size", "printable"]

#: C0 and C1 control characters and DEL: a description, tag or file name from a shared store could
#: otherwise move the cursor, retitle the terminal or hide lines when printed
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``): store text printed as it is."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def echo_json(doc: Any) -> None:
    """Print ``doc`` as JSON on stdout, and nothing else."""
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False))


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Iterable[str] = ()) -> None:
    """Print rows under headers, columns padded to their widest cell; ``right`` columns align right."""
    cells = [list(headers)] + [["" if c is None else printable(str(c)) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align_right = {headers.index(h) for h in right}
    for row in cells:
        parts = [c.rjust(w) if i in align_right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        click.echo("  ".join(parts).rstrip())
