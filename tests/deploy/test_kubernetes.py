"""daemon/kubernetes/: the DaemonSet mounts the catalog with Bidirectional propagation
from a privileged container with /dev/fuse, unmounts in preStop, reads a ConfigMap
whose config.toml uses only keys the code reads and S3 keys from a Secret; the
training pod example reads the same host folder with HostToContainer."""

from __future__ import annotations

import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (it belongs in the test extras)")

sys.path.insert(0, str(Path(__file__).parent))
from test_systemd_units import check_config_text, code_reads, console_scripts  # noqa: E402

from mountfs.backends.s3 import _settings_from_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "daemon" / "kubernetes"
_UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "K": 10**3, "M": 10**6, "G": 10**9, "": 1}


def quantity(text: str | int) -> int:
    m = re.fullmatch(r"(\d+)([KMGT]i?)?", str(text))
    assert m, text
    return int(m.group(1)) * _UNITS[m.group(2) or ""]


def load(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


@pytest.fixture(scope="module")
def docs() -> dict[str, dict]:
    out = {}
    for d in load("mountfsd-daemonset.yaml"):
        assert d["kind"] not in out, f"two {d['kind']}s"
        out[d["kind"]] = d
    return out


@pytest.fixture(scope="module")
def pod_spec(docs: dict[str, dict]) -> dict:
    return docs["DaemonSet"]["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def container(pod_spec: dict) -> dict:
    (c,) = pod_spec["containers"]
    return c


def mountpoint_of(c: dict) -> str:
    script = c["command"][-1]
    argv = shlex.split(script.rsplit("exec ", 1)[1])
    assert argv[0] == "mountfsd" and "mountfsd" in console_scripts()
    return argv[argv.index("--mountpoint") + 1]


def volume(spec: dict, name: str) -> dict:
    (v,) = [v for v in spec["volumes"] if v["name"] == name]
    return v


def test_every_object_is_in_the_namespace(docs: dict[str, dict]) -> None:
    ns = docs["Namespace"]["metadata"]["name"]
    assert {"Namespace", "ConfigMap", "DaemonSet"} <= docs.keys()
    for kind, d in docs.items():
        if kind != "Namespace":
            assert d["metadata"]["namespace"] == ns, kind
    ds = docs["DaemonSet"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()


def test_mount_propagates_bidirectionally_from_a_privileged_container(pod_spec: dict, container: dict) -> None:
    assert container["securityContext"]["privileged"] is True
    mp = mountpoint_of(container)
    (shared,) = [m for m in container["volumeMounts"] if m.get("mountPropagation") == "Bidirectional"]
    host = volume(pod_spec, shared["name"])["hostPath"]
    # the hostPath is the folder above the mountpoint: a dead mount never blocks binding it again
    assert Path(mp).parent == Path(shared["mountPath"]), (mp, shared["mountPath"])
    assert host["type"] == "DirectoryOrCreate"
    # the container command creates the mountpoint and execs the daemon (PID 1: gets SIGTERM)
    assert f"mkdir -p {mp}" in container["command"][-1] and " exec mountfsd " in f" {container['command'][-1]}"


def test_dev_fuse_is_reachable(pod_spec: dict, container: dict) -> None:
    # privileged already exposes the host's devices; the explicit CharDevice fails clearly without FUSE
    (m,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/fuse"]
    assert volume(pod_spec, m["name"])["hostPath"] == {"path": "/dev/fuse", "type": "CharDevice"}


def test_prestop_unmounts_within_the_grace_period(pod_spec: dict, container: dict) -> None:
    mp = mountpoint_of(container)
    pre = container["lifecycle"]["preStop"]["exec"]["command"][-1]
    assert f"mountfs umount {mp}" in pre and "mountfs" in console_scripts()
    limit = re.search(r"timeout (\d+) mountfs umount", pre)
    assert limit and int(limit.group(1)) < pod_spec["terminationGracePeriodSeconds"]


def test_probes_check_the_mountpoint_without_the_store(container: dict) -> None:
    mp = mountpoint_of(container)
    for name in ("startupProbe", "livenessProbe", "readinessProbe"):
        argv = container[name]["exec"]["command"]
        assert argv[-1] == mp and argv[1] == "/opt/mountfs/healthcheck.py", (name, argv)
        assert container[name]["timeoutSeconds"] >= 5 + 1  # the check's own lookup timeout, plus start-up
    assert "COPY daemon/healthcheck.py /opt/mountfs/healthcheck.py" in (REPO / "daemon" / "Containerfile").read_text()


def test_resources_and_cache(pod_spec: dict, container: dict) -> None:
    res = container["resources"]
    assert quantity(res["requests"]["memory"]) >= 512 << 20
    assert quantity(res["limits"]["memory"]) >= quantity(res["requests"]["memory"])
    env = {e["name"]: e for e in container["env"]}
    cache_dir = env["MOUNTFS_CACHE_DIR"]["value"]
    (m,) = [m for m in container["volumeMounts"] if m["mountPath"] == cache_dir]
    assert volume(pod_spec, m["name"])["hostPath"]["path"] == "/var/cache/mountfs"
    for name in env:
        assert code_reads(name), f"the code never reads {name}"


def test_configmap_holds_the_config_file_the_daemon_reads(
        docs: dict[str, dict], pod_spec: dict, container: dict, tmp_path: Path) -> None:
    env = {e["name"]: e for e in container["env"]}
    config_path = Path(env["MOUNTFS_CONFIG"]["value"])
    (m,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == config_path.parent]
    cm_name = volume(pod_spec, m["name"])["configMap"]["name"]
    cm = docs["ConfigMap"]
    assert cm["metadata"]["name"] == cm_name and config_path.name in cm["data"]
    text = cm["data"][config_path.name]
    # keys the code reads, values that load as written (checked by the systemd example's test too)
    secret = load("mountfs-s3-secret.example.yaml")[0]["stringData"]
    cfg = check_config_text(text, tmp_path, environ=dict(secret))
    # the S3 keys come from the Secret's environment, not from the ConfigMap
    assert "key" not in tomllib.loads(text).get("s3", {}).get("hosts", {}).get(next(iter(cfg.s3_hosts)), {})
    settings = _settings_from_config(cfg.store, cfg)
    assert settings.key == secret["AWS_ACCESS_KEY_ID"] and settings.secret == secret["AWS_SECRET_ACCESS_KEY"]


def test_secret_keys_match_the_environment(docs: dict[str, dict], container: dict) -> None:
    (secret,) = load("mountfs-s3-secret.example.yaml")
    assert secret["kind"] == "Secret" and secret["metadata"]["namespace"] == docs["Namespace"]["metadata"]["name"]
    assert "Secret" not in docs  # re-applying the manifest must never reset the real keys
    refs = [e for e in container["env"] if "valueFrom" in e]
    assert {e["name"] for e in refs} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    for e in refs:
        ref = e["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
        assert code_reads(e["name"])
    for value in secret["stringData"].values():
        assert value.startswith("REPLACE_"), "placeholders only"


def test_training_pod_reads_the_same_host_folder(pod_spec: dict, container: dict) -> None:
    (shared,) = [m for m in container["volumeMounts"] if m.get("mountPropagation") == "Bidirectional"]
    host_dir = volume(pod_spec, shared["name"])["hostPath"]["path"]
    node_mountpoint = Path(host_dir) / Path(mountpoint_of(container)).relative_to(shared["mountPath"])
    (pod,) = load("training-pod-example.yaml")
    assert pod["kind"] == "Pod"
    spec = pod["spec"]
    for c in spec.get("initContainers", []) + spec["containers"]:
        assert not c.get("securityContext", {}).get("privileged")
        for m in c["volumeMounts"]:
            v = volume(spec, m["name"])
            assert v["hostPath"]["path"] == host_dir and m["mountPropagation"] == "HostToContainer"
    env = {e["name"]: e["value"] for e in spec["containers"][0].get("env", [])}
    assert Path(env["DATASETS"]) == Path(spec["containers"][0]["volumeMounts"][0]["mountPath"]) / node_mountpoint.name
