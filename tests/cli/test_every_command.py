"""Every ``mountfs`` command's happy path and its main bad input, on the folder store and on SeaweedFS (issue 15).

Each test walks one group of commands through ``CliRunner`` (the ``mountfs``
fixture: exit code checked, a failure is exactly one ``mountfs: error:`` line
and no traceback) and checks the real effect through the SDK or the store.
The commands that mount run the real CLI and daemons as processes (the
harness of tests/daemon/mfs.py, which stops them by PID and unmounts).

One SeaweedFS serves the whole module, a fresh bucket per test: a server per
test would cost more than the commands themselves.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import click
import pytest

_DAEMON_TESTS = str(Path(__file__).resolve().parents[1] / "daemon")
if _DAEMON_TESTS not in sys.path:
    sys.path.insert(0, _DAEMON_TESTS)

from mfs import Daemon, Harness, assert_same_tree, harness, short_run_dir, wait_for  # noqa: E402

from mountfs import Dataset  # noqa: E402
from mountfs.cli import cli  # noqa: E402
from mountfs.daemon import mounts  # noqa: E402
from mountfs.errors import Conflict, IntegrityError, NotFound, StateError, UsageError  # noqa: E402
from mountfs.session import current  # noqa: E402
from mountfs.store.layout import PACKS  # noqa: E402

#: every leaf command of ``mountfs``, and the test below that covers it
COVERED = {
    "create": "build", "add": "build", "remove": "build", "upload": "build", "close": "build",
    "publish": "build", "set-description": "build",
    "search": "read", "info": "read", "show": "read", "list": "read", "get": "read", "verify": "read", "compare": "read",
    "tree": "read",
    "squash": "whole", "sync": "whole", "rename": "whole", "move": "whole", "delete": "whole", "gc": "whole",
    "cache clear": "mounts", "cache evict": "mounts", "cache info": "mounts", "diff": "mounts",
    "mount": "mounts", "status": "mounts", "warmup": "mounts", "umount": "mounts", "daemon run": "mounts",
    "ui": "ui",
}

STORES = ["folder", pytest.param("seaweed", marks=pytest.mark.s3)]


def _leaves(group: click.Group, prefix: str = "") -> set[str]:
    out = set()
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out |= _leaves(cmd, f"{prefix}{name} ")
        else:
            out.add(prefix + name)
    return out


def test_every_command_is_covered_here() -> None:
    """A new command fails this until it has its happy path and bad input below."""
    assert _leaves(cli) == set(COVERED)


# --------------------------------------------------------------------------- stores


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from servers import started_seaweed

    with started_seaweed(tmp_path_factory.mktemp("seaweed-every")) as server:
        yield server


@dataclass
class Store:
    kind: str
    url: str

    def packs(self) -> set[str]:
        return {o.key for o in current().store().backend.list(PACKS)}


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, env, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The CLI's catalog store: the test's folder, or a fresh bucket of the module's SeaweedFS."""
    if request.param == "folder":
        return Store("folder", str(env.store))
    server = request.getfixturevalue("seaweed")
    (host, settings), = server.s3_host_settings().items()
    Path(os.environ["MOUNTFS_CONFIG"]).write_text(
        f'[s3.hosts."{host}"]\nkey = "{settings["key"]}"\nsecret = "{settings["secret"]}"\nsecure = false\n'
    )
    url = server.store_url(server.new_bucket("every"), "catalog")
    monkeypatch.setenv("MOUNTFS_STORE", url)
    return Store("seaweed", url)


def _version(env, mountfs, name: str, src: Path, *more: str) -> str:
    ds_id = mountfs("create", "--project", "p", "--name", name, *more).stdout.strip()
    mountfs("add", "--files", src)
    mountfs("close")
    return ds_id


def _two_versions(env, mountfs) -> tuple[str, str]:
    """p/ds 1.0.0 from env.data, and its child 1.0.1: img_0001 modified, val/ removed, new.txt added."""
    v1 = _version(env, mountfs, "ds", env.data)
    v2 = mountfs("create", "--parents", v1).stdout.strip()
    mountfs("remove", "--files", "val")
    changed = env.work.parent / "changed"
    (changed / "train").mkdir(parents=True)
    (changed / "train" / "img_0001.jpg").write_bytes(b"edited" * 300)
    (changed / "new.txt").write_text("new\n")
    mountfs("add", "--files", changed)
    mountfs("close")
    return v1, v2


