"""The CLI's output rules (issue 16): a closed pipe never changes what a command does; no progress
frames without a terminal, a bar on one; every error one line in the CLI's words; the dataset stays
remembered after close.  The console script runs as a user runs it, in a subprocess."""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from mountfs import Dataset
from mountfs.cli.draft import STATE_FILE
from mountfs.cli.output import cli_words
from mountfs.errors import NotFound, StateError, UsageError

SCRIPT = Path(sys.executable).with_name("mountfs")
DAEMON = Path(sys.executable).with_name("mountfsd")
MANY = 300


@pytest.fixture
def script(env):
    if not SCRIPT.exists():
        pytest.skip(f"console script not installed at {SCRIPT}")
    return [str(SCRIPT)]


@pytest.fixture
def many(tmp_path: Path) -> Path:
    """A folder of MANY small files: more --verbose lines than a reader that stops after one takes."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(MANY):
        (folder / f"f{i:04d}.txt").write_text(f"file {i}\n")
    return folder


def _into_a_closed_pipe(args: list[str], cwd: Path) -> int:
    """Run the command with stdout and stderr on a pipe nobody reads any more (its read end closed
    before the start): every line it writes meets EPIPE.  Returns the exit status."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(args, cwd=cwd, env=dict(os.environ), stdout=write_end, stderr=write_end, timeout=120)
    finally:
        os.close(write_end)
    return proc.returncode


def _head_1(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``ARGS 2>&1 | head -1`` in bash with pipefail, so the status is the command's."""
    return subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$@" 2>&1 | head -1', "bash", *args],
        cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )


# ------------------------------------------------------------------ a closed pipe


def test_remove_verbose_into_a_closed_pipe_removes_everything(env, mountfs, script, many):
    mountfs("create", "--project", "p", "--name", "n")
    mountfs("add", "--files", many, "--dataset-folder", "many")
    mountfs("add", "--files", env.data / "labels.csv")
    assert _into_a_closed_pipe([*script, "remove", "--verbose", "--files", "many"], env.work) == 0
    assert [f["path"] for f in mountfs.json("list")] == ["labels.csv"]


def test_add_verbose_into_a_closed_pipe_adds_everything(env, mountfs, script, many):
    mountfs("create", "--project", "p", "--name", "n")
    assert _into_a_closed_pipe([*script, "add", "--verbose", "--files", many], env.work) == 0
    assert len(mountfs.json("list")) == MANY


def test_piped_into_head_1_the_operation_is_whole(env, mountfs, script, many):
    mountfs("create", "--project", "p", "--name", "n")
    added = _head_1([*script, "add", "--verbose", "--files", many], env.work)
    assert added.returncode == 0 and added.stdout.count("\n") == 1 and added.stdout.startswith("added: ")
    assert len(mountfs.json("list")) == MANY
    removed = _head_1([*script, "remove", "--verbose", "--files", "f00*"], env.work)
    assert removed.returncode == 0 and removed.stdout.startswith("removed: f00")
    assert len(mountfs.json("list")) == MANY - 100
    closed = _head_1([*script, "close", "--verbose"], env.work)
    assert closed.returncode == 0, closed.stdout
    assert mountfs.json("info")["status"] == "completed"
    assert "Traceback" not in added.stdout + removed.stdout + closed.stdout


def test_a_reading_command_into_a_closed_pipe_exits_as_usual(env, mountfs, script, many):
    mountfs("create", "--project", "p", "--name", "n")
    mountfs("add", "--files", many)
    assert _into_a_closed_pipe([*script, "list"], env.work) == 0
    # and an error's status is kept too, though its line is not read
    assert _into_a_closed_pipe([*script, "info", "--id", "0" * 20], env.work) == NotFound.exit_code


def test_sdk_verbose_lines_that_cannot_be_written_change_nothing(env, mountfs, monkeypatch):
    mountfs("create", "--project", "p", "--name", "n")
    mountfs("add", "--files", env.data)
    ds_id = json.loads((env.work / STATE_FILE).read_text())["id"]

    class Gone:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stderr", Gone())
    assert Dataset.get(dataset_id=ds_id).remove_files("train", verbose=True) == 2
    monkeypatch.undo()
    assert sorted(Dataset.get(dataset_id=ds_id).list_files()) == ["labels.csv", "val/img_0003.jpg"]


# ------------------------------------------------------------------ progress and verbose lines


