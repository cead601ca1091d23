"""Printing results: JSON for scripts, aligned tables and binary sizes for people; output that
cannot be written; the CLI's words in messages the SDK words for its callers."""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence, TextIO

import click

from ..units import counted, human_size

__all__ = ["cli_words", "counted", "echo_json", "echo_table", "human_size", "pipe_safe_streams", "printable"]

#: C0 and C1 control characters and DEL: a description, tag or file name from a shared store could
#: otherwise move the cursor, retitle the terminal or hide lines when printed
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``): store text printed as it is."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def echo_json(doc: Any) -> None:
    """Print ``doc`` as JSON on stdout, and nothing else."""
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False))


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Iterable[str] = ()) -> None:
    """Print rows under headers, columns padded to their widest cell; ``right`` columns align right."""
    cells = [list(headers)] + [["" if c is None else printable(str(c)) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align_right = {headers.index(h) for h in right}
    for row in cells:
        parts = [c.rjust(w) if i in align_right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        click.echo("  ".join(parts).rstrip())


# ------------------------------------------------------------------ output that cannot be written


class _PipeSafe:
    """A text stream that, once a write or flush meets a closed pipe (EPIPE), drops all further output.

    The file descriptor is pointed at ``/dev/null`` then, so that whatever is
    still buffered (and the interpreter's last flush) goes nowhere quietly.
    Everything else is the wrapped stream's (click and tqdm ask for
    ``encoding``, ``isatty``, ``fileno``, ...).
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            return self._stream.write(text)
        except OSError as exc:
            self._closed_pipe(exc)
            return len(text)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self._stream.flush()
        except OSError as exc:
            self._closed_pipe(exc)

    def _closed_pipe(self, exc: OSError) -> None:
        if exc.errno != errno.EPIPE:
            raise exc
        self.broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._stream.fileno())
            finally:
                os.close(devnull)
        except (OSError, ValueError):  # no descriptor (a test's stream): ``broken`` alone drops the output
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def pipe_safe_streams() -> Iterator[None]:
    """Inside the block, stdout and stderr drop their output once the reader went away (``| head -1``).

    A closed pipe must never change what a command does: ``mountfs remove
    --verbose ... | head -1`` removes every file it matched and exits with its
    usual status; only the lines nobody reads any more are not printed.
    """
    saved = sys.stdout, sys.stderr
    if not isinstance(sys.stdout, _PipeSafe):
        sys.stdout = _PipeSafe(sys.stdout)
    if not isinstance(sys.stderr, _PipeSafe):
        sys.stderr = _PipeSafe(sys.stderr)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        sys.stdout, sys.stderr = saved


# ------------------------------------------------------------------ the CLI's words


#: how the SDK names things for its callers (parameters, methods) -> what a CLI user types instead;
#: applied to the error message of any command (the SDK's messages stay right for SDK users)
_CLI_WORDS: list[tuple[str, str]] = [
    ("pass overwrite=True (--overwrite)", "pass --overwrite"),
    ("pass overwrite=True", "pass --overwrite"),
    ("call upload() first or finalize(auto_upload=True)", "run `mountfs upload` first, or `mountfs close` without --no-upload"),
    ("remove one with remove_files()", "remove one with `mountfs remove`"),
    ("(or add the file with add_files)", "(or add the file with `mountfs add`)"),
    ("create a child version with Dataset.create(parent_datasets=[...])", "start a child version with `mountfs create --parents ID`"),
    ("finalize(auto_upload=True) uploads", "`mountfs close DIR` uploads"),
    ("escape special characters (re.escape)", "escape special characters with a backslash"),
]

#: per command: the SDK parameter a message names -> the option the user gave (a whole word only)
_CLI_OPTIONS: dict[str, dict[str, str]] = {
    "add": {"dataset_path": "--dataset-folder"},
    "sync": {"dataset_path": "--dataset-folder"},
    "remove": {"dataset_path": "--files"},
    "list": {"dataset_path": "--filter"},
    "search": {"partial_name": "--name"},
    "delete": {"entire_dataset=True": "--entire-dataset", "force=True": "--force", "dataset_id": "--id",
               "dataset_project": "--project", "dataset_name": "--name", "dataset_version": "--version"},
}


def cli_words(message: str, command: str | None) -> str:
    """``message`` (an error the SDK raised) as a user of ``mountfs COMMAND`` reads it: the SDK's method
    calls and parameters replaced by the commands and options that do the same."""
    for sdk, cli in _CLI_WORDS:
        message = message.replace(sdk, cli)
    for param, option in _CLI_OPTIONS.get(command or "", {}).items():
        message = re.sub(rf"(?<![\w-]){re.escape(param)}(?![\w-])", option, message)
    return message