# --------------------------------------------------------------------------- build a version


def test_build(env, mountfs, store: Store) -> None:
    # create
    assert "malformed" in mountfs.fails("create", "--project", "p", "--name", "ds", "--version", "1.x",
                                        code=UsageError.exit_code).lower()
    # a store URL no backend writes to is refused at create, not by every later add and upload of the draft
    assert "unsupported store URL 'bogus://x'" in mountfs.fails("create", "--project", "p", "--name", "ds",
                                                                "--storage", "bogus://x", code=UsageError.exit_code)
    assert Dataset.list_datasets(only_completed=False) == []
    ds_id = mountfs("create", "--project", "p", "--name", "ds", "--version", "1.0", "--tags", "raw",
                    "--description", "first").stdout.strip()
    draft = Dataset.get(dataset_id=ds_id)
    assert (draft.project, draft.name, draft.version, draft.status, draft.tags) == ("p", "ds", "1.0", "draft", ["raw"])

    # add
    assert "no such file" in mountfs.fails("add", "--files", env.data / "missing", code=UsageError.exit_code)
    assert Dataset.get(dataset_id=ds_id).list_files() == []
    mountfs("add", "--files", env.data)
    assert Dataset.get(dataset_id=ds_id).list_files() == [
        "labels.csv", "train/img_0001.jpg", "train/img_0002.jpg", "val/img_0003.jpg"]

    # remove
    assert "no dataset with id" in mountfs.fails("remove", "--id", "0123456789ab01234567", "--files", "val",
                                                 code=NotFound.exit_code)
    assert "1 file removed" in mountfs("remove", "--files", "val").stdout
    assert "val/img_0003.jpg" not in Dataset.get(dataset_id=ds_id).list_files()

    # close, bad: files not uploaded yet and --no-upload
    assert "upload" in mountfs.fails("close", "--no-upload", code=StateError.exit_code)
    assert Dataset.get(dataset_id=ds_id).status == "draft"

    # upload
    assert "no dataset with id" in mountfs.fails("upload", "--id", "0123456789ab01234567", code=NotFound.exit_code)
    assert not store.packs()
    mountfs("upload")
    assert store.packs() and Dataset.get(dataset_id=ds_id).status == "uploaded"

    # close
    assert "finalized" in mountfs("close").stdout
    closed = Dataset.get(dataset_id=ds_id)
    assert closed.status == "completed"
    copy = Path(closed.get_local_copy() or "")
    assert (copy / "train" / "img_0002.jpg").read_bytes() == (env.data / "train" / "img_0002.jpg").read_bytes()
    # still remembered (clearml-data keeps its last dataset): closing again says so, changing it is refused
    assert "already finalized" in mountfs("close").stdout
    assert "is finalized" in mountfs.fails("add", "--files", env.data, code=StateError.exit_code)

    # upload of a finalized version
    assert "finalized" in mountfs.fails("upload", "--id", ds_id, code=StateError.exit_code)

    # publish
    other = mountfs("create", "--project", "p", "--name", "other").stdout.strip()
    assert "finalized" in mountfs.fails("publish", "--id", other, code=StateError.exit_code)
    mountfs("publish", "--id", ds_id)
    assert Dataset.get(dataset_id=ds_id).status == "published"

    # set-description: a finalized version's too
    assert "no dataset with id" in mountfs.fails("set-description", "--id", "0123456789ab01234567",
                                                 "--description", "x", code=NotFound.exit_code)
    mountfs("set-description", "--id", ds_id, "--description", "second")
    assert Dataset.get(dataset_id=ds_id).description == "second"


# --------------------------------------------------------------------------- read versions


