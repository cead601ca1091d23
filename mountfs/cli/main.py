"""The ``mountfs`` group: global options and the one place exceptions become exit codes."""

from __future__ import annotations

import traceback
from typing import Any, NoReturn, Sequence

import click

from .. import __version__, session
from ..config import Config
from ..errors import ConfigError, MountfsError
from . import browse, datasets, gc, mounts, moving, writable
from .common import CliState, logging_to_stderr

#: other names a command answers to (clearml-data says ``close``, the SDK ``finalize``)
ALIASES = {"finalize": "close"}


class MountfsGroup(click.Group):
    """A group that resolves aliases and turns errors into one line and an exit code."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        with logging_to_stderr(debug):
            try:
                return super().invoke(ctx)
            except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, BrokenPipeError):
                raise  # click reports these itself
            except MountfsError as exc:
                _fail(ctx, str(exc), exc.exit_code, debug)
            except OSError as exc:
                _fail(ctx, _os_message(exc), 1, debug)
            except Exception as exc:  # noqa: BLE001 - the CLI must never end in a bare traceback
                hint = "" if debug else " (rerun with --debug for the traceback)"
                _fail(ctx, f"unexpected {type(exc).__name__}: {exc}{hint}", 1, debug)


def _os_message(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _fail(ctx: click.Context, message: str, code: int, debug: bool) -> NoReturn:
    if debug:
        click.echo(traceback.format_exc().rstrip(), err=True)
    click.echo(f"mountfs: error: {' '.join(message.split())}", err=True)
    ctx.exit(code)


@click.group("mountfs", cls=MountfsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--storage", metavar="URL",
    help="Store holding the catalog: a folder, s3://, gs:// or azure:// URL (default: $MOUNTFS_STORE, then the config file).",
)
@click.option("--debug", is_flag=True, help="Log at DEBUG level and show tracebacks of errors.")
@click.version_option(__version__, "--version", prog_name="mountfs", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, storage: str | None, debug: bool) -> None:
    """Version datasets like ClearML Data; every version is also a plain directory.

    \b
    Build a version:  create -> add/remove -> upload -> close -> publish (or: sync a folder)
    Read versions:    search, info, list, get, verify, compare, tree (set-description: any version)
    Whole datasets:   rename, move, delete
    Mount versions:   mount, umount, status, warmup, cache, daemon run (mountfsd)
    """
    # flags > environment > config file > defaults, resolved once for the command; the SDK the
    # commands call finds it as the process's configuration (session.current()), and the
    # previous one comes back when the command ends
    try:
        cfg = Config.load(overrides={"store": storage})
    except ConfigError:
        # a broken config file must not hide a command's --help: a command that needs the
        # configuration resolves it again (session.current()) and reports the same one line
        ctx.obj = CliState(debug=debug)
        return
    ctx.obj = CliState(debug=debug, config=cfg)
    ctx.with_resource(session.use(cfg))


for _cmd in (
    datasets.create, datasets.add, datasets.remove, datasets.upload, datasets.close, datasets.publish, datasets.squash,
    datasets.sync, datasets.set_description,
    moving.rename, moving.move, moving.delete,
    gc.gc,
    browse.search, browse.info, browse.list_files, browse.get, browse.verify, browse.compare, browse.tree,
    mounts.mount, mounts.umount, mounts.status, mounts.warmup, mounts.cache, mounts.daemon,
    writable.diff,
):
    cli.add_command(_cmd)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``mountfs = "mountfs.cli:main"``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="mountfs")
