"""Commands that read versions: search, info, list, get, verify, compare, tree."""

from __future__ import annotations

import os
from typing import Any

import click

from ..catalog import names
from ..sdk import Dataset
from ..errors import IntegrityError, StateError, UsageError
from ..session import current
from . import linkdir
from .common import Command, ListOption, Selector, as_list, dataset_selector, describe, resolve, show_progress
from .output import counted, echo_json, echo_table, human_size, printable

_json = click.option("--json", "as_json", is_flag=True, help="Print JSON only, for scripts.")
_workers = click.option("--max-workers", type=click.IntRange(min=1), metavar="N", help="Parallel threads (default: logical cores).")


@click.command(cls=Command)
@click.option("--ids", cls=ListOption, metavar="ID...", help="Only these version ids.")
@click.option("--project", metavar="PROJECT", help="Only this project and the projects nested in it.")
@click.option("--non-recursive-project-search", "non_recursive", is_flag=True,
              help="With --project: only that project, not the projects nested in it.")
@click.option("--name", metavar="TEXT", help="Only names matching this regular expression (case-insensitive).")
@click.option("--tags", cls=ListOption, metavar="TAG...", help="Only datasets carrying all these tags.")
@click.option("--all", "--not-only-completed", "include_drafts", is_flag=True,
              help="Include drafts (default: finalized versions only).")
@_json
def search(
    ids: tuple[str, ...], project: str | None, non_recursive: bool, name: str | None, tags: tuple[str, ...],
    include_drafts: bool, as_json: bool,
) -> None:
    """Find dataset versions: datasets newest first, each one's versions latest (highest) first."""
    found = Dataset.list_datasets(
        dataset_project=project, partial_name=name, tags=as_list(tags), ids=as_list(ids),
        only_completed=not include_drafts, recursive_project_search=not non_recursive,
    )
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("no datasets match" + ("" if include_drafts else " (drafts are shown with --all)"), err=True)
        return
    final = ("completed", "published")
    echo_table(
        ["ID", "PROJECT", "NAME", "VERSION", "STATUS", "FILES", "SIZE", "CREATED"],
        [
            [d["id"], d["project"], d["name"], d["version"], d["status"],
             d["file_count"] if d["status"] in final else "-",
             human_size(d["total_size"]) if d["status"] in final else "-", d["created"]]
            for d in found
        ],
        right=("FILES", "SIZE"),
    )


def _info(ds: Dataset) -> dict[str, Any]:
    rec = ds.record
    # a JSON document: --json prints it as it is
    doc: dict[str, Any] = {
        "id": rec.id, "project": rec.project, "name": rec.name, "version": rec.version, "status": rec.status,
        "parents": list(rec.parents), "tags": list(rec.tags), "description": rec.description,
        "storage": rec.storage or current().catalog_url,
        "created": rec.created, "finalized": rec.finalized or None, "published": rec.published or None,
    }
    if ds.is_final():
        doc.update(file_count=rec.file_count, total_size=rec.total_size, changes=dict(rec.changes))
    else:
        # a draft's counts are not recorded until finalize: compute them from its current state
        entries = ds.file_entries_dict
        doc.update(
            file_count=len(entries), total_size=sum(e.size for e in entries.values()),
            changes={"added": len(ds.list_added_files()), "modified": len(ds.list_modified_files()),
                     "removed": len(ds.list_removed_files())},
            pending_upload=ds.is_dirty(),
        )
    doc["metadata"] = sorted(rec.metadata)
    return doc


@click.command(cls=Command)
@dataset_selector
@_json
def info(sel: Selector, as_json: bool) -> None:
    """Show one version's record.

    Status, parents, tags, sizes, changes against the parents, metadata names.
    """
    doc = _info(resolve(sel))
    if as_json:
        echo_json(doc)
        return
    changes = doc["changes"]
    lines = [
        ("id", doc["id"]), ("project", doc["project"]), ("name", doc["name"]), ("version", doc["version"]),
        ("status", doc["status"] + (" (files not uploaded yet)" if doc.get("pending_upload") else "")),
        ("parents", ", ".join(doc["parents"]) or "-"), ("tags", ", ".join(doc["tags"]) or "-"),
        ("description", doc["description"] or "-"), ("storage", doc["storage"]),
        ("created", doc["created"]), ("finalized", doc["finalized"] or "-"), ("published", doc["published"] or "-"),
        ("files", f"{doc['file_count']} ({human_size(doc['total_size'])})"),
        ("changes", ", ".join(f"{changes.get(k, 0)} {k}" for k in ("added", "modified", "removed"))),
        ("metadata", ", ".join(doc["metadata"]) or "-"),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key + ':':<{width + 1}} {printable(value)}")


