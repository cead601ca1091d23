"""Commands that build a version: create, add, remove, upload, close (finalize), publish."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, TypeVar

import click

from ..cache import upper
from ..catalog import names
from ..errors import MountfsError, StateError, UsageError
from ..sdk import Dataset
from ..session import current
from . import writable
from .common import (
    Command, ListOption, Selector, as_list, dataset_selector, describe, id_option, open_draft, remember,
    remembered_draft, resolve, show_progress,
)
from .output import counted, human_size, printable

log = logging.getLogger(__name__)

_workers = click.option("--max-workers", type=click.IntRange(min=1), metavar="N", help="Parallel threads (default: logical cores).")
_verbose = click.option("--verbose", is_flag=True, help="Print each file and more detail on stderr.")

F = TypeVar("F", bound=Callable[..., Any])


def _chunk_size(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    """``--chunk-size``: a pack size in MiB, or clearml-data's -1 (one archive), taken as the default."""
    if value == -1:
        log.debug("--chunk-size -1 ignored: chunks are content-defined; packs get the default size")
        return None
    if value is not None and value < 1:
        # a mountfs error, not click's BadParameter: one line, not a usage block
        raise UsageError(f"--chunk-size {value} is not a size in MiB: give 1 or more, or -1 for the default")
    return value


def _upload_options(func: F) -> F:
    for option in reversed([
        click.option("--storage", metavar="URL", help="Upload to this store instead of the one given at create."),
        click.option("--chunk-size", type=int, callback=_chunk_size, metavar="MB",
                     help="Target pack size in MiB (default 32); -1 (clearml-data: no chunking) means the default, "
                          "as files are always cut into content-defined chunks."),
        _workers,
        click.option("--no-compression", is_flag=True, help="Store chunks raw instead of zstd where it pays."),
        _verbose,
    ]):
        func = option(func)
    return func


def _upload(ds: Dataset, storage: str | None, chunk_size: int | None, max_workers: int | None,
            no_compression: bool, verbose: bool) -> None:
    ds.upload(
        show_progress=show_progress(), verbose=verbose, output_url=storage,
        compression=False if no_compression else None, chunk_size=chunk_size, max_workers=max_workers,
    )


@click.command(cls=Command)
@click.option("--project", metavar="PROJECT", help="Project, may be nested (a/b); default: the last parent's.")
@click.option("--name", metavar="NAME", help="Dataset name; default: the last parent's.")
@click.option("--version", metavar="VERSION", help="Semantic version, e.g. 1.2 (default: the latest + 1, or 1.0.0).")
@click.option("--parents", cls=ListOption, metavar="ID...", help="Finalized versions to start from, merged in order.")
@click.option("--tags", cls=ListOption, metavar="TAG...", help="Tags to find the dataset by.")
@click.option("--storage", "--output-uri", "output_uri", metavar="URL",
              help="Store for this version's data (default: the catalog's store).")
@click.option("--description", metavar="TEXT", help="Free text.")
def create(
    project: str | None, name: str | None, version: str | None, parents: tuple[str, ...], tags: tuple[str, ...],
    output_uri: str | None, description: str | None,
) -> None:
    """Create a draft version and print its id.

    The draft is remembered in this folder, so add, remove, upload and close
    can follow without --id.
    """
    if not parents and not (project and name):
        raise UsageError("create needs --project and --name (or --parents to inherit them)")
    ds = Dataset.create(
        dataset_name=name, dataset_project=project, dataset_tags=as_list(tags), parent_datasets=as_list(parents),
        dataset_version=version, output_uri=output_uri, description=description,
    )
    click.echo(ds.id)
    try:
        path = remember(ds)
        note = f"; remembered in {path}"
    except OSError as exc:
        note = f"; could not remember it in this folder ({exc.strerror}): pass --id {ds.id} from now on"
    click.echo(f"created draft {describe(ds)}{note}", err=True)


@click.command(cls=Command)
@id_option
@click.option("--files", cls=ListOption, metavar="PATH...", help="Files or folders to add.")
@click.option("--links", cls=ListOption, metavar="URL...",
              help="External files or folders that stay where they are (s3://, gs://, azure://, http(s)://, file://).")
