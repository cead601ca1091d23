"""sdk.closing: upload, finalize and publish of a draft; one retry layer under the upload."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from sdkhelp import write_files

from mountfs import Dataset
from mountfs.catalog import COMPLETED, DRAFT, PUBLISHED, UPLOADED
from mountfs.errors import SourceChanged, StateError, TransientStoreError
from mountfs.sdk.closing import DraftClosing, pending_entries, seal, send_pending
from mountfs.sdk.lifecycle import by_id
from mountfs.session import Session
from mountfs.store.packs import CODEC_NONE, CODEC_ZSTD


def _draft(tmp_path: Path, files: dict[str, bytes], **kw: Any) -> Dataset:
    ds = Dataset.create(dataset_name="ds", dataset_project="p", **kw)
    ds.add_files(write_files(tmp_path / "src", files))
    return ds


@pytest.mark.allow_warnings  # the failed finalize with raise_on_error=False logs its error
def test_upload_then_finalize(sess: Session, tmp_path: Path) -> None:
    ds = _draft(tmp_path, {"a.txt": b"a" * 10_000, "b.txt": b"b"})
    closing = DraftClosing(by_id(sess, ds.id))
    with pytest.raises(StateError, match=r"not uploaded; call upload\(\) first or finalize\(auto_upload=True\)"):
        closing.finalize()
    assert closing.finalize(raise_on_error=False) is False
    closing.upload(show_progress=False)
    v = by_id(sess, ds.id)
    assert v.record.status == UPLOADED and not v.is_dirty() and pending_entries(v) == []
    closing = DraftClosing(v)
    assert closing.finalize() and closing.finalize()  # the second is a no-op
    rec = sess.catalog.get(ds.id)
    assert (rec.status, rec.file_count, rec.total_size) == (COMPLETED, 2, 10_001)
    assert rec.changes == {"added": 2, "modified": 0, "removed": 0} and rec.finalized
    assert sess.catalog.read_draft_state(ds.id) is None  # a finalized version has no draft state left
    assert by_id(sess, ds.id).table().keys() == {"a.txt", "b.txt"}


def test_compression_is_chosen_per_upload(sess: Session, tmp_path: Path) -> None:
    for i, compression in enumerate((None, False)):
        ds = _draft(tmp_path / str(i), {f"{i}.txt": bytes([65 + i]) * 50_000})
        DraftClosing(by_id(sess, ds.id)).upload(show_progress=False, compression=compression)
        (entry,) = by_id(sess, ds.id).table().values()
        assert entry.chunks[0].codec == (CODEC_ZSTD if compression is None else CODEC_NONE)


def test_clearmls_chunk_size_minus_one_is_the_default_pack_size(sess: Session, tmp_path: Path) -> None:
    # ClearML's -1 means "one archive"; here it must not become a negative pack size
    ds = _draft(tmp_path, {f"{i}.bin": os.urandom(20_000) for i in range(5)})
    ds.upload(chunk_size=-1)
    assert ds.finalize()
    packs = {c.pack for e in by_id(sess, ds.id).table().values() for c in e.chunks}
    assert len(packs) == 1


def test_upload_to_another_store_copies_what_was_uploaded_before(sess: Session, tmp_path: Path) -> None:
    ds = _draft(tmp_path, {"a.txt": b"a" * 3000})
    ds.upload(show_progress=False)
    other = str(tmp_path / "other-store")
    DraftClosing(by_id(sess, ds.id)).upload(show_progress=False, output_url=other)
    assert sess.catalog.get(ds.id).storage == other
    DraftClosing(by_id(sess, ds.id)).finalize()
    final = Dataset.get(dataset_id=ds.id)
    assert final.storage.url == other and final.verify_dataset_hash() == []


def test_seal_writes_the_manifest_and_leaves_the_record_to_the_caller(sess: Session, tmp_path: Path) -> None:
    ds = _draft(tmp_path, {"a.txt": b"a"})
    v = by_id(sess, ds.id)
    send_pending(v, pending_entries(v))
    closed = seal(v, {})
    assert closed.status == COMPLETED and closed.manifest_digest and closed is not v.record
    # until the record is written the version is not complete (DESIGN.md invariant 1)
    assert sess.catalog.get(ds.id).status == DRAFT
    assert [e.path for e in v.store.get_manifest(ds.id, closed.manifest_digest)] == ["a.txt"]


def test_publish(sess: Session, tmp_path: Path) -> None:
    ds = _draft(tmp_path, {"a.txt": b"a"})
    closing = DraftClosing(by_id(sess, ds.id))
    with pytest.raises(StateError, match="is not finalized; finalize it before publishing"):
        closing.publish()
    assert closing.publish(raise_on_error=False) is False
    closing.finalize(auto_upload=True)
    assert closing.publish() and closing.publish()
    assert sess.catalog.get(ds.id).status == PUBLISHED and sess.catalog.get(ds.id).published


def test_a_child_uploads_only_its_new_chunks_and_records_its_changes(tree: Path) -> None:
    parent = Dataset.create(dataset_name="ds", dataset_project="p")
    parent.add_files(tree)
    parent.finalize(auto_upload=True)
    packs = Path(os.environ["MOUNTFS_STORE"]) / "packs"
    before = sum(f.stat().st_size for f in packs.rglob("*") if f.is_file())
    (tree / "d0" / "f000.bin").write_bytes(b"new content")
    (tree / "new.txt").write_text("brand new")
    child = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[parent.id])
    assert child.add_files(tree) == 2  # unchanged files are not counted
    assert child.remove_files("d3/*") == 7
    child.upload(show_progress=False)
    child.finalize()
    after = sum(f.stat().st_size for f in packs.rglob("*") if f.is_file())
    assert after - before < 1000  # only the two small new files were stored
    assert child.record.changes == {"added": 1, "modified": 1, "removed": 7}
    assert child.record.file_count == 30 + 1 - 7
    assert parent.list_files() == Dataset.get(dataset_id=parent.id).list_files()


def test_a_file_changed_after_add_is_refused_at_upload(tree: Path) -> None:
    ds = Dataset.create(dataset_name="x", dataset_project="p")
    ds.add_files(tree)
    victim = tree / "d1" / "f005.bin"
    data = bytearray(victim.read_bytes())
    data[0] ^= 0xFF
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(1, 1))
    with pytest.raises(SourceChanged, match="f005.bin changed after it was added"):
        ds.upload(show_progress=False)
    assert not ds.is_final()
    ds.add_files(victim, local_base_folder=tree)
    ds.finalize(auto_upload=True)
    assert Path(ds.get_local_copy() or "", "d1", "f005.bin").read_bytes() == bytes(data)


@pytest.mark.s3
@pytest.mark.allow_warnings
def test_an_upload_to_a_dead_store_fails_after_one_retry_budget(
    private_seaweed, isolated_env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store's retry layer is the only one: the SDK does not restart a failed upload on top of it."""
    server = private_seaweed
    (host, settings), = server.s3_host_settings().items()
    Path(isolated_env["MOUNTFS_CONFIG"]).write_text(
        f'[s3.hosts."{host}"]\nkey = "{settings["key"]}"\nsecret = "{settings["secret"]}"\nsecure = false\n'
    )
    ds = _draft(tmp_path, {"a.bin": b"x" * 5000}, output_uri=server.store_url(server.new_bucket("dead"), "data"))
    server.stop()
    with pytest.raises(TransientStoreError):
        ds.upload(show_progress=False, retries=3)
    gave_up = [r for r in caplog.records if r.name == "mountfs.backends.retry" and r.levelno == logging.WARNING]
    assert len(gave_up) == 1, [r.getMessage() for r in gave_up]
    assert not [r for r in caplog.records if "retrying (" in r.getMessage()]
    assert Dataset.get(dataset_id=ds.id).status == DRAFT and ds.is_dirty()
