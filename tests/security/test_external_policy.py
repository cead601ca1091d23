"""External files cannot carry another user's reads across a privilege line; the mount grants no privileges.

Issue 13, item 2: anyone who can write the store can make a manifest entry
point at ``file:///etc/shadow`` or ``http://169.254.169.254/...``; a root mount
(allow_other) then read it for every local user.  Item 3 for the mount: a
manifest mode ``0o6755`` showed as setuid/setgid, and the mount was not
``nosuid,nodev``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import logging
import os
import re
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

# tests/daemon holds the real-mount harness (mfs.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from mfs import Harness, harness, short_run_dir, write  # noqa: E402

import mountfs.store.external as external  # noqa: E402
from mountfs import Dataset, session  # noqa: E402
from mountfs.config import load  # noqa: E402
from mountfs.errors import ConfigError, ObjectNotFound, PermissionDenied  # noqa: E402

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
SECRET = b"root:$6$not-for-nobody$hash:19000:0:99999:7:::\n"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="a mount serving other users (allow_other) needs root")


def _refused(policy: "external.SourcePolicy", url: str) -> str:
    with pytest.raises(PermissionDenied) as info:
        policy.check(url)
    return str(info.value)


# --- the policy ---------------------------------------------------------------------------------


def test_a_process_for_its_own_user_reads_every_scheme_by_default() -> None:
    policy = external.SourcePolicy(None, serving_others=False)
    assert not policy.restricted
    for url in ("file:///etc/shadow", "/etc/shadow", "http://127.0.0.1:9/x", "https://h/x", "s3://b/k", "gs://b/k"):
        policy.check(url)


@pytest.mark.allow_warnings
def test_serving_others_reads_object_stores_only_by_default(caplog: pytest.LogCaptureFixture) -> None:
    policy = external.SourcePolicy(None, serving_others=True)
    assert policy.restricted
    for url in ("s3://bucket/k", "s3://169.254.169.254/latest/k", "gs://b/k", "azure://acct.blob.core.windows.net/c/k"):
        policy.check(url)
    refused = ("file:///etc/shadow", "/etc/shadow", "file://etc/shadow", "http://169.254.169.254/latest/meta-data/",
               "https://127.0.0.1:8080/admin", "ftp://h/x",
               # URLs that name their own endpoint would take the node's credentials (signatures, SAS) there
               "s3://169.254.169.254:80/latest/meta-data", "s3://127.0.0.1:8333/bucket/k",
               "azure://evil.example.com/c/k", "azure://x@acct.blob.core.windows.net/c/k")
    for url in refused:
        msg = _refused(policy, url)
        assert url in msg and "[external]" in msg and "allow" in msg and "MOUNTFS_EXTERNAL_ALLOW" in msg
    # logged once per URL, however often it is read
    _refused(policy, "file:///etc/shadow")
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("file:///etc/shadow may not be read" in m for m in logged) == 1
    assert len(logged) == len(refused)


@pytest.mark.allow_warnings
def test_serving_others_reads_the_s3_endpoints_the_node_configures(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('store = "s3://10.0.0.5:9000/catalog"\n[s3.hosts."minio.lan:9000"]\nkey = "k"\n')
    cfg = load({"MOUNTFS_CONFIG": str(cfg_file)})
    policy = external.SourcePolicy.from_config(cfg, serving_others=True)
    for url in ("s3://minio.lan:9000/b/k", "s3://10.0.0.5:9000/other-bucket/k", "s3://bucket/k"):
        policy.check(url)
    with pytest.raises(PermissionDenied):
        policy.check("s3://minio.lan:9001/b/k")
    # an allow list replaces the default, endpoints included
    narrowed = external.SourcePolicy.from_config(replace(cfg, external_allow=("s3://minio.lan:9000/b/",)), True)
    narrowed.check("s3://minio.lan:9000/b/k")
    for url in ("s3://minio.lan:9000/c/k", "s3://bucket/k"):
        with pytest.raises(PermissionDenied):
            narrowed.check(url)


def test_url_prefixes_match_whole_components() -> None:
    policy = external.SourcePolicy(["s3://bucket/prefix/", "https://data.example.com/", "http://h:8080/pub"],
                                   serving_others=False)
    for url in ("s3://bucket/prefix/x", "s3://bucket/prefix/a/b.bin", "https://data.example.com/a/b",
                "https://DATA.example.com/x", "http://h:8080/pub/f", "HTTPS://data.example.com/x"):
        policy.check(url)
    for url in ("s3://bucket/prefix2/x", "s3://bucket/other", "s3://other/prefix/x", "gs://bucket/prefix/x",
                "https://data.example.com.evil.net/x", "https://data.example.com@evil.net/x",
                "http://data.example.com/x", "https://data.example.com:8443/x", "http://h:8080/public/f",
                "http://h/pub/f", "https://data.example.com/a/../../b", "http://h:8080/pub/%2e%2e/private",
                "s3://bucket/prefix/../secret"):
        _refused(policy, url)


def test_an_allow_list_narrows_a_process_for_its_own_user_too() -> None:
    policy = external.SourcePolicy(["s3://bucket/"], serving_others=False)
    policy.check("s3://bucket/x")
    msg = _refused(policy, "file:///etc/hostname")
    assert "external.allow" in msg
    _refused(external.SourcePolicy([], serving_others=False), "s3://bucket/x")


def test_local_folders_are_judged_by_real_path(tmp_path: Path) -> None:
    allowed = tmp_path / "shared" / "datasets"
    (allowed / "sub").mkdir(parents=True)
    (allowed / "sub" / "a.bin").write_bytes(b"a")
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    (allowed / "out").symlink_to(secret)
    (allowed / "outdir").symlink_to(tmp_path)
    (allowed / "in").symlink_to(allowed / "sub" / "a.bin")
    (tmp_path / "alias").symlink_to(allowed)
    for spelling in (str(allowed) + "/", f"file://{allowed}", str(tmp_path / "alias")):
        policy = external.SourcePolicy([spelling], serving_others=False)
        for ok in (allowed / "sub" / "a.bin", allowed / "in", tmp_path / "alias" / "sub" / "a.bin"):
            policy.check(f"file://{ok}")
            policy.check(str(ok))
        for bad in (f"{allowed}/../../secret", f"{allowed}/out", f"{allowed}/outdir/secret", str(secret),
                    f"{allowed}dish/x", "/etc/shadow"):
            msg = _refused(policy, f"file://{bad}")
            if "/out" in bad:
                assert f"its real path is {secret}" in msg
    everything = external.SourcePolicy(["file://"], serving_others=False)
    everything.check(str(secret))
    _refused(everything, "http://h/x")


# --- the setting ----------------------------------------------------------------------------------


def test_the_setting_from_file_and_environment(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text("")
    assert load({"MOUNTFS_CONFIG": str(cfg_file)}).external_allow is None
    cfg_file.write_text('[external]\nallow = ["s3://bucket/prefix/", "/mnt/shared/datasets/", '
                        '"https://data.example.com/"]\n')
    env = {"MOUNTFS_CONFIG": str(cfg_file)}
    assert load(env).external_allow == ("s3://bucket/prefix/", "/mnt/shared/datasets/", "https://data.example.com/")
    env["MOUNTFS_EXTERNAL_ALLOW"] = " gs://b/, /data  file:///x,https://h/ "
    assert load(env).external_allow == ("gs://b/", "/data", "file:///x", "https://h/")
    cfg_file.write_text("[external]\nallow = []\n")
    assert load({"MOUNTFS_CONFIG": str(cfg_file)}).external_allow == ()


@pytest.mark.parametrize("text, problem", [
    ('[external]\nallow = ["data/sets"]\n', "neither an absolute folder nor a URL prefix"),
    ('[external]\nallow = ["ftp://h/"]\n', "neither an absolute folder nor a URL prefix"),
    ('[external]\nallow = [5]\n', "neither an absolute folder nor a URL prefix"),
    ('[external]\nallow = "s3://b/"\n', "must be a list"),
    ('external = 5\n', "must be a table"),
])
def test_a_bad_setting_is_a_clear_error(tmp_path: Path, text: str, problem: str) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load({"MOUNTFS_CONFIG": str(cfg_file)})


def test_a_bad_environment_value_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="MOUNTFS_EXTERNAL_ALLOW: 'relative' is neither"):
        load({"MOUNTFS_CONFIG": os.devnull, "MOUNTFS_EXTERNAL_ALLOW": "s3://b/ relative"})


# --- at read time -------------------------------------------------------------------------------------


def test_the_sdk_honours_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    write(src / "a.bin", b"a" * 100)
    monkeypatch.setenv("MOUNTFS_EXTERNAL_ALLOW", "s3://bucket/")
    ds = Dataset.create(dataset_name="ext", dataset_project="p")
    with pytest.raises(PermissionDenied, match=re.escape(f"external file file://{src}/a.bin may not be read")):
        ds.add_external_files(f"file://{src}/a.bin")


@pytest.mark.allow_warnings
def test_a_name_swapped_for_a_symlink_after_the_check_leads_nowhere(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    allowed = tmp_path / "allowed"
    write(allowed / "f.bin", SECRET.upper())
    secret = write(tmp_path / "secret", SECRET, mode=0o600)
    sess = session.Session(load({"MOUNTFS_CONFIG": os.devnull, "MOUNTFS_EXTERNAL_ALLOW": str(allowed)}))
    backend, key = sess.source(f"file://{allowed}/f.bin", serving_others=True)
    assert backend.get_range(key, 0, 5) == SECRET.upper()[:5]
    # the check passed on the name; now the name leads out of the allowed folder
    (allowed / "f.bin").unlink()
    (allowed / "f.bin").symlink_to(secret)
    for read in (lambda: backend.get_range(key, 0, 5), lambda: backend.stat(key), lambda: backend.get(key)):
        with pytest.raises(PermissionDenied, match=re.escape(f"{secret} may not be read")):
            read()
    # the same through the session: the name is judged again at every read
    with pytest.raises(PermissionDenied, match=re.escape(f"its real path is {secret}")):
        sess.source(f"file://{allowed}/f.bin", serving_others=True)
    # each refused URL (the opened file's real path, the name) is logged once
    assert [r.getMessage().split(" may not")[0] for r in caplog.records if r.levelno == logging.WARNING] == [
        f"external file {secret}", f"external file file://{allowed}/f.bin"]
    # a fifo in the allowed folder neither blocks a read nor is served
    (allowed / "f.bin").unlink()
    os.mkfifo(allowed / "f.bin")
    with pytest.raises(ObjectNotFound, match="not a regular file"):
        backend.get_range(key, 0, 5)


class _Recorder(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; records every request; ``/go/<x>`` redirects to ``/<x>``."""

    def log_message(self, *args: object) -> None:
        pass

    def _route(self) -> bool:
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        if self.path.startswith("/go/"):
            self.send_response(302)
            self.send_header("Location", self.path[3:])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        return False

    def do_GET(self) -> None:
        if not self._route():
            super().do_GET()

    def do_HEAD(self) -> None:
        if not self._route():
            super().do_HEAD()


