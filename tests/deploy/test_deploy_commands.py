"""The commands the deployment files run, run for real against a FUSE mount:
the systemd unit's ExecStartPre/ExecStart (with READY=1 on NOTIFY_SOCKET), the
DaemonSet's container command (restarting over a dead mount), its probes and
its preStop unmount, and the image's HEALTHCHECK. Paths are swapped for this
test's own; daemons are stopped by PID and mounts cleaned up afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from mountfs.daemon import mounts

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
INSTALL_BIN = "/opt/mountfs/venv/bin"
READY_TIMEOUT = 60.0
HEALTHCHECK = REPO / "daemon" / "healthcheck.py"
#: where daemon/Containerfile puts it
IMAGE_HEALTHCHECK = "/opt/mountfs/healthcheck.py"

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.slow,
    pytest.mark.skipif(not os.access("/dev/fuse", os.R_OK | os.W_OK), reason="needs /dev/fuse"),
    pytest.mark.skipif(shutil.which("fusermount3") is None, reason="needs fusermount3 (apt-get install fuse3)"),
]


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Deploy:
    """Runs deployment commands in a private environment; remembers what to clean up."""

    def __init__(self, root: Path, run_dir: str):
        self.root = root
        self.mountpoint = str(root / "mnt" / "datasets")
        self.notify_path = os.path.join(run_dir, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.env = dict(os.environ, MOUNTFS_RUN_DIR=os.path.join(run_dir, "run"),
                        PATH=f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", NOTIFY_SOCKET=self.notify_path)
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def sh(self, command: str | list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else command
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)

    def start(self, argv: list[str]) -> subprocess.Popen:
        """Start a daemon command and wait for READY=1 on the notify socket."""
        log = self.root / f"daemon{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "wb") as fh:
            proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh,
                                    start_new_session=True)
        self.procs.append(proc)
        deadline = time.monotonic() + READY_TIMEOUT
        self.notify.settimeout(0.2)
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError, socket.timeout):
                if b"READY=1" in self.notify.recv(4096):
                    return proc
            assert proc.poll() is None, f"{argv} exited {proc.returncode}: {log.read_text()}"
        pytest.fail(f"no READY=1 from {argv} within {READY_TIMEOUT}s: {log.read_text()}")

    def wait_exit(self, proc: subprocess.Popen, timeout: float = 30) -> int:
        return proc.wait(timeout=timeout)

    def close(self) -> None:
        for proc in self.procs:
            if _pid_alive(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=15)
        for flags in ("-u", "-uz"):
            if mounts.mounted_fuse(self.mountpoint):
                subprocess.run(["fusermount3", flags, self.mountpoint], capture_output=True, timeout=30)
        self.notify.close()


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Deploy]:
    run_dir = tempfile.mkdtemp(prefix="mfsd", dir="/tmp")  # unix socket paths are short
    d = Deploy(tmp_path, run_dir)
    try:
        yield d
    finally:
        d.close()
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def catalog(tmp_path: Path) -> str:
    """One finalized dataset in the test's store; returns its path under the mount."""
    from mountfs import Dataset

    src = tmp_path / "src"
    (src / "train").mkdir(parents=True)
    (src / "train" / "a.txt").write_text("hello\n")
    ds = Dataset.create(dataset_name="cats", dataset_project="vision")
    ds.add_files(str(src))
    ds.upload()
    ds.finalize()
    return "vision/cats/latest/train/a.txt"


def daemonset_container() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (it belongs in the test extras)")
    docs = list(yaml.safe_load_all((REPO / "daemon/kubernetes/mountfsd-daemonset.yaml").read_text()))
    (ds,) = [d for d in docs if d and d["kind"] == "DaemonSet"]
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    return c


def k8s_mountpoint(c: dict) -> str:
    argv = shlex.split(c["command"][-1].rsplit("exec ", 1)[1])
    return argv[argv.index("--mountpoint") + 1]


