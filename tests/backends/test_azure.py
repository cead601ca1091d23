"""Azure (mountfs/backends/azure.py) beyond the shared contract (test_backend_contract.py): its URLs
and connection strings, credentials and settings from Config, its error table, block uploads,
secrets kept out of messages, and outages.  Real Azurite only (tests/servers.py); the error table is
checked on the exceptions azure-core raises.
"""

from __future__ import annotations

import io
import random
from typing import Any, Callable

import pytest
from azure.core.exceptions import (ClientAuthenticationError, HttpResponseError, ResourceExistsError,
                                   ResourceModifiedError, ResourceNotFoundError, ServiceRequestError,
                                   ServiceResponseError)
from backendhelp import error_texts, outage_then_recovery
from servers import AzuriteServer, pick_free_port

from mountfs.backends import Backend, open_backend
from mountfs.backends.azure import AzureBackend, _settings_from_config, _split_url, parse_connection_string
from mountfs.backends.retry import BUDGET, RetryingBackend
from mountfs.config import Config
from mountfs.errors import (AlreadyExists, ConfigError, ObjectNotFound, PermissionDenied, StoreError,
                            TransientStoreError, UsageError)

MiB = 1 << 20
URL = "azure://acct.blob.core.windows.net/c/p"


# --- URLs, connection strings, settings ------------------------------------------------


@pytest.mark.parametrize("url, parts", [
    ("azure://acct.blob.core.windows.net/c", ("acct.blob.core.windows.net", "c", "")),
    ("azure://acct.blob.core.windows.net/c/a/b/", ("acct.blob.core.windows.net", "c", "a/b")),
    ("azure://acct/c//p", ("acct", "c", "p")),
])
def test_url_names_account_container_and_prefix(url: str, parts: tuple[str, str, str]) -> None:
    assert _split_url(url) == parts


@pytest.mark.parametrize("url", ["azure://", "azure://acct.blob.core.windows.net", "azure://acct/", "s3://a/c"])
def test_urls_without_a_container_are_refused(url: str) -> None:
    with pytest.raises(UsageError, match="azure"):
        _split_url(url)


def test_connection_strings_parse_as_azure_writes_them() -> None:
    text = ("DefaultEndpointsProtocol=http; AccountName=acct;AccountKey=a2V5PT0=;;"
            "BlobEndpoint=http://127.0.0.1:10000/acct;junk")
    assert parse_connection_string(text) == {
        "defaultendpointsprotocol": "http", "accountname": "acct",
        "accountkey": "a2V5PT0=",  # a base64 key ends in '=': only the first one splits
        "blobendpoint": "http://127.0.0.1:10000/acct"}


@pytest.mark.parametrize("azure, endpoint", [
    ({}, "https://acct.blob.core.windows.net"),
    ({"endpoint": "http://127.0.0.1:10000/acct/"}, "http://127.0.0.1:10000/acct"),
    ({"connection_string": "AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.chinacloudapi.cn"},
     "https://acct.blob.core.chinacloudapi.cn"),
    ({"connection_string": "DefaultEndpointsProtocol=http;AccountName=acct;EndpointSuffix=local"},
     "http://acct.blob.local"),
    # the config's endpoint wins over the connection string's
    ({"connection_string": "AccountName=acct;BlobEndpoint=http://a:1/acct", "endpoint": "http://b:2/acct"},
     "http://b:2/acct"),
])
def test_the_endpoint(azure: dict[str, str], endpoint: str) -> None:
    assert _settings_from_config(URL, Config(azure=azure, environ={})).endpoint == endpoint


def test_an_account_without_its_domain_gets_azures() -> None:
    settings = _settings_from_config("azure://acct/c/p", Config(environ={}))
    assert (settings.account, settings.endpoint) == ("acct", "https://acct.blob.core.windows.net")


