"""Names, versions and dataset paths (mountfs/catalog/names.py).

The rules for one key component and for a project (check_component, check_project) live in the store
layout and are tests/store/test_layout.py; versions in records written by others are
tests/security/test_hostile_records.py; how ``add_files`` applies found_path and check_distinct to real
files is tests/security/test_ingest_names.py.
"""

from __future__ import annotations

import os
import random

import pytest

from mountfs.catalog import names
from mountfs.errors import UsageError


# --- versions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "1.0", "1.0.1", "2.0.0.7", "0.0", "10.20.30", "9" * 18, "007"])
def test_versions_accepted(version: str) -> None:
    assert names.check_version(version) == version and names.is_version(version)


@pytest.mark.parametrize("version", ["", "v1", "1.", ".1", "1..2", "1.0.0.0.0", "1.0-rc1", " 1.0", "1.0\n", "1,0",
                                     "9" * 19, "١.٠", "1.-1", 1, 1.0, None, ["1.0"]])
def test_versions_refused_with_an_example(version: object) -> None:
    assert not names.is_version(version)
    with pytest.raises(UsageError, match=r"malformed version .*e\.g\. 1\.0, 1\.0\.1 or 2\.0") as info:
        names.check_version(version)
    assert "\n" not in str(info.value)


def test_versions_sort_by_number_not_by_text() -> None:
    ordered = ["0.9", "1", "1.0", "1.0.0", "1.0.1", "1.0.2", "1.0.9", "1.0.10", "1.1", "1.10", "2", "10.0"]
    shuffled = ordered[:]
    random.Random(3).shuffle(shuffled)
    assert sorted(shuffled, key=names.version_key) == ordered
    assert names.version_key("007") == names.version_key("7") == (7,)


@pytest.mark.parametrize("existing, after", [
    ([], "1.0.0"),
    (["1.0.0"], "1.0.1"),
    (["1.0.9", "1.0.10", "1.0.2"], "1.0.11"),  # the latest by number, not the last by text
    (["2", "10"], "11"),
    (["1.0", "1.0.5"], "1.0.6"),
    (["1.4", "abc", "../x", ""], "1.5"),  # names that are no version (a crafted pointer) are ignored
    (["abc"], "1.0.0"),
])
def test_next_version(existing: list[str], after: str) -> None:
    assert names.next_version(existing) == after


@pytest.mark.parametrize("existing, after", [
    (["01.0"], "1.1"),  # an older store's spelling: the next version is canonical
    (["1.0", "1.0.0"], "1.0.1"),  # one number: the longer spelling goes on
    (["1.1", "1.00.9"], "1.2"),  # by number: 1.1 is after 1.0.9
])
def test_next_version_is_canonical_and_by_number(existing: list[str], after: str) -> None:
    assert names.next_version(existing) == after


def test_one_number_one_version() -> None:
    assert names.semantic_key("1") == names.semantic_key("1.0.0") == names.semantic_key("01.00") == (1,)
    assert names.semantic_key("0.0") == (0,) and names.semantic_key("1.0.1") == (1, 0, 1)
    assert names.canonical_version("01.00.007") == "1.0.7" and names.canonical_version("0.0") == "0.0"


@pytest.mark.parametrize("version", ["1.0", "0.0", "10.20.30", "1.0.0", "1"])
def test_new_versions_accepted(version: str) -> None:
    assert names.check_new_version(version) == version


