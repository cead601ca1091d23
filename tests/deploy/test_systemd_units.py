"""systemd/: the mountfsd unit passes `systemd-analyze verify` and keeps FUSE working;
the example config and environment files use only settings the code reads."""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mountfs import config as config_mod
from mountfs.backends.s3 import _settings_from_config

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "mountfsd.service"
ENV_EXAMPLE = REPO / "systemd" / "mountfsd.env.example"
CONFIG_EXAMPLE = REPO / "systemd" / "config.toml.example"
#: where the unit expects the install (daemon/README.md says the same)
INSTALL_BIN = "/opt/mountfs/venv/bin"

#: settings that give a service its own mount namespace: the FUSE mount would be
#: made inside it and /datasets would stay empty for everyone else
NAMESPACE_OPTIONS = {
    "PrivateMounts", "PrivateTmp", "PrivateDevices", "PrivateIPC", "ProtectSystem", "ProtectHome",
    "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
    "ProtectProc", "ProcSubset", "ReadOnlyPaths", "ReadWritePaths", "InaccessiblePaths", "ExecPaths",
    "NoExecPaths", "BindPaths", "BindReadOnlyPaths", "TemporaryFileSystem", "RootDirectory", "RootImage",
    "MountImages", "ExtensionImages", "ExtensionDirectories", "MountFlags", "LogNamespace", "DynamicUser",
}


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """[section] -> key -> every value given (systemd allows repeated keys)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"{path}: key outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def code_reads(name: str) -> bool:
    """Is the environment variable ``name`` read somewhere in the mountfs package?"""
    return any(f'"{name}"' in p.read_text() for p in (REPO / "mountfs").rglob("*.py"))


def console_scripts() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


# --- systemd-analyze verify ----------------------------------------------------------


def _analyzer() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    return tool


def _verify(tool: str, unit: Path) -> tuple[int, str]:
    res = subprocess.run([tool, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=120)
    return res.returncode, (res.stdout + res.stderr).strip()


def _complaints(output: str, unit: Path) -> list[str]:
    # warnings (unknown keys, bad values) leave the exit code 0: any line naming the unit counts
    return [line for line in output.splitlines() if unit.name in line]


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> str:
    """systemd-analyze, checked to work here on a trivial unit (no running systemd needed)."""
    tool = _analyzer()
    probe = tmp_path_factory.mktemp("probe") / "mountfs-probe.service"
    probe.write_text(f"[Service]\nType=oneshot\nExecStart={shutil.which('true') or '/bin/true'}\n")
    rc, out = _verify(tool, probe)
    if rc != 0 or _complaints(out, probe):
        pytest.skip(f"systemd-analyze verify does not work in this container: {out or rc}")
    return tool


def _installed_copy(tmp_path: Path, text: str) -> Path:
    """The unit with the install path pointing at this venv (verify checks that executables exist)."""
    venv_bin = Path(sys.executable).parent
    for script in ("mountfs", "mountfsd"):
        assert (venv_bin / script).exists(), f"{venv_bin / script} missing: pip install -e . first"
    unit = tmp_path / "mountfsd.service"
    unit.write_text(text.replace(INSTALL_BIN, str(venv_bin)))
    return unit


def test_unit_passes_systemd_analyze_verify(analyzer: str, tmp_path: Path) -> None:
    unit = _installed_copy(tmp_path, UNIT.read_text())
    rc, out = _verify(analyzer, unit)
    assert rc == 0 and not _complaints(out, unit), out


def test_verify_catches_what_the_test_relies_on(analyzer: str, tmp_path: Path) -> None:
    """The check above is not vacuous: a misspelt key and a missing executable are reported."""
    typo = _installed_copy(tmp_path, UNIT.read_text().replace("\nType=notify", "\nTyp=notify"))
    assert _complaints(_verify(analyzer, typo)[1], typo)
    missing = tmp_path / "missing" / "mountfsd.service"
    missing.parent.mkdir()
    missing.write_text(UNIT.read_text().replace(INSTALL_BIN, str(tmp_path / "nowhere")))
    assert _verify(analyzer, missing)[0] != 0


# --- what the unit says ---------------------------------------------------------------


def test_unit_runs_mountfsd_as_a_notify_service() -> None:
    svc = parse_unit(UNIT)["Service"]
    assert svc["Type"] == ["notify"]
    (start,) = svc["ExecStart"]
    argv = shlex.split(start)
    assert argv[0] == f"{INSTALL_BIN}/mountfsd" and "mountfsd" in console_scripts()
    assert argv[argv.index("--mountpoint") + 1] == "/datasets"
    # mountfsd unmounts on SIGTERM: no ExecStop
    assert "ExecStop" not in svc and svc.get("KillSignal", ["SIGTERM"]) == ["SIGTERM"]
    assert svc["Restart"] == ["on-failure"] and svc["RestartSec"] and svc["TimeoutStopSec"]


def test_unit_cleans_a_stale_mount_and_creates_the_mountpoint() -> None:
    pre = parse_unit(UNIT)["Service"]["ExecStartPre"]
    umount = [shlex.split(c[1:]) for c in pre if c.startswith("-") and "umount" in c]
    assert umount and umount[0][0] == f"{INSTALL_BIN}/mountfs" and "mountfs" in console_scripts()
    assert umount[0][1] == "umount" and umount[0][-1] == "/datasets"
    assert any(c.lstrip("-").split()[-2:] == ["-p", "/datasets"] and "mkdir" in c for c in pre)
    # the umount runs first: mkdir fails on a dead mount
    assert pre.index(next(c for c in pre if "umount" in c)) < pre.index(next(c for c in pre if "mkdir" in c))


def test_unit_directories_environment_and_ordering() -> None:
    unit = parse_unit(UNIT)
    svc = unit["Service"]
    assert svc["EnvironmentFile"] == ["-/etc/mountfs/mountfsd.env"]
    assert svc["CacheDirectory"] == ["mountfs"] and svc["RuntimeDirectory"] == ["mountfs"]
    assert svc["RuntimeDirectoryMode"] == ["0750"]
    env = dict(item.split("=", 1) for line in svc["Environment"] for item in shlex.split(line))
    assert env["MOUNTFS_CACHE_DIR"] == "/var/cache/mountfs"  # = CacheDirectory=mountfs
    assert env["MOUNTFS_RUN_DIR"] == "/run/mountfs"  # = RuntimeDirectory=mountfs
    assert env["MOUNTFS_CONFIG"] == "/etc/mountfs/config.toml"
    for name in env:
        assert name.startswith("PYTHON") or code_reads(name), f"the code never reads {name}"
    after = " ".join(unit["Unit"]["After"]).split()
    wants = " ".join(unit["Unit"]["Wants"]).split()
    assert "network-online.target" in after and "network-online.target" in wants


def test_unit_hardening_keeps_fuse_working() -> None:
    svc = parse_unit(UNIT)["Service"]
    present = NAMESPACE_OPTIONS & svc.keys()
    assert not present, f"these give the service its own mount namespace, hiding /datasets: {present}"
    assert "User" not in svc  # mounting needs root
    assert any(v.split()[0] == "/dev/fuse" and "rw" in v.split()[1:] for v in svc["DeviceAllow"])
    caps = " ".join(svc["CapabilityBoundingSet"]).split()
    assert "CAP_SYS_ADMIN" in caps
    # the FUSE thread's realtime scheduling (config `realtime`, default on)
    assert "CAP_SYS_NICE" in caps and svc.get("RestrictRealtime", ["no"])[-1] != "yes"
    families = " ".join(svc.get("RestrictAddressFamilies", ["AF_UNIX AF_INET AF_INET6"])).split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)  # control socket, the store


def test_readme_names_the_install_path() -> None:
    assert INSTALL_BIN.rsplit("/bin", 1)[0] in (REPO / "daemon" / "README.md").read_text()


# --- the example files ------------------------------------------------------------------


def test_env_example_names_only_variables_the_code_reads() -> None:
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9]*_[A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE)
    assert {"MOUNTFS_STORE", "MOUNTFS_CACHE_DIR", "MOUNTFS_CACHE_SIZE", "AWS_ACCESS_KEY_ID"} <= set(names)
    unread = [n for n in names if not code_reads(n)]
    assert not unread, f"the code never reads {unread}"
    # placeholders only
    for value in re.findall(r"^#?\s*AWS_(?:ACCESS_KEY_ID|SECRET_ACCESS_KEY)=(.*)$", ENV_EXAMPLE.read_text(), re.M):
        assert value.startswith("REPLACE_"), value


def known_keys() -> tuple[set[str], set[str]]:
    """(scalar keys, tables) that config.load understands at the top of config.toml."""
    tables = {"mountfs", "s3", "gs", "azure"}
    fields = {f.name for f in dataclasses.fields(config_mod.Config)}
    return fields - {"s3_hosts", "environ"} - tables, tables


def check_config_text(text: str, tmp_path: Path, environ: dict[str, str] | None = None) -> config_mod.Config:
    """Every key is one the code reads, and loading the file gives exactly its values."""
    data = tomllib.loads(text)
    scalars, tables = known_keys()
    unknown = set(data) - scalars - tables
    assert not unknown, f"keys config.load ignores: {unknown}"
    path = tmp_path / "config.toml"
    path.write_text(text)
    cfg = config_mod.load(environ={"MOUNTFS_CONFIG": str(path), **(environ or {})})
    for key in set(data) & scalars:
        want = config_mod.parse_size(data[key]) if key in ("cache_size", "cache_min_free") else str(data[key])
        assert getattr(cfg, key) == want, key
    hosts = data.get("s3", {}).get("hosts", {})
    assert dict(cfg.s3_hosts) == hosts
    for entry in hosts.values():
        assert set(entry) <= {"key", "secret", "secure", "verify", "region", "profile"}, entry
        for cred in ("key", "secret"):
            assert cred not in entry or entry[cred].startswith("REPLACE_"), "no real credentials"
    return cfg


def test_config_example_loads_with_its_s3_host(tmp_path: Path) -> None:
    cfg = check_config_text(CONFIG_EXAMPLE.read_text(), tmp_path)
    assert cfg.store.startswith("s3://") and cfg.s3_hosts
    settings = _settings_from_config(cfg.store, cfg)
    (host,) = cfg.s3_hosts
    assert settings.host == host and settings.endpoint_url == f"https://{host}"