@contextlib.contextmanager
def _http_server(root: Path) -> Iterator[tuple[str, list[str]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Recorder, directory=str(root)))
    server.seen = []  # type: ignore[attr-defined]
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.seen  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        t.join(10)


@pytest.mark.allow_warnings
def test_a_redirect_out_of_the_allowed_prefix_is_never_requested(tmp_path: Path) -> None:
    write(tmp_path / "web" / "pub" / "f", b"public")
    write(tmp_path / "web" / "private" / "f", b"private")
    with _http_server(tmp_path / "web") as (base, seen):
        sess = session.Session(load({"MOUNTFS_CONFIG": os.devnull,
                                     "MOUNTFS_EXTERNAL_ALLOW": f"{base}/go/ {base}/pub/"}))
        backend, key = sess.source(f"{base}/go/pub/f", serving_others=True)
        assert backend.get_range(key, 0, 6) == b"public"  # a redirect inside the allowed prefixes is followed
        backend, key = sess.source(f"{base}/go/private/f", serving_others=True)
        seen.clear()
        with pytest.raises(PermissionDenied, match=re.escape(f"{base}/private/f may not be read")):
            backend.get_range(key, 0, 7)
        assert seen == ["/go/private/f"]
        # a process for its own user still follows it
        backend, key = session.Session(load({"MOUNTFS_CONFIG": os.devnull})).source(f"{base}/go/private/f")
        assert backend.get_range(key, 0, 7) == b"private"


