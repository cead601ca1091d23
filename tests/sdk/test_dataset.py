"""sdk.dataset: ``Dataset`` composes the parts (no mixins), keeps ClearML's API name for name, and hands
every argument to the part whose job it is (what each part does is tested in that part's own file)."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import pytest
from sdkhelp import write_files

import mountfs
from mountfs import Dataset
from mountfs.errors import NotFound
from mountfs.sdk.changes import DraftChanges
from mountfs.sdk.closing import DraftClosing
from mountfs.sdk.copies import LocalCopies
from mountfs.sdk.metadata import Metadata
from mountfs.sdk.reading import VersionReading
from mountfs.store.packs import CODEC_NONE

#: every public name of ``Dataset`` with its parameters (defaults included), as of the mixin version it replaced
PUBLIC_API: dict[str, Any] = {
    "add_external_files": ["self", "source_url", "wildcard=None", "dataset_path=None", "recursive=True",
                           "verbose=False", "max_workers=None", "read_hash=False"],
    "add_tags": ["self", "tags"],  # --- parity (issue 15) ---
    "file_entries": "property",
    "get_default_storage": ["self"],
    "get_num_chunks": ["self", "include_parents=True"],
    "link_entries": "property",
    "link_entries_dict": "property",
    "set_description": ["self", "description"],  # --- end parity ---
    "sync_folder": ["self", "local_path", "dataset_path=None", "verbose=False", "verify=False",  # --- sync ---
                    "max_workers=None", "show_progress=False"],
    "discard_draft": ["self"],  # --- end sync ---
    "rename": ["new_dataset_name", "dataset_project", "dataset_name"],  # --- rename/move ---
    "move_to_project": ["new_dataset_project", "dataset_project", "dataset_name"],  # --- end rename/move ---
    "mount": ["self", "path"],  # --- writable copies (issue 20), mountfs only ---
    "unmount": ["self", "path=None"],
    "delete": ["dataset_id=None", "dataset_project=None", "dataset_name=None", "force=False",  # --- delete ---
               "dataset_version=None", "entire_dataset=False", "shallow_search=False", "delete_files=True",
               "delete_external_files=False", "gc=True"],  # --- end delete ---
    "add_files": ["self", "path", "wildcard=None", "local_base_folder=None", "dataset_path=None", "recursive=True",
                  "verbose=False", "max_workers=None", "show_progress=False"],
    "create": ["dataset_name=None", "dataset_project=None", "dataset_tags=None", "parent_datasets=None",
               "use_current_task=False", "dataset_version=None", "output_uri=None", "description=None"],
    "description": "property",
    "file_entries_dict": "property",
    "finalize": ["self", "verbose=False", "raise_on_error=True", "auto_upload=False"],
    "get": ["dataset_id=None", "dataset_project=None", "dataset_name=None", "dataset_tags=None",
            "only_completed=False", "only_published=False", "include_archived=False", "auto_create=False",
            "writable_copy=False", "dataset_version=None", "alias=None", "overridable=False",
            "shallow_search=False", "kwargs"],
    "get_dependency_graph": ["self"],
    "get_local_copy": ["self", "use_soft_links=None", "part=None", "num_parts=None", "raise_on_error=True",
                       "max_workers=None", "files=None", "show_progress=False"],
    "get_metadata": ["self", "metadata_name='metadata'"],
    "get_mutable_local_copy": ["self", "target_folder", "overwrite=False", "part=None", "num_parts=None",
                               "raise_on_error=True", "max_workers=None", "show_progress=False"],
    "id": "property",
    "is_dirty": ["self"],
    "is_final": ["self"],
    "list_added_files": ["self", "dataset_id=None"],
    "list_datasets": ["dataset_project=None", "partial_name=None", "tags=None", "ids=None", "only_completed=True",
                      "recursive_project_search=True", "include_archived=True"],
    "list_files": ["self", "dataset_path=None", "recursive=True", "dataset_id=None"],
    "list_modified_files": ["self", "dataset_id=None"],
    "list_removed_files": ["self", "dataset_id=None"],
    "name": "property",
    "project": "property",
    "publish": ["self", "raise_on_error=True"],
    "record": "property",
    "remove_files": ["self", "dataset_path=None", "recursive=True", "verbose=False"],
    "set_metadata": ["self", "metadata", "metadata_name='metadata'", "ui_visible=True"],
    "squash": ["dataset_name", "dataset_ids=None", "dataset_project_name_pairs=None", "output_url=None",
               "close_squashed_dataset=True"],
    "status": "property",
    "get_logger": ["self"],
    "get_reports": ["self"],
    "storage": "property",
    "tags": "property+setter",
    "upload": ["self", "show_progress=True", "verbose=False", "output_url=None", "compression=None",
               "chunk_size=None", "max_workers=None", "retries=3", "preview=True", "upload_as_external_links=False"],
    "verify_dataset_hash": ["self", "local_copy_path=None", "skip_hash=False", "verbose=False"],
    "version": "property+setter",
}


def _shape(name: str) -> Any:
    attr = inspect.getattr_static(Dataset, name)
    if isinstance(attr, property):
        return "property" + ("+setter" if attr.fset else "")
    return [p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
            for p in inspect.signature(getattr(Dataset, name)).parameters.values()]


def test_the_public_api_is_clearmls_unchanged() -> None:
    assert mountfs.Dataset is Dataset
    public = sorted(n for n in dir(Dataset) if not n.startswith("_"))
    assert public == sorted(PUBLIC_API)
    assert {n: _shape(n) for n in public} == PUBLIC_API
    undocumented = [n for n in public if not (inspect.getattr_static(Dataset, n).__doc__ or "").strip()]
    assert not undocumented


def test_dataset_is_composed_of_parts_sharing_one_version(tmp_path: Path) -> None:
    assert Dataset.__mro__ == (Dataset, object)  # no mixins
    ds = Dataset.create(dataset_name="ds", dataset_project="p")
    parts = {type(p) for p in vars(ds).values()}
    assert {DraftChanges, DraftClosing, VersionReading, LocalCopies, Metadata} <= parts
    shared = {id(p._v) for p in vars(ds).values() if hasattr(p, "_v")}
    assert shared == {id(ds._version)}
    # a change made through one part is seen by the others, and the record by the facade
    ds.add_files(write_files(tmp_path / "src", {"a": b"a"}))
    assert ds.list_files() == ["a"] and ds.is_dirty()
    ds.finalize(auto_upload=True)
    assert ds.is_final() and ds.status == "completed" and ds.record is ds._version.record
    assert repr(ds) == f"<Dataset p/ds 1.0.0 id={ds.id} status=completed>"


def test_tags_are_saved_when_set() -> None:
    ds = Dataset.create(dataset_name="ds", dataset_project="p", dataset_tags=["a"])
    ds.tags = ["b", "c"]
    assert Dataset.get(dataset_id=ds.id).tags == ["b", "c"]


# --- each argument reaches its part: a swapped or dropped argument changes what these see ---------


def _final(tmp_path: Path, files: dict[str, bytes], name: str = "ds", **kw: Any) -> Dataset:
    ds = Dataset.create(dataset_name=name, dataset_project="p", **kw)
    ds.add_files(write_files(tmp_path / f"src-{name}-{len(files)}", files))
    ds.finalize(auto_upload=True)
    return ds


def test_create_and_the_lookups_pass_their_arguments(tmp_path: Path) -> None:
    parent = _final(tmp_path, {"a": b"a"}, name="parent", dataset_tags=["base"])
    other = str(tmp_path / "other-store")
    child = Dataset.create(dataset_name="child", dataset_project="p/sub", dataset_tags=["t1", "t2"],
                           parent_datasets=[parent], dataset_version="2.5", output_uri=other, description="why")
    rec = child.record
    assert (child.name, child.project, child.tags, child.version, child.description) == (
        "child", "p/sub", ["t1", "t2"], "2.5", "why")
    assert rec.parents == [parent.id] and rec.storage == other and child.storage.url == other
    assert Dataset.get(dataset_id=child.id).id == child.id
    assert Dataset.get(dataset_project="p/sub", dataset_name="child", dataset_version="2.5").id == child.id
    assert Dataset.get(dataset_project="p", dataset_name="parent", dataset_tags=["base"]).id == parent.id
    with pytest.raises(NotFound):
        Dataset.get(dataset_project="p/sub", dataset_name="child", only_completed=True)
    with pytest.raises(NotFound):
        Dataset.get(dataset_id=parent.id, only_published=True)
    copy = Dataset.get(dataset_id=parent.id, writable_copy=True)
    assert copy.record.parents == [parent.id] and not copy.is_final()
    made = Dataset.get(dataset_project="q", dataset_name="new", auto_create=True, dataset_version="3.0")
    assert (made.project, made.name, made.version) == ("q", "new", "3.0")
    def listed(**kw: Any) -> list[str]:
        return sorted(d["name"] for d in Dataset.list_datasets(**kw))

    assert listed() == ["parent"]
    assert listed(only_completed=False, dataset_project="p") == ["child", "parent", "parent"]  # and the copy
    assert listed(only_completed=False, dataset_project="p", recursive_project_search=False) == ["parent", "parent"]
    assert listed(only_completed=False, partial_name="HIL", tags=["t2"]) == ["child"]
    assert listed(only_completed=False, ids=[made.id]) == ["new"]


def test_squash_passes_ids_objects_pairs_and_the_store(tmp_path: Path) -> None:
    a = _final(tmp_path, {"same": b"from a", "a": b"a"}, name="a")
    b = _final(tmp_path, {"same": b"from b", "b": b"b"}, name="b")
    other = str(tmp_path / "squashed-store")
    sq = Dataset.squash("both", dataset_ids=[a, b.id], output_url=other)
    assert sq.is_final() and sq.storage.url == other
    assert (Path(sq.get_local_copy() or "") / "same").read_bytes() == b"from b"
    again = Dataset.squash("pairs", dataset_project_name_pairs=[("p", "b"), ("p", "a")])
    assert (Path(again.get_local_copy() or "") / "same").read_bytes() == b"from a"


def test_changes_and_closing_pass_their_arguments(tmp_path: Path) -> None:
    src = write_files(tmp_path / "src", {"top.txt": b"t" * 40_000, "sub/deep.txt": b"d", "sub/x.bin": b"x"})
    ext = write_files(tmp_path / "ext", {"e.csv": b"1,2", "deeper/f.csv": b"3"})
    ds = Dataset.create(dataset_name="ds", dataset_project="p")
    assert ds.add_files(src / "sub", wildcard="*.txt", local_base_folder=str(src), dataset_path="in",
                        recursive=True, max_workers=1) == 1
    assert ds.add_files(src, dataset_path="flat", recursive=False) == 1
    assert ds.add_external_files(f"file://{ext}", wildcard="*.csv", dataset_path="ext", recursive=False,
                                 max_workers=1) == 1
    assert ds.list_files() == ["ext/e.csv", "flat/top.txt", "in/sub/deep.txt"]
    assert ds.remove_files("in", recursive=False) == 0 and ds.remove_files("in") == 1
    assert ds.is_dirty()
    other = str(tmp_path / "upload-store")
    ds.upload(show_progress=False, output_url=other, compression=False, chunk_size=1, max_workers=1)
    assert ds.storage.url == other and not ds.is_dirty()
    assert ds.file_entries_dict["flat/top.txt"].chunks[0].codec == CODEC_NONE
    assert ds.finalize(verbose=True) and ds.publish() and ds.status == "published"


def test_reading_and_copies_pass_their_arguments(tmp_path: Path) -> None:
    parent = _final(tmp_path, {"a/1": b"1", "a/2": b"2", "b/3": b"3", "gone": b"g"}, name="parent")
    child = Dataset.create(dataset_name="child", dataset_project="p", parent_datasets=[parent.id])
    child.add_files(write_files(tmp_path / "new", {"a/1": b"changed", "c": b"c"}))
    child.remove_files("gone")
    child.finalize(auto_upload=True)
    assert child.list_files("a/*", recursive=False) == ["a/1", "a/2"] and child.list_files("b") == ["b/3"]
    assert child.list_files(dataset_id=parent.id) == ["a/2", "b/3"]  # the files whose content came from it
    assert (child.list_added_files(), child.list_modified_files(), child.list_removed_files()) == (
        ["c"], ["a/1"], ["gone"])
    assert (child.list_added_files(dataset_id=parent.id), child.list_modified_files(dataset_id=parent.id),
            child.list_removed_files(dataset_id=parent.id)) == (["c"], ["a/1"], ["gone"])  # child against it
    assert child.get_dependency_graph() == {child.id: [parent.id], parent.id: []}
    chosen = Path(child.get_local_copy(files=["b"], max_workers=1) or "")
    assert [str(p.relative_to(chosen)) for p in chosen.rglob("*") if p.is_file()] == ["b/3"]
    half = Path(child.get_local_copy(part=1, num_parts=2) or "")
    assert half.name.endswith("part1of2")
    target = tmp_path / "mutable"
    target.mkdir()
    (target / "old").write_bytes(b"mine")
    assert child.get_mutable_local_copy(target, overwrite=True, part=0, num_parts=4, max_workers=1) == str(target)
    assert sorted(os.listdir(target)) == ["a"]
    (target / "a" / "1").write_bytes(b"CHANGED")  # same size, other bytes
    assert child.verify_dataset_hash(local_copy_path=str(target), skip_hash=True) == ["a/2", "b/3", "c"]
    assert child.verify_dataset_hash(local_copy_path=str(target)) == ["a/1", "a/2", "b/3", "c"]
    assert child.verify_dataset_hash() == []
    child.set_metadata({"k": 1}, metadata_name="named")
    assert child.get_metadata("named") == {"k": 1} and child.get_metadata() is None