def test_read(env, mountfs, store: Store) -> None:
    v1, v2 = _two_versions(env, mountfs)

    # search
    assert "regular expression" in mountfs.fails("search", "--name", "(", code=UsageError.exit_code)
    assert [d["id"] for d in mountfs.json("search", "--project", "p")] == [v2, v1]

    # info
    assert "no dataset matches p/nothing" in mountfs.fails("info", "--project", "p", "--name", "nothing",
                                                           code=NotFound.exit_code)
    info = mountfs.json("info", "--id", v2)
    assert info["parents"] == [v1] and info["changes"] == {"added": 1, "modified": 1, "removed": 1}

    # show: the record, the lineage, the preview and the reports
    assert "no dataset matches p/nothing" in mountfs.fails("show", "p/nothing", code=NotFound.exit_code)
    logger = Dataset.get(dataset_id=v2).get_logger()
    logger.report_table("Labels", "head", iteration=0, table_plot=[["path", "label"], ["a.jpg", "cat"]])
    logger.report_histogram("Classes", "count", values=[3, 1], xlabels=["cat", "dog"])
    shown = mountfs("show", "--id", v2).stdout
    assert f"id:" in shown and v1 in shown and "lineage:" in shown and "reports: 2" in shown, shown
    assert "a.jpg" in shown and "cat" in shown and "█" in shown, shown
    doc = mountfs.json("show", "p/ds")
    assert doc["id"] == v2 and doc["lineage"][v2] == [v1] and [r["kind"] for r in doc["reports"]] == [
        "table", "histogram"]
    assert doc["preview"] is not None and doc["preview"]["files"] == info["file_count"]

    # list
    assert "not both" in mountfs.fails("list", "--id", v1, "--name", "ds", code=UsageError.exit_code)
    assert [f["path"] for f in mountfs.json("list", "--id", v2)] == [
        "labels.csv", "new.txt", "train/img_0001.jpg", "train/img_0002.jpg"]

    # get
    busy = env.work / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    assert "not empty" in mountfs.fails("get", "--id", v1, "--copy", busy, code=2)
    assert (busy / "mine.txt").read_text() == "keep me"
    ro = Path(mountfs("get", "--id", v2).stdout.strip())
    assert (ro / "train" / "img_0001.jpg").read_bytes() == b"edited" * 300
    assert (ro / "train" / "img_0002.jpg").read_bytes() == (env.data / "train" / "img_0002.jpg").read_bytes()

    # verify
    mountfs("verify", "--id", v1, v2)
    copy = env.work / "copy"
    mountfs("get", "--id", v1, "--copy", copy)
    (copy / "labels.csv").write_text("file,label\nimg_0001.jpg,dog\n")
    res = mountfs("verify", "--id", v1, "--local-copy", copy, code=IntegrityError.exit_code)
    assert res.stdout.splitlines() == ["labels.csv"]
    (line,) = res.stderr.splitlines()
    assert line.startswith("mountfs: error: 1 of 4 files failed verification")

    # compare
    assert "missing --target" in mountfs.fails("compare", "--source", v1, code=UsageError.exit_code)
    doc = mountfs.json("compare", "--source", v1, "--target", v2)
    assert (doc["added"], doc["modified"], doc["removed"]) == (["new.txt"], ["train/img_0001.jpg"],
                                                               ["val/img_0003.jpg"])

    # tree
    assert "no dataset with id" in mountfs.fails("tree", "--id", "0123456789ab01234567", code=NotFound.exit_code)
    out = mountfs("tree", "--id", v2).stdout
    assert v2 in out and v1 in out and out.index(v2) < out.index(v1)


# --------------------------------------------------------------------------- whole datasets