def test_settings_from_config_reach_the_client() -> None:
    store = AzureBackend.from_url(URL, Config(azure={
        "account_key": "a2V5", "connect_timeout": 1.5, "read_timeout": 4, "max_single_put_size": "2M",
        "max_block_size": "1M", "max_concurrency": 3, "max_pool_connections": 9}, environ={}))
    try:
        service: Any = store._service
        transport: Any = service._pipeline._transport
        assert (transport.connection_config.timeout, transport.connection_config.read_timeout) == (1.5, 4.0)
        assert transport.session.adapters["https://"]._pool_maxsize == 9
        assert (service._config.max_single_put_size, service._config.max_block_size) == (2 * MiB, MiB)
        assert service._config.retry_policy.total_retries == 0, "RetryingBackend is the one retry layer"
        assert store._concurrency == 3 and store._sorted_by_server
    finally:
        store.close()
    plain = _settings_from_config(URL, Config(environ={}))
    assert (plain.connect_timeout, plain.read_timeout) == (BUDGET.connect_timeout, BUDGET.read_timeout)


# --- errors -------------------------------------------------------------------------------


def _http_error(cls: type[HttpResponseError], status: int, code: str | None, message: str = "no") -> HttpResponseError:
    # as azure-storage-blob raises them: the status and the service's error code set on the exception
    exc = cls(message=message)
    exc.status_code = status
    exc.error_code = code  # type: ignore[attr-defined]
    return exc


def test_error_table() -> None:
    store = AzureBackend.from_url(URL, Config(azure={"account_key": "a2V5"}, environ={}))
    sas_url = "https://acct.blob.core.windows.net/c/p/k?sv=2024&sig=c2VjcmV0"
    cases: list[tuple[BaseException, type[StoreError]]] = [
        (_http_error(ResourceNotFoundError, 404, "BlobNotFound"), ObjectNotFound),
        (_http_error(ResourceNotFoundError, 404, "ContainerNotFound"), StoreError),
        (_http_error(ResourceExistsError, 409, "BlobAlreadyExists"), AlreadyExists),
        (_http_error(HttpResponseError, 412, "ConditionNotMet"), AlreadyExists),
        (_http_error(ClientAuthenticationError, 403, "AuthenticationFailed"), PermissionDenied),
        (_http_error(HttpResponseError, 403, "AuthorizationPermissionMismatch"), PermissionDenied),
        (_http_error(ResourceModifiedError, 412, None), TransientStoreError),  # changed under a read: read again
        (_http_error(HttpResponseError, 503, "ServerBusy"), TransientStoreError),
        (_http_error(HttpResponseError, 500, "InternalError"), TransientStoreError),
        (_http_error(HttpResponseError, 408, None), TransientStoreError),
        (_http_error(HttpResponseError, 429, None), TransientStoreError),
        (_http_error(HttpResponseError, 400, "InvalidHeaderValue"), StoreError),
        (ServiceRequestError(f"connection refused: {sas_url}"), TransientStoreError),
        (ServiceResponseError("connection reset"), TransientStoreError),
        (ValueError("bad argument"), StoreError),
    ]
    try:
        for exc, expected in cases:
            mapped = store._map(exc, "get", "k")
            assert type(mapped) is expected, (exc, mapped)
            assert "\n" not in str(mapped) and "c2VjcmV0" not in str(mapped), mapped
        assert "does not exist" in str(store._map(cases[1][0], "get", "k"))
    finally:
        store.close()


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
    texts = error_texts(caught, repr(good), good.url, repr(bad), repr(dead), caplog.text)
    for secret in (azurite.account_key, wrong_key, sas, "c2VjcmV0LXNpZ25hdHVyZQ"):
        assert not [t for t in texts if secret in t]


@pytest.mark.azure
@pytest.mark.allow_warnings  # RetryingBackend warns when it gives up: expected here
@pytest.mark.timeout(90)
def test_azure_stopped_server(private_azurite: AzuriteServer, open_azure: Callable[..., Backend]) -> None:
    store = RetryingBackend(open_azure(private_azurite, connect_timeout=1), total_timeout=1)
    outage_then_recovery(store, private_azurite)