@click.command("list", cls=Command)
@dataset_selector
@click.option("--filter", "patterns", cls=ListOption, metavar="WILDCARD...",
              help="Only paths matching any of these (paths, folders or wildcards).")
@click.option("--modified", is_flag=True, help="Only the files this version added or modified against its parents.")
@_json
def list_files(sel: Selector, patterns: tuple[str, ...], modified: bool, as_json: bool) -> None:
    """List the files of a version with their sizes."""
    for pattern in patterns:  # checked here to name the option; the SDK names its parameter
        names.check_dataset_path(pattern, "--filter")
    ds = resolve(sel)
    entries = ds.file_entries_dict
    if patterns:
        paths = sorted({p for pattern in patterns for p in ds.list_files(dataset_path=pattern)})
    else:
        paths = sorted(entries)
    if modified:
        # the files whose content this version brought, as clearml-data's; removed ones have no entry to list
        changed = set(ds.list_added_files()) | set(ds.list_modified_files())
        paths = [p for p in paths if p in changed]
    if as_json:
        echo_json([{"path": p, "size": entries[p].size} for p in paths])
        return
    echo_table(["SIZE", "PATH"], [[human_size(entries[p].size), p] for p in paths], right=("SIZE",))
    total = sum(entries[p].size for p in paths)
    what = "added or modified in" if modified else "in"
    click.echo(f"{counted(len(paths), 'file')}, {human_size(total)} {what} {describe(ds)}")


@click.command(cls=Command)
@dataset_selector
@click.option("--copy", "copy_to", metavar="DIR", help="Write a writable copy into DIR instead of the shared read-only one.")
@click.option("--link", "link_at", metavar="DIR",
              help="Make DIR a folder of symbolic links to the files: in a running mount of this version, "
                   "else in the read-only cached copy (they dangle once it is unmounted or the cache cleared).")
@click.option("--overwrite", is_flag=True,
              help="With --copy or --link: replace a DIR that is not an empty folder.")
@click.option("--part", type=click.IntRange(min=0), metavar="K", help="Only slice K (0-based) of --num-parts slices.")
@click.option("--num-parts", type=click.IntRange(min=1), metavar="N", help="Number of disjoint slices (with --part).")
@click.option("--files", cls=ListOption, metavar="PATH...", help="Only these paths, folders or wildcards.")
@_workers
@click.option("--verbose", is_flag=True, help="Print the folder's files and a summary on stderr.")
@_json
def get(
    sel: Selector, copy_to: str | None, link_at: str | None, overwrite: bool, part: int | None,
    num_parts: int | None, files: tuple[str, ...], max_workers: int | None, verbose: bool, as_json: bool,
) -> None:
    """Get a local copy of a finalized version and print its folder.

    By default the copy is read-only and shared through the local cache; with
    --copy DIR the files are written to DIR as plain writable files; with
    --link DIR, DIR is made a folder of symbolic links to the files, in a
    running mount of the version if there is one, else in the cached copy,
    and one line on stderr says which. --json prints {"id", "path"} (with
    --link also "links_to": "mount" or "cache", "source", "files").
    """
    if (part is None) != (num_parts is None):
        raise UsageError("--part and --num-parts go together")
    if part is not None and num_parts is not None and part >= num_parts:
        raise UsageError(f"--part {part} is not a slice of --num-parts {num_parts}: give --part 0 to {num_parts - 1}")
    for pattern in files:  # checked here to name the option; the SDK names its parameter
        names.check_dataset_path(pattern, "--files")
    if copy_to and link_at:
        raise UsageError("--copy DIR and --link DIR are alternatives: a writable copy, or links to a read-only one")
    if overwrite and not (copy_to or link_at):
        raise UsageError("--overwrite only applies with --copy DIR or --link DIR")
    if files and copy_to:
        raise UsageError("--files cannot be combined with --copy; copy the version, or get --files without --copy")
    ds = resolve(sel, only_completed=True)
    doc: dict[str, Any] = {"id": ds.id}
    if link_at:
        linked = linkdir.link_folder(
            ds, link_at, overwrite=overwrite, part=part, num_parts=num_parts, files=as_list(files),
            get_copy=lambda: ds.get_local_copy(part=part, num_parts=num_parts, files=as_list(files),
                                               max_workers=max_workers, show_progress=show_progress()),
        )
        path: str | None = linked.folder
        doc = linkdir.as_json(linked, ds.id)
        if not as_json:
            click.echo(linked.describe(), err=True)
    elif copy_to:
        path = ds.get_mutable_local_copy(
            copy_to, overwrite=overwrite, part=part, num_parts=num_parts, max_workers=max_workers,
            show_progress=show_progress(),
        )
    else:
        path = ds.get_local_copy(
            part=part, num_parts=num_parts, files=as_list(files), max_workers=max_workers, show_progress=show_progress()
        )
    if verbose and path:
        _report_folder(ds, path)
    if as_json:
        doc.setdefault("path", path)
        echo_json(doc)
        return
    click.echo(path)


