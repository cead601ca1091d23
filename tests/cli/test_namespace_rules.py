"""Names and versions that cannot collide (issue 16), as a user types them: a path is a project or a
dataset, never both; ``latest`` and version numbers are no names; one spelling per version number;
``mount DATASET`` reads a dataset like every other command and says what they say."""

from __future__ import annotations

from pathlib import Path

import pytest

from mountfs.cli.common import Selector, selector_from
from mountfs.errors import Conflict, NotFound, UsageError


def _version(mountfs, project: str, name: str, src: Path, *more: str) -> str:
    ds_id = mountfs("create", "--project", project, "--name", name, *more).stdout.strip()
    mountfs("add", "--files", src)
    mountfs("close")
    return ds_id


def _versions(mountfs, project: str, name: str) -> list[str]:
    return [d["version"] for d in mountfs.json("search", "--project", project, "--name", name)]


def test_a_path_is_a_project_or_a_dataset(env, mountfs) -> None:
    _version(mountfs, "nu/proj", "things", env.data, "--version", "2.0")
    line = mountfs.fails("create", "--project", "nu/proj/things", "--name", "x", code=Conflict.exit_code)
    assert "nu/proj/things is a dataset, so it cannot hold project nu/proj/things" in line
    _version(mountfs, "nu/other", "x", env.data)
    line = mountfs.fails("create", "--project", "nu", "--name", "other", code=Conflict.exit_code)
    assert "nu/other is a project (it holds dataset nu/other/x)" in line
    line = mountfs.fails("move", "--new-project", "nu/proj/things", "--project", "nu/other", "--name", "x",
                         code=Conflict.exit_code)
    assert "nu/proj/things is a dataset" in line
    assert _versions(mountfs, "nu/proj", "things") == ["2.0"]


@pytest.mark.parametrize("project, name, says", [
    ("nu/proj/things", "latest", "dataset name 'latest' is reserved"),
    ("nu/proj/things", "3.0", "dataset name '3.0' is reserved ('latest' and version numbers name versions in the "
                              "mount); choose another, e.g. 'v3.0'"),
    ("nu/proj/things", "1.0.0", "dataset name '1.0.0' is reserved"),
    ("nu/1.0", "x", "project level '1.0' is reserved"),
])
def test_latest_and_version_numbers_are_refused_as_names(env, mountfs, project: str, name: str, says: str) -> None:
    line = mountfs.fails("create", "--project", project, "--name", name, code=UsageError.exit_code)
    assert says in line
    assert not [p for p in env.store.rglob("*") if p.is_file() and "catalog" in p.relative_to(env.store).parts]


def test_a_rename_to_a_reserved_name_is_refused(env, mountfs) -> None:
    _version(mountfs, "p", "ds", env.data)
    assert "dataset name 'latest' is reserved" in mountfs.fails(
        "rename", "--project", "p", "--name", "ds", "--new-name", "latest", code=UsageError.exit_code)
    assert _versions(mountfs, "p", "ds") == ["1.0.0"]


def test_one_spelling_per_version(env, mountfs) -> None:
    assert "malformed version '1.0\\n'" in mountfs.fails(
        "create", "--project", "p", "--name", "ds", "--version", "1.0\n", code=UsageError.exit_code)
    for typed, canonical in (("01.0", "1.0"), ("1.00", "1.0")):
        line = mountfs.fails("create", "--project", "p", "--name", "ds", "--version", typed, code=UsageError.exit_code)
        assert line == f"mountfs: error: version '{typed}' has a leading zero; write it as {canonical}"
    _version(mountfs, "p", "ds", env.data, "--version", "1.0")
    line = mountfs.fails("create", "--project", "p", "--name", "ds", "--version", "1.0.0", code=Conflict.exit_code)
    assert line == "mountfs: error: version 1.0.0 of p/ds exists as 1.0; name it 1.0, or pick another version"
    # the next automatic version goes on from the number, never from a second spelling
    _version(mountfs, "p", "ds", env.data)
    assert _versions(mountfs, "p", "ds") == ["1.1", "1.0"]
    assert mountfs.json("info", "--project", "p", "--name", "ds")["version"] == "1.1"
    # a lookup matches by number: 1.0.0 and 01.00 find the 1.0 that is stored
    for typed in ("1.0.0", "01.00", "1"):
        assert mountfs.json("info", "--project", "p", "--name", "ds", "--version", typed)["version"] == "1.0"