@pytest.mark.parametrize("version, says", [
    ("01.0", "write it as 1.0"), ("1.00", "write it as 1.0"), ("00", "write it as 0"), ("1.0\n", "malformed version"),
])
def test_new_versions_are_spelled_one_way(version: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        names.check_new_version(version)


@pytest.mark.parametrize("project, name", [("p", "latest"), ("p", "3.0"), ("p", "1.0.0"), ("a/1.0/b", "n"),
                                           ("latest/x", "n"), ("p", "0.0.0.1")])
def test_reserved_names_refused_for_new_datasets(project: str, name: str) -> None:
    assert names.check_name(name) == name  # still read
    with pytest.raises(UsageError, match="is reserved"):
        names.check_new_place(project, name)


@pytest.mark.parametrize("project, name", [("p", "latest-data"), ("p", "v3.0"), ("2024x/p", "Latest"), ("p", "1.0a"),
                                           ("archive/2024", "2024"), ("p", "007")])  # a plain number is a name
def test_names_like_reserved_ones_are_fine(project: str, name: str) -> None:
    names.check_new_place(project, name)


def test_no_automatic_version_past_the_largest_number() -> None:
    with pytest.raises(UsageError, match="give the version explicitly"):
        names.next_version(["1." + "9" * 18])


def test_dataset_names() -> None:
    assert names.check_name("cats-2024") == "cats-2024"
    for bad in ("", "a/b", ".hidden", " x", None):
        with pytest.raises(UsageError, match="dataset name"):
            names.check_name(bad)


# --- paths inside a dataset --------------------------------------------------------------------------


@pytest.mark.parametrize("typed, stored", [
    ("", ""), (".", ""), ("./", ""), ("a", "a"), ("a/b", "a/b"), ("a/b/", "a/b"), ("a//b", "a/b"),
    ("./a/./b", "a/b"), ("a\\b\\c.txt", "a/b/c.txt"),  # a Windows user's separator
    ("é/名", "é/名"),
    ("/abs", "abs"), ("\\abs", "abs"), ("/my_dataset/new_folder/", "my_dataset/new_folder"), ("/", ""),  # ClearML's root
])
def test_dataset_paths_are_tidied(typed: str, stored: str) -> None:
    assert names.check_dataset_path(typed) == stored


@pytest.mark.parametrize("typed, says", [
    ("/..", "escapes the dataset"), ("..", "escapes the dataset"), ("a/../../b", "escapes"),
    ("a\\..\\b", "escapes"), ("a\x00b", "contains a NUL byte"), ("x" * 256, "longer than"),
    ("/".join(["d"] * 256), "levels deep"),
])
def test_dataset_paths_refused(typed: str, says: str) -> None:
    with pytest.raises(UsageError, match=says) as info:
        names.check_dataset_path(typed, what="dataset_path")
    message = str(info.value)
    assert message.startswith("dataset_path ") and "\n" not in message and len(message) < 400, message


def test_a_dataset_path_must_be_text() -> None:
    with pytest.raises(UsageError, match="dataset path must be a string"):
        names.check_dataset_path(b"a/b")  # type: ignore[arg-type]


def test_found_paths_are_kept_exactly() -> None:
    assert names.found_path("", "a/b.txt", "/src/a/b.txt") == "a/b.txt"
    assert names.found_path("pre/fix", "x y.bin", "/src/x y.bin") == "pre/fix/x y.bin"


def test_found_names_are_refused_never_rewritten() -> None:
    with pytest.raises(UsageError, match=r"contains '\\'.*rename the file"):
        names.found_path("", "a\\b", "/src/a\\b")
    undecodable = os.fsdecode(b"caf\xe9.txt")  # as os.listdir gives a name that is not UTF-8
    with pytest.raises(UsageError, match=r"cannot add /src/caf\\xe9\.txt: its name is not valid UTF-8"):
        names.found_path("", undecodable, "/src/" + undecodable)
    with pytest.raises(UsageError, match="levels deep"):
        names.found_path("/".join(["d"] * 255), "f", "/src/f")


def test_sources_are_shown_printable() -> None:
    assert names.shown_source("/data/a.txt") == "/data/a.txt"
    assert names.shown_source(os.fsdecode(b"/data/caf\xe9")) == "/data/caf\\xe9"
    assert names.shown_source("s3://b/k") == "s3://b/k"


def test_two_sources_for_one_path_are_refused_naming_both() -> None:
    names.check_distinct([("/a/x", "x"), ("/a/x", "x"), ("/a/y", "y")])  # one source named twice: one file
    with pytest.raises(UsageError, match=r"/a/x and /b/x would both be 'x' in the dataset"):
        names.check_distinct([("/a/w", "w"), ("/a/x", "x"), ("/b/x", "x")])


@pytest.mark.parametrize("path, pattern, recursive, matches", [
    ("a/b/c.txt", "", True, True), ("a/b/c.txt", "*", True, True),
    ("a/b/c.txt", "a/b/c.txt", False, True),  # the file itself
    ("a/b/c.txt", "a", True, True), ("a/b/c.txt", "a/", True, True),  # a folder, recursively
    ("a/b/c.txt", "a", False, False),  # not without recursion
    ("ab/c.txt", "a", True, False),  # a folder is a whole name, not a prefix
    ("a/c.txt", "a/*.txt", False, True), ("a/b/c.txt", "a/*.txt", False, False),  # '*' stays in its folder
    ("a/b/c.txt", "a/*.txt", True, True), ("a/c.csv", "a/*.txt", True, False),
    ("c.txt", "*.txt", False, True), ("a/c.txt", "*.txt", False, False),
    ("a/C.TXT", "a/*.txt", False, False),  # case matters, on every platform
])
def test_path_matches(path: str, pattern: str, recursive: bool, matches: bool) -> None:
    assert names.path_matches(path, pattern, recursive) is matches