@click.option("--wildcard", cls=ListOption, metavar="PATTERN...", help="Only files whose name or relative path matches.")
@click.option("--dataset-folder", metavar="FOLDER", help="Folder inside the dataset to put the files under.")
@click.option("--non-recursive", is_flag=True, help="Do not descend into sub-folders.")
@_workers
@_verbose
def add(
    dataset_id: str | None, files: tuple[str, ...], links: tuple[str, ...], wildcard: tuple[str, ...],
    dataset_folder: str | None, non_recursive: bool, max_workers: int | None, verbose: bool,
) -> None:
    """Add files or folders (--files) or external URLs (--links) to a draft.

    A folder's content goes to the dataset root, or under --dataset-folder.
    """
    if not files and not links:
        raise UsageError("give --files PATH... and/or --links URL...")
    if dataset_folder is not None:  # checked here to name the option; the SDK names its parameter
        names.check_dataset_path(dataset_folder, "--dataset-folder")
    ds = open_draft(dataset_id, "add files")
    # check every path first, so a typo in the last one leaves the draft untouched
    for path in files:
        if not os.path.exists(os.path.expanduser(path)):
            raise UsageError(f"cannot add {path}: no such file or directory")
    changed = 0
    if links:
        changed += ds.add_external_files(
            list(links), wildcard=as_list(wildcard), dataset_path=dataset_folder, recursive=not non_recursive,
            verbose=verbose, max_workers=max_workers,
        )
    for path in files:
        changed += ds.add_files(
            path, wildcard=as_list(wildcard), dataset_path=dataset_folder, recursive=not non_recursive,
            verbose=verbose, max_workers=max_workers, show_progress=show_progress(),
        )
    click.echo(f"{counted(changed, 'file')} added or changed in {describe(ds)}")


@click.command(cls=Command)
@id_option
@click.option("--files", cls=ListOption, required=True, metavar="PATTERN...",
              help="Paths, folders or wildcards inside the dataset.")
@click.option("--non-recursive", is_flag=True, help="Do not match inside sub-folders.")
@_verbose
def remove(dataset_id: str | None, files: tuple[str, ...], non_recursive: bool, verbose: bool) -> None:
    """Remove files from a draft by path, folder or wildcard."""
    for pattern in files:  # checked here to name the option; the SDK names its parameter
        if "://" not in pattern:
            names.check_dataset_path(pattern, "--files")
    ds = open_draft(dataset_id, "remove files")
    removed = sum(ds.remove_files(p, recursive=not non_recursive, verbose=verbose) for p in files)
    click.echo(f"{counted(removed, 'file')} removed from {describe(ds)}")


@click.command(cls=Command)
@id_option
@_upload_options
def upload(
    dataset_id: str | None, storage: str | None, chunk_size: int | None, max_workers: int | None,
    no_compression: bool, verbose: bool,
) -> None:
    """Upload a draft's new files.

    Chunks the store already holds, from any dataset, are not sent again.
    """
    ds = open_draft(dataset_id, "upload")
    _upload(ds, storage, chunk_size, max_workers, no_compression, verbose)
    click.echo(f"uploaded {describe(ds)}")


@click.command(cls=Command)
@click.argument("mountpoint", required=False, type=click.Path())
@id_option
@click.option("--no-upload", "--disable-upload", "no_upload", is_flag=True,
              help="Refuse instead of uploading files that are not uploaded yet.")
@click.option("--no-remount", is_flag=True, help="With DIR: leave it unmounted instead of mounting the new version.")
@click.option("--discard-copy", is_flag=True,
              help="Drop the changes of the draft's writable copy (it must be unmounted) instead of closing.")
