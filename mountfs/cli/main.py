"""The ``mountfs`` group: global options and the one place exceptions become exit codes."""

from __future__ import annotations

import traceback
from typing import Any, NoReturn, Sequence

import click

from .. import __version__, session
from ..config import Config
from ..errors import ConfigError, MountfsError
from . import browse, datasets, gc, mounts, moving, output, show, ui, writable
from .common import CliState, logging_to_stderr

#: other names a command answers to (clearml-data says ``close``, the SDK ``finalize``)
ALIASES = {"finalize": "close"}


class MountfsGroup(click.Group):
    """A group that resolves aliases and turns errors into one line and an exit code."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.UsageError as exc:  # the group's own options: `mountfs --bogus`
            _usage_error(ctx, exc)

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        with logging_to_stderr(debug):
            try:
                return super().invoke(ctx)
            except click.exceptions.UsageError as exc:
                _usage_error(ctx, exc)
            except click.exceptions.ClickException as exc:
                _fail(ctx, exc.format_message(), exc.exit_code, debug)
            except (click.exceptions.Exit, click.exceptions.Abort, BrokenPipeError):
                raise  # click reports these itself
            except MountfsError as exc:
                _fail(ctx, output.cli_words(str(exc), ctx.invoked_subcommand), exc.exit_code, debug)
            except OSError as exc:
                _fail(ctx, _os_message(exc), 1, debug)
            except Exception as exc:  # noqa: BLE001 - the CLI must never end in a bare traceback
                hint = "" if debug else " (rerun with --debug for the traceback)"
                _fail(ctx, f"unexpected {type(exc).__name__}: {exc}{hint}", 1, debug)


def _os_message(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _usage_error(ctx: click.Context, exc: click.exceptions.UsageError) -> NoReturn:
    """click's usage errors as one line too, naming the help to read: not click's usage block of four."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        raise exc  # `mountfs` alone: the help is the answer
    where = (exc.ctx or ctx).command_path
    message = " ".join(exc.format_message().split()).rstrip(".")
    click.echo(f"mountfs: error: {message} (see `{where} --help`)", err=True)
    ctx.exit(exc.exit_code)


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
    Read versions:    search, info, show, list, get, verify, compare, tree (set-description: any version)
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
    # a command reading a store that is not there says so (a typo in MOUNTFS_STORE must not read as
    # "no datasets"); the commands that make a dataset start one, and it is said once
    ctx.with_resource(session.use(cfg, missing_store_is_error=True, on_store_created=_say_created))


def _say_created(url: str) -> None:
    click.echo(f"mountfs: created a new mountfs store at {url}", err=True)


for _cmd in (
    datasets.create, datasets.add, datasets.remove, datasets.upload, datasets.close, datasets.publish, datasets.squash,
    datasets.sync, datasets.set_description,
    moving.rename, moving.move, moving.delete,
    gc.gc,
    browse.search, browse.info, show.show, browse.list_files, browse.get, browse.verify, browse.compare, browse.tree,
    mounts.mount, mounts.umount, mounts.status, mounts.warmup, mounts.cache, mounts.daemon,
    writable.diff,
    ui.ui,
):
    cli.add_command(_cmd)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``mountfs = "mountfs.cli:main"``).

    A closed stdout or stderr (``mountfs ... | head -1``) drops the output nobody reads; the command
    still does all it was asked and exits with its usual status (``output.pipe_safe_streams``).
    """
    with output.pipe_safe_streams():
        cli.main(args=list(argv) if argv is not None else None, prog_name="mountfs")
