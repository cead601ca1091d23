"""cli.common: list-valued options, naming a dataset (--id, --project/--name/--version, the remembered draft),
refusing a finalized version where a draft is needed, logging and progress on stderr."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click
import pytest

from mountfs.cli.common import Command, ListOption, _expand_list_options, as_list, logging_to_stderr, show_progress
from mountfs.cli.draft import STATE_FILE
from mountfs.errors import NotFound, StateError, UsageError


@pytest.fixture
def finalized(env, mountfs) -> str:
    ds_id = mountfs("create", "--project", "p", "--name", "n", "--version", "1.0").stdout.strip()
    mountfs("add", "--files", env.data)
    mountfs("close")
    return ds_id


# --------------------------------------------------------------- list options


@click.command(cls=Command)
@click.option("--files", cls=ListOption)
@click.option("--tags", cls=ListOption)
@click.option("--flag", is_flag=True)
def _cmd(files, tags, flag):
    pass


def test_list_options_take_several_values():
    assert _expand_list_options(_cmd, ["--files", "a", "b", "--flag", "--tags", "x", "--files=c", "d", "--", "e"]) == [
        "--files", "a", "--files", "b", "--flag", "--tags", "x", "--files=c", "--files", "d", "--", "e"
    ]
    ctx = _cmd.make_context("cmd", ["--files", "a", "b", "--tags", "x", "y", "--files", "c"])
    assert ctx.params["files"] == ("a", "b", "c") and ctx.params["tags"] == ("x", "y")


def test_a_value_starting_with_a_dash_needs_the_equals_form():
    assert _cmd.make_context("cmd", ["--files=-x", "y", "--flag"]).params == {"files": ("-x", "y"), "tags": (), "flag": True}
    # after the first value, a token starting with '-' is an option again, never a value
    with pytest.raises(click.NoSuchOption, match="-y"):
        _cmd.make_context("cmd", ["--files", "x", "-y"])
    assert _cmd.make_context("cmd", []).params["files"] == ()
    assert as_list(()) is None and as_list(("a", "b")) == ["a", "b"]


# ------------------------------------------------------------ naming a dataset


def test_unknown_id(env, mountfs, empty_store):
    for cmd in (("info",), ("list",), ("get",), ("verify",), ("publish",), ("add", "--files", env.data), ("close",)):
        line = mountfs.fails(*cmd, "--id", "0000deadbeef0000", code=NotFound.exit_code)
        assert "0000deadbeef0000" in line


def test_unknown_name(env, mountfs, finalized):
    assert "p/nope" in mountfs.fails("get", "--project", "p", "--name", "nope", code=NotFound.exit_code)
    mountfs.fails("list", "--project", "p", "--name", "n", "--version", "9.9", code=NotFound.exit_code)


def test_naming_a_dataset_two_ways_or_half_way_is_refused(env, mountfs, finalized, monkeypatch):
    assert "not both" in mountfs.fails("info", "--id", finalized, "--project", "p", code=UsageError.exit_code)
    assert "--version needs --project and --name" in mountfs.fails("list", "--version", "1.0", code=UsageError.exit_code)
    # no dataset named, none remembered here (the work folder remembers the one `finalized` closed)
    (env.work / "elsewhere").mkdir()
    monkeypatch.chdir(env.work / "elsewhere")
    line = mountfs.fails("list", code=UsageError.exit_code)
    assert f"no draft remembered here (./{STATE_FILE})" in line and "mountfs create" in line


def test_by_name_the_most_recent_or_the_most_recent_finalized(env, mountfs, finalized):
    draft = mountfs("create", "--project", "p", "--name", "n").stdout.strip()  # 1.1, newer than the finalized 1.0
    assert mountfs.json("info", "--project", "p", "--name", "n")["id"] == draft
    # get needs a finalized version: by name it skips the newer draft
    copy = Path(mountfs("get", "--project", "p", "--name", "n").stdout.strip())
    assert copy.name == finalized
    assert mountfs.json("info", "--project", "p", "--name", "n", "--version", "1.0")["id"] == finalized


def test_remembered_draft_from_another_store(env, mountfs, tmp_path):
    mountfs("--storage", tmp_path / "elsewhere", "create", "--project", "p", "--name", "n")
    line = mountfs.fails("add", "--files", env.data, code=NotFound.exit_code)
    assert "elsewhere" in line and "--storage" in line
    assert json.loads((env.work / STATE_FILE).read_text())["store"] == str(tmp_path / "elsewhere")


def test_add_to_finalized(env, mountfs, finalized):
    line = mountfs.fails("add", "--id", finalized, "--files", env.data, code=StateError.exit_code)
    assert "finalized" in line and "cannot add files" in line and f"--parents {finalized}" in line
    assert "cannot remove files" in mountfs.fails("remove", "--id", finalized, "--files", "labels.csv",
                                                  code=StateError.exit_code)
    assert "cannot upload" in mountfs.fails("upload", "--id", finalized, code=StateError.exit_code)


# -------------------------------------------------------- progress and logging


@pytest.mark.allow_warnings
def test_logging_to_stderr_prints_warnings_as_one_line(capsys):
    log = logging.getLogger("mountfs.test_common")
    logger = logging.getLogger("mountfs")
    before = (logger.level, list(logger.handlers))
    with logging_to_stderr(debug=False):
        log.info("not shown")
        log.warning("two\nlines")
    assert capsys.readouterr().err == "mountfs: warning: two lines\n"
    assert (logger.level, logger.handlers) == before  # the handler and level are put back
    with logging_to_stderr(debug=True):
        log.debug("detail %d", 42)
    err = capsys.readouterr().err
    assert err.endswith(" mountfs.test_common DEBUG: detail 42\n") and err[:4].isdigit()  # timestamped


def test_progress_bars_only_on_a_terminal(monkeypatch):
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w") as tty:
            monkeypatch.setattr(sys, "stderr", tty)
            assert show_progress() is True
        monkeypatch.setattr(sys, "stderr", tty)  # closed now: isatty raises ValueError
        assert show_progress() is False
    finally:
        os.close(master)
    read, write = os.pipe()
    with os.fdopen(read) as r, os.fdopen(write, "w") as pipe:
        monkeypatch.setattr(sys, "stderr", pipe)
        assert show_progress() is False