def test_without_a_terminal_no_progress_frames_and_verbose_lines_as_lines(env, mountfs, script, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    (big / "blob.bin").write_bytes(os.urandom(3 << 20))
    (big / "small.txt").write_text("small\n")
    mountfs("create", "--project", "p", "--name", "n")
    run = dict(cwd=env.work, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    added = subprocess.run([*script, "add", "--verbose", "--files", big], **run)
    assert added.returncode == 0, added.stderr
    assert "\r" not in added.stderr and "hashing" not in added.stderr
    assert sorted(added.stderr.splitlines()) == ["added: blob.bin", "added: small.txt"]
    uploaded = subprocess.run([*script, "upload", "--verbose"], **run)
    assert uploaded.returncode == 0, uploaded.stderr
    assert "\r" not in uploaded.stderr and "uploading:" not in uploaded.stderr.replace("uploading: ", "")
    lines = uploaded.stderr.splitlines()
    assert lines[:2] == ["uploading: blob.bin (3.0 MiB)", "uploading: small.txt (6 B)"]
    assert lines[2].startswith("uploaded 3.0 MiB of new data in 1 pack") and lines[2].endswith(
        "2 files, 0 chunks already in the store"), lines[2]
    assert "packs" not in lines[2] and "bytes" not in lines[2]


def test_on_a_terminal_a_long_operation_shows_a_bar(env, mountfs, script, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    (big / "blob.bin").write_bytes(os.urandom(8 << 20))
    mountfs("create", "--project", "p", "--name", "n")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    shown = b""
    try:
        proc = subprocess.Popen([*script, "add", "--files", big], cwd=env.work, env=dict(os.environ),
                                stdout=subprocess.PIPE, stderr=slave)
        deadline = time.monotonic() + 120
        # our copy of the slave stays open, so the terminal's bytes stay readable after the exit
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                shown += os.read(master, 65536)
        proc.communicate(timeout=10)
        while select.select([master], [], [], 0.1)[0]:
            shown += os.read(master, 65536)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 0
    assert b"hashing" in shown and b"8.00M" in shown


# ------------------------------------------------------------------ errors in the CLI's words


def test_clicks_usage_errors_are_one_line(env, mountfs):
    for args, line in [
        (["mount"], "mountfs: error: Missing argument '[DATASET] DIR' (see `mountfs mount --help`)"),
        (["--bogus"], "mountfs: error: No such option '--bogus' (see `mountfs --help`)"),
        (["get", "--part", "x"], "mountfs: error: Invalid value for '--part': 'x' is not a valid integer range "
                                 "(see `mountfs get --help`)"),
        (["cache", "evict", "--zzzzzz"], "mountfs: error: No such option '--zzzzzz' (see `mountfs cache evict --help`)"),
    ]:
        assert mountfs.fails(*args, code=UsageError.exit_code) == line


def test_errors_name_options_not_sdk_parameters(env, mountfs):
    mountfs("create", "--project", "p", "--name", "n", "--version", "1.0")
    mountfs("add", "--files", env.data)
    for args, said in [
        (["remove", "--files", "../x"], "--files '../x' escapes the dataset"),
        (["add", "--files", env.data, "--dataset-folder", "a/../../x"], "--dataset-folder 'a/../../x' escapes"),
        (["list", "--filter", "../x"], "--filter '../x' escapes"),
    ]:
        line = mountfs.fails(*args, code=UsageError.exit_code)
        assert said in line and "dataset_path" not in line, line
    mountfs("close")
    mountfs("create", "--project", "p", "--name", "n", "--version", "1.1")
    mountfs("add", "--files", env.data / "labels.csv")
    mountfs("close")
    line = mountfs.fails("get", "--project", "p", "--name", "n", "--part", "3", "--num-parts", "2",
                         code=UsageError.exit_code)
    assert "--part 0 to 1" in line and "num_parts" not in line
    (env.work / "full").mkdir()
    (env.work / "full" / "mine.txt").write_text("mine")
    line = mountfs.fails("get", "--project", "p", "--name", "n", "--copy", env.work / "full",
                         code=UsageError.exit_code)
    assert line.endswith("pass --overwrite") and "overwrite=True" not in line
    line = mountfs.fails("delete", "--project", "p", "--name", "n", code=UsageError.exit_code)
    assert "--version or --id, or --entire-dataset and --force" in line and "dataset_version" not in line
    line = mountfs.fails("search", "--name", "(", code=UsageError.exit_code)
    assert line.startswith("mountfs: error: --name '(' is not a valid regular expression") and "re.escape" not in line


def test_cli_words_keep_other_words_whole():
    assert cli_words("dataset_path 'x' is bad; my_dataset_path stays", "remove") == \
        "--files 'x' is bad; my_dataset_path stays"
    assert cli_words("dataset_path 'x' is bad", "info") == "dataset_path 'x' is bad"  # no option to name there
    assert cli_words("x; pass overwrite=True (--overwrite)", None) == "x; pass --overwrite"


def test_the_daemons_error_is_said_once(env, mountfs, tmp_path):
    if not DAEMON.exists():
        pytest.skip(f"mountfsd not installed at {DAEMON}")
    mountfs("create", "--project", "p", "--name", "n")  # a store to look in
    mp = tmp_path / "mp"
    mp.mkdir()
    res = subprocess.run([str(DAEMON), "--storage", str(env.store), "--mountpoint", str(mp), "--dataset", "0" * 20],
                         env=dict(os.environ), capture_output=True, text=True, timeout=60)
    assert res.returncode == NotFound.exit_code, res.stderr
    # once: not also as a log line (the log file of a mount holds this stderr)
    saying = [line for line in res.stderr.splitlines() if "error" in line.lower()]
    assert len(saying) == 1 and saying[0].startswith("mountfsd: error: ") and "0" * 20 in saying[0], res.stderr


# ------------------------------------------------------------------ the dataset remembered after close


def test_after_close_the_dataset_stays_remembered(env, mountfs):
    ds_id = mountfs("create", "--project", "p", "--name", "n").stdout.strip()
    mountfs("add", "--files", env.data)
    mountfs("close")
    assert json.loads((env.work / STATE_FILE).read_text())["id"] == ds_id
    assert mountfs.json("info")["id"] == ds_id  # no --id
    assert len(mountfs.json("list")) == 4
    line = mountfs.fails("add", "--files", env.data, code=StateError.exit_code)
    assert "is finalized" in line and f"mountfs create --parents {ds_id}" in line
    # a new draft replaces it; deleting the remembered one forgets it
    child = mountfs("create", "--parents", ds_id).stdout.strip()
    assert mountfs.json("info")["id"] == child
    mountfs("delete", "--id", child, "--no-gc")
    assert not (env.work / STATE_FILE).exists()
    assert "no draft remembered here" in mountfs.fails("info", code=UsageError.exit_code)
