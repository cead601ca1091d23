"""What the subcommands share: list-valued options, naming a dataset, logging, progress."""

from __future__ import annotations

import functools
import logging
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import click

from ..catalog import names
from ..catalog.names import Selector as Selector
from ..config import Config
from ..sdk import Dataset
from ..errors import MountfsError, NotFound, StateError, UsageError
from ..session import current
from . import draft


@dataclass
class CliState:
    """Shared state on ``ctx.obj``."""

    debug: bool = False
    #: the command's configuration: the group's flags over environment, file and defaults
    config: Config | None = None


# --------------------------------------------------------------- list options


class ListOption(click.Option):
    """An option taking one or more values, as ``clearml-data`` does: ``--files a b c``.

    It is a ``multiple`` option; ``Command`` rewrites ``--files a b`` to
    ``--files a --files b`` before click parses the line.  Repeating the option
    works too.  A value starting with '-' must be written ``--files=-x``.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)


class Command(click.Command):
    """A click command that understands ``ListOption``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _expand_list_options(self, args))


def _expand_list_options(cmd: click.Command, args: list[str]) -> list[str]:
    names = {n for p in cmd.params if isinstance(p, ListOption) for n in p.opts}
    if not names:
        return args
    out: list[str] = []
    taking: str | None = None  # list option whose further values are being read
    first_of: str | None = None  # list option whose first value comes next
    for i, tok in enumerate(args):
        if tok == "--":
            out.extend(args[i:])
            break
        if first_of is not None:
            out.append(tok)
            taking, first_of = first_of, None
            continue
        if taking is not None and not tok.startswith("-"):
            out.extend((taking, tok))
            continue
        taking = None
        opt = tok.split("=", 1)[0]
        if opt in names:
            if "=" in tok:
                taking = opt
            else:
                first_of = opt
        out.append(tok)
    return out


# ------------------------------------------------------------ naming a dataset


def selector_from(spec: str | None, sel: Selector) -> Selector:
    """A ``DATASET`` argument, else the options: an id (no '/'), or ``project/name[/version]``.

    A last part that is a version number is the version, else it is the name
    (a name with the shape of a version, ``3.0``, is refused at create:
    ``names.check_new_place``); ``resolve`` tries the other reading of what
    finds nothing (``_other_reading``).
    """
    if spec is None:
        return sel
    if sel.dataset_id or sel.project or sel.name or sel.version:
        raise UsageError("name the dataset either as DATASET or with --id/--project/--name/--version, not both")
    return names.parse_selector(spec)


