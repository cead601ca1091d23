"""S3 (mountfs/backends/s3.py) beyond the shared contract (test_backend_contract.py): its URLs, the
settings it takes from Config, its error table, what goes on the wire, outages and secrets.
Real SeaweedFS only (tests/servers.py); the error table is checked on the exceptions botocore raises.
"""

from __future__ import annotations

import io
import random
import threading
import time
from typing import Any, Callable

import botocore.exceptions
import pytest
from backendhelp import error_texts
from servers import SeaweedServer, pick_free_port

from mountfs.backends import Backend, open_backend
from mountfs.backends.retry import BUDGET, RetryingBackend
from mountfs.backends.s3 import S3Backend, _split_url
from mountfs.config import Config
from mountfs.errors import AlreadyExists, ObjectNotFound, PermissionDenied, StoreError, TransientStoreError, UsageError

MiB = 1 << 20


def blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# --- URLs and settings -------------------------------------------------------------


@pytest.mark.parametrize("url, parts", [
    ("s3://bucket", ("", "bucket", "")),
    ("s3://bucket/", ("", "bucket", "")),
    ("s3://bucket/a/b/", ("", "bucket", "a/b")),
    ("s3://bucket//a//b", ("", "bucket", "a/b")),
    ("s3://minio.lan:9000/bucket/pre/fix", ("minio.lan:9000", "bucket", "pre/fix")),
    ("s3://127.0.0.1:8333/b", ("127.0.0.1:8333", "b", "")),
])
def test_url_names_endpoint_bucket_and_prefix(url: str, parts: tuple[str, str, str]) -> None:
    # ClearML's rule: a first component with a ':' is the endpoint, not a bucket
    assert _split_url(url) == parts


@pytest.mark.parametrize("url", ["s3://", "s3:///", "s3://host:9000", "s3://host:9000/", "gs://bucket"])
def test_urls_without_a_bucket_are_refused(url: str) -> None:
    with pytest.raises(UsageError, match="s3"):
        _split_url(url)


def test_settings_from_config_reach_the_client() -> None:
    host = "127.0.0.1:9"  # nothing is sent: opening a client makes no request
    config = Config(s3_hosts={host: {"key": "k", "secret": "s"}},
                    s3={"connect_timeout": 1.5, "read_timeout": 4, "max_pool_connections": 7,
                        "multipart_threshold": "9M", "multipart_chunksize": "6M", "multipart_concurrency": 3},
                    environ={})
    store = S3Backend.from_url(f"s3://{host}/bucket/pre", config)
    try:
        boto: Any = store._client.meta.config
        assert (boto.connect_timeout, boto.read_timeout, boto.max_pool_connections) == (1.5, 4.0, 7)
        assert boto.s3 == {"addressing_style": "path"}, "an S3-compatible endpoint is addressed by path"
        assert store._client.meta.endpoint_url == f"http://{host}"
        assert store._multipart == (9 * MiB, 6 * MiB, 3)
        assert (store.bucket, store.url) == ("bucket", f"s3://{host}/bucket/pre")
        # unset knobs keep the defaults, whose timeouts are the retry budget's
        plain = S3Backend.from_url(f"s3://{host}/bucket", Config(s3_hosts={host: {"key": "k", "secret": "s"}},
                                                                 environ={}))
        config_of: Any = plain._client.meta.config
        assert (config_of.connect_timeout, config_of.read_timeout) == (BUDGET.connect_timeout, BUDGET.read_timeout)
        # a conditional create waits in the server's queue of racing creators: its own, longer wait
        conditional: Any = plain._conditional_client.meta.config
        assert conditional.read_timeout == BUDGET.conditional_write_timeout > BUDGET.read_timeout
        assert conditional.s3["addressing_style"] == "path"
        plain.close()
    finally:
        store.close()


@pytest.mark.s3
def test_multipart_settings_shape_the_upload(open_s3: Callable[..., Backend]) -> None:
    data = blob(6 * MiB, seed=11)  # S3's smallest part is 5 MiB
    small_parts = open_s3(multipart_threshold="5M", multipart_chunksize="5M")
    small_parts.put_file("k", io.BytesIO(data), len(data))
    assert small_parts.stat("k").etag.endswith("-2"), "6 MiB in 5 MiB parts is a 2-part upload"
    one_put = open_s3()  # the default threshold (32 MiB): one PUT
    one_put.put_file("k", io.BytesIO(data), len(data))
    assert "-" not in one_put.stat("k").etag
    assert small_parts.get("k") == one_put.get("k") == data


