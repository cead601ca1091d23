"""``mountfs compare`` (clearml-data's: files added, modified and removed between two versions) and
``mountfs set-description``, on the folder store and on SeaweedFS."""

from __future__ import annotations

import pytest

from mountfs import Dataset
from mountfs.errors import NotFound, UsageError


def _two_versions(env, mountfs) -> tuple[str, str]:
    """A version of env.data, and a child: one file modified, one removed, one added, the rest unchanged."""
    first = mountfs("create", "--project", "p", "--name", "d").stdout.strip()
    mountfs("add", "--files", env.data)
    mountfs("close")
    changed = env.work / "changed"
    (changed / "new").mkdir(parents=True)
    (changed / "labels.csv").write_text("file,label\nimg_0001.jpg,dog\n")
    (changed / "new" / "x.bin").write_bytes(b"x")
    second = mountfs("create", "--parents", first).stdout.strip()
    mountfs("add", "--files", changed)
    mountfs("remove", "--files", "val/img_0003.jpg")
    mountfs("close")
    return first, second


def _compare_and_describe(env, mountfs) -> None:
    first, second = _two_versions(env, mountfs)
    out = mountfs("compare", "--source", first, "--target", second)
    assert out.stdout == (f"p/d 1.0.0 ({first}) -> p/d 1.0.1 ({second}): "
                          "1 added, 1 modified, 1 removed, 2 unchanged\n")
    verbose = mountfs("compare", "--source", first, "--target", second, "--verbose")
    assert verbose.stdout == "added\tnew/x.bin\nmodified\tlabels.csv\nremoved\tval/img_0003.jpg\n"
    assert "1 added, 1 modified, 1 removed" in verbose.stderr
    doc = mountfs.json("compare", "--source", second, "--target", first)  # the other way round
    assert doc == {"source": second, "target": first, "added": ["val/img_0003.jpg"], "modified": ["labels.csv"],
                   "removed": ["new/x.bin"]}
    same = mountfs.json("compare", "--source", first, "--target", first)
    assert same["added"] == same["modified"] == same["removed"] == []
    # set-description: a finalized version's too
    out = mountfs("set-description", "--id", first, "--description", "the first one")
    assert out.stdout == f"description of p/d 1.0.0 ({first}) set\n"
    assert Dataset.get(dataset_id=first).description == "the first one"
    assert mountfs.json("info", "--id", first)["description"] == "the first one"


def test_compare_and_set_description(env, mountfs) -> None:
    _compare_and_describe(env, mountfs)


def test_set_description_defaults_to_the_remembered_draft(env, mountfs) -> None:
    draft = mountfs("create", "--project", "p", "--name", "d").stdout.strip()
    mountfs("set-description", "--description", "work in progress")
    assert Dataset.get(dataset_id=draft).description == "work in progress"
    mountfs("set-description", "--description", "")
    assert Dataset.get(dataset_id=draft).description == ""


def test_compare_of_a_draft_and_of_two_datasets(env, mountfs) -> None:
    first, _ = _two_versions(env, mountfs)
    other = mountfs("create", "--project", "q", "--name", "other").stdout.strip()  # a draft, still empty
    doc = mountfs.json("compare", "--source", first, "--target", other)
    assert doc["removed"] == sorted(Dataset.get(dataset_id=first).list_files()) and doc["added"] == []


@pytest.mark.parametrize("args, code, says", [
    (["compare", "--source", "X"], UsageError.exit_code, "missing --target"),
    (["compare", "--target", "X"], UsageError.exit_code, "missing --source"),
    (["compare", "--source", "0000deadbeef0000", "--target", "FIRST"], NotFound.exit_code, "no dataset with id"),
    (["compare", "--source", "FIRST", "--target", "../x"], NotFound.exit_code, "no dataset with id"),
    (["set-description", "--id", "FIRST"], UsageError.exit_code, "missing --description"),
    (["set-description", "--id", "0000deadbeef0000", "--description", "x"], NotFound.exit_code, "no dataset with id"),
])
def test_bad_input_is_one_line(env, mountfs, args: list[str], code: int, says: str) -> None:
    first, _ = _two_versions(env, mountfs)
    line = mountfs.fails(*[first if a == "FIRST" else a for a in args], code=code)
    assert says in line


def test_set_description_without_a_draft_says_what_to_pass(env, mountfs) -> None:
    line = mountfs.fails("set-description", "--description", "x", code=UsageError.exit_code)
    assert "pass --id" in line


@pytest.mark.s3
def test_compare_and_set_description_on_seaweedfs(env, mountfs, seaweed_store: str) -> None:
    _compare_and_describe(env, mountfs)