def _report_folder(ds: Dataset, path: str) -> None:
    """--verbose: each file of the folder, then a count, on stderr (stdout stays the folder alone)."""
    found = sorted(
        os.path.relpath(os.path.join(top, f), path) for top, _, here in os.walk(path) for f in here
    )
    for rel in found:
        click.echo(printable(rel), err=True)
    click.echo(f"{counted(len(found), 'file')} of {describe(ds)} in {printable(path)}", err=True)


@click.command(cls=Command)
@click.option("--id", "dataset_ids", cls=ListOption, metavar="ID...", help="Dataset id(s) to verify.")
@click.option("--project", metavar="PROJECT", help="Dataset project (instead of --id).")
@click.option("--name", metavar="NAME", help="Dataset name (instead of --id).")
@click.option("--version", metavar="VERSION", help="Version (default: the most recent finalized).")
@click.option("--local-copy", "--folder", "local_copy", metavar="DIR", type=click.Path(exists=True, file_okay=False),
              help="Check the files in DIR instead of reading the store.")
@click.option("--skip-hash", "--filesize", "skip_hash", is_flag=True, help="With --local-copy: compare sizes only.")
@click.option("--verbose", is_flag=True, help="Print each dataset's count of checked and failing files on stderr.")
@_json
def verify(
    dataset_ids: tuple[str, ...], project: str | None, name: str | None, version: str | None,
    local_copy: str | None, skip_hash: bool, verbose: bool, as_json: bool,
) -> None:
    """Check a version's content against its recorded digests.

    Prints each failing file (prefixed with the dataset id when several are
    checked) and exits non-zero if any fails; --json prints each version's
    checked count and failing paths instead (the exit code is the same).
    """
    if skip_hash and not local_copy:
        raise UsageError("--skip-hash needs --local-copy (--filesize needs --folder): the store is always checked by hash")
    if len(dataset_ids) > 1 and local_copy:
        raise UsageError("--local-copy checks one dataset; pass a single --id")
    if len(dataset_ids) > 1 and (project or name or version):
        raise UsageError("name the datasets either with --id or with --project/--name/--version, not both")
    sels = [Selector(i) for i in dataset_ids] or [Selector(None, project, name, version)]
    failed = checked = 0
    report: list[dict[str, Any]] = []
    for sel in sels:
        ds = resolve(sel, only_completed=True)
        if not ds.is_final():
            raise StateError(f"dataset {ds.id} is a draft; only finalized versions can be verified")
        bad = ds.verify_dataset_hash(local_copy_path=local_copy, skip_hash=skip_hash)
        report.append({"id": ds.id, "checked": ds.record.file_count, "failed": bad})
        if not as_json:
            for path in bad:
                click.echo(f"{ds.id}\t{printable(path)}" if len(sels) > 1 else printable(path))
        failed += len(bad)
        checked += ds.record.file_count
        if verbose:
            how = (f"in {local_copy}" + (", sizes only" if skip_hash else "")) if local_copy else "in the store"
            click.echo(f"{describe(ds)}: {counted(ds.record.file_count, 'file')} checked {how}, {len(bad)} failed", err=True)
    if as_json:
        # stdout stays JSON only; a failure still ends in the one error line and the exit code
        echo_json(report)
    if failed:
        where = f" in {local_copy}" if local_copy else ""
        raise IntegrityError(f"{failed} of {counted(checked, 'file')} failed verification{where}")
    if not as_json:
        click.echo(f"verified {counted(checked, 'file')} of {counted(len(sels), 'dataset')}: all match", err=True)