def test_daemonset_commands(deploy: Deploy, catalog: str) -> None:
    c = daemonset_container()
    theirs = k8s_mountpoint(c)

    def mine(argv: list[str]) -> list[str]:
        return [a.replace(theirs, deploy.mountpoint).replace(IMAGE_HEALTHCHECK, str(HEALTHCHECK)) for a in argv]

    command = mine(c["command"])
    probes = {name: mine(c[name]["exec"]["command"]) for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert deploy.sh(probes["livenessProbe"]).returncode != 0  # nothing mounted yet

    # the container command creates the mountpoint and execs mountfsd, which reports READY=1
    proc = deploy.start(command)
    assert Path(deploy.mountpoint, catalog).read_text() == "hello\n"
    for name, probe in probes.items():
        assert deploy.sh(probe, timeout=30).returncode == 0, name

    # hung: no answer within the probe's own timeout, and the probe still returns
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        res = deploy.sh(probes["livenessProbe"], timeout=30)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert res.returncode != 0 and "no answer" in res.stderr, res.stderr
    assert deploy.sh(probes["livenessProbe"], timeout=30).returncode == 0

    # killed (OOM): the mount is dead and the probe says so at once, without hanging
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=15)
    assert mounts.mounted_fuse(deploy.mountpoint)
    res = deploy.sh(probes["livenessProbe"], timeout=30)
    assert res.returncode != 0 and "the daemon is gone" in res.stderr, res.stderr

    # the restarted container runs the same command over the dead mount and serves again
    proc = deploy.start(command)
    assert Path(deploy.mountpoint, catalog).read_text() == "hello\n"
    assert deploy.sh(probes["livenessProbe"], timeout=30).returncode == 0

    # preStop: its `mountfs umount` (not the `kill -TERM 1` fallback, which here would hit
    # this machine's PID 1) stops the daemon, which exits 0 and leaves nothing mounted
    pre = c["lifecycle"]["preStop"]["exec"]["command"][-1]
    umount = shlex.split(pre.split("||")[0])
    assert umount[umount.index("mountfs"):][:2] == ["mountfs", "umount"]
    res = deploy.sh(mine(umount))
    assert res.returncode == 0, res.stderr
    assert deploy.wait_exit(proc) == 0
    assert not mounts.mounted_fuse(deploy.mountpoint)
    assert deploy.sh(probes["livenessProbe"]).returncode != 0


def _unit_service() -> dict[str, list[str]]:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_systemd_units import parse_unit

    return parse_unit(REPO / "systemd" / "mountfsd.service")["Service"]


def test_systemd_unit_commands(deploy: Deploy, catalog: str) -> None:
    svc = _unit_service()

    def mine(line: str) -> tuple[bool, list[str]]:
        """(failure tolerated, argv) with this test's venv and mountpoint."""
        tolerant = line.startswith("-")
        argv = shlex.split(line.lstrip("-").replace(INSTALL_BIN, str(BIN)))
        return tolerant, [deploy.mountpoint if a == "/datasets" else a for a in argv]

    def start_pre() -> None:
        for line in svc["ExecStartPre"]:
            tolerant, argv = mine(line)
            res = deploy.sh(argv)
            assert tolerant or res.returncode == 0, (argv, res.stderr)

    (start_line,) = svc["ExecStart"]
    start = mine(start_line)[1]

    # first start: nothing mounted (umount fails, tolerated), the mountpoint is created
    start_pre()
    proc = deploy.start(start)
    assert Path(deploy.mountpoint, catalog).read_text() == "hello\n"

    # killed: mkdir alone would fail on the dead mount, the umount before it cleans it
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=15)
    # (once the kernel's cached attributes of the mount's root expire, a second or so)
    deadline = time.monotonic() + 10
    while deploy.sh(["mkdir", "-p", deploy.mountpoint]).returncode == 0:
        assert time.monotonic() < deadline, "mkdir -p kept succeeding on the dead mount"
        time.sleep(0.2)
    start_pre()
    assert not mounts.mounted_fuse(deploy.mountpoint) and os.path.isdir(deploy.mountpoint)

    # restart (Restart=on-failure), then `systemctl stop`: SIGTERM, no ExecStop
    proc = deploy.start(start)
    assert Path(deploy.mountpoint, catalog).read_text() == "hello\n"
    proc.send_signal(signal.SIGTERM)
    assert deploy.wait_exit(proc) == 0
    assert not mounts.mounted_fuse(deploy.mountpoint)


def test_image_healthcheck_command(deploy: Deploy, catalog: str) -> None:
    text = (REPO / "daemon" / "Containerfile").read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith("HEALTHCHECK"))
    argv = json.loads(line.split(" CMD ", 1)[1])
    assert IMAGE_HEALTHCHECK in argv and "/datasets" in argv
    check = [str(HEALTHCHECK) if a == IMAGE_HEALTHCHECK else deploy.mountpoint if a == "/datasets" else a
             for a in argv]
    res = deploy.sh(check)
    assert res.returncode != 0 and "no FUSE filesystem" in res.stderr
    os.makedirs(deploy.mountpoint)
    proc = deploy.start(["mountfsd", "--mountpoint", deploy.mountpoint])
    assert deploy.sh(check, timeout=30).returncode == 0
    proc.send_signal(signal.SIGTERM)
    assert deploy.wait_exit(proc) == 0
    assert deploy.sh(check).returncode != 0