@pytest.mark.s3
def test_s3_prefixes_isolate_stores(seaweed: SeaweedServer, open_s3: Callable[..., Backend]) -> None:
    bucket = seaweed.new_bucket()
    one, two = open_s3(bucket=bucket, prefix="stores/a"), open_s3(bucket=bucket, prefix="stores/ab")
    one.put("k", b"1")
    two.put("k", b"2")
    assert [o.key for o in one.list()] == ["k"] and one.get("k") == b"1"
    assert two.get("k") == b"2"
    assert one.url == f"s3://{seaweed.host_port}/{bucket}/stores/a"


@pytest.mark.s3
def test_s3_url_forms(seaweed: SeaweedServer) -> None:
    bucket = seaweed.new_bucket()
    # s3://bucket/prefix: AWS style, endpoint and keys from the standard variables
    env = {"AWS_ACCESS_KEY_ID": seaweed.access_key, "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
           "AWS_ENDPOINT_URL": seaweed.endpoint_url, "AWS_REGION": "us-east-1"}
    aws = open_backend(f"s3://{bucket}/p", Config(environ=env))
    assert isinstance(aws, S3Backend) and aws.url == f"s3://{bucket}/p"
    aws.put("k", b"v")
    # s3://host:port/bucket/prefix with the keys from the environment instead of s3.hosts
    hosted = S3Backend.from_url(seaweed.store_url(bucket, "p"), Config(environ=env))
    assert hosted.get("k") == b"v"
    with pytest.raises(UsageError):
        S3Backend.from_url(f"s3://{seaweed.host_port}/", Config(s3_hosts=seaweed.s3_host_settings()))


# --- errors ------------------------------------------------------------------------


def _client_error(code: str, status: int, message: str = "server says no") -> botocore.exceptions.ClientError:
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return botocore.exceptions.ClientError(response, "GetObject")


def test_error_table() -> None:
    # the table itself, on the exceptions botocore raises; RetryingBackend retries exactly the transient ones
    secret = "very-secret-0123456789"
    store = S3Backend.from_url("s3://127.0.0.1:9/b/p", Config(s3_hosts={"127.0.0.1:9": {"key": "k", "secret": secret}},
                                                               environ={}))
    url = "http://127.0.0.1:9/b/p/k"
    cases: list[tuple[BaseException, type[StoreError]]] = [
        (_client_error("NoSuchKey", 404), ObjectNotFound),
        (_client_error("", 404), ObjectNotFound),  # HEAD answers carry no code
        (_client_error("NoSuchBucket", 404), StoreError),
        (_client_error("PreconditionFailed", 412), AlreadyExists),
        (_client_error("", 412), AlreadyExists),
        (_client_error("ConditionalRequestConflict", 409), AlreadyExists),
        (_client_error("BucketNotEmpty", 409), StoreError),  # a 409 without the conditional-write code
        (_client_error("AccessDenied", 403), PermissionDenied),
        (_client_error("SignatureDoesNotMatch", 403), PermissionDenied),
        (_client_error("InvalidAccessKeyId", 403), PermissionDenied),
        (_client_error("", 401), PermissionDenied),
        (_client_error("NotImplemented", 501), StoreError),
        (_client_error("SlowDown", 503), TransientStoreError),
        (_client_error("InternalError", 500), TransientStoreError),
        (_client_error("", 502), TransientStoreError),
        (_client_error("TooManyRequests", 429), TransientStoreError),
        (_client_error("InvalidArgument", 400), StoreError),
        (botocore.exceptions.EndpointConnectionError(endpoint_url=url), TransientStoreError),
        (botocore.exceptions.ConnectTimeoutError(endpoint_url=url), TransientStoreError),
        (botocore.exceptions.ReadTimeoutError(endpoint_url=url), TransientStoreError),
        (botocore.exceptions.SSLError(endpoint_url=url, error=Exception("certificate verify failed")), StoreError),
        (botocore.exceptions.NoCredentialsError(), PermissionDenied),
        (botocore.exceptions.EndpointConnectionError(endpoint_url=f"http://k:{secret}@127.0.0.1:9"),
         TransientStoreError),
    ]
    try:
        for exc, expected in cases:
            mapped = store._map(exc, "get", "k")
            assert type(mapped) is expected, (exc, mapped)
            text = str(mapped)
            assert "\n" not in text and secret not in text, text
        assert "does not exist" in str(store._map(_client_error("NoSuchBucket", 404), "get", "k"))
        assert "verify" in str(store._map(cases[-3][0], "get", "k")), "a TLS failure names the setting to check"
        assert "***" in str(store._map(cases[-1][0], "get", "k")), "the secret is scrubbed, the rest kept"
    finally:
        store.close()


