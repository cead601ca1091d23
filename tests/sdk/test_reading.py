"""sdk.reading: listings, differences to the parents, lineage and verification of one version."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import msgpack
import xxhash
import zstandard

import pytest
from sdkhelp import write_files

# the real-mount harness lives with the daemon tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from mfs import Harness, harness, short_run_dir  # noqa: E402

from mountfs import Dataset  # noqa: E402
from mountfs.cache.filetable import FileTables, version_key
from mountfs.errors import NotFound
from mountfs.store import manifest
from mountfs.store.layout import FORMAT_KEY, Manifest
from mountfs.sdk.lifecycle import by_id
from mountfs.sdk.reading import VersionReading
from mountfs.session import Session
from mountfs.store.layout import Pack


def _reading(sess: Session, ds: Dataset) -> VersionReading:
    return VersionReading(by_id(sess, ds.id), lambda dataset_id: by_id(sess, dataset_id))


def test_list_files(sess: Session, finalized) -> None:
    ds = finalized({"top.txt": b"t", "img/a.jpg": b"a", "img/deep/b.jpg": b"b", "img/c.png": b"c"})
    reading = _reading(sess, ds)
    assert reading.list_files() == ["img/a.jpg", "img/c.png", "img/deep/b.jpg", "top.txt"]
    assert reading.list_files(recursive=False) == ["top.txt"]
    assert reading.list_files("img/*.jpg") == ["img/a.jpg", "img/deep/b.jpg"]
    assert reading.list_files("img/*.jpg", recursive=False) == ["img/a.jpg"]
    assert reading.list_files("img/deep") == ["img/deep/b.jpg"]
    # with a dataset_id: the files whose content came from that version; this one stored them all
    assert reading.list_files(dataset_id=ds.id) == reading.list_files()
    assert reading.list_files("img/*.jpg", dataset_id=ds.id) == ["img/a.jpg", "img/deep/b.jpg"]
    other = finalized({"only.txt": b"o"}, name="other")
    assert reading.list_files(dataset_id=other.id) == []  # a version outside the lineage gave none of them
    with pytest.raises(NotFound):
        reading.list_files(dataset_id="0190a1b2c3d4deadbeef")  # an id that names nothing is a mistake


def test_changes_against_the_merged_parents(sess: Session, finalized, tmp_path: Path) -> None:
    a = finalized({"kept": b"1", "changed": b"old", "gone": b"x"})
    b = finalized({"from_b": b"b"}, name="b")
    child = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[a.id, b.id])
    child.add_files(write_files(tmp_path / "new", {"changed": b"new", "added": b"+"}))
    child.remove_files("gone")
    reading = _reading(sess, child)
    assert reading.changes() == (["added"], ["changed"], ["gone"])
    assert reading.changes(dataset_id=child.id) == reading.changes()
    # this version compared with another: a's "gone" is not here, b's file and the new one are
    assert reading.changes(dataset_id=a.id) == (["added", "from_b"], ["changed"], ["gone"])
    assert reading.changes(dataset_id=b.id) == (["added", "changed", "kept"], [], [])


def test_dependency_graph_of_a_diamond(sess: Session, finalized) -> None:
    root = finalized({"r": b"r"}, name="root")
    left = finalized({"l": b"l"}, name="left", parent_datasets=[root.id])
    right = finalized({"x": b"x"}, name="right", parent_datasets=[root.id])
    top = Dataset.create(dataset_name="top", dataset_project="p", parent_datasets=[left.id, right.id])
    assert _reading(sess, top).get_dependency_graph() == {
        top.id: [left.id, right.id], left.id: [root.id], right.id: [root.id], root.id: [],
    }


def test_verify_a_local_copy(sess: Session, finalized, tmp_path: Path) -> None:
    ds = finalized({"same": b"s" * 100, "flipped": b"f" * 100, "shorter": b"x" * 100, "missing": b"m"})
    copy = Path(ds.get_mutable_local_copy(tmp_path / "copy"))
    (copy / "flipped").write_bytes(b"F" + b"f" * 99)  # same size, other content
    (copy / "shorter").write_bytes(b"x")
    os.unlink(copy / "missing")
    reading = _reading(sess, ds)
    assert reading.verify_dataset_hash(str(copy)) == ["flipped", "missing", "shorter"]
    assert reading.verify_dataset_hash(str(copy), skip_hash=True) == ["missing", "shorter"]


@pytest.mark.allow_warnings  # the damaged read is retried once, with a warning
def test_verify_in_the_store_names_exactly_the_damaged_files(sess: Session, finalized, capsys) -> None:
    ds = finalized({f"f{i}": bytes([i]) * 2000 + os.urandom(16) for i in range(5)})
    reading = _reading(sess, ds)
    assert reading.verify_dataset_hash() == []
    victim = ds.file_entries_dict["f2"].chunks[0]
    pack = Path(os.environ["MOUNTFS_STORE"]) / Pack(victim.pack).key
    data = bytearray(pack.read_bytes())
    data[victim.offset] ^= 0xFF
    pack.write_bytes(bytes(data))
    assert reading.verify_dataset_hash(verbose=True) == ["f2"]
    assert "FAILED: f2" in capsys.readouterr().err


# --- where each file's content came from (issue 15) ----------------------------------------------


def _chain(finalized, tmp_path: Path) -> tuple[Dataset, Dataset, Dataset]:
    """v1 adds a, b, d; v2 modifies a and adds c; v3 removes b."""
    v1 = finalized({"a": b"a1", "b": b"b1", "d": b"d1"})
    v2 = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[v1.id])
    v2.add_files(write_files(tmp_path / "v2", {"a": b"a2", "c": b"c2"}))
    v2.finalize(auto_upload=True)
    v3 = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[v2.id])
    v3.remove_files("b")
    v3.finalize(auto_upload=True)
    return v1, v2, v3


def _origins(ds: Dataset) -> dict[str, str]:
    return {e.relative_path: e.parent_dataset_id for e in Dataset.get(dataset_id=ds.id).file_entries}


def _assert_chain_listings(v1: Dataset, v2: Dataset, v3: Dataset) -> None:
    v3 = Dataset.get(dataset_id=v3.id)
    assert _origins(v3) == {"a": v2.id, "c": v2.id, "d": v1.id}
    assert v3.list_files(dataset_id=v1.id) == ["d"]
    assert v3.list_files(dataset_id=v2.id) == ["a", "c"]
    assert v3.list_files(dataset_id=v3.id) == []  # it only removed a file
    assert v3.list_files("c", dataset_id=v2.id) == ["c"]
    # this version compared with an ancestor
    assert (v3.list_added_files(dataset_id=v1.id), v3.list_modified_files(dataset_id=v1.id),
            v3.list_removed_files(dataset_id=v1.id)) == (["c"], ["a"], ["b"])
    assert (v3.list_added_files(dataset_id=v2.id), v3.list_modified_files(dataset_id=v2.id),
            v3.list_removed_files(dataset_id=v2.id)) == ([], [], ["b"])
    # without one (or with its own id): against the merged parents, as before
    assert (v3.list_added_files(), v3.list_modified_files(), v3.list_removed_files()) == ([], [], ["b"])
    assert v3.list_removed_files(dataset_id=v3.id) == ["b"]
    # and the other way round, from the oldest
    v1 = Dataset.get(dataset_id=v1.id)
    assert (v1.list_added_files(dataset_id=v3.id), v1.list_modified_files(dataset_id=v3.id),
            v1.list_removed_files(dataset_id=v3.id)) == (["b"], ["a"], ["c"])
    assert Dataset.get(dataset_id=v2.id).list_files(dataset_id=v1.id) == ["b", "d"]


def test_listings_by_origin_across_three_versions(finalized, tmp_path: Path) -> None:
    v1, v2, v3 = _chain(finalized, tmp_path)
    _assert_chain_listings(v1, v2, v3)
    # the manifest records it: one table of ids in the header, the walk back through the parents is not needed
    header, entries = manifest.decode(v3.storage.backend.get(Manifest(v3.id).key), "v3")
    assert header["format"] == manifest.MANIFEST_FORMAT and sorted(header["origins"]) == sorted([v1.id, v2.id])
    assert {e.path: e.origin for e in entries} == {"a": v2.id, "c": v2.id, "d": v1.id}


def test_a_draft_and_its_finalized_version_name_the_same_origins(finalized, tmp_path: Path) -> None:
    v1, v2, v3 = _chain(finalized, tmp_path)
    v4 = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[v3.id])
    src = write_files(tmp_path / "v4", {"d": b"d4", "e": b"e4", "c": b"c2"})
    os.utime(src / "c", ns=(1, 1))  # same content as v2's, another mtime: still v2's content
    v4.add_files(src)
    before = _origins(v4)
    assert before == {"a": v2.id, "c": v2.id, "d": v4.id, "e": v4.id}
    assert v4.list_files(dataset_id=v4.id) == ["d", "e"] and v4.list_files(dataset_id=v1.id) == []
    v4.finalize(auto_upload=True)
    assert _origins(v4) == before
    assert Dataset.get(dataset_id=v4.id).list_files(dataset_id=v2.id) == ["a", "c"]


def test_a_file_put_back_to_an_older_content_is_the_new_versions_own(finalized, tmp_path: Path) -> None:
    v1, v2, v3 = _chain(finalized, tmp_path)
    v4 = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[v3.id])
    v4.add_files(write_files(tmp_path / "v4", {"a": b"a1"}))  # v1's bytes again: a change against v3
    v4.finalize(auto_upload=True)
    assert _origins(v4)["a"] == v4.id and v4.list_modified_files() == ["a"]


def test_a_squashed_version_holds_only_its_own_content(finalized, tmp_path: Path) -> None:
    v1, v2, v3 = _chain(finalized, tmp_path)
    for close in (True, False):
        flat = Dataset.squash(f"flat{close}", dataset_ids=[v3.id], close_squashed_dataset=close)
        if not close:
            flat.finalize(auto_upload=True)
        flat = Dataset.get(dataset_id=flat.id)
        assert _origins(flat) == dict.fromkeys(["a", "c", "d"], flat.id)
        assert flat.list_files(dataset_id=flat.id) == ["a", "c", "d"] and flat.list_files(dataset_id=v1.id) == []
        # compared with the version it was flattened from: the same files
        assert (flat.list_added_files(dataset_id=v3.id), flat.list_modified_files(dataset_id=v3.id),
                flat.list_removed_files(dataset_id=v3.id)) == ([], [], [])


# --- a store written before origins were recorded (manifest format 1) ------------------------------


def _format1(entries: list[Any], meta: dict[str, Any]) -> bytes:
    """The manifest bytes mountfs wrote before format 2: no origins in the header, 9-field rows."""
    packs: dict[str, int] = {}
    for e in entries:
        for c in e.chunks:
            packs.setdefault(c.pack, len(packs))
    values: list[Any] = [{"format": 1, "kind": "manifest", "count": len(entries), "packs": list(packs), "meta": meta}]
    values += [[e.path, e.size, e.mode, e.mtime_ns, e.digest,
                [[c.digest, c.size, packs[c.pack], c.offset, c.length, c.codec] for c in e.chunks], e.url, e.etag, e.src]
               for e in entries]
    payload = zstandard.ZstdCompressor().compress(b"".join(msgpack.packb(v) for v in values))
    body = manifest.MAGIC + b"\x01" + payload
    return body + xxhash.xxh3_128_digest(body)


def _make_format1(sess: Session, *versions: Dataset) -> None:
    """Rewrite the versions' manifests, and the store's format object, as a store of format 1 holds them."""
    backend = versions[0].storage.backend
    for ds in versions:
        rec = sess.catalog.get(ds.id)
        entries = sess.store(rec.storage).get_manifest(ds.id, rec.manifest_digest)
        data = _format1(entries, {"id": ds.id})
        backend.put(Manifest(ds.id).key, data)
        rec.manifest_digest = data[-16:].hex()
        sess.catalog.put(rec)
    doc = json.loads(backend.get(FORMAT_KEY))
    backend.put(FORMAT_KEY, json.dumps({**doc, "format": 1}).encode())


def test_a_store_of_format_1_is_read_and_extended(sess: Session, finalized, tmp_path: Path) -> None:
    v1, v2, v3 = _chain(finalized, tmp_path)
    _make_format1(sess, v1, v2, v3)
    backend = v3.storage.backend
    header, entries = manifest.decode(backend.get(Manifest(v3.id).key), "v3")
    assert header["format"] == 1 and header["origins"] == [] and all(e.origin == "" for e in entries)
    # every reader works, and the origins are found by walking the parents, as before they were recorded
    _assert_chain_listings(v1, v2, v3)
    copy = Path(Dataset.get(dataset_id=v3.id).get_local_copy() or "")
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == {"a": b"a2", "c": b"c2", "d": b"d1"}
    assert Dataset.get(dataset_id=v3.id).verify_dataset_hash() == []
    tables = FileTables(str(tmp_path / "tables"))  # what a mount does first with a version
    try:
        got = v3.storage.iter_manifest(v3.id, sess.catalog.get(v3.id).manifest_digest)
        assert tables.import_version(version_key(v3.id), got, 0).files == 3
    finally:
        tables.close()
    # a child written now has a manifest of format 2, its origins found through the old ones
    v4 = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[v3.id])
    v4.add_files(write_files(tmp_path / "v4", {"e": b"e4"}))
    v4.finalize(auto_upload=True)
    header, entries = manifest.decode(backend.get(Manifest(v4.id).key), "v4")
    assert header["format"] == 2
    assert {e.path: e.origin for e in entries} == {"a": v2.id, "c": v2.id, "d": v1.id, "e": v4.id}
    assert Dataset.get(dataset_id=v4.id).list_files(dataset_id=v1.id) == ["d"]
    assert json.loads(backend.get(FORMAT_KEY))["format"] == 1  # the store's format object is never rewritten


@pytest.fixture
def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setenv("MOUNTFS_RUN_DIR", short_run_dir())
    work = tmp_path / "work"
    work.mkdir()
    with harness(dict(os.environ), work) as hh:
        yield hh


@pytest.mark.fuse
@pytest.mark.slow
def test_a_store_of_format_1_mounts(sess: Session, finalized, tmp_path: Path, h: Harness) -> None:
    v1, v2, v3 = _chain(finalized, tmp_path)
    _make_format1(sess, v1, v2, v3)
    mnt = Path(h.mountpoint())
    d = h.start(str(mnt), how="mountfsd")
    for ds, want in ((v1, {"a": b"a1", "b": b"b1", "d": b"d1"}), (v3, {"a": b"a2", "c": b"c2", "d": b"d1"})):
        folder = mnt / "p" / "ds" / ds.version
        assert {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))} == want
    assert d.alive() and "Traceback" not in d.log_text()


def test_an_external_file_with_another_source_is_modified(finalized, tmp_path: Path) -> None:
    ext = write_files(tmp_path / "ext", {"one.csv": b"1,2", "two.csv": b"3,4,5"})
    v1 = Dataset.create(dataset_name="ds", dataset_project="p")
    v1.add_external_files(f"file://{ext}/one.csv", dataset_path="links")
    v1.finalize(auto_upload=True)
    v2 = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[v1.id])
    os.rename(ext / "two.csv", ext / "one.csv")  # same URL, other object: its digest is empty in both
    v2.add_external_files(f"file://{ext}/one.csv", dataset_path="links")
    v2.finalize(auto_upload=True)
    v2 = Dataset.get(dataset_id=v2.id)
    assert v2.list_modified_files() == v2.list_modified_files(dataset_id=v1.id) == ["links/one.csv"]
    assert v2.record.changes["modified"] == 1
    assert v2.list_files(dataset_id=v2.id) == ["links/one.csv"] and v2.list_files(dataset_id=v1.id) == []
