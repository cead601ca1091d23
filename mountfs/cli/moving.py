"""Commands that change a whole dataset (every version of a project/name): rename, move; and delete.

Option names are clearml-data's: ``rename --new-name --project --name``,
``move --new-project --project --name``, ``delete --id --project --name --version --force --entire-dataset``.
"""

from __future__ import annotations

import click

from ..errors import UsageError
from ..sdk import lifecycle
from ..session import current
from . import draft
from .common import Command
from .output import printable


def _needs(**options: str | None) -> None:
    """Every option given; else one line naming the missing ones (click's own message is a usage block)."""
    missing = [f"--{k.replace('_', '-')}" for k, v in options.items() if not v]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}; see `mountfs {click.get_current_context().info_name} --help`")


def _done(verb: str, moved: int, before: str, after: str) -> None:
    click.echo(f"{verb} {printable(before)} to {printable(after)} ({moved} version{'' if moved == 1 else 's'})")


@click.command(cls=Command)
@click.option("--new-name", metavar="NAME", help="The dataset's new name.")
@click.option("--project", metavar="PROJECT", help="Project of the dataset.")
@click.option("--name", metavar="NAME", help="Current name of the dataset.")
def rename(new_name: str | None, project: str | None, name: str | None) -> None:
    """Rename a dataset: every version, drafts included (ids and versions stay).

    An existing dataset of the new name is refused before anything changes; if
    the command is interrupted, run it again to complete it.
    """
    _needs(new_name=new_name, project=project, name=name)
    assert new_name and project and name
    moved = lifecycle.rename(current(), new_name, project, name)
    _done("renamed", len(moved), f"{project}/{name}", f"{project}/{new_name}")


@click.command(cls=Command)
@click.option("--new-project", metavar="PROJECT", help="Project to move the dataset to (may be nested: a/b).")
@click.option("--project", metavar="PROJECT", help="Current project of the dataset.")
@click.option("--name", metavar="NAME", help="Name of the dataset.")
def move(new_project: str | None, project: str | None, name: str | None) -> None:
    """Move a dataset to another project: every version, drafts included (ids and versions stay).

    A dataset of that name already in the new project is refused before
    anything changes; if the command is interrupted, run it again to complete it.
    """
    _needs(new_project=new_project, project=project, name=name)
    assert new_project and project and name
    moved = lifecycle.move_to_project(current(), new_project, project, name)
    _done("moved", len(moved), f"{project}/{name}", f"{new_project}/{name}")


@click.command(cls=Command)
@click.option("--id", "dataset_id", metavar="ID", help="Id of the version to delete.")
@click.option("--project", metavar="PROJECT", help="Project of the version(s).")
@click.option("--name", metavar="NAME", help="Name of the version(s).")
@click.option("--version", metavar="VERSION", help="Only this version of project/name.")
@click.option("--force", is_flag=True, help="Delete a version that is another's parent (its children stay readable).")
@click.option("--entire-dataset", is_flag=True, help="Delete every matching version (needs --force).")
@click.option("--no-gc", is_flag=True, help="Leave the packs for the next `mountfs gc` instead of freeing them now.")
def delete(dataset_id: str | None, project: str | None, name: str | None, version: str | None, force: bool,
           entire_dataset: bool, no_gc: bool) -> None:
    """Delete a version, or with --entire-dataset --force every matching one (drafts too).

    Records and catalog pointers go at once (a running mount drops the
    versions at its next refresh); children of a deleted version stay fully
    readable.  Then `mountfs gc` frees the packs no remaining version needs,
    unless --no-gc.
    """
    sess = current()
    deleted = lifecycle.delete(sess, dataset_id, project, name, force, version, entire_dataset)
    for rec in deleted:
        draft.forget(rec.id)  # the folder's remembered dataset, if it was this one, is gone
        click.echo(f"deleted {rec.id} {printable(rec.project)}/{printable(rec.name)} {printable(rec.version)}")
    if no_gc:
        return
    report = lifecycle.collect_garbage(sess)
    # None: gc could not run now (warned on stderr); the next `mountfs gc` frees the packs
    if report is not None:
        click.echo(report.summary())