def id_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--id``, for commands that change a draft (default: the draft remembered here)."""
    return click.option(
        "--id", "dataset_id", metavar="ID",
        help=f"Dataset id (default: the draft remembered in ./{draft.STATE_FILE} by `mountfs create`)",
    )(func)


def dataset_selector(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--id`` or ``--project/--name/--version``, handed to the command as ``sel``."""

    @functools.wraps(func)
    def wrapper(*args: Any, dataset_id: str | None, project: str | None, name: str | None,
                version: str | None, **kwargs: Any) -> Any:
        return func(*args, sel=Selector(dataset_id, project, name, version), **kwargs)

    options = [
        click.option("--id", "dataset_id", metavar="ID", help="Dataset id."),
        click.option("--project", metavar="PROJECT", help="dataset project (instead of --id)"),
        click.option("--name", metavar="NAME", help="dataset name (instead of --id)"),
        click.option("--version", metavar="VERSION", help="version (default: the latest, the highest)"),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def resolve(sel: Selector, *, only_completed: bool = False) -> Dataset:
    """The dataset ``sel`` names: by id, else the most recent match of project/name/version,
    else the draft remembered in this folder.

    ``only_completed`` applies to name lookups: "the most recent" then means the
    most recent finalized version.
    """
    if sel.dataset_id:
        if sel.project or sel.name or sel.version:
            raise UsageError("name the dataset either with --id or with --project/--name/--version, not both")
        return Dataset.get(dataset_id=sel.dataset_id)
    if sel.project or sel.name:
        try:
            return Dataset.get(
                dataset_project=sel.project, dataset_name=sel.name, dataset_version=sel.version,
                only_completed=only_completed,
            )
        except NotFound:
            other = _other_reading(sel)
            if other is None:
                raise
            try:
                return resolve(other, only_completed=only_completed)
            except NotFound:
                pass
            raise
    if sel.version:
        raise UsageError("--version needs --project and --name to say which dataset")
    return remembered_draft()


def _other_reading(sel: Selector) -> Selector | None:
    """The other way to read a ``DATASET`` argument that named nothing, if there is one.

    ``p/n/2024`` read as version 2024 of ``p/n`` may be dataset ``2024`` of
    project ``p/n`` (a plain number is a name too); ``p/n/abc`` read as dataset
    ``abc`` of ``p/n`` was meant as a version when ``p/n`` is a dataset: then the
    message is ``check_version``'s, as for ``--version abc``.
    """
    if sel.spec is None or not sel.project or not sel.name:
        return None
    if sel.version is not None:
        return names.other_reading(sel)
    if "/" in sel.project:
        project, name = sel.project.rsplit("/", 1)
        try:
            Dataset.get(dataset_project=project, dataset_name=name)
        except MountfsError:
            return None
        names.check_version(sel.name)
    return None


def remembered_draft(dataset_id: str | None = None) -> Dataset:
    """The dataset ``dataset_id``, or the draft remembered in this folder."""
    if dataset_id:
        return Dataset.get(dataset_id=dataset_id)
    state = draft.load()
    if state is None:
        raise UsageError(
            f"no dataset given and no draft remembered here (./{draft.STATE_FILE}); "
            "pass --id (or --project/--name) or run `mountfs create` in this folder first"
        )
    try:
        return Dataset.get(dataset_id=state.id)
    except NotFound:
        where = current().catalog_url
        raise NotFound(
            f"the draft remembered in ./{draft.STATE_FILE} ({state.id}, {state.project}/{state.name} "
            f"{state.version}) is not in store {where}; it was created in {state.store}: "
            "pass that store with --storage, or --id"
        ) from None


def open_draft(dataset_id: str | None, action: str) -> Dataset:
    """The draft to change: ``--id`` or the remembered one; a finalized version is refused."""
    ds = remembered_draft(dataset_id)
    if ds.is_final():
        raise StateError(
            f"dataset {ds.id} ({ds.project}/{ds.name} {ds.version}) is finalized and cannot change; cannot {action}: "
            f"start a child version with `mountfs create --parents {ds.id}`"
        )
    return ds


def remember(ds: Dataset) -> str:
    """Remember ``ds`` as this folder's current draft; return the state file's path."""
    return draft.save(draft.RememberedDraft(ds.id, ds.project, ds.name, ds.version, current().catalog_url))


def describe(ds: Dataset) -> str:
    return f"{ds.project}/{ds.name} {ds.version} ({ds.id})"


# -------------------------------------------------------- progress and logging


def show_progress() -> bool:
    """Progress bars only when a person watches stderr."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _EchoHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"mountfs: {record.levelname.lower()}: {' '.join(record.getMessage().splitlines())}"


@contextmanager
def logging_to_stderr(debug: bool) -> Iterator[None]:
    """Warnings as ``mountfs: warning: ...`` lines; with ``debug``, everything with timestamps."""
    logger = logging.getLogger("mountfs")
    handler = _EchoHandler()
    if debug:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    else:
        handler.setFormatter(_PlainFormatter())
    old_level = logger.level
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def as_list(values: Sequence[str] | None) -> list[str] | None:
    """A click ``multiple`` tuple as a list, ``None`` when empty."""
    return list(values) if values else None