# --- through a real mount ----------------------------------------------------------------------------


@pytest.fixture
def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setenv("MOUNTFS_RUN_DIR", short_run_dir())
    work = tmp_path / "work"
    work.mkdir()
    with harness(dict(os.environ), work) as hh:
        yield hh


@pytest.fixture
def public_mp(h: Harness) -> Iterator[str]:
    """A mountpoint other users can reach (tmp_path's folders are root-only)."""
    mp = tempfile.mkdtemp(prefix="mfs-pub-", dir="/tmp")
    os.chmod(mp, 0o755)
    try:
        yield mp
    finally:
        h.close()  # unmounts first, so the folder can go
        os.rmdir(mp)


def _as_nobody(path: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NOBODY, "cat", path], capture_output=True, timeout=60)


def _crafted(tmp_path: Path, url: str) -> str:
    """A version holding an external entry for ``url`` and a stored owner-only file, as anyone could make."""
    src = tmp_path / "stored"
    write(src / "private.bin", b"owner only\n", mode=0o600)
    write(src / "public.bin", b"for everyone\n", mode=0o644)
    ds = Dataset.create(dataset_name="crafted", dataset_project="attack")
    ds.add_files(str(src))
    ds.add_external_files(url, dataset_path="ext")
    ds.finalize(auto_upload=True)
    return ds.id