@pytest.mark.s3
def test_a_missing_bucket_is_an_error_not_a_missing_object(seaweed: SeaweedServer) -> None:
    store = S3Backend.from_url(seaweed.store_url("no-such-bucket-here", "p"), Config(s3_hosts=seaweed.s3_host_settings()))
    try:
        # (no put: SeaweedFS creates a missing bucket for an admin's put; a HEAD's 404 has no code to tell)
        for call in (lambda: store.get("k"), lambda: store.get_range("k", 0, 1), lambda: list(store.list()),
                     lambda: store.delete("k")):  # delete: not "already gone"
            with pytest.raises(StoreError) as info:
                call()
            assert not isinstance(info.value, ObjectNotFound), info.value
            assert "no-such-bucket-here" in str(info.value) and "does not exist" in str(info.value)
    finally:
        store.close()


def test_negative_ranges_are_refused_before_any_request() -> None:
    store = S3Backend.from_url("s3://127.0.0.1:9/b", Config(s3_hosts={"127.0.0.1:9": {"key": "k", "secret": "s"}},
                                                            environ={}))
    try:
        for offset, length in ((-1, 10), (0, -1)):
            with pytest.raises(StoreError, match="invalid range"):
                store.get_range("k", offset, length)
    finally:
        store.close()


@pytest.mark.s3
@pytest.mark.allow_warnings  # the dead endpoint makes RetryingBackend give up
def test_s3_errors_never_show_the_secret(seaweed: SeaweedServer, open_s3: Callable[..., Backend],
                                         caplog: pytest.LogCaptureFixture) -> None:
    bucket = seaweed.new_bucket()
    good = open_s3(bucket=bucket)
    good.put("k", b"v")
    wrong_secret = "wrong-secret-0123456789abcdef"
    bad_hosts = {seaweed.host_port: {"key": seaweed.access_key, "secret": wrong_secret}}
    bad = S3Backend.from_url(seaweed.store_url(bucket), Config(s3_hosts=bad_hosts))
    dead_host = f"127.0.0.1:{pick_free_port()}"  # nothing listens there
    dead = RetryingBackend(S3Backend.from_url(f"s3://{dead_host}/{bucket}", Config(
        s3_hosts={dead_host: {"key": "k", "secret": seaweed.secret_key}}, s3={"connect_timeout": 1})),
        total_timeout=1)
    caught: list[BaseException] = []
    for call, expected in [(lambda: good.get("missing"), ObjectNotFound),
                           (lambda: good.put_if_absent("k", b"again"), AlreadyExists),
                           (lambda: bad.get("k"), PermissionDenied),
                           (lambda: bad.put("k2", b"x"), PermissionDenied),
                           (lambda: dead.get("k"), TransientStoreError)]:
        with pytest.raises(expected) as info:
            call()
        caught.append(info.value)
    texts = error_texts(caught, repr(good), good.url, repr(bad), repr(dead), caplog.text)
    for secret in (seaweed.secret_key, wrong_secret):
        assert not [t for t in texts if secret in t]


# --- on the wire ---------------------------------------------------------------------


