"""``mountfs gc [--dry-run] [--grace SECONDS] [--json]``: free the packs no version or draft needs any more."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Callable

import click

from ..errors import UsageError
from ..session import current, progress_bar
from ..store import gc as store_gc
from .common import Command, show_progress
from .output import echo_json


@click.command(cls=Command)
@click.option("--dry-run", is_flag=True, help="Only say what would be freed; delete nothing.")
@click.option("--grace", "grace", metavar="SECONDS", type=float, default=store_gc.GRACE_SECONDS, show_default=True,
              help="Keep unreferenced packs younger than this: uploads still in flight own them.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON only, for scripts.")
def gc(dry_run: bool, grace: float, as_json: bool) -> None:
    """Delete the packs of the store that no version's manifest and no draft names.

    Only the catalog's own store is swept.  It holds the store alone while it
    deletes: an upload or finalize running meanwhile makes it stop with an
    error naming the holder, and run again later.  Do not run it on a store
    that other catalogs also upload drafts to (see docs/FORMAT.md).
    """
    if grace < 0:
        raise UsageError(f"--grace {grace:g} is negative; give seconds >= 0")
    with ExitStack() as stack:
        def bar(total: int) -> Callable[[int], None]:
            return stack.enter_context(progress_bar(total, "deleting packs", show_progress() and not as_json))

        report = store_gc.collect(current().store(), dry_run=dry_run, grace_seconds=grace, progress=bar)
    if as_json:
        echo_json(report.to_json())
    else:
        click.echo(report.summary())