def _mountinfo_options(mp: str) -> set[str]:
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            if fields[4] == mp:
                return set(fields[5].split(","))
    raise AssertionError(f"{mp} is not in /proc/self/mountinfo")


@pytest.mark.fuse
@root_only
def test_a_root_mount_does_not_serve_a_root_only_file(h: Harness, public_mp: str, tmp_path: Path) -> None:
    secret = write(tmp_path / "root-only" / "shadow", SECRET, mode=0o600)
    d = h.mount(_crafted(tmp_path, f"file://{secret}"), public_mp)
    target = os.path.join(public_mp, "ext", "shadow")
    res = _as_nobody(target)
    assert res.returncode != 0 and SECRET not in res.stdout, res
    assert b"Permission denied" in res.stderr, res.stderr
    for _ in range(2):  # refused for root too: the mount serves everyone alike
        with pytest.raises(PermissionError):
            Path(target).read_bytes()
    assert _as_nobody(os.path.join(public_mp, "public.bin")).stdout == b"for everyone\n"
    refusals = [line for line in d.log_text().splitlines() if f"file://{secret} may not be read" in line]
    assert len(refusals) == 1 and "WARNING" in refusals[0] and "a mount serving other users" in refusals[0], refusals


@pytest.mark.fuse
@root_only
def test_an_allowed_folder_is_served_and_modes_are_enforced(h: Harness, public_mp: str, tmp_path: Path) -> None:
    secret = write(tmp_path / "root-only" / "shadow", SECRET, mode=0o600)
    dataset_id = _crafted(tmp_path, f"file://{secret}")
    Path(h.env["MOUNTFS_CONFIG"]).write_text(f'[external]\nallow = ["{secret.parent}/"]\n')
    h.mount(dataset_id, public_mp)
    # the operator's explicit choice: that folder is served to every user of the mount
    assert _as_nobody(os.path.join(public_mp, "ext", "shadow")).stdout == SECRET
    # default_permissions: the kernel enforces the manifest's modes for other users
    res = _as_nobody(os.path.join(public_mp, "private.bin"))
    assert res.returncode != 0 and b"owner only" not in res.stdout and b"Permission denied" in res.stderr, res
    assert Path(public_mp, "private.bin").read_bytes() == b"owner only\n"
    assert stat.S_IMODE(os.stat(os.path.join(public_mp, "private.bin")).st_mode) == 0o400


