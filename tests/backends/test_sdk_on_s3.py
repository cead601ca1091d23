"""The SDK with S3 in the picture: external files in a bucket, a version's data in another store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mountfs import Dataset
from mountfs.errors import SourceChanged

pytestmark = pytest.mark.s3


@pytest.fixture
def s3_config(seaweed, isolated_env, monkeypatch: pytest.MonkeyPatch) -> dict:
    (host, settings), = seaweed.s3_host_settings().items()
    Path(isolated_env["MOUNTFS_CONFIG"]).write_text(
        f'[s3.hosts."{host}"]\nkey = "{settings["key"]}"\nsecret = "{settings["secret"]}"\nsecure = false\n'
    )
    return {"server": seaweed, "bucket": seaweed.new_bucket("sdk")}


def _put_tree(client, bucket: str, prefix: str, tree: Path) -> None:
    for f in tree.rglob("*"):
        if f.is_file():
            client.put_object(Bucket=bucket, Key=f"{prefix}/{f.relative_to(tree)}", Body=f.read_bytes())


@pytest.mark.allow_warnings
def test_external_files_in_a_bucket(s3_config: dict, tree: Path) -> None:
    server, bucket = s3_config["server"], s3_config["bucket"]
    client = server.client()
    _put_tree(client, bucket, "raw", tree)
    base = server.store_url(bucket, "raw")
    ds = Dataset.create(dataset_name="ext", dataset_project="p")
    assert ds.add_external_files(base, wildcard="*.bin", dataset_path="s3") == 30
    assert ds.add_external_files(f"{base}/d0/f000.bin") == 1
    ds.finalize(auto_upload=True)
    copy = Path(Dataset.get(dataset_id=ds.id).get_local_copy())
    for f in tree.rglob("*.bin"):
        assert (copy / "s3" / f.relative_to(tree)).read_bytes() == f.read_bytes()
    assert ds.file_entries_dict["f000.bin"].etag
    client.put_object(Bucket=bucket, Key="raw/d0/f000.bin", Body=b"replaced")
    with pytest.raises(SourceChanged, match="changed since it was added"):
        Dataset.get(dataset_id=ds.id).get_mutable_local_copy(tree.parent / "again")


def test_data_in_another_store_catalog_local(s3_config: dict, tree: Path) -> None:
    server, bucket = s3_config["server"], s3_config["bucket"]
    data_url = server.store_url(bucket, "datasets")
    ds = Dataset.create(dataset_name="remote", dataset_project="p", output_uri=data_url)
    ds.add_files(tree)
    ds.upload(show_progress=False)
    ds.finalize()
    store = Path(os.environ["MOUNTFS_STORE"])
    assert (store / "datasets" / ds.id / "info.json").exists()          # the record: catalog store
    assert not (store / "datasets" / ds.id / "manifest").exists()       # the data: the bucket
    keys = [o["Key"] for o in server.client().list_objects_v2(Bucket=bucket, Prefix="datasets/")["Contents"]]
    assert f"datasets/datasets/{ds.id}/manifest" in keys and any("/packs/" in k for k in keys)
    child = Dataset.create(dataset_name="remote", dataset_project="p", parent_datasets=[ds.id])
    assert child.record.storage == ds.record.storage
    (tree / "new.txt").write_text("new")
    child.add_files(tree / "new.txt")
    child.finalize(auto_upload=True)
    copy = Path(Dataset.get(dataset_id=child.id).get_local_copy())
    assert (copy / "new.txt").read_text() == "new"
    assert (copy / "d2" / "f002.bin").read_bytes() == (tree / "d2" / "f002.bin").read_bytes()
    # moving a child's data to the local store copies its chunks over
    moved = Dataset.create(dataset_name="moved", dataset_project="p", parent_datasets=[child.id], output_uri=str(store))
    moved.finalize(auto_upload=True)
    copy = Path(Dataset.get(dataset_id=moved.id).get_local_copy())
    assert (copy / "d2" / "f002.bin").read_bytes() == (tree / "d2" / "f002.bin").read_bytes()
    assert Dataset.get(dataset_id=moved.id).verify_dataset_hash() == []
