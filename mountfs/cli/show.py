"""``mountfs show``: one version in the terminal: its record, its lineage as a tree, its preview and reports."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ..catalog import reports
from ..session import current
from .browse import _info, _json
from .common import Command, Selector, dataset_selector, resolve, selector_from
from .output import counted, echo_json, human_size, printable

#: bar width of a histogram in the terminal, in characters
BAR = 40
#: rows of a report table shown (the stored ones are bounded already; a terminal needs fewer)
ROWS = 20


def _console() -> Console:
    out = sys.stdout  # click's runner puts its own here too
    # no terminal (a pipe, a test): plain text, a fixed width, no colour codes
    return Console(file=out, width=None if out.isatty() else 120, highlight=False, emoji=False,
                   no_color=not out.isatty())


def _label(catalog: Any, dataset_id: str) -> Text:
    rec = catalog.get_or_none(dataset_id)
    if rec is None:
        return Text(f"{dataset_id} (gone)")
    return Text(printable(f"{rec.project}/{rec.name} {rec.version} [{rec.status}] ({rec.id})"))


def _lineage(catalog: Any, graph: dict[str, list[str]], top: str) -> Tree:
    tree = Tree(_label(catalog, top))
    seen = {top}

    def grow(node: Tree, dataset_id: str) -> None:
        for parent in graph.get(dataset_id, []):
            if parent in seen:  # a diamond (squash) or a damaged record's cycle: named once
                node.add(Text(f"{parent} (above)"))
                continue
            seen.add(parent)
            grow(node.add(_label(catalog, parent)), parent)

    grow(tree, top)
    return tree


def _cell(value: Any) -> Text:
    return Text(printable("" if value is None else str(value)))


def _table(title: str, columns: list[str], rows: list[list[Any]], total: int | None = None) -> Group:
    shown = rows[:ROWS]
    more = (total if total is not None else len(rows)) - len(shown)
    # the title above the table, not in it: rich wraps a title to the table's width
    table = Table(caption=f"{counted(more, 'more row')}" if more > 0 else None, caption_justify="left")
    for col in columns:
        table.add_column(_cell(col))
    for row in shown:
        table.add_row(*(_cell(v) for v in row))
    return Group(Text(printable(title)), table)


def _bars(title: str, labels: list[str], values: list[float]) -> Text:
    top = max((abs(v) for v in values), default=0) or 1
    width = max((len(s) for s in labels), default=0)
    text = Text(printable(title) + "\n")
    for label, value in zip(labels, values):
        text.append(f"  {printable(label):>{width}} {'█' * round(abs(value) / top * BAR):<{BAR}} {value:g}\n")
    return text


def _report(console: Console, r: dict[str, Any]) -> None:
    title = f"{r['title']} / {r['series']}" + (f" (iteration {r['iteration']})" if r.get("iteration") is not None else "")
    data, kind = r["data"], r["kind"]
    if kind == "table":
        console.print(_table(title, data["columns"], data["rows"], data.get("total_rows")))
    elif kind == "histogram":
        values = [float(v) for v in data["values"]]
        labels = data.get("xlabels") or data.get("labels") or [str(i) for i in range(len(values))]
        console.print(_bars(f"{title} (histogram)", [str(x) for x in labels], values))
    elif kind == "scalar":
        points = data["points"]
        last = points[-1] if points else None
        console.print(Text(printable(f"{title} (scalar): {counted(len(points), 'point')}"
                                     + (f", last {last[1]:g} at iteration {last[0]}" if last else ""))))
    elif kind == "text":
        console.print(Text(printable(f"{title} (text): {data['text']}")))
    else:
        console.print(Text(printable(f"{title} ({kind}): shown by `mountfs ui`")))


def _preview(console: Console, p: dict[str, Any]) -> None:
    console.print(Text(f"preview: {counted(p.get('files', 0), 'file')}, {human_size(p.get('bytes', 0))}"))
    by_ext = p.get("by_extension") or []
    if by_ext:
        console.print(_table("by extension", ["extension", "files", "bytes"],
                             [[e["ext"] or "(none)", e["count"], human_size(e["bytes"])] for e in by_ext]))
    sizes = p.get("sizes") or {}
    edges, counts = sizes.get("edges") or [], sizes.get("counts") or []
    if counts:
        labels = [f"<= {human_size(int(e))}" for e in edges[1:]] if len(edges) == len(counts) + 1 else \
            [str(i) for i in range(len(counts))]
        console.print(_bars("file sizes", labels, [float(c) for c in counts]))
    for t in p.get("tables") or []:
        console.print(_table(f"first rows of {t['path']}", t["columns"], t["rows"]))


@click.command(cls=Command)
@click.argument("dataset", required=False)
@dataset_selector
@_json
def show(dataset: str | None, sel: Selector, as_json: bool) -> None:
    """Show one version: its record, lineage, preview and reports.

    DATASET is an id or project/name[/version] (or use --id/--project/--name/--version).
    Tables print as tables and histograms as bar charts; plots and images are in `mountfs ui`.
    """
    ds = resolve(selector_from(dataset, sel))
    catalog = current().catalog
    doc = _info(ds)
    graph = ds.get_dependency_graph()
    preview = reports.read_preview(catalog, ds.id)
    found = reports.read_reports(catalog, ds.id)
    if as_json:
        echo_json({**doc, "lineage": graph, "preview": preview, "reports": found})
        return
    console = _console()
    changes = doc["changes"]
    lines = [
        ("id", doc["id"]), ("dataset", f"{doc['project']}/{doc['name']} {doc['version']}"), ("status", doc["status"]),
        ("tags", ", ".join(doc["tags"]) or "-"), ("description", doc["description"] or "-"),
        ("created", doc["created"]), ("finalized", doc["finalized"] or "-"),
        ("files", f"{doc['file_count']} ({human_size(doc['total_size'])})"),
        ("changes", ", ".join(f"{changes.get(k, 0)} {k}" for k in ("added", "modified", "removed"))),
        ("metadata", ", ".join(doc["metadata"]) or "-"),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        console.print(Text(f"{key + ':':<{width + 1}} {printable(str(value))}"))
    console.print(Text("lineage:"))
    console.print(_lineage(catalog, graph, ds.id))
    if preview is not None:
        _preview(console, preview)
    console.print(Text(f"reports: {len(found)}"))
    for r in found:
        _report(console, r)