# --- compare ---


def _content(entry: Any) -> tuple[Any, ...]:
    """What tells two entries' content apart: the digest, and for an external file (no digest when added
    without reading it) its source, size and ETag; mode and mtime are not content."""
    return (entry.digest, entry.size, entry.url, entry.etag)


@click.command(cls=Command)
@click.option("--source", metavar="ID", help="The version to compare from (required).")
@click.option("--target", metavar="ID", help="The version to compare with it (required).")
@click.option("--verbose", is_flag=True, help="List each added, modified and removed file.")
@_json
def compare(source: str | None, target: str | None, verbose: bool, as_json: bool) -> None:
    """Show the files added, modified and removed from version SOURCE to version TARGET.

    Any two versions of any datasets, drafts too; a file is modified when its
    content differs (not its mode or time).
    """
    # checked here, not by click: its message for a missing option is a usage block, not one line
    missing = [f"--{k}" for k, v in (("source", source), ("target", target)) if not v]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}; see `mountfs compare --help`")
    src, dst = Dataset.get(dataset_id=str(source)), Dataset.get(dataset_id=str(target))
    old, new = src.file_entries_dict, dst.file_entries_dict
    added = sorted(p for p in new if p not in old)
    modified = sorted(p for p in new if p in old and _content(new[p]) != _content(old[p]))
    removed = sorted(p for p in old if p not in new)
    if as_json:
        echo_json({"source": src.id, "target": dst.id, "added": added, "modified": modified, "removed": removed})
        return
    if verbose:
        for kind, paths in (("added", added), ("modified", modified), ("removed", removed)):
            for p in paths:
                click.echo(f"{kind}\t{printable(p)}")
    unchanged = len(new) - len(added) - len(modified)
    click.echo(f"{describe(src)} -> {describe(dst)}: {len(added)} added, {len(modified)} modified, "
               f"{len(removed)} removed, {unchanged} unchanged", err=verbose)


# --- tree ---


def _node(rec: Any) -> dict[str, Any]:
    """A lineage node's details; ``rec`` None is a parent deleted since (still named by its children)."""
    if rec is None:
        return {"project": None, "name": None, "version": None, "status": "deleted"}
    return {"project": rec.project, "name": rec.name, "version": rec.version, "status": rec.status}


def _label(node_id: str, node: dict[str, Any]) -> str:
    if node["project"] is None:
        return f"? ({node_id})"
    return printable(f"{node['project']}/{node['name']} {node['version']} ({node_id})")


@click.command(cls=Command)
@dataset_selector
@_json
def tree(sel: Selector, as_json: bool) -> None:
    """Show the lineage of a version: its parents, their parents, ... as an indented tree.

    A version reached along several paths is shown once, then as "(see above)".
    --json prints {"id", "graph": {id: [parent ids]}, "nodes": {id: details}}.
    """
    ds = resolve(sel)
    graph = ds.get_dependency_graph()
    catalog = current().catalog
    ids = set(graph) | {p for parents in graph.values() for p in parents}
    # the graph's keys are the versions still catalogued; read each record once for its details
    nodes = {
        i: _node(ds.record if i == ds.id else catalog.get_or_none(i) if i in graph else None) for i in sorted(ids)
    }
    if as_json:
        echo_json({"id": ds.id, "graph": graph, "nodes": nodes})
        return
    shown: set[str] = set()
    click.echo(f"{_label(ds.id, nodes[ds.id])} {nodes[ds.id]['status']}")
    shown.add(ds.id)
    # depth first with an explicit stack (a deep lineage must not hit the recursion limit):
    # (node id, the prefix its line starts with, the prefix its children's lines continue with)
    stack: list[tuple[str, str, str]] = []

    def push_parents(node_id: str, indent: str) -> None:
        parents = graph.get(node_id, [])
        for i, parent in reversed(list(enumerate(parents))):
            last = i == len(parents) - 1
            branch, rest = ("└── ", "    ") if last else ("├── ", "│   ")
            stack.append((parent, indent + branch, indent + rest))

    push_parents(ds.id, "")
    while stack:
        node_id, line_prefix, child_prefix = stack.pop()
        node = nodes[node_id]
        if node_id in shown:
            click.echo(f"{line_prefix}{_label(node_id, node)} (see above)")
            continue
        shown.add(node_id)
        click.echo(f"{line_prefix}{_label(node_id, node)} {node['status']}")
        push_parents(node_id, child_prefix)
