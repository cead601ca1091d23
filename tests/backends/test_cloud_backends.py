"""GCS and Azure beyond the shared contract: URLs and credentials, what goes on
the wire, outages, and secrets kept out of messages.  Real servers only
(gcp-storage-emulator, Azurite); the contract itself is test_backend_contract.py.
"""

from __future__ import annotations

import io
import random
import time
import traceback
from typing import Callable

import pytest
from servers import AzuriteServer, GcsEmulator, pick_free_port

from mountfs.backends import Backend, open_backend
from mountfs.backends.azure import AzureBackend
from mountfs.backends.gs import GsBackend
from mountfs.backends.retry import RetryingBackend
from mountfs.config import Config
from mountfs.errors import (AlreadyExists, ConfigError, ObjectNotFound, PermissionDenied, StoreError,
                            TransientStoreError, UsageError)

MiB = 1 << 20


def _texts(errors: list[BaseException], *more: str) -> list[str]:
    """Everything a user could see of these errors: message, repr, traceback with causes."""
    return [str(e) + repr(e) + "".join(traceback.format_exception(e)) for e in errors] + list(more)


def _outage(store: Backend, server: GcsEmulator | AzuriteServer) -> None:
    """The server goes away: every call fails as transient within bounded time; then it comes back."""
    store.put("before", b"kept")
    server.stop()
    for call in (lambda: store.get("before"), lambda: store.put("after", b"x"),
                 lambda: store.put_if_absent("catalog/p/n/1", b"x"), lambda: list(store.list()),
                 lambda: store.delete("before")):
        start = time.monotonic()
        with pytest.raises(TransientStoreError):
            call()
        assert time.monotonic() - start < 5
    server.start()
    assert store.get("before") == b"kept"
    store.put_if_absent("catalog/p/n/1", b"mine")
    assert [o.key for o in store.list()] == ["before", "catalog/p/n/1"]


# --- GCS ---------------------------------------------------------------------------


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
    _outage(store, private_gcs)


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
             (google.auth.exceptions.DefaultCredentialsError("none"), PermissionDenied)]
    for exc, expected in cases:
        mapped = store._map(exc, "get", "k")
        assert type(mapped) is expected, (exc, mapped)


# --- Azure -------------------------------------------------------------------------


@pytest.mark.azure
def test_azure_credentials_from_config_and_environment(azurite: AzuriteServer) -> None:
    container = azurite.new_container()
    url = azurite.store_url(container, "p")
    ways = {
        "config connection string": Config(azure={"connection_string": azurite.connection_string}),
        "environment connection string": Config(environ={"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}),
        "environment key + config endpoint": Config(azure={"endpoint": azurite.blob_endpoint},
                                                    environ={"AZURE_STORAGE_KEY": azurite.account_key}),
        "config key + endpoint": Config(azure=azurite.azure_settings()),
    }
    for i, (way, config) in enumerate(ways.items()):
        store = open_backend(url, config)
        assert isinstance(store, AzureBackend) and store.url == url, way
        store.put(f"k{i}", way.encode())
        assert [o.key for o in store.list()] == [f"k{j}" for j in range(i + 1)], way
        store.close()
    # the config file beats the environment
    wrong = Config(azure=azurite.azure_settings(), environ={"AZURE_STORAGE_KEY": "d3Jvbmc="})
    assert open_backend(url, wrong).get("k0") == b"config connection string"
    with pytest.raises(ConfigError, match="account"):
        open_backend("azure://someoneelse.blob.core.windows.net/c", ways["config connection string"])
    with pytest.raises(UsageError):
        AzureBackend.from_url("azure://devstoreaccount1.blob.core.windows.net/", ways["config connection string"])


@pytest.mark.azure
def test_azure_put_file_streams_blocks(azurite: AzuriteServer, open_azure: Callable[..., Backend]) -> None:
    container = azurite.new_container()
    store = open_azure(container=container, prefix="", max_single_put_size="1M", max_block_size="1M")
    data = random.Random(5).randbytes(3 * MiB + 5)
    store.put_file("packs/big", io.BytesIO(data), len(data))
    with azurite.client() as client:
        committed, _ = client.get_blob_client(container, "packs/big").get_block_list("committed")
    assert len(committed) == 4, "above max_single_put_size the upload is staged blocks, committed at once"
    assert store.get("packs/big") == data


@pytest.mark.azure
@pytest.mark.allow_warnings  # the dead endpoint makes RetryingBackend give up
def test_azure_errors_never_show_the_key(azurite: AzuriteServer, open_azure: Callable[..., Backend],
                                         caplog: pytest.LogCaptureFixture) -> None:
    container = azurite.new_container()
    good = open_azure(container=container)
    good.put("k", b"v")
    wrong_key = "d3Jvbmcta2V5LTAxMjM0NTY3ODlhYmNkZWY="  # base64, as real keys are
    bad = open_azure(container=container, account_key=wrong_key)
    sas = "sv=2024-01-01&ss=b&srt=co&sp=r&se=2030-01-01&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
    dead_endpoint = f"http://127.0.0.1:{pick_free_port()}/{azurite.account}"  # nothing listens there
    dead = RetryingBackend(AzureBackend.from_url(azurite.store_url(container), Config(
        azure={"sas_token": sas, "endpoint": dead_endpoint, "connect_timeout": 1})), total_timeout=1)
    missing_container = open_azure(container="no-such-container")
    caught: list[BaseException] = []
    for call, expected in [(lambda: good.get("missing"), ObjectNotFound),
                           (lambda: good.get_range("missing", 0, 1), ObjectNotFound),
                           (lambda: good.stat("missing"), ObjectNotFound),
                           (lambda: good.put_if_absent("k", b"again"), AlreadyExists),
                           (lambda: bad.get("k"), PermissionDenied),
                           (lambda: bad.put("k2", b"x"), PermissionDenied),
                           (lambda: dead.get("k"), TransientStoreError),
                           (lambda: missing_container.get("k"), StoreError)]:
        with pytest.raises(expected) as info:
            call()
        caught.append(info.value)
    assert not isinstance(caught[-1], ObjectNotFound) and "does not exist" in str(caught[-1])
    texts = _texts(caught, repr(good), good.url, repr(bad), repr(dead), caplog.text)
    for secret in (azurite.account_key, wrong_key, sas, "c2VjcmV0LXNpZ25hdHVyZQ"):
        assert not [t for t in texts if secret in t]


@pytest.mark.azure
@pytest.mark.allow_warnings  # RetryingBackend warns when it gives up: expected here
@pytest.mark.timeout(90)
def test_azure_stopped_server(private_azurite: AzuriteServer, open_azure: Callable[..., Backend]) -> None:
    store = RetryingBackend(open_azure(private_azurite, connect_timeout=1), total_timeout=1)
    _outage(store, private_azurite)