def test_whole_datasets(env, mountfs, store: Store) -> None:
    v1, v2 = _two_versions(env, mountfs)

    # squash
    draft = mountfs("create", "--project", "p", "--name", "open").stdout.strip()
    assert "finalized" in mountfs.fails("squash", "--name", "flat", "--ids", v1, draft, code=StateError.exit_code)
    mountfs("squash", "--name", "flat", "--ids", v1, v2)
    flat = Dataset.get(dataset_project="p", dataset_name="flat")
    assert flat.status == "completed" and flat.get_dependency_graph() == {flat.id: []}
    # the later version wins; what it removed stays from the earlier one (merged, not replayed)
    assert sorted(flat.list_files()) == ["labels.csv", "new.txt", "train/img_0001.jpg", "train/img_0002.jpg",
                                         "val/img_0003.jpg"]
    assert (Path(flat.get_local_copy() or "") / "train" / "img_0001.jpg").read_bytes() == b"edited" * 300

    # sync
    assert "no such folder" in mountfs.fails("sync", "--project", "p", "--name", "synced", "--folder",
                                             env.data / "missing", code=UsageError.exit_code)
    mountfs("sync", "--project", "p", "--name", "synced", "--folder", env.data)
    synced = Dataset.get(dataset_project="p", dataset_name="synced")
    assert synced.status == "completed"
    assert sorted(synced.list_files()) == ["labels.csv", "train/img_0001.jpg", "train/img_0002.jpg",
                                           "val/img_0003.jpg"]

    # rename
    assert "p/synced already exists" in mountfs.fails("rename", "--new-name", "synced", "--project", "p",
                                                      "--name", "flat", code=Conflict.exit_code)
    mountfs("rename", "--new-name", "flattened", "--project", "p", "--name", "flat")
    assert Dataset.get(dataset_id=flat.id).name == "flattened"

    # move
    assert "no dataset p/nothing" in mountfs.fails("move", "--new-project", "q", "--project", "p", "--name",
                                                   "nothing", code=NotFound.exit_code)
    mountfs("move", "--new-project", "archive/2026", "--project", "p", "--name", "flattened")
    assert Dataset.get(dataset_id=flat.id).project == "archive/2026"

    # delete: a parent needs --force; its child stays whole
    assert "force" in mountfs.fails("delete", "--id", v1, code=StateError.exit_code)
    # a --version beside --id is refused, not ignored (the id's version would go, whatever it is)
    assert "not both" in mountfs.fails("delete", "--id", v2, "--version", "9.9.9", code=UsageError.exit_code)
    Dataset.get(dataset_id=v2)
    packs = store.packs()
    mountfs("delete", "--id", v1, "--force", "--no-gc")
    with pytest.raises(NotFound):
        Dataset.get(dataset_id=v1)
    assert store.packs() == packs  # --no-gc: the packs wait for gc
    child = Dataset.get(dataset_id=v2)
    assert child.verify_dataset_hash() == []

    # gc: frees the packs only a deleted version named, keeps every other
    assert "negative" in mountfs.fails("gc", "--grace", "-1", code=UsageError.exit_code)
    unique = env.work.parent / "unique"
    unique.mkdir()
    (unique / "noise.bin").write_bytes(os.urandom(200_000))
    before = store.packs()
    gone = _version(env, mountfs, "unique", unique)
    its_own = store.packs() - before
    assert its_own
    mountfs("delete", "--id", gone, "--no-gc")
    assert mountfs.json("gc", "--dry-run", "--grace", "0")["packs"] == len(its_own)
    assert store.packs() == before | its_own
    report = mountfs.json("gc", "--grace", "0")
    assert (report["packs"], report["dry_run"]) == (len(its_own), False)
    assert store.packs() == before
    for ds_id in (v2, flat.id, synced.id):  # every remaining version reads back whole
        assert Dataset.get(dataset_id=ds_id).verify_dataset_hash() == []
    assert mountfs.json("gc", "--grace", "0")["packs"] == 0


# --------------------------------------------------------------------------- mounts (real FUSE, processes)


