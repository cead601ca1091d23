"""mountfs/daemon/main.py: the ``mountfsd`` console script's options, logging and one-line errors.

Serving (the part after the options) is tests/daemon/test_server.py's; here nothing mounts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mfs import MOUNTFSD

from mountfs import session
from mountfs.config import Config
from mountfs.daemon import mounts


def _mountfsd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MOUNTFSD, *args], capture_output=True, text=True, timeout=60,
                          env=env or dict(os.environ), stdin=subprocess.DEVNULL)


def test_help_lists_every_option() -> None:
    for flag in ("--help", "-h"):
        res = _mountfsd(flag)
        assert res.returncode == 0 and res.stderr == ""
        assert res.stdout.startswith("Usage: mountfsd [OPTIONS]")
        for opt in ("--mountpoint DIR", "--dataset ID", "--storage URL", "--debug"):
            assert opt in res.stdout, res.stdout


def test_a_bad_option_is_a_usage_error_exit_2() -> None:
    res = _mountfsd("--bogus")
    assert res.returncode == 2 and res.stdout == ""
    # click's own usage error, as for `mountfs` (tests/cli/test_main.py): it ends with the one line that matters
    assert res.stderr.splitlines()[-1] == "Error: No such option '--bogus'."
    assert "Traceback" not in res.stderr


def test_a_mountfs_error_is_one_error_line_and_its_exit_code(tmp_path: Path, run_dir: str) -> None:
    store, mp = tmp_path / "store", tmp_path / "mp"
    store.mkdir()
    mp.mkdir()
    # an empty folder is no store: said before anything is mounted (a typo must not mount an empty catalog)
    res = _mountfsd("--storage", str(store), "--mountpoint", str(mp))
    assert res.returncode == 3, res.stderr
    assert [line for line in res.stderr.splitlines() if line.startswith("mountfsd: error: ")] == [
        f"mountfsd: error: no mountfs store at {store} (no mountfs.json): set MOUNTFS_STORE or --storage to your "
        "store, or create a dataset to start a new store there"]
    assert list(store.iterdir()) == [] and not mounts.mounted_fuse(str(mp))
    session.open(Config.load(overrides={"store": str(store)})).create_store()
    res = _mountfsd("--storage", str(store), "--mountpoint", str(mp), "--dataset", "0" * 32)
    assert res.returncode == 3, res.stderr  # NotFound's exit code
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("mountfsd: error: ")]
    assert errors == [f"mountfsd: error: no dataset with id '{'0' * 32}' in {store}; "
                      "check the id with `mountfs search`"]
    assert not mounts.mounted_fuse(str(mp))


def test_configure_logging_takes_the_mountfs_logger_from_the_cli() -> None:
    # in a child: basicConfig(force=True) replaces the root logger's handlers, pytest's among them
    probe = """if True:
        import logging
        from mountfs.daemon.main import configure_logging
        pkg = logging.getLogger("mountfs")
        pkg.addHandler(logging.StreamHandler()); pkg.setLevel(logging.WARNING)  # what the CLI group leaves
        configure_logging(debug=False)
        logging.getLogger("mountfs.daemon.server").info("an info line")
        logging.getLogger("mountfs.daemon.server").debug("a debug line")
        configure_logging(debug=True)
        logging.getLogger("mountfs.x").debug("now debug")
        print(len(pkg.handlers), pkg.level)
    """
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "0"]  # no handler of its own left: one line per record
    lines = res.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith(" INFO mountfs.daemon.server: an info line") and lines[0][:4].isdigit()  # a timestamp
    assert lines[1].endswith(" DEBUG mountfs.x: now debug")
