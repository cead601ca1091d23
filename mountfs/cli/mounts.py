"""Commands around the daemon: mount, umount, status, warmup, cache, daemon run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import click

from ..daemon import control, mounts
from ..daemon.main import serve
from ..errors import MountfsError, NotFound, UsageError
from ..session import current
from .common import Selector, dataset_selector, resolve, selector_from, show_progress
from .output import counted, echo_json, echo_table, human_size

def _run_dir() -> str:
    # commands that only talk to daemons must work when the store is unreachable: no session
    from ..config import process_config

    return process_config().run_dir


@click.command("mount")
@click.argument("args", nargs=-1, required=True, metavar="[DATASET] DIR")
@dataset_selector
@click.option("--writable", is_flag=True,
              help="Mount a writable copy: of a finalized version, a new draft child of it; of a draft, that draft.")
@click.option("--foreground", is_flag=True, help="Stay in the foreground (logs to stderr) instead of detaching.")
@click.option("--nonempty", is_flag=True, help="Mount even if DIR has files in it (hidden while mounted).")
@click.pass_context
def mount(ctx: click.Context, args: tuple[str, ...], sel: Selector, writable: bool, foreground: bool,
          nonempty: bool) -> None:
    """Mount one finalized version read-only at DIR, or a writable copy (--writable).

    DATASET is an id or project/name[/version]; or name it with --id or
    --project/--name/--version. The daemon detaches; `mountfs umount DIR` stops it.
    A writable copy becomes a new version with `mountfs close DIR`.

    DIR must be an empty folder (or pass --nonempty); a missing DIR is created
    if its parent exists, and removed again at unmount.
    """
    if len(args) > 2:
        raise UsageError("give at most DATASET and DIR")
    spec, target = (args[0], args[1]) if len(args) == 2 else (None, args[0])
    ds = resolve(selector_from(spec, sel), only_completed=not writable)
    if not writable and not ds.is_final():
        raise UsageError(f"dataset {ds.id} is a draft; mount it with --writable, or finalize it first")
    mountpoint = os.path.realpath(target)
    if not mounts.mounted_fuse(mountpoint):  # checked before a writable mount makes a draft
        mounts.check_mountpoint(mountpoint, nonempty)
    if writable:
        ds = writable_draft(ds)
    if start_daemon(ctx, mountpoint, ds.id, writable, foreground, nonempty):
        click.echo(f"created mountpoint {mountpoint} (removed again at `mountfs umount`)", err=True)
    if writable:
        click.echo(f"mounted a writable copy of {ds.project}/{ds.name} {ds.version} ({ds.id}) at {mountpoint}; "
                   f"`mountfs close {mountpoint}` makes it a version")
    else:
        click.echo(f"mounted {ds.project}/{ds.name} {ds.version} ({ds.id}) at {mountpoint}")


def writable_draft(ds: Any) -> Any:
    """The draft a writable mount of ``ds`` serves: a new child of a finalized version, or the draft itself
    (uploaded first, so that its files read through the cache like the others)."""
    from ..cache import upper
    from ..sdk import Dataset

    if ds.is_final():
        child = Dataset.create(dataset_name=ds.name, dataset_project=ds.project, parent_datasets=[ds.id])
        click.echo(f"created draft {child.project}/{child.name} {child.version} ({child.id}), child of {ds.version}",
                   err=True)
        return child
    if upper.busy(current().config.cache_dir, ds.id):
        raise UsageError(f"draft {ds.id} is already mounted writable; see `mountfs status`")
    if ds.is_dirty():
        ds.upload(show_progress=show_progress())
    return ds


def start_daemon(ctx: click.Context, mountpoint: str, dataset_id: str, writable: bool, foreground: bool,
                 nonempty: bool = False) -> bool:
    """Run the daemon for one mount (detached unless ``foreground``) and wait until the mount is up.

    Returns whether the daemon created the mountpoint (a detached one; in the
    foreground the daemon's log says so itself)."""
    sess = current()
    if foreground:
        if mounts.mounted_fuse(mountpoint) and not mounts.is_stale(mountpoint):
            raise UsageError(f"{mountpoint} is already mounted; run `mountfs umount {mountpoint}` first")
        serve(sess, mountpoint, dataset_id, ctx.obj.debug, writable, nonempty)
        return False
    return mounts.start(sess.config.run_dir, sess.catalog_url, mountpoint, dataset_id, writable, ctx.obj.debug,
                        nonempty)


@click.command("umount")
@click.argument("mountpoint", type=click.Path())
@click.option("--timeout", default=15.0, show_default=True, help="Seconds to wait for the daemon to stop.")
def umount(mountpoint: str, timeout: float) -> None:
    """Unmount DIR and stop its daemon; cleans up after a daemon that was killed.

    A writable copy keeps its changes: `mountfs mount --writable --id <draft> DIR` shows them again."""
    stop_mount(mountpoint, timeout)
    click.echo(f"unmounted {os.path.realpath(mountpoint)}")


def stop_mount(mountpoint: str, timeout: float = 15.0) -> None:
    """Stop the daemon serving ``mountpoint`` and make sure nothing is mounted there."""
    mountpoint = os.path.realpath(mountpoint)
    mounts.stop(_run_dir(), mountpoint, timeout)


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Mounts served by daemons of this user, with their cache and fetch figures."""
    rows = []
    for info in mounts.all_runtime(_run_dir()):
        try:
            rows.append(control.request(info["socket"], {"op": "status"}, timeout=3))
        except (OSError, ValueError, KeyError):
            rows.append({"mountpoint": info.get("mountpoint", "?"), "pid": info.get("pid"), "dead": True})
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no mounts")
        return
    table = []
    for r in rows:
        if r.get("dead"):
            table.append([r["mountpoint"], str(r.get("pid", "?")), "dead: run `mountfs umount`", "", "", "", ""])
            continue
        cache = r["cache"]
        reads = max(1, r["reads"])
        table.append([
            r["mountpoint"], str(r["pid"]), _serves(r) + _pending(r.get("writable")),
            f"{100 * r['read_hits'] / reads:.0f}%", human_size(r["bytes_fetched"]),
            f"{human_size(cache['size'])} / {human_size(cache['max_size'])}, {r['inflight_fetches']} in flight"
            + (f", {cache['corrupt']} damaged (fetched again)" if cache.get("corrupt") else ""),
            # reads that gave up waiting for the store at their deadline (EIO)
            str(r.get("read_timeouts", 0)),
        ])
    echo_table(["MOUNTPOINT", "PID", "SERVES", "HIT RATE", "FETCHED", "CACHE", "READ TIMEOUTS"], table)


def _serves(r: dict[str, Any]) -> str:
    """What a mount serves, for the SERVES column: ``project/name version (id)``, or ``catalog``."""
    if not r.get("dataset"):
        return "catalog"
    if not r.get("name"):  # a daemon from before the reply named it
        return str(r["dataset"])
    where = f"{r['project']}/{r['name']}" if r.get("project") else str(r["name"])
    return f"{where} {r['version']} ({r['dataset']})"


def _pending(w: dict[str, Any] | None) -> str:
    """A writable copy's pending changes, for the SERVES column."""
    if not w:
        return ""
    return f" (writable: {w['changed_nodes']} changed, {human_size(w['upper_bytes'])} held)"


@click.command("warmup")
@click.argument("path", type=click.Path(exists=True))
def warmup(path: str) -> None:
    """Fetch every file under PATH (inside a mount) into the cache ahead of a job."""
    path = os.path.realpath(path)
    best = None
    for info in mounts.all_runtime(_run_dir()):
        mp = info.get("mountpoint", "")
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and (best is None or len(mp) > len(best["mountpoint"])):
            best = info
    if best is None:
        raise NotFound(f"{path} is not inside a mountfs mount of this user; see `mountfs status`")
    rel = os.path.relpath(path, best["mountpoint"])
    bar = None
    if show_progress():
        from tqdm import tqdm

        bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc="warmup")

    def progress(msg: dict[str, Any]) -> None:
        if bar is not None:
            bar.total = msg.get("total", bar.total)
            bar.n = msg.get("progress", 0)
            bar.refresh()

    try:
        reply = control.request(best["socket"], {"op": "warmup", "path": "" if rel == "." else rel},
                                timeout=3600, on_progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if not reply.get("ok"):
        raise MountfsError(reply.get("error", "warmup failed"))
    click.echo(f"warmed up {counted(reply['files'], 'file')}, {human_size(reply['bytes'])} under {path}")


@click.group("cache")
def cache() -> None:
    """The local chunk cache ($MOUNTFS_CACHE_DIR, capped by $MOUNTFS_CACHE_SIZE)."""


@cache.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cache_info(as_json: bool) -> None:
    """Size, cap and number of cached chunks."""
    sess = current()
    stats = sess.cache.stats()
    if as_json:
        echo_json(dict(stats, directory=sess.config.cache_dir))
    else:
        click.echo(f"{sess.config.cache_dir}: {human_size(stats['size'])} of {human_size(stats['max_size'])}, "
                   f"{stats['count']} chunks")


@cache.command("clear")
def cache_clear() -> None:
    """Remove every cached chunk and file table (mounts fetch again on demand).

    The file tables of versions a running mount uses are kept: its lookups and
    listings read them, and they are not fetched again on demand."""
    from ..cache.filetable import FileTables

    sess = current()
    sess.cache.clear()
    tables = FileTables(sess.config.cache_dir)
    try:
        dropped = tables.clear()
        kept = len(tables.imported())
    finally:
        tables.close()
    click.echo(f"cleared {sess.config.cache_dir}: every cached chunk, {counted(dropped, 'file table')}"
               + (f"; kept {counted(kept, 'file table')} in use by running mounts" if kept else ""))


@cache.command("evict")
@click.option("--to", "target", metavar="SIZE", help="Evict least recently used chunks down to SIZE (default: the cap).")
def cache_evict(target: str | None) -> None:
    """Evict least recently used chunks."""
    from ..config import parse_size

    sess = current()
    freed = sess.cache.evict(parse_size(target) if target else None)
    click.echo(f"evicted {human_size(freed)}")


@click.group("daemon")
def daemon() -> None:
    """The catalog daemon (also installed as `mountfsd`)."""


@daemon.command("run")
@click.option("--mountpoint", metavar="DIR", help="Where to mount the catalog (default: config, /datasets).")
@click.option("--nonempty", is_flag=True, help="Mount even if DIR has files in it (hidden while mounted).")
@click.pass_context
def daemon_run(ctx: click.Context, mountpoint: str | None, nonempty: bool) -> None:
    """Mount the whole catalog at DIR in the foreground: <project>/<name>/<version>/..."""
    serve(current(), mountpoint, None, ctx.obj.debug, nonempty=nonempty)
