"""Garbage collection (mountfs/store/gc.py) on a real folder store, and once on SeaweedFS: unreachable old packs
go (index first), reachable, young and drafts' packs stay, a dry run deletes nothing, a child keeps the packs it
shares with a deleted parent, and a finalize never names a pack gc removed."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest
import xxhash

from mountfs import Dataset
from mountfs.backends.file import FileBackend
from mountfs.errors import IntegrityError, StoreLocked
from mountfs.session import current
from mountfs.store import gc
from mountfs.store.layout import INDEX, PACKS, Manifest, Pack, PackIndex, Pointer, Record
from mountfs.store.locks import shared_lock
from mountfs.store.store import Store
from mountfs.store.upload import ChunkSource, upload_chunks

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


def _files(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _version(tmp_path: Path, tag: str, files: dict[str, bytes], parents: list[str] | None = None,
             finalize: bool = True) -> Dataset:
    ds = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=parents)
    ds.add_files(_files(tmp_path / f"src-{tag}", files))
    ds.upload(show_progress=False)
    if finalize:
        assert ds.finalize()
    return ds


def _packs_of(ds: Dataset) -> set[str]:
    rec = current().catalog.get(ds.id)
    return {c.pack for e in current().store().get_manifest(ds.id, rec.manifest_digest) for c in e.chunks}


def _forget(ds: Dataset) -> None:
    """What deleting a version leaves for gc: its pointer, record and manifest gone, its packs still there."""
    rec = current().catalog.get(ds.id)
    backend = current().store().backend
    for key in (Pointer(rec.project, rec.name, rec.version).key, Record(ds.id).key, Manifest(ds.id).key):
        backend.delete(key)


def _stored_packs(store: Store) -> set[str]:
    return {o.key.rsplit("/", 1)[1] for o in store.backend.list(PACKS)}


def _indexed(store: Store) -> set[str]:
    return {o.key.rsplit("/", 1)[1] for o in store.backend.list(INDEX)}


def _blob(seed: int, n: int = 20_000) -> bytes:
    return xxhash.xxh3_128_digest(str(seed).encode()) * (n // 16)


def test_unreachable_old_packs_go_and_reachable_ones_stay(tmp_path: Path) -> None:
    gone = _version(tmp_path, "a", {"a.bin": _blob(1)})
    kept = _version(tmp_path, "b", {"b.bin": _blob(2)})
    gone_packs, kept_packs = _packs_of(gone), _packs_of(kept)
    assert gone_packs and kept_packs and not gone_packs & kept_packs
    _forget(gone)
    store = current().store()
    sizes = {o.key: o.size for p in (PACKS, INDEX) for o in store.backend.list(p)}
    freed = sum(sizes[k] for p in gone_packs for k in (Pack(p).key, PackIndex(p).key))

    report = gc.collect(store, grace_seconds=0)

    assert (report.packs, report.bytes, report.young) == (len(gone_packs), freed, 0)
    assert report.reachable == len(kept_packs) and not report.dry_run
    assert _stored_packs(store) == _indexed(store) == kept_packs
    assert Path(Dataset.get(dataset_id=kept.id).get_local_copy() or "", "b.bin").read_bytes() == _blob(2)
    assert not list(store.backend.list("locks/"))  # the exclusive lock is released


def test_young_packs_are_kept_for_the_grace_period(tmp_path: Path) -> None:
    gone = _version(tmp_path, "a", {"a.bin": _blob(1)})
    packs = _packs_of(gone)
    _forget(gone)
    store = current().store()
    report = gc.collect(store)  # the default hour: packs this young may belong to an upload in flight
    assert (report.packs, report.young) == (0, len(packs))
    assert _stored_packs(store) == packs


def test_a_draft_keeps_its_uploaded_packs(tmp_path: Path) -> None:
    draft = _version(tmp_path, "d", {"d.bin": _blob(3)}, finalize=False)
    store = current().store()
    before = _stored_packs(store)
    assert before
    report = gc.collect(store, grace_seconds=0)
    assert report.packs == 0 and report.reachable == len(before)
    assert _stored_packs(store) == before
    assert draft.finalize()
    assert Path(Dataset.get(dataset_id=draft.id).get_local_copy() or "", "d.bin").read_bytes() == _blob(3)


def test_dry_run_reports_and_deletes_nothing(tmp_path: Path) -> None:
    gone = _version(tmp_path, "a", {"a.bin": _blob(1), "x/y.bin": _blob(4)})
    _forget(gone)
    store = current().store()
    listing = sorted(o.key for o in store.backend.list(""))
    dry = gc.collect(store, dry_run=True, grace_seconds=0)
    assert dry.dry_run and dry.packs == len(_stored_packs(store)) and dry.bytes > 0
    assert sorted(o.key for o in store.backend.list("")) == listing
    real = gc.collect(store, grace_seconds=0)
    assert (real.packs, real.bytes) == (dry.packs, dry.bytes)
    assert "would free" in dry.summary() and "freed" in real.summary()


def test_a_child_keeps_the_packs_it_shares_with_a_deleted_parent(tmp_path: Path) -> None:
    parent = _version(tmp_path, "p", {"shared.bin": _blob(5), "other.bin": _blob(6)})
    child = _version(tmp_path, "c", {"new.bin": _blob(7)}, parents=[parent.id])
    parent_packs = _packs_of(parent)
    assert parent_packs <= _packs_of(child)  # the child's manifest names the parent's pack
    _forget(parent)
    store = current().store()
    report = gc.collect(store, grace_seconds=0)
    assert report.packs == 0
    assert parent_packs <= _stored_packs(store)
    copy = Path(Dataset.get(dataset_id=child.id).get_local_copy() or "")
    assert [(copy / n).read_bytes() for n in ("shared.bin", "other.bin", "new.bin")] == [_blob(5), _blob(6), _blob(7)]


def test_after_gc_the_same_content_is_uploaded_again_not_skipped(tmp_path: Path) -> None:
    """restic's prune race, in one process: the store's in-memory index must not offer a deleted pack's chunks."""
    gone = _version(tmp_path, "a", {"a.bin": _blob(8)})
    old = _packs_of(gone)
    _forget(gone)
    store = current().store()
    store.chunk_index()  # the deleted version's chunks are in this process's index
    assert gc.collect(store, grace_seconds=0).packs == len(old)
    assert not _stored_packs(store) & old
    again = _version(tmp_path, "a2", {"a.bin": _blob(8)})
    # sent again (a pack is named by its bytes, so it lands under its old name), not skipped as "known"
    assert _packs_of(again) == old and old <= _stored_packs(store) & _indexed(store)
    assert Path(Dataset.get(dataset_id=again.id).get_local_copy() or "", "a.bin").read_bytes() == _blob(8)


