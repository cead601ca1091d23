"""ClearML parity of ``Dataset`` (issue 15): tags, description, default storage, chunks, renumbering,
entries by ClearML's names, ``get``'s unknown arguments, ``remove_files()``, regular-expression names,
and verification of external files.  Real local store (tests/conftest.py isolated_env); docs/CLEARML.md
names these tests for each member it calls "same"."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import xxhash
from click.testing import CliRunner
from sdkhelp import write_files

from mountfs import Dataset
from mountfs.cli import cli
from mountfs.errors import Conflict, StateError, UsageError
from mountfs.session import Session

# --- tags: a plain string is one tag everywhere ---------------------------------------


def test_a_plain_string_is_one_tag_everywhere(finalized) -> None:
    ds = finalized({"a": b"a"}, name="tagged", dataset_tags="my tag")
    other = finalized({"b": b"b"}, name="other", dataset_tags=["m", "y"])
    assert ds.tags == ["my tag"]
    assert Dataset.get(dataset_project="p", dataset_name="tagged", dataset_tags="my tag").id == ds.id
    assert Dataset.get(dataset_tags="my tag").id == ds.id  # not the letters: "other" has "m" and "y"
    assert [d["id"] for d in Dataset.list_datasets(tags="my tag")] == [ds.id]
    assert [d["id"] for d in Dataset.list_datasets(tags=["m", "y"])] == [other.id]


def test_add_tags_and_the_setter_save_the_record(finalized) -> None:
    ds = finalized({"a": b"a"}, dataset_tags=["first"])
    ds.add_tags("second tag")
    ds.add_tags(["third", "first"])  # one already there is not added twice
    assert ds.tags == ["first", "second tag", "third"]
    assert Dataset.get(dataset_id=ds.id).tags == ["first", "second tag", "third"]
    ds.tags = "only"
    assert Dataset.get(dataset_id=ds.id).tags == ["only"]
    ds.tags = None
    assert Dataset.get(dataset_id=ds.id).tags == []
    with pytest.raises(UsageError, match="tags must be strings"):
        ds.add_tags([3])  # type: ignore[list-item]


# --- small members ----------------------------------------------------------------------


def test_set_description_and_get_default_storage(sess: Session, finalized, tmp_path: Path) -> None:
    ds = finalized({"a": b"a"}, description="at create")
    ds.set_description("later")
    assert Dataset.get(dataset_id=ds.id).description == "later"
    assert ds.get_default_storage() == sess.catalog_url
    elsewhere = tmp_path / "elsewhere"
    draft = Dataset.create(dataset_name="other", dataset_project="p", output_uri=str(elsewhere))
    assert draft.get_default_storage() == draft.storage.url != sess.catalog_url
    assert str(elsewhere) in draft.get_default_storage()


def _packs(ds: Dataset) -> set[str]:
    return {c.pack for e in ds.file_entries_dict.values() for c in e.chunks}


def test_get_num_chunks_counts_packs_with_and_without_the_parents(finalized, tmp_path: Path) -> None:
    parent = finalized({"a": os.urandom(5000), "b": os.urandom(5000)})
    assert parent.get_num_chunks() == parent.get_num_chunks(include_parents=False) == len(_packs(parent)) >= 1
    child = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[parent.id])
    assert child.get_num_chunks() == len(_packs(parent)) and child.get_num_chunks(include_parents=False) == 0
    child.add_files(write_files(tmp_path / "more", {"c": os.urandom(5000)}))
    assert child.get_num_chunks(include_parents=False) == 0  # not uploaded: in no pack yet
    child.upload(show_progress=False)
    child.finalize()
    own = _packs(child) - _packs(parent)
    assert own and child.get_num_chunks(include_parents=False) == len(own)
    assert child.get_num_chunks() == len(_packs(child)) == len(_packs(parent)) + len(own)


def test_the_version_setter_renumbers_a_draft(finalized) -> None:
    finalized({"a": b"a"})  # 1.0.0
    draft = Dataset.create(dataset_name="ds", dataset_project="p")
    assert draft.version == "1.0.1"
    draft.version = " 2.0 "
    assert draft.version == "2.0"
    assert Dataset.get(dataset_project="p", dataset_name="ds", dataset_version="2.0").id == draft.id
    with pytest.raises(Exception, match="no dataset"):
        Dataset.get(dataset_project="p", dataset_name="ds", dataset_version="1.0.1")
    # the old number is free again, a taken one is refused and changes nothing
    again = Dataset.create(dataset_name="ds", dataset_project="p", dataset_version="1.0.1")
    with pytest.raises(Conflict, match="1.0.1 of p/ds already exists"):
        draft.version = "1.0.1"
    assert draft.version == "2.0" and Dataset.get(dataset_id=draft.id).version == "2.0"
    assert Dataset.get(dataset_project="p", dataset_name="ds", dataset_version="1.0.1").id == again.id
    with pytest.raises(UsageError, match="malformed version"):
        draft.version = "two"
    draft.version = "2.0"  # its own number: nothing to do
    final = Dataset.get(dataset_project="p", dataset_name="ds", dataset_version="1.0.0")
    with pytest.raises(StateError, match="finalized"):
        final.version = "9.0"
    assert Dataset.get(dataset_id=final.id).version == "1.0.0"


# --- entries by ClearML's names ---------------------------------------------------------


def test_entries_answer_to_clearmls_names(sess: Session, finalized, tmp_path: Path) -> None:
    root = finalized({"a.txt": b"aaa", "b.txt": b"old"})
    mid = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[root.id])
    mid.add_files(write_files(tmp_path / "mid", {"b.txt": b"new!", "c.txt": b"c"}))
    ext = write_files(tmp_path / "ext", {"remote.csv": b"1,2,3"})
    mid.add_external_files(f"file://{ext}/remote.csv", dataset_path="links")
    mid.finalize(auto_upload=True)
    top = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[mid.id])
    top.add_files(write_files(tmp_path / "top", {"d.txt": b"d"}))

    files = {e.relative_path: e for e in top.file_entries}
    assert sorted(files) == ["a.txt", "b.txt", "c.txt", "d.txt"]  # stored files only, as ClearML
    assert {p: e.size for p, e in files.items()} == {"a.txt": 3, "b.txt": 4, "c.txt": 1, "d.txt": 1}
    assert files["b.txt"].hash == xxhash.xxh3_128(b"new!").hexdigest()
    # the version that stored each content, walking back through the parents
    assert {p: e.parent_dataset_id for p, e in files.items()} == {
        "a.txt": root.id, "b.txt": mid.id, "c.txt": mid.id, "d.txt": top.id}
    assert files["a.txt"].as_dict() == {"relative_path": "a.txt", "hash": xxhash.xxh3_128(b"aaa").hexdigest(),
                                        "parent_dataset_id": root.id, "size": 3}
    assert files["a.txt"].link is None

    links = top.link_entries_dict
    assert list(links) == ["links/remote.csv"]
    link = links["links/remote.csv"]
    assert (link.link, link.relative_path, link.size, link.parent_dataset_id) == (
        f"file://{ext}/remote.csv", "links/remote.csv", 5, mid.id)
    assert [e.relative_path for e in top.link_entries] == ["links/remote.csv"]
    # file_entries_dict holds both, still usable as mountfs entries
    assert sorted(top.file_entries_dict) == ["a.txt", "b.txt", "c.txt", "d.txt", "links/remote.csv"]
    assert top.file_entries_dict["a.txt"].chunks == root.file_entries_dict["a.txt"].chunks
    # a copy: changing it changes nothing stored
    top.file_entries_dict["a.txt"].size = 99
    assert top.file_entries_dict["a.txt"].size == 3


# --- get, remove_files, list_datasets ---------------------------------------------------


def test_get_refuses_unknown_keyword_arguments(finalized) -> None:
    ds = finalized({"a": b"a"})
    for kind in (TypeError, ValueError, UsageError):  # Python's own, ClearML's, mountfs's
        with pytest.raises(kind, match="unknown keyword argument.*dataset_nmae"):
            Dataset.get(dataset_project="p", dataset_nmae="ds")  # type: ignore[call-arg]
    assert Dataset.get(dataset_id=ds.id, _allow_extra_fields_=True).id == ds.id  # ClearML's private ones pass


def test_remove_files_with_no_path_removes_everything(finalized, tmp_path: Path) -> None:
    parent = finalized({"top": b"t", "dir/deep": b"d", "dir/deeper/x": b"x"})
    flat = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[parent.id])
    assert flat.remove_files(recursive=False) == 1
    assert flat.list_files() == ["dir/deep", "dir/deeper/x"]
    every = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[parent.id])
    assert every.remove_files() == 3
    assert every.list_files() == []
    assert every.list_removed_files() == ["dir/deep", "dir/deeper/x", "top"]


def test_list_datasets_partial_name_is_a_regular_expression(finalized) -> None:
    ids = {n: finalized({"a": b"a"}, name=n).id for n in ("img-v1", "img-v2", "Audio-v1", "img.x")}
    found = lambda pattern: sorted(d["name"] for d in Dataset.list_datasets(partial_name=pattern))  # noqa: E731
    assert found(r"^img-v\d$") == ["img-v1", "img-v2"]
    assert found("v1") == ["Audio-v1", "img-v1"]  # anywhere in the name
    assert found("^audio") == ["Audio-v1"]  # ignoring case
    assert found(r"img\.") == ["img.x"] and len(found("img.")) == 3
    assert len(ids) == 4
    with pytest.raises(UsageError, match=r"^partial_name '\(' is not a valid regular expression .*re\.escape"):
        Dataset.list_datasets(partial_name="(")


# --- verify_dataset_hash and external files ---------------------------------------------


@pytest.mark.allow_warnings  # verify logs each failure it finds
def test_verify_does_not_fail_intact_external_files(finalized, tmp_path: Path) -> None:
    ext = write_files(tmp_path / "ext", {"e1.bin": b"external one", "e2.bin": b"external two"})
    ds = Dataset.create(dataset_name="ds", dataset_project="p")
    ds.add_files(write_files(tmp_path / "src", {"stored.bin": b"stored"}))
    ds.add_external_files(f"file://{ext}", dataset_path="ext")
    ds.finalize(auto_upload=True)
    copy = tmp_path / "copy"
    shutil.copytree(ds.get_local_copy(), copy)
    assert ds.verify_dataset_hash(local_copy_path=str(copy)) == []
    assert ds.verify_dataset_hash(local_copy_path=str(copy), skip_hash=True) == []
    assert ds.verify_dataset_hash() == []
    # a local copy of another size still fails; so does a source that changed since it was added
    os.chmod(copy / "ext" / "e1.bin", 0o644)
    (copy / "ext" / "e1.bin").write_bytes(b"short")
    assert ds.verify_dataset_hash(local_copy_path=str(copy)) == ["ext/e1.bin"]
    (ext / "e2.bin").write_bytes(b"external two, longer now")
    assert ds.verify_dataset_hash() == ["ext/e2.bin"]
    (ext / "e2.bin").unlink()
    assert ds.verify_dataset_hash() == ["ext/e2.bin"]


def test_cli_search_name_is_a_regular_expression_too(finalized) -> None:
    for n in ("img-v1", "img-v2", "img-v10"):
        finalized({"a": b"a"}, name=n)
    runner = CliRunner()
    ok = runner.invoke(cli, ["search", "--name", r"^img-v\d$", "--json"])
    assert ok.exit_code == 0, ok.output
    assert sorted(d["name"] for d in json.loads(ok.stdout)) == ["img-v1", "img-v2"]
    bad = runner.invoke(cli, ["search", "--name", "("])
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1
    assert "is not a valid regular expression" in bad.stderr and "Traceback" not in bad.output
