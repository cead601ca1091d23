"""GCS (mountfs/backends/gs.py) beyond the shared contract (test_backend_contract.py): its URLs,
the settings it takes from Config, what goes on the wire, its error table and outages.
Real gcp-storage-emulator only (tests/servers.py); the error table is checked on the exceptions
google-cloud-storage raises.
"""

from __future__ import annotations

import io
import random
from typing import Callable

import pytest
import requests
from backendhelp import outage_then_recovery
from google.cloud.storage.exceptions import InvalidResponse
from servers import GcsEmulator

from mountfs.backends import Backend, open_backend
from mountfs.backends.gs import GsBackend, _split_url
from mountfs.backends.retry import BUDGET, RetryingBackend
from mountfs.config import Config
from mountfs.errors import AlreadyExists, ObjectNotFound, PermissionDenied, StoreError, TransientStoreError, UsageError

MiB = 1 << 20
#: an endpoint nothing listens on: opening a client sends no request
NOWHERE = {"STORAGE_EMULATOR_HOST": "127.0.0.1:1"}


def _response(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    return response


# --- URLs and settings -------------------------------------------------------------


@pytest.mark.parametrize("url, parts", [("gs://b", ("b", "")), ("gs://b/", ("b", "")), ("gs://b/a/b/", ("b", "a/b")),
                                        ("gs://b//a", ("b", "a"))])
def test_url_names_bucket_and_prefix(url: str, parts: tuple[str, str]) -> None:
    assert _split_url(url) == parts


@pytest.mark.parametrize("url", ["gs://", "gs:///", "s3://b"])
def test_urls_without_a_bucket_are_refused(url: str) -> None:
    with pytest.raises(UsageError, match="gs"):
        _split_url(url)


def test_settings_from_config_reach_the_client() -> None:
    store = GsBackend.from_url("gs://b/p", Config(gs={"connect_timeout": 2, "read_timeout": 3, "max_pool_connections": 5,
                                                      "chunk_size": 1_000_000}, environ=NOWHERE))
    try:
        assert store._timeout == (2.0, 3.0)
        assert store._client._http.adapters["http://"]._pool_maxsize == 5
        # resumable uploads go in multiples of 256 KiB: the setting is rounded down to one
        assert store._chunk_size == 3 * (256 << 10)
        assert not store._sorted_by_server, "an emulator's listing is sorted here"
    finally:
        store.close()
    tiny = GsBackend.from_url("gs://b", Config(gs={"chunk_size": 1000}, environ=NOWHERE))
    plain = GsBackend.from_url("gs://b", Config(environ=NOWHERE))
    try:
        assert tiny._chunk_size == 256 << 10
        assert plain._timeout == (BUDGET.connect_timeout, BUDGET.read_timeout) and plain._chunk_size == 16 * MiB
    finally:
        tiny.close()
        plain.close()


@pytest.mark.gs
def test_chunk_size_shapes_a_resumable_upload(gcs: GcsEmulator, open_gs: Callable[..., Backend]) -> None:
    bucket = gcs.new_bucket()
    store = open_gs(bucket=bucket, prefix="", chunk_size="4M")
    data = random.Random(2).randbytes(9 * MiB)  # above the 8 MiB single-request limit
    seen = len(gcs.requests_seen())
    store.put_file("big", io.BytesIO(data), len(data))
    pieces = [line for line in gcs.requests_seen()[seen:] if line.split('"')[1].startswith("PUT /upload/")]
    assert len(pieces) == 3, f"9 MiB in 4 MiB pieces is 3 PUTs of a resumable upload: {pieces}"
    assert store.get("big") == data


@pytest.mark.gs
def test_gs_conditional_put_sends_if_generation_match_0(gcs: GcsEmulator, open_gs: Callable[..., Backend]) -> None:
    # The emulator does not enforce preconditions (its ``lacks``), so this is
    # the check that the backend asks for one: the request line it logged.
    bucket = gcs.new_bucket()
    store = open_gs(bucket=bucket, prefix="")
    seen = len(gcs.requests_seen())
    store.put("plain", b"x")
    store.put_if_absent("cond", b"y")
    data = random.Random(1).randbytes(9 * MiB)  # above the 8 MiB single-request limit
    store.put_file("big", io.BytesIO(data), len(data))
    lines = gcs.requests_seen()[seen:]
    uploads = [line for line in lines if f"/upload/storage/v1/b/{bucket}/o" in line]
    assert len([line for line in uploads if "ifGenerationMatch=0" in line]) == 1, uploads
    assert "ifGenerationMatch" not in next(line for line in uploads if "uploadType=multipart" in line)
    assert any("uploadType=resumable" in line for line in uploads), "9 MiB should go up as a resumable upload"
    assert store.get("big") == data


@pytest.mark.gs
def test_gs_url_forms_and_environment(gcs: GcsEmulator) -> None:
    bucket = gcs.new_bucket()
    # STORAGE_EMULATOR_HOST as host:port (gcloud writes it so) or as a URL
    bare = {"STORAGE_EMULATOR_HOST": gcs.endpoint_url.removeprefix("http://")}
    root = open_backend(f"gs://{bucket}", Config(environ=bare))
    assert isinstance(root, GsBackend) and root.url == f"gs://{bucket}"
    root.put("a/k", b"v")
    nested = open_backend(f"gs://{bucket}/a/", Config(environ=gcs.environ()))
    assert nested.url == f"gs://{bucket}/a" and nested.get("k") == b"v"
    other = open_backend(f"gs://{bucket}/ab", Config(environ=gcs.environ()))
    other.put("k", b"w")
    assert [o.key for o in nested.list()] == ["k"]
    assert [o.key for o in root.list()] == ["a/k", "ab/k"]
    info = root.stat("a/k")
    assert info.size == 1 and info.etag and info.mtime > 0
    with pytest.raises(UsageError):
        GsBackend.from_url("gs://", Config(environ=gcs.environ()))
    for store in (root, nested, other):
        store.close()


@pytest.mark.gs
def test_gs_missing_bucket(gcs: GcsEmulator) -> None:
    store = GsBackend.from_url("gs://no-such-bucket-here/p", Config(environ=gcs.environ()))
    with pytest.raises(StoreError) as info:
        list(store.list())
    assert not isinstance(info.value, ObjectNotFound) and "does not exist" in str(info.value)


@pytest.mark.gs
@pytest.mark.allow_warnings  # RetryingBackend warns when it gives up: expected here
@pytest.mark.timeout(90)
def test_gs_stopped_server(private_gcs: GcsEmulator, open_gs: Callable[..., Backend]) -> None:
    store = RetryingBackend(open_gs(private_gcs, connect_timeout=1), total_timeout=1)
    outage_then_recovery(store, private_gcs)


def test_gs_error_mapping() -> None:
    # the table itself, on the exceptions google-cloud-storage raises
    import google.api_core.exceptions as gexc
    import google.auth.exceptions
    import requests.exceptions

    store = GsBackend.from_url("gs://b/p", Config(environ={"STORAGE_EMULATOR_HOST": "127.0.0.1:1"}))
    cases = [(gexc.NotFound("No such object: b/p/k"), ObjectNotFound),
             (gexc.NotFound("The specified bucket does not exist."), StoreError),
             (gexc.PreconditionFailed("At least one of the pre-conditions you specified did not hold."), AlreadyExists),
             (gexc.Forbidden("denied"), PermissionDenied), (gexc.Unauthorized("who"), PermissionDenied),
             (gexc.TooManyRequests("slow down"), TransientStoreError),
             (gexc.ServiceUnavailable("later"), TransientStoreError),
             (gexc.InternalServerError("oops"), TransientStoreError),
             (gexc.BadRequest("bad"), StoreError),
             (requests.exceptions.ConnectionError("refused"), TransientStoreError),
             (requests.exceptions.ReadTimeout("slow"), TransientStoreError),
             (google.auth.exceptions.TransportError("token endpoint down"), TransientStoreError),
             (google.auth.exceptions.RefreshError("invalid_grant"), PermissionDenied),
             (google.auth.exceptions.DefaultCredentialsError("none"), PermissionDenied),
             (InvalidResponse(_response(503), "unexpected"), TransientStoreError),
             (InvalidResponse(_response(429), "unexpected"), TransientStoreError),
             (InvalidResponse(_response(400), "unexpected"), StoreError)]
    for exc, expected in cases:
        mapped = store._map(exc, "get", "k")
        assert type(mapped) is expected, (exc, mapped)
        assert "\n" not in str(mapped), mapped