@_upload_options
@click.pass_context
def close(
    ctx: click.Context, mountpoint: str | None, dataset_id: str | None, no_upload: bool, no_remount: bool,
    discard_copy: bool, storage: str | None, chunk_size: int | None, max_workers: int | None,
    no_compression: bool, verbose: bool,
) -> None:
    """Finalize a draft; it never changes after this (alias: finalize).

    Files not uploaded yet are uploaded first, unless --no-upload.  With DIR,
    the writable copy mounted there becomes the new version (only what
    changed is uploaded) and DIR shows it read-only.
    """
    if mountpoint is not None:
        if dataset_id or discard_copy:
            raise UsageError("give either DIR (a writable copy) or --id, not both")
        writable.close_copy(ctx, mountpoint, no_remount)
        return
    ds = remembered_draft(dataset_id)
    if discard_copy:
        upper.discard(current().config.cache_dir, ds.id)
        click.echo(f"dropped the writable copy's changes of {describe(ds)}")
        return
    if ds.is_final():
        click.echo(f"{describe(ds)} is already finalized")
        return
    if no_upload:
        if ds.is_dirty():
            raise StateError(
                f"dataset {ds.id} has files that are not uploaded; run `mountfs upload` first or close without --no-upload"
            )
    elif storage or ds.is_dirty():
        _upload(ds, storage, chunk_size, max_workers, no_compression, verbose)
    # still remembered (as clearml-data keeps its last dataset): `info` and `list` show it without --id,
    # and `add` says it is finalized
    ds.finalize(verbose=verbose)
    rec = ds.record
    click.echo(f"finalized {describe(ds)}: {counted(rec.file_count, 'file')}, {human_size(rec.total_size)}")


@click.command(cls=Command)
@dataset_selector
def publish(sel: Selector) -> None:
    """Mark a finalized version as published."""
    ds = resolve(sel, only_completed=True)
    ds.publish()
    click.echo(f"published {describe(ds)}")


@click.command(cls=Command)
@click.option("--name", required=True, help="Name of the new, squashed dataset.")
@click.option("--ids", cls=ListOption, required=True, metavar="ID...", help="Finalized versions to merge, in order.")
@click.option("--storage", metavar="URL", help="Store for the new version's data (default: the first one's).")
@_verbose
def squash(name: str, ids: tuple[str, ...], storage: str | None, verbose: bool) -> None:
    """Merge finalized versions into one new version with no parents (later ids override earlier ones)."""
    ds = Dataset.squash(name, dataset_ids=list(ids), output_url=storage)
    click.echo(ds.id)
    if verbose:
        # each file with the version it came from: the last of --ids that has it
        origin: dict[str, str] = {}
        for source in ids:
            origin.update(dict.fromkeys(Dataset.get(dataset_id=source).file_entries_dict, source))
        for path in sorted(ds.file_entries_dict):
            click.echo(f"{origin.get(path, '-')}\t{printable(path)}", err=True)
    click.echo(f"squashed {len(ids)} version{'' if len(ids) == 1 else 's'} into {describe(ds)}", err=True)


# --- sync ---


@click.command(cls=Command)
@click.option("--folder", required=True, metavar="FOLDER", help="Local folder the dataset should match (recursively).")
@click.option("--dataset-folder", metavar="FOLDER", help="Folder inside the dataset it stands for (default: the root).")
@click.option("--id", "dataset_id", metavar="ID",
              help="Sync into this draft instead of creating one (default without --parents/--project/--name: "
                   "the draft remembered here).")
@click.option("--parents", cls=ListOption, metavar="ID...", help="Create the new version as a child of these.")
@click.option("--project", metavar="PROJECT", help="Project of the new version (default: the last parent's).")
@click.option("--name", metavar="NAME", help="Dataset name of the new version (default: the last parent's).")
@click.option("--version", metavar="VERSION", help="Semantic version of the new version (default: the latest + 1).")
@click.option("--tags", cls=ListOption, metavar="TAG...", help="Tags of the new version.")
@click.option("--storage", metavar="URL", help="Store for the version's data (default: the catalog's store).")
@click.option("--skip-close", is_flag=True, help="Leave the draft open (remembered here) instead of uploading and closing.")
@click.option("--chunk-size", type=int, metavar="MB",
              help="Accepted for clearml-data; ignored: mountfs cuts files into content-defined chunks.")