@pytest.mark.fuse
@root_only
def test_a_root_mount_fetches_http_only_from_allowed_hosts(h: Harness, tmp_path: Path) -> None:
    write(tmp_path / "web" / "f", b"from a web server\n")
    with _http_server(tmp_path / "web") as (base, seen):
        dataset_id = _crafted(tmp_path, f"{base}/f")
        mp = h.mountpoint("default")
        h.mount(dataset_id, mp)
        seen.clear()
        with pytest.raises(PermissionError):
            Path(mp, "ext", "f").read_bytes()
        assert seen == []  # the host was never contacted
        h.cli("umount", mp)
        env = dict(h.env, MOUNTFS_EXTERNAL_ALLOW=f"{base}/")
        allowed = h.mountpoint("allowed")
        h.mount(dataset_id, allowed, env=env)
        assert Path(allowed, "ext", "f").read_bytes() == b"from a web server\n"
        assert "/f" in seen


@pytest.mark.fuse
def test_the_mount_grants_no_privileges(h: Harness, tmp_path: Path) -> None:
    src = tmp_path / "modes"
    write(src / "suid", b"#!/bin/sh\nid\n", mode=0o6755)
    write(src / "sticky-world-writable", b"x", mode=0o1777)
    write(src / "setgid-only", b"x", mode=0o2711)
    ds = Dataset.create(dataset_name="modes", dataset_project="attack")
    ds.add_files(str(src))
    ds.finalize(auto_upload=True)
    mp = h.mountpoint()
    h.mount(ds.id, mp)
    modes = {name: stat.S_IMODE(os.stat(os.path.join(mp, name)).st_mode) for name in os.listdir(mp)}
    assert modes == {"suid": 0o555, "sticky-world-writable": 0o555, "setgid-only": 0o511}, modes
    assert all(m & 0o7000 == 0 and m & 0o222 == 0 for m in modes.values())
    assert {"ro", "nosuid", "nodev"} <= _mountinfo_options(mp)


@pytest.mark.fuse
@root_only
@pytest.mark.allow_warnings
def test_a_root_mount_reads_a_versions_own_store_only_where_allowed(h: Harness, public_mp: str,
                                                                     tmp_path: Path) -> None:
    """A record's ``storage`` is the store writer's choice too: a root-only folder store is not served."""
    private_store = tmp_path / "root-only-store"
    write(tmp_path / "src" / "payroll.csv", SECRET)
    ds = Dataset.create(dataset_name="elsewhere", dataset_project="attack", output_uri=str(private_store))
    ds.add_files(str(tmp_path / "src"))
    ds.finalize(auto_upload=True)
    refusal = f"the store of version {ds.id} {private_store} may not be read"
    # the catalog daemon: the version is listed, but nothing inside it is served
    d = h.start(public_mp)
    version = os.path.join(public_mp, "attack", "elsewhere", "1.0.0")
    res = subprocess.run([*NOBODY, "ls", version], capture_output=True, timeout=60)
    assert res.returncode != 0 and b"Permission denied" in res.stderr, res
    with pytest.raises(PermissionError):
        os.listdir(version)
    assert refusal in d.log_text()
    d.terminate()
    # one version: the mount refuses to start, with the same one line
    res = h.cli("mount", ds.id, public_mp, code=1)
    assert refusal in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr
    h.mount(ds.id, public_mp, env=dict(h.env, MOUNTFS_EXTERNAL_ALLOW=f"{private_store}/"))
    assert Path(public_mp, "payroll.csv").read_bytes() == SECRET