@pytest.fixture
def h(env, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    run_dir = short_run_dir()
    monkeypatch.setenv("MOUNTFS_RUN_DIR", run_dir)
    with harness(dict(os.environ), env.work) as hh:
        yield hh


def _daemon_of(h: Harness, mountpoint: str) -> Daemon:
    """The daemon ``mountfs mount`` detached for ``mountpoint``, found by the PID it recorded; the harness stops it."""
    info = json.loads(Path(mounts.RuntimeFiles(h.run_dir, mountpoint).info).read_text())
    d = Daemon(h, mountpoint, info["pid"], Path(mounts.RuntimeFiles(h.run_dir, mountpoint).log))
    h.daemons.append(d)
    h.wait_up(d)
    return d


@pytest.mark.fuse
def test_mounts(env, mountfs, store: Store, h: Harness) -> None:
    """In-process like the rest (a ``mountfs`` process costs half a second); the daemons are processes."""
    v1 = _version(env, mountfs, "ds", env.data)
    draft = mountfs("create", "--project", "p", "--name", "open").stdout.strip()

    # mount
    mp = h.mountpoint("one")
    assert "draft" in mountfs.fails("mount", draft, mp, code=UsageError.exit_code)
    assert not os.listdir(mp)
    assert "mounted p/ds" in mountfs("mount", "p/ds", mp).stdout
    d = _daemon_of(h, mp)

    # status (it takes no input but --json: its bad input is click's, usage on stderr, no traceback)
    assert "no such option" in mountfs("status", "--bogus", code=2).stderr.lower()
    (row,) = mountfs.json("status")
    assert row["mountpoint"] == mp and row["pid"] == d.pid

    # warmup
    assert "is not inside a mountfs mount" in mountfs.fails("warmup", env.data, code=NotFound.exit_code)
    assert mountfs.json("cache", "info")["count"] == 0
    mountfs("warmup", mp)
    wait_for(lambda: d.status()["inflight_fetches"] == 0, 15, "the cache writes to finish")
    assert mountfs.json("cache", "info")["count"] > 0
    assert_same_tree(mp, env.data)

    # umount
    plain = env.work / "plain"
    plain.mkdir()
    assert "nothing is mounted at" in mountfs.fails("umount", plain, code=NotFound.exit_code)
    mountfs("umount", mp)
    wait_for(lambda: not d.alive(), 15, "the daemon to stop")
    assert mountfs.json("status") == [] and not os.listdir(mp)

    # cache info / evict / clear: what warmup fetched
    cached = mountfs.json("cache", "info")
    assert cached["count"] > 0 and cached["size"] > 0
    assert "size" in mountfs.fails("cache", "evict", "--to", "lots", code=UsageError.exit_code).lower()
    assert mountfs.json("cache", "info")["count"] == cached["count"]
    mountfs("cache", "evict", "--to", "0")
    assert mountfs.json("cache", "info")["count"] < cached["count"]
    mountfs("cache", "clear")
    assert mountfs.json("cache", "info")["count"] == 0

    # diff: what a writable copy changed
    assert "no mountfs daemon serves" in mountfs.fails("diff", plain, code=NotFound.exit_code)
    wmp = h.mountpoint("writable")
    assert "writable copy" in mountfs("mount", "--writable", "p/ds", wmp).stdout
    _daemon_of(h, wmp)
    (Path(wmp) / "added.txt").write_text("new\n")
    os.remove(Path(wmp) / "labels.csv")
    got = mountfs.json("diff", wmp)
    assert (got["added"], got["removed"]) == (["added.txt"], ["labels.csv"])
    mountfs("umount", wmp)

    # daemon run: the whole catalog at one mountpoint, in the foreground (a process: it serves until stopped)
    afile = env.work / "afile"
    afile.write_text("not a folder")
    res = h.cli("daemon", "run", "--mountpoint", afile, code=None, timeout=60)
    assert res.returncode != 0 and "Traceback" not in res.stdout + res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("mountfs: error: "), res.stderr
    assert afile.read_text() == "not a folder"
    cat = h.mountpoint("catalog")
    daemon = h.start(cat, how="daemon-run")
    assert_same_tree(Path(cat) / "p" / "ds" / Dataset.get(dataset_id=v1).version, env.data)
    daemon.terminate()
    wait_for(lambda: not os.path.ismount(cat), 15, "the catalog mount to go")


# --------------------------------------------------------------------------- the web view (a process: it serves until stopped)


def test_ui(env, mountfs, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import subprocess
    import urllib.request

    assert "127.0.0.1" in mountfs("ui", "--help").stdout
    assert "no mountfs store" in mountfs.fails("ui", "--port", "0", code=NotFound.exit_code).lower()
    v1 = _version(env, mountfs, "ds", env.data)
    assert "--port" in mountfs.fails("ui", "--port", "70000", code=UsageError.exit_code)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert "pick another --port" in mountfs.fails("ui", "--port", str(taken.getsockname()[1]),
                                                      code=UsageError.exit_code)
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "uvicorn", None)  # not installed
        assert "pip install 'mountfs[ui]'" in mountfs.fails("ui", code=UsageError.exit_code)
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from mountfs.cli import main; main(sys.argv[1:])",
                             "ui", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        with urllib.request.urlopen(f"{url}v/{v1}", timeout=20) as r:  # the socket listens once the URL is out
            page = r.read().decode()
        assert r.status == 200 and "p/ds 1.0.0" in page
    finally:
        proc.terminate()  # by its PID
        proc.communicate(timeout=20)