# ------------------------------------------------------------------------- one resolver, one message


@pytest.mark.parametrize("spec, sel", [
    ("0123456789abcdef0123", Selector(dataset_id="0123456789abcdef0123")),
    ("0000", Selector(dataset_id="0000")),
    ("p/n", Selector(project="p", name="n")),
    ("/a/b/n/", Selector(project="a/b", name="n")),
    ("a/b/n/1.0", Selector(project="a/b", name="n", version="1.0")),
    ("p/n/abc", Selector(project="p/n", name="abc")),  # a dataset abc, or a malformed version (resolve says)
    ("p/1.0", Selector(project="p", name="1.0")),  # an older store's name: two parts are project/name
])
def test_a_dataset_argument(spec: str, sel: Selector) -> None:
    got = selector_from(spec, Selector())
    assert (got.dataset_id, got.project, got.name, got.version) == (sel.dataset_id, sel.project, sel.name, sel.version)


def test_a_dataset_argument_and_options_are_not_both_taken() -> None:
    with pytest.raises(UsageError, match="either as DATASET or with --id"):
        selector_from("p/n", Selector(dataset_id="0123456789abcdef0123"))
    assert selector_from(None, Selector(project="p", name="n")) == Selector(project="p", name="n")


def test_mount_says_what_the_other_commands_say(env, mountfs, tmp_path) -> None:
    _version(mountfs, "p", "n", env.data)
    target = tmp_path / "mnt"
    info = mountfs.fails("info", "--project", "p", "--name", "n", "--version", "abc", code=UsageError.exit_code)
    assert "malformed version 'abc'" in info
    assert mountfs.fails("mount", "p/n/abc", str(target), code=UsageError.exit_code) == info
    by_id = mountfs.fails("info", "--id", "0000", code=NotFound.exit_code)
    assert "no dataset with id '0000'" in by_id
    assert mountfs.fails("mount", "0000", str(target), code=NotFound.exit_code) == by_id
    # the same words for a dataset that is not there, whether or not the last part could be a version
    assert "no dataset (completed) matches p/zzz;" in mountfs.fails("mount", "p/zzz", str(target),
                                                                   code=NotFound.exit_code)
    assert "no dataset (completed) matches q/n/abc;" in mountfs.fails("mount", "q/n/abc", str(target),
                                                                     code=NotFound.exit_code)
    assert not target.exists()


def test_a_plain_number_is_a_name_and_a_dataset_argument_finds_it_either_way(env, mountfs) -> None:
    from mountfs.cli.common import resolve

    year = _version(mountfs, "archive/2024", "2024", env.data)  # a year is a fine project level and name
    version = _version(mountfs, "archive", "set", env.data, "--version", "2024")
    assert resolve(selector_from("archive/2024/2024", Selector())).id == year  # not version 2024 of archive/2024
    assert resolve(selector_from("archive/set/2024", Selector())).id == version
    with pytest.raises(NotFound, match="no dataset matches archive/set/2025"):
        resolve(selector_from("archive/set/2025", Selector()))


def test_the_rules_hold_on_an_s3_store(env, mountfs, seaweed_store) -> None:
    _version(mountfs, "nu/proj", "things", env.data, "--version", "2.0")
    assert "nu/proj/things is a dataset" in mountfs.fails("create", "--project", "nu/proj/things", "--name", "x",
                                                          code=Conflict.exit_code)
    assert "nu/proj is a project" in mountfs.fails("create", "--project", "nu", "--name", "proj",
                                                   code=Conflict.exit_code)
    assert "exists as 2.0" in mountfs.fails("create", "--project", "nu/proj", "--name", "things", "--version", "2.0.0",
                                            code=Conflict.exit_code)
    assert "is reserved" in mountfs.fails("create", "--project", "nu/proj", "--name", "latest", code=UsageError.exit_code)
    assert [d["version"] for d in mountfs.json("search", "--all")] == ["2.0"]