def test_another_process_whose_index_is_stale_sends_again(tmp_path: Path) -> None:
    """A second Store object (another process) that read the index before gc refreshes it at its next upload."""
    root = tmp_path / "s"
    one, two = Store(FileBackend(root)), Store(FileBackend(root))
    chunk = _blob(9)
    src: ChunkSource = ([(xxhash.xxh3_128_digest(chunk), len(chunk))], lambda: iter([(xxhash.xxh3_128_digest(chunk), chunk)]))
    upload_chunks(one, [src])
    assert two.chunk_index()  # `two` knows the chunk
    assert gc.collect(one, grace_seconds=0).packs == 1  # no manifest names it
    stats = upload_chunks(two, [src])
    assert stats.chunks_new == 1 and len(_stored_packs(two)) == 1


def test_a_finalize_refuses_a_pack_gone_since_its_upload(tmp_path: Path) -> None:
    draft = _version(tmp_path, "d", {"d.bin": _blob(10)}, finalize=False)
    store = current().store()
    (pack,) = _stored_packs(store)
    # what a gc racing the draft would do if the locks did not stop it
    store.backend.delete(PackIndex(pack).key)
    store.backend.delete(Pack(pack).key)
    with pytest.raises(IntegrityError, match=f"no longer in store.*{pack}.*mountfs gc"):
        draft.finalize()
    assert Dataset.get(dataset_id=draft.id).status == "uploaded"  # still a draft: no manifest naming a lost pack


def test_gc_is_refused_while_an_upload_holds_the_store(tmp_path: Path) -> None:
    gone = _version(tmp_path, "a", {"a.bin": _blob(11)})
    _forget(gone)
    store = current().store()
    packs = _stored_packs(store)
    with shared_lock(store.backend, "upload"):
        with pytest.raises(StoreLocked, match=rf"shared lock of upload by pid {os.getpid()}"):
            gc.collect(store, grace_seconds=0)
        assert gc.collect(store, dry_run=True, grace_seconds=0).packs == len(packs)  # a dry run reads only
    assert _stored_packs(store) == packs
    assert gc.collect(store, grace_seconds=0).packs == len(packs)


def test_a_pack_without_index_is_collected_and_a_damaged_manifest_stops_gc(tmp_path: Path) -> None:
    store = Store(FileBackend(tmp_path / "s"))
    chunk = _blob(12)
    digest = xxhash.xxh3_128_digest(chunk)
    upload_chunks(store, [([(digest, len(chunk))], lambda: iter([(digest, chunk)]))])
    (pack,) = _stored_packs(store)
    store.backend.delete(PackIndex(pack).key)  # an upload interrupted between pack and index
    store.backend.put(Manifest("0190a1b2c3d4deadbeef").key, b"not a manifest")
    with pytest.raises(IntegrityError, match="gc stopped, nothing deleted"):
        gc.collect(store, grace_seconds=0)
    assert _stored_packs(store) == {pack}
    store.backend.delete(Manifest("0190a1b2c3d4deadbeef").key)
    assert gc.collect(store, grace_seconds=0).packs == 1 and not _stored_packs(store)


# --- the S3 path: SeaweedFS --------------------------------------------------


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from servers import started_seaweed

    with started_seaweed(tmp_path_factory.mktemp("seaweed-gc")) as server:
        yield server


def test_gc_on_s3(seaweed: object) -> None:
    from mountfs.config import Config
    from servers import SeaweedServer

    assert isinstance(seaweed, SeaweedServer)
    config = Config(s3_hosts=seaweed.s3_host_settings(), environ={})
    store = Store.open(seaweed.store_url(seaweed.new_bucket("gc"), "root"), config)
    try:
        blobs = {n: _blob(20 + n) for n in range(2)}
        digests = {n: xxhash.xxh3_128_digest(b) for n, b in blobs.items()}
        for n in blobs:  # one pack each
            upload_chunks(store, [([(digests[n], len(blobs[n]))], lambda n=n: iter([(digests[n], blobs[n])]))])
        index = store.chunk_index()
        kept = index[digests[0]]
        from mountfs.store.manifest import FileEntry
        store.put_manifest("0190a1b2c3d4deadbeef", [FileEntry("f", kept.size, 0o644, 0, digests[0], [kept])])
        with shared_lock(store.backend, "upload"):
            with pytest.raises(StoreLocked):
                gc.collect(store, grace_seconds=0)
        assert gc.collect(store, grace_seconds=3600).packs == 0  # young
        report = gc.collect(store, grace_seconds=0)
        assert (report.packs, report.reachable) == (1, 1)
        assert _stored_packs(store) == _indexed(store) == {kept.pack}
        assert store.read_chunk(kept) == blobs[0]
        assert not list(store.backend.list("locks/"))
    finally:
        store.close()
