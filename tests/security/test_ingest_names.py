"""Names the format cannot hold are refused on ingest, never merged or half-stored (issue 13, items 8 and 9).

``a\\b`` next to ``a/b`` used to become one file (``check_dataset_path`` read the
backslash as a separator), and a name that is not UTF-8 crashed ``add_files``
with ``UnicodeEncodeError`` and left the ``Dataset`` failing every later call.
Now a name found on disk or in a bucket is stored as it is or refused with an
error naming the file, before the draft changes; a backslash in the
``dataset_path`` the user types is still a separator (ClearML on Windows).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mountfs import Dataset
from mountfs.cli import cli
from mountfs.errors import SourceChanged, UsageError

LATIN1 = b"caf\xe9.txt"  # "café.txt" in Latin-1: not UTF-8


def _draft() -> Dataset:
    return Dataset.create(dataset_name="names", dataset_project="p")


def _good(tmp_path: Path) -> Path:
    src = tmp_path / "good"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "ok.txt").write_bytes(b"fine")
    return src


def _still_usable(ds: Dataset, tmp_path: Path) -> None:
    """The draft holds nothing from the refused call, and the same object (and a fresh one) go on working."""
    assert ds.list_files() == []
    assert Dataset.get(dataset_id=ds.id).list_files() == []
    assert ds.add_files(str(_good(tmp_path))) == 1
    assert ds.finalize(auto_upload=True)
    copy = Path(Dataset.get(dataset_id=ds.id).get_local_copy())
    assert (copy / "sub" / "ok.txt").read_bytes() == b"fine"


def test_a_backslash_in_a_file_name_is_refused_not_merged(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "b").write_bytes(b"the file b in folder a")
    (src / "a\\b").write_bytes(b"a file named a-backslash-b")
    ds = _draft()
    with pytest.raises(UsageError) as err:
        ds.add_files(str(src))
    msg = str(err.value)
    assert f"{src}/a\\b" in msg and "contains '\\'" in msg and "rename the file" in msg
    _still_usable(ds, tmp_path)


def test_a_backslash_in_dataset_path_is_still_a_separator(tmp_path: Path) -> None:
    """ClearML users on Windows write dataset_path with backslashes: that is user input, not a found name."""
    ds = _draft()
    assert ds.add_files(str(_good(tmp_path)), dataset_path="train\\images") == 1
    assert ds.list_files() == ["train/images/sub/ok.txt"]
    assert ds.list_files("train\\images\\sub") == ["train/images/sub/ok.txt"]


def test_a_name_that_is_not_utf8_is_refused_and_the_dataset_stays_usable(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "plain.txt").write_bytes(b"plain")
    with open(os.path.join(os.fsencode(src), LATIN1), "wb") as fh:
        fh.write(b"latin-1 named")
    ds = _draft()
    for _ in range(2):  # the old code failed once with UnicodeEncodeError, then "added" it silently
        with pytest.raises(UsageError) as err:
            ds.add_files(str(src))
        msg = str(err.value)
        assert f"{src}/caf\\xe9.txt" in msg and "not valid UTF-8" in msg and "rename" in msg
        msg.encode("utf-8")  # printable: no lone surrogate in the message
    _still_usable(ds, tmp_path)


def test_the_cli_refuses_it_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(os.path.join(os.fsencode(src), LATIN1), "wb") as fh:
        fh.write(b"x")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["create", "--project", "p", "--name", "n"], catch_exceptions=False).exit_code == 0
    res = runner.invoke(cli, ["add", "--files", str(src)], catch_exceptions=False)
    assert res.exit_code == UsageError.exit_code, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and "caf\\xe9.txt" in lines[0] and "Traceback" not in res.output, res.output


def test_two_sources_for_one_dataset_path_are_refused_naming_both(tmp_path: Path) -> None:
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "f.txt").write_bytes(folder.encode())
    urls = [f"file://{tmp_path}/x/f.txt", f"file://{tmp_path}/y/f.txt"]
    ds = _draft()
    with pytest.raises(UsageError) as err:
        ds.add_external_files(urls)
    assert urls[0].removeprefix("file://") in str(err.value) and urls[1].removeprefix("file://") in str(err.value)
    assert "would both be 'f.txt'" in str(err.value)
    assert ds.add_external_files([urls[0], urls[0]]) == 1  # one source named twice is one file
    assert ds.list_files() == ["f.txt"]


@pytest.mark.parametrize("first,second", [("file", "folder"), ("folder", "file")])
def test_a_file_and_a_folder_of_one_name_are_refused(first: str, second: str, tmp_path: Path) -> None:
    """``a`` and ``a/b`` cannot both be files of a version: the second add is refused, the draft unchanged."""
    as_file, as_folder = tmp_path / "as-file", tmp_path / "as-folder"
    as_file.mkdir()
    (as_file / "a").write_bytes(b"a file")
    (as_folder / "a").mkdir(parents=True)
    (as_folder / "a" / "b").write_bytes(b"a file in folder a")
    sources = {"file": as_file, "folder": as_folder}
    ds = _draft()
    assert ds.add_files(str(sources[first])) == 1
    before = ds.list_files()
    with pytest.raises(UsageError, match=r"'a/b' is inside 'a', which is a file.*remove one with remove_files"):
        ds.add_files(str(sources[second]))
    assert ds.list_files() == before == Dataset.get(dataset_id=ds.id).list_files()
    assert ds.finalize(auto_upload=True)
    assert Dataset.get(dataset_id=ds.id).list_files() == before


def test_a_failure_while_hashing_leaves_the_draft_as_it_was(tmp_path: Path) -> None:
    """Files hashed before the failing one are not left in the draft's table (in memory or stored)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(300):  # more than one batch of hashing work: the first is done before the failure
        (src / f"a{i:03d}.txt").write_bytes(b"fine %d" % i)
    growing = src / "z.bin"
    growing.write_bytes(os.urandom(64 << 20))
    stop = threading.Event()
    block = os.urandom(1 << 16)

    def writer() -> None:
        with open(growing, "ab", buffering=0) as fh:
            while not stop.is_set():
                fh.write(block)
                time.sleep(0.0005)  # throttles the writer (as in test_bad_input), it waits for nothing

    t = threading.Thread(target=writer)
    t.start()
    start = growing.stat().st_size
    while growing.stat().st_size == start:  # the writer is really appending
        pass
    ds = _draft()
    try:
        with pytest.raises(SourceChanged, match="changed while"):
            ds.add_files(str(src), max_workers=1)
    finally:
        stop.set()
        t.join()
    _still_usable(ds, tmp_path)