@click.option("--verify", is_flag=True, help="Hash every file instead of trusting unchanged sizes and mtimes.")
@_workers
@_verbose
def sync(
    folder: str, dataset_folder: str | None, dataset_id: str | None, parents: tuple[str, ...], project: str | None,
    name: str | None, version: str | None, tags: tuple[str, ...], storage: str | None, skip_close: bool,
    chunk_size: int | None, verify: bool, max_workers: int | None, verbose: bool,
) -> None:
    """Make a version match a local folder: add new files, re-add changed ones, remove deleted ones.

    With --parents, or --project and --name, a new draft is created (a child
    of --parents), synced, uploaded and closed; when nothing changed against
    the parents it is deleted again and no version is made (with --skip-close
    the draft stays open either way).  Otherwise the draft --id (or the one
    remembered here) is synced.  Unchanged files (same size and mtime) are
    not read.
    """
    if chunk_size is not None:
        log.debug("--chunk-size %d ignored: chunks are content-defined", chunk_size)
    path = os.path.expanduser(folder)
    # checked before a draft is created, so a typo creates nothing
    if not os.path.isdir(path):
        what = "it is not a folder" if os.path.exists(path) else "no such folder"
        raise UsageError(f"cannot sync {folder}: {what}; give the folder the dataset should match with --folder")
    names.check_dataset_path(dataset_folder or "")  # also before a draft (or a new store) is made
    creating = bool(parents or (project and name))
    if not creating and (project or name or version or tags):
        raise UsageError("sync creates a version with --project and --name (or --parents); "
                         "to sync into an existing draft give only --id")
    if creating:
        if dataset_id:
            raise UsageError("give either --id (an existing draft) or --parents/--project/--name (a new one), not both")
        ds = Dataset.create(
            dataset_name=name, dataset_project=project, dataset_tags=as_list(tags), parent_datasets=as_list(parents),
            dataset_version=version, output_uri=storage,
        )
    else:
        ds = open_draft(dataset_id, "sync a folder")
    try:
        removed, added, modified = ds.sync_folder(
            path, dataset_path=dataset_folder, verbose=verbose, verify=verify, max_workers=max_workers,
            show_progress=show_progress(),
        )
    except BaseException:
        if creating:  # bad input found while syncing: leave no draft behind
            try:
                ds.discard_draft()
            except MountfsError as exc:  # the sync's failure is the one to report
                log.warning("could not delete the draft %s again: %s", ds.id, exc)
        raise
    if creating:  # said only now: a sync that failed leaves no draft to tell about
        click.echo(f"created draft {describe(ds)}", err=True)
    click.echo(f"synced {folder}: {removed} removed, {added} added, {modified} modified")
    if skip_close:
        _remember_open(ds)
        return
    if creating and not (removed or added or modified):
        ds.discard_draft()
        click.echo(f"no changes against {'the parent' if parents else 'an empty dataset'}: no version created "
                   f"(draft {ds.id} deleted)")
        return
    if ds.is_dirty() or (storage and not creating):
        _upload(ds, storage if not creating else None, None, max_workers, False, verbose)
    ds.finalize(verbose=verbose)  # a remembered draft stays remembered, as `close` leaves it
    rec = ds.record
    click.echo(f"finalized {describe(ds)}: {counted(rec.file_count, 'file')}, {human_size(rec.total_size)}")


def _remember_open(ds: Dataset) -> None:
    try:
        note = f"remembered in {remember(ds)}"
    except OSError as exc:
        note = f"could not remember it here ({exc.strerror}): pass --id {ds.id}"
    click.echo(f"draft {describe(ds)} left open ({note}); `mountfs close` uploads and finalizes it", err=True)


# --- set-description ---


@click.command("set-description", cls=Command)
@id_option
@click.option("--description", metavar="TEXT", help="The new description, required (\"\" clears it).")
def set_description(dataset_id: str | None, description: str | None) -> None:
    """Replace a version's description; a finalized version's too (it is not part of the content)."""
    if description is None:  # checked here: click's message for a missing option is a usage block
        raise UsageError("missing --description; see `mountfs set-description --help`")
    ds = remembered_draft(dataset_id)
    ds.set_description(description)
    click.echo(f"description of {describe(ds)} set")