@pytest.mark.s3
def test_s3_bodies_carry_a_crc32_the_server_checks(open_s3: Callable[..., Backend],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Payloads go unsigned (no SHA-256 over http) but each body has a CRC32 that the server verifies."""
    import mountfs.backends.s3 as s3mod

    store = open_s3()
    small, big = blob(1000, seed=1), blob(20 * MiB, seed=2)
    store.put("a", small)
    store.put_parts("b", [small[:10], small[10:]])
    monkeypatch.setattr(s3mod, "_SINGLE_PUT_MAX", 16 * MiB)
    store.put_parts("c", [big[:3 * MiB], big[3 * MiB:]])  # > 16 MiB: a multipart upload
    store.put_if_absent("d", small)
    client = store._client  # type: ignore[attr-defined]
    for key, data in (("a", small), ("b", small), ("c", big), ("d", small)):
        assert store.get(key) == data
        head = client.head_object(Bucket=store.bucket, Key=store._key(key), ChecksumMode="ENABLED")  # type: ignore[attr-defined]
        assert head.get("ChecksumCRC32"), key
    assert client.head_object(Bucket=store.bucket, Key=store._key("a"), ChecksumMode="ENABLED")[  # type: ignore[attr-defined]
        "ChecksumCRC32"] == s3mod._crc32([small])

    # a body that does not match its CRC32 (as if damaged on the way) is refused, and nothing is stored
    monkeypatch.setattr(s3mod, "_crc32", lambda parts: s3mod.base64.b64encode(b"\0\0\0\1").decode())
    for put in (lambda: store.put("e", small), lambda: store.put_parts("f", [big]),
                lambda: store.put_if_absent("g", small)):
        with pytest.raises(StoreError):
            put()
    for key in "efg":
        with pytest.raises(ObjectNotFound):
            store.get(key)


# --- outages -------------------------------------------------------------------------


class _KillingReader(io.BytesIO):
    """A file that kills the server once the upload is underway; ``killed`` is set when it is dead."""

    def __init__(self, data: bytes, server: SeaweedServer, after: int) -> None:
        super().__init__(data)
        self.server, self.after = server, after
        self.killed = threading.Event()
        self.killed_at = 0.0
        self._lock = threading.Lock()  # s3transfer may read from several threads

    def read(self, size: int | None = -1) -> bytes:
        with self._lock:
            if self.tell() >= self.after and not self.killed.is_set():
                self.server.kill()  # returns once the process is gone
                self.killed_at = time.monotonic()
                self.killed.set()
        return super().read(size)


def _in_thread(call: Callable[[], object]) -> tuple[threading.Event, list[BaseException]]:
    """Start ``call`` in a thread: the event is set when it ends, the list gets what it raised."""
    done = threading.Event()
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            raised.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, raised


@pytest.mark.s3
@pytest.mark.allow_warnings  # RetryingBackend warns when it gives up: expected here
@pytest.mark.timeout(90)
def test_s3_outage_fails_fast_then_recovers(private_seaweed: SeaweedServer, open_s3: Callable[..., Backend]) -> None:
    server = private_seaweed
    # small parts so that 24 MiB is a multipart upload of 5 parts
    store = RetryingBackend(open_s3(server, connect_timeout=2, multipart_threshold="8M", multipart_chunksize="5M"))
    store.put("before", b"kept")
    data = blob(24 * MiB, seed=3)
    # the documented bound of one operation on a store that stopped answering (StoreBudget):
    # no retry starts after retry_window, and the last attempt waits read_timeout at most
    budget = BUDGET.retry_window + BUDGET.read_timeout

    # the server dies in the middle of a multipart upload; the upload fails within the
    # budget, counted from the moment the server was gone
    reader = _KillingReader(data, server, after=8 * MiB)
    upload_done, upload_raised = _in_thread(lambda: store.put_file("packs/big", reader, len(data)))
    give_up = time.monotonic() + 60
    while not reader.killed.wait(0.05):
        assert not upload_done.is_set(), f"the upload ended before the server died: {upload_raised}"
        assert time.monotonic() < give_up, "the upload never reached the point where the server dies"
    assert upload_done.wait(max(0.0, reader.killed_at + budget - time.monotonic())), (
        f"the upload still ran {budget:.0f}s after the server died")
    assert len(upload_raised) == 1 and isinstance(upload_raised[0], TransientStoreError), upload_raised
    # the next operation on the dead server fails within the budget too
    get_done, get_raised = _in_thread(lambda: store.get("before"))
    assert get_done.wait(budget), f"a get on the dead server still ran after {budget:.0f}s"
    assert len(get_raised) == 1 and isinstance(get_raised[0], TransientStoreError), get_raised

    server.start()
    assert store.get("before") == b"kept"
    assert not store.exists("packs/big"), "a failed upload must leave no partial object"
    store.put_file("packs/big", io.BytesIO(data), len(data))
    assert store.get("packs/big") == data
    assert [o.key for o in store.list()] == ["before", "packs/big"]
