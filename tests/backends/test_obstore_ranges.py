"""S3 ranged reads through obstore (mountfs/backends/s3_ranges.py, ``[s3] data_plane``), on a real SeaweedFS:
the same bytes and the same errors as the boto3 path, the same endpoints and credentials, the read deadline,
no secret in any message, and a FUSE mount reading through it.
"""

from __future__ import annotations

import os
import random
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from backendhelp import error_texts
from servers import SeaweedServer

from mountfs.backends import Backend
from mountfs.backends.retry import RetryingBackend
from mountfs.backends.s3 import S3Backend
from mountfs.config import Config, load
from mountfs.errors import ConfigError, ObjectNotFound, PermissionDenied, StoreError, TransientStoreError

pytestmark = pytest.mark.s3

MiB = 1 << 20


#: the opt-in data plane these tests are about (boto3 is the default)
OBSTORE = {"data_plane": "obstore"}

def _blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def _pair(seaweed: SeaweedServer, bucket: str, **s3: object) -> tuple[S3Backend, S3Backend]:
    """The same store opened on each data plane."""
    def one(plane: str) -> S3Backend:
        return S3Backend.from_url(seaweed.store_url(bucket, "root"), Config(
            s3_hosts=seaweed.s3_host_settings(), s3={**s3, "data_plane": plane}, environ={}))
    return one("obstore"), one("boto3")


@pytest.fixture
def pair(seaweed: SeaweedServer) -> Iterator[tuple[S3Backend, S3Backend]]:
    ob, boto = _pair(seaweed, seaweed.new_bucket())
    yield ob, boto
    ob.close()
    boto.close()


def _bytes(parts: list[bytes | memoryview]) -> list[bytes]:
    return [bytes(p) for p in parts]


def test_boto3_is_the_default_and_obstore_is_one_setting_away(seaweed: SeaweedServer) -> None:
    url = seaweed.store_url("b", "p")
    default = S3Backend.from_url(url, Config(s3_hosts=seaweed.s3_host_settings(), environ={}))
    boto = S3Backend.from_url(url, Config(s3_hosts=seaweed.s3_host_settings(), environ={},
                                          s3={"data_plane": "obstore"}))
    by_env = S3Backend.from_url(url, Config(s3_hosts=seaweed.s3_host_settings(), s3={"data_plane": "boto3"},
                                            environ={"MOUNTFS_S3_DATA_PLANE": "obstore"}))
    try:
        assert default._ranges is None
        assert boto._ranges is not None and by_env._ranges is not None
    finally:
        for s in (default, boto, by_env):
            s.close()
    with pytest.raises(ConfigError, match="data_plane"):
        Config(s3={"data_plane": "curl"}, environ={}).s3_options()


