"""Commands for writable copies: what changed (`diff`) and turning the copy into a version (`close`)."""

from __future__ import annotations

import os
from typing import Any

import click

from ..daemon import control, mounts
from ..errors import MountfsError, NotFound, UsageError
from .mounts import _run_dir, start_daemon, stop_mount
from .output import echo_json, printable

#: a close uploads what changed: as long as that takes
CLOSE_TIMEOUT = 24 * 3600.0


def _ask(mountpoint: str, op: str, timeout: float) -> dict[str, Any]:
    mountpoint = os.path.realpath(mountpoint)
    files = mounts.RuntimeFiles(_run_dir(), mountpoint)
    if not os.path.exists(files.socket):
        raise NotFound(f"no mountfs daemon serves {mountpoint}; see `mountfs status`")
    try:
        reply = control.request(files.socket, {"op": op}, timeout=timeout)
    except (OSError, ValueError) as exc:
        raise MountfsError(f"the daemon of {mountpoint} did not answer ({exc}); see `mountfs status`") from None
    if not reply.get("ok"):
        raise UsageError(str(reply.get("error", f"{op} failed")))
    return reply


def _show(reply: dict[str, Any]) -> None:
    for key, mark in (("added", "A"), ("modified", "M"), ("removed", "D"), ("skipped", "?")):
        for path in reply.get(key, []):
            click.echo(f"{mark} {printable(path)}")


@click.command("diff")
@click.argument("mountpoint", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def diff(mountpoint: str, as_json: bool) -> None:
    """What a writable copy changed against the files it started from, like `git status`.

    A added, M modified, D removed, ? left out at close (symbolic links, FIFOs,
    sockets and devices: a version holds regular files only).
    """
    reply = _ask(mountpoint, "diff", 600)
    reply.pop("ok", None)
    if as_json:
        echo_json(reply)
        return
    _show(reply)
    if not any(reply.get(k) for k in ("added", "modified", "removed", "skipped")):
        click.echo("no changes")


def close_copy(ctx: click.Context, mountpoint: str, no_remount: bool) -> None:
    """`mountfs close DIR`: turn the writable copy at DIR into a new version (upload only what changed,
    finalize), then mount that version read-only at DIR.

    Refused while files are open for writing in the copy. If it fails or is
    interrupted, the copy is as it was: run it again.
    """
    mountpoint = os.path.realpath(mountpoint)
    if not os.path.isdir(mountpoint):
        raise UsageError(f"{mountpoint} is not a folder: give the mountpoint of a writable copy, or --id <draft>")
    reply = _ask(mountpoint, "close", CLOSE_TIMEOUT)
    click.echo(f"closed {reply['project']}/{reply['name']} {reply['version']} ({reply['id']}): "
               f"{len(reply['added'])} added, {len(reply['modified'])} modified, {len(reply['removed'])} removed")
    if reply["skipped"]:
        click.echo(f"left out (a version holds regular files only): {', '.join(map(printable, reply['skipped'][:10]))}"
                   + (" ..." if len(reply["skipped"]) > 10 else ""), err=True)
    stop_mount(mountpoint)
    if not no_remount:
        start_daemon(ctx, mountpoint, reply["id"], writable=False, foreground=False)
        click.echo(f"mounted {reply['project']}/{reply['name']} {reply['version']} read-only at {mountpoint}")
