"""cli.main: the ``mountfs`` group, its global options, and the one place an error becomes one line and an exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mountfs import Dataset, config, session
from mountfs.cli import cli, main
from mountfs.errors import ConfigError, NotFound

SCRIPT = Path(sys.executable).with_name("mountfs")


# --------------------------------------------------------------- global options


def test_help_and_version(mountfs):
    assert "Commands:" in mountfs("--help").stdout
    assert mountfs("--version").stdout.strip() == "mountfs 0.1.0"
    for cmd in ("create", "add", "remove", "upload", "close", "finalize", "publish", "list", "search", "info", "get", "verify"):
        assert "Usage: mountfs" in mountfs(cmd, "--help").stdout


def test_dash_h_is_help_too(mountfs):
    assert mountfs("-h").stdout == mountfs("--help").stdout
    assert mountfs("finalize", "-h").stdout.startswith("Usage: mountfs finalize")


def test_storage_option_sets_the_store(env, mountfs, tmp_path):
    other = tmp_path / "other-store"
    ds_id = mountfs("create", "--project", "p", "--name", "n").stdout.strip()  # in the default (env) store
    mountfs("add", "--files", env.data)
    mountfs("close")
    other_id = mountfs("--storage", other, "create", "--project", "q", "--name", "m").stdout.strip()
    mountfs("--storage", other, "add", "--files", env.data / "labels.csv")
    mountfs("--storage", other, "close")
    assert [d["id"] for d in mountfs.json("--storage", other, "search")] == [other_id]
    assert [d["id"] for d in mountfs.json("search")] == [ds_id]
    assert (other / "datasets" / other_id).is_dir()


def test_the_storage_flag_reaches_the_sdk_without_the_environment(tmp_path: Path) -> None:
    env_store = os.environ["MOUNTFS_STORE"]
    flag_store = tmp_path / "flagged"
    result = CliRunner().invoke(cli, ["--storage", str(flag_store), "create", "--project", "p", "--name", "n"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ds_id = result.stdout.strip()
    assert os.environ["MOUNTFS_STORE"] == env_store
    # the command's config went with it: this process's SDK is back on the environment's store
    assert session.current().config.store == env_store
    with session.use(config.Config.load(overrides={"store": str(flag_store)})):
        assert Dataset.get(dataset_id=ds_id).id == ds_id


def test_a_broken_config_file_is_one_line_but_help_still_works(env, mountfs, tmp_path, monkeypatch):
    bad = tmp_path / "broken.toml"
    bad.write_text("store = [unclosed\n")
    monkeypatch.setenv("MOUNTFS_CONFIG", str(bad))
    assert "Usage: mountfs list" in mountfs("list", "--help").stdout
    for cmd in (("search",), ("--storage", str(env.store), "search")):
        line = mountfs.fails(*cmd, code=ConfigError.exit_code)
        assert str(bad) in line and "fix or remove it" in line


# ------------------------------------------------------------- errors to exit codes


def test_os_error_is_one_line(env, mountfs, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/srv/store/datasets")

    monkeypatch.setattr(Dataset, "list_datasets", staticmethod(denied))
    assert mountfs.fails("search", code=1) == "mountfs: error: /srv/store/datasets: Permission denied"


def test_unexpected_exception(env, mountfs, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("something broke\ninside")

    monkeypatch.setattr(Dataset, "list_datasets", staticmethod(boom))
    line = mountfs.fails("search", code=1)
    assert line == "mountfs: error: unexpected RuntimeError: something broke inside (rerun with --debug for the traceback)"
    debug = mountfs("--debug", "search", code=1)
    assert "Traceback" in debug.stderr and debug.stderr.splitlines()[-1].startswith("mountfs: error: unexpected RuntimeError")


def test_debug_shows_the_traceback_before_the_one_line(env, mountfs, empty_store):
    plain = mountfs.fails("info", "--id", "0000deadbeef0000", code=NotFound.exit_code)
    debug = mountfs("--debug", "info", "--id", "0000deadbeef0000", code=NotFound.exit_code).stderr.splitlines()
    assert debug[0] == "Traceback (most recent call last):" and "NotFound" in debug[-2]
    assert debug[-1] == plain  # the same line, last


def test_clicks_own_usage_errors_are_one_line_naming_the_help(env, mountfs):
    result = mountfs("list", "--no-such-option", code=2)
    assert result.stderr == "mountfs: error: No such option '--no-such-option' (see `mountfs list --help`)\n"
    assert "Traceback" not in result.output
    assert mountfs("nope", code=2).stderr == "mountfs: error: No such command 'nope' (see `mountfs --help`)\n"


def test_main_takes_argv_and_exits_with_the_errors_code(env, empty_store, capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == "mountfs 0.1.0\n"
    with pytest.raises(SystemExit) as failed:
        main(["info", "--id", "0000deadbeef0000"])
    assert failed.value.code == NotFound.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mountfs: error: ") and "0000deadbeef0000" in err


# ------------------------------------------------------ the installed console script


@pytest.fixture
def run(env):
    if not SCRIPT.exists():
        pytest.skip(f"console script not installed at {SCRIPT}")

    def run(*args: str, code: int = 0) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(SCRIPT), *map(str, args)], cwd=env.work, env=dict(os.environ), capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == code, f"mountfs {' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr
        return proc

    return run


def test_script_help(run):
    out = run("--help").stdout
    assert out.startswith("Usage: mountfs") and "create" in out and "verify" in out


def test_script_create_add_close(env, run):
    ds_id = run("create", "--project", "p", "--name", "n").stdout.strip()
    run("add", "--files", env.data / "train", env.data / "labels.csv")
    run("close")
    assert run("info", "--id", ds_id, "--json").stdout.count('"completed"') == 1
    failed = run("add", "--id", ds_id, "--files", env.data, code=4)
    assert failed.stderr.count("\n") == 1 and failed.stderr.startswith("mountfs: error: ")