def test_data_plane_in_the_config_file_is_known(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[s3]\ndata_plane = "boto3"\n')
    assert load(environ={"MOUNTFS_CONFIG": str(cfg)}).s3_options().data_plane == "boto3"
    assert "unknown setting" not in caplog.text


def test_ranges_match_boto3_anywhere_in_the_object(pair: tuple[S3Backend, S3Backend]) -> None:
    ob, boto = pair
    data = _blob(3 * MiB + 7)
    ob.put("packs/p", data)
    rng = random.Random(1)
    cases: list[tuple[int, list[tuple[int, int]]]] = [
        (0, [(0, len(data))]),                              # the whole object
        (len(data) - 10, [(0, 10)]),                        # exactly its last bytes
        (len(data) - 10, [(0, 4), (6, 100)]),               # a piece running past the end comes back short
        (len(data) + 5, [(0, 10)]),                         # starting past the end: nothing
        (MiB, [(i * 1000, 700) for i in range(300)]),       # many pieces with gaps between them
        (17, [(0, 1), (1, 1), (5, MiB)]),
    ]
    for _ in range(20):
        off = rng.randrange(len(data))
        starts = sorted(rng.sample(range(0, 200_000), 8))
        spans = [(s, rng.randrange(1, 5000)) for s in starts]
        spans = [sp for i, sp in enumerate(spans) if i == 0 or sp[0] >= spans[i - 1][0] + spans[i - 1][1]]
        cases.append((off, spans))
    for off, spans in cases:
        want = [data[off + s:off + s + n] for s, n in spans]
        assert _bytes(ob.get_ranges("packs/p", off, spans)) == want, (off, spans[:3])
        assert _bytes(boto.get_ranges("packs/p", off, spans)) == want, (off, spans[:3])


def test_many_ranges_at_once_from_threads(pair: tuple[S3Backend, S3Backend]) -> None:
    ob, _ = pair
    data = _blob(16 * MiB, seed=2)
    ob.put("big", data)
    from concurrent.futures import ThreadPoolExecutor

    def check(i: int) -> bool:
        off = i * MiB // 2
        return bytes(ob.get_ranges("big", off, [(0, MiB // 2)])[0]) == data[off:off + MiB // 2]

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(check, range(32)))


def test_a_missing_key_and_a_missing_bucket_are_the_errors_boto3_gives(seaweed: SeaweedServer,
                                                                       pair: tuple[S3Backend, S3Backend]) -> None:
    for store in pair:
        with pytest.raises(ObjectNotFound, match="'nothing/here' is not in the store"):
            store.get_ranges("nothing/here", 0, [(0, 10)])
    ob, boto = _pair(seaweed, "no-such-bucket-obstore")
    try:
        for store in (ob, boto):
            with pytest.raises(StoreError) as info:
                store.get_ranges("k", 0, [(0, 1)])
            assert not isinstance(info.value, ObjectNotFound) or store is boto, info.value
    finally:
        ob.close()
        boto.close()


@pytest.mark.allow_warnings  # RetryingBackend gives up on the silent server
def test_bad_credentials_and_a_silent_server_and_no_secret_in_any_message(
        seaweed: SeaweedServer, caplog: pytest.LogCaptureFixture) -> None:
    bucket = seaweed.new_bucket()
    good, _ = _pair(seaweed, bucket)
    good.put("k", b"value")
    wrong_secret = "wrong-secret-obstore-0123456789"
    bad = S3Backend.from_url(seaweed.store_url(bucket), Config(
        s3_hosts={seaweed.host_port: {"key": seaweed.access_key, "secret": wrong_secret}}, s3=OBSTORE, environ={}))
    unknown_key = S3Backend.from_url(seaweed.store_url(bucket), Config(
        s3_hosts={seaweed.host_port: {"key": "nobody", "secret": wrong_secret}}, s3=OBSTORE, environ={}))
    caught: list[BaseException] = []
    with _silent_server() as host:
        silent = S3Backend.from_url(f"s3://{host}/{bucket}", Config(
            s3_hosts={host: {"key": "k", "secret": seaweed.secret_key}},
            s3={**OBSTORE, "connect_timeout": 1, "read_timeout": 1}, environ={}))
        assert silent._ranges is not None
        # the per-attempt timeout ends a request to a server that accepted and never answers
        t0 = time.monotonic()
        with pytest.raises(TransientStoreError) as info:
            silent.get_ranges("k", 0, [(0, 10)])
        assert time.monotonic() - t0 < 4
        caught.append(info.value)
        # and with the retries, within the read deadline's budget
        retrying = RetryingBackend(silent, total_timeout=1)
        t0 = time.monotonic()
        with pytest.raises(TransientStoreError) as info:
            retrying.get_ranges("k", 0, [(0, 10)])
        assert time.monotonic() - t0 < 1 + 1 + 2
        caught.append(info.value)
        silent.close()
    for store in (bad, unknown_key):
        with pytest.raises(PermissionDenied, match="check the access key and secret") as info:
            store.get_ranges("k", 0, [(0, 5)])
        # the obstore error (it may echo the request) is not chained in
        assert info.value.__cause__ is None
        caught.append(info.value)
    texts = error_texts(caught, repr(good), repr(bad), caplog.text)
    for secret in (seaweed.secret_key, wrong_secret):
        assert not [t for t in texts if secret in t]
    for s in (good, bad, unknown_key):
        s.close()


class _Silent:
    """Accepts connections on 127.0.0.1 and never answers (a hung store)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.held.append(conn)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for c in self.held:
            c.close()
        self.sock.close()


class _silent_server:
    def __enter__(self) -> str:
        self.server = _Silent()
        return f"127.0.0.1:{self.server.sock.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.close()


def test_aws_endpoint_url_and_the_aws_variables_reach_obstore(seaweed: SeaweedServer) -> None:
    """``s3://bucket/...`` (no host in the URL) with the endpoint and keys from the standard variables."""
    bucket = seaweed.new_bucket()
    env = {"AWS_ENDPOINT_URL": seaweed.endpoint_url, "AWS_ACCESS_KEY_ID": seaweed.access_key,
           "AWS_SECRET_ACCESS_KEY": seaweed.secret_key, "AWS_REGION": "us-east-1"}
    store = S3Backend.from_url(f"s3://{bucket}/via-env", Config(s3=OBSTORE, environ=env))
    try:
        assert store._ranges is not None
        store.put("k", b"0123456789")
        assert _bytes(store.get_ranges("k", 2, [(0, 3), (5, 100)])) == [b"234", b"789"]
    finally:
        store.close()


def test_credentials_from_a_profile_reach_obstore(seaweed: SeaweedServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """No keys in the config: boto3's chain finds them (here a named profile), and obstore signs with them."""
    creds = tmp_path / "credentials"
    creds.write_text(textwrap.dedent(f"""\
        [bench-profile]
        aws_access_key_id = {seaweed.access_key}
        aws_secret_access_key = {seaweed.secret_key}
        """))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(v, raising=False)
    bucket = seaweed.new_bucket()
    store = S3Backend.from_url(seaweed.store_url(bucket, "p"), Config(
        s3_hosts={seaweed.host_port: {"profile": "bench-profile"}}, s3=OBSTORE, environ={}))
    try:
        assert store._ranges is not None
        store.put("k", b"abcdef")
        assert _bytes(store.get_ranges("k", 1, [(0, 2)])) == [b"bc"]
    finally:
        store.close()


@pytest.mark.fuse
def test_a_mount_reads_through_obstore(seaweed: SeaweedServer, tmp_path: Path) -> None:
    """A real FUSE mount of an S3 store: bytes as written, no fetch errors, obstore loaded in the daemon."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
    from mfs import build, environment, harness, sha, short_run_dir

    url = seaweed.store_url(seaweed.new_bucket(), "ds")
    config = tmp_path / "config.toml"
    config.write_text(f'[s3.hosts."{seaweed.host_port}"]\nkey = "{seaweed.access_key}"\n'
                      f'secret = "{seaweed.secret_key}"\nsecure = false\n')
    env = dict(os.environ, MOUNTFS_STORE=url, MOUNTFS_CACHE_DIR=str(tmp_path / "cache"),
               MOUNTFS_CONFIG=str(config), MOUNTFS_RUN_DIR=short_run_dir())
    for k in ("MOUNTFS_CACHE_SIZE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        env.pop(k, None)
    env["MOUNTFS_S3_DATA_PLANE"] = "obstore"
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    files = {"d/big.bin": _blob(9 * MiB + 123, seed=5), "small.txt": b"hello\n", "d/mid.bin": _blob(300_000, 6)}
    for name, data in files.items():
        (src / name).write_bytes(data)
    with environment(env):
        ds = build("obstore", "mount", src)
    work = tmp_path / "work"
    work.mkdir()
    with harness(env, work) as h:
        h.cli("cache", "clear")  # the upload left the chunks in the cache: read them from the store
        mnt = Path(h.mountpoint())
        d = h.mount(ds.id, str(mnt))
        for name in files:
            assert sha(mnt / name) == sha(src / name), name
        st = d.status()
        assert st["fetch_errors"] == 0 and st["bytes_fetched"] >= len(files["d/big.bin"])
        maps = Path(f"/proc/{d.pid}/maps").read_text()
        assert "_obstore" in maps, "; ".join(sorted({line.split()[-1] for line in maps.splitlines() if ".so" in line}))
        assert not d.log_problems(), d.log_problems()


def test_backend_contract_extras_still_reach_the_inner_store(open_s3: Callable[..., Backend]) -> None:
    store = RetryingBackend(open_s3())
    store.put("k", b"xyz")
    assert _bytes(store.get_ranges("k", 0, [(0, 1), (2, 1)])) == [b"x", b"z"]
