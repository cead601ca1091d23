"""``mountfs gc`` in this process while another process is in the middle of an upload (issue 15).

The uploader is a real second Python process on the same store (a folder, and
a SeaweedFS bucket).  It is stopped at points this test chooses through a pipe
(it prints where it is and waits for a line on its stdin), not by timing:

1. after its first pack and that pack's index object are written, inside
   ``upload()``: it holds the store's shared lock and no draft state names the
   pack yet, so only the lock keeps gc from deleting it;
2. after ``upload()`` returned: the lock is released, and the draft's saved
   state names the packs, so gc (even with no grace period) keeps them.

Then it finalizes, and the version reads back byte for byte in this process.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

from mountfs import Dataset
from mountfs.backends import Backend
from mountfs.cli import cli
from mountfs.session import current
from mountfs.store.layout import INDEX, LOCKS, PACKS

_TESTS = str(Path(__file__).resolve().parents[1])  # servers.py
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

#: the uploader: creates a draft of the folder argv[1], uploads it in 1 MiB packs, finalizes; stops where told
_UPLOADER = textwrap.dedent('''
    import sys, threading
    from mountfs import Dataset
    from mountfs.backends.retry import RetryingBackend
    from mountfs.store.layout import INDEX

    def wait_for_go(where):
        print(where, flush=True)
        line = sys.stdin.readline().strip()
        if line != "go":
            raise SystemExit(f"uploader: told {line!r} at {where.split()[0]}, stopping")

    real = RetryingBackend.put  # every store's backend is wrapped in it: one hook for the folder and S3
    first = threading.Event()

    def put(self, key, data):
        real(self, key, data)
        # the upload writes a pack's index object right after the pack: the first pack is in the store now,
        # and the upload still holds its lock
        if key.startswith(INDEX) and not first.is_set():
            first.set()
            wait_for_go(f"in-flight {key.rsplit('/', 1)[1]}")

    RetryingBackend.put = put
    ds = Dataset.create(dataset_name="inflight", dataset_project="p")
    ds.add_files(sys.argv[1])
    wait_for_go(f"created {ds.id}")
    ds.upload(show_progress=False, chunk_size=1, max_workers=1)
    wait_for_go("uploaded")
    assert ds.finalize()
    print("finalized", flush=True)
''')

#: how long any step of the uploader may take before the test gives up on it (a hang, not a wait)
_STEP_TIMEOUT = 120.0


class Uploader:
    """The second process and its pipe."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def next_line(self) -> str:
        """The uploader's next report, waiting for it (it arrives when the uploader reaches that point)."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], _STEP_TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            _, err = self.proc.communicate()
            pytest.fail(f"uploader ended or hung (exit {self.proc.returncode}); stderr:\n{err}")
        return line.strip()

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from servers import started_seaweed

    with started_seaweed(tmp_path_factory.mktemp("seaweed-gc-process")) as server:
        yield server


@pytest.fixture(params=["folder", pytest.param("seaweed", marks=pytest.mark.s3)])
def store_env(request: pytest.FixtureRequest, isolated_env: dict[str, str],
              monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test's store: its folder, or a fresh bucket of the module's SeaweedFS (keys in the test's config file)."""
    if request.param == "folder":
        return isolated_env
    server = request.getfixturevalue("seaweed")
    (host, settings), = server.s3_host_settings().items()
    Path(isolated_env["MOUNTFS_CONFIG"]).write_text(
        f'[s3.hosts."{host}"]\nkey = "{settings["key"]}"\nsecret = "{settings["secret"]}"\nsecure = false\n'
    )
    url = server.store_url(server.new_bucket("gcproc"), "catalog")
    monkeypatch.setenv("MOUNTFS_STORE", url)
    return {**isolated_env, "MOUNTFS_STORE": url}


@pytest.fixture
def uploader(tmp_path: Path, store_env: dict[str, str]) -> Iterator[Uploader]:
    """The uploader on this test's store, with a cache of its own (another process, as on another machine)."""
    src = tmp_path / "inflight-src"
    src.mkdir()
    for i in range(4):  # ~4.8 MB of incompressible bytes: several 1 MiB packs
        (src / f"f{i}.bin").write_bytes(os.urandom(1_200_000))
    script = tmp_path / "uploader.py"
    script.write_text(_UPLOADER)
    env = {**os.environ, **store_env, "MOUNTFS_CACHE_DIR": str(tmp_path / "uploader-cache")}
    proc = subprocess.Popen([sys.executable, str(script), str(src)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        yield Uploader(proc)
    finally:
        if proc.poll() is None:
            proc.kill()  # our own child, by its handle
        proc.communicate()


def _gc(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["gc", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _listed(backend: Backend, prefix: str) -> set[str]:
    return {o.key.rsplit("/", 1)[1] for o in backend.list(prefix)}


def _garbage(tmp_path: Path) -> set[str]:
    """A version deleted without gc: its packs are garbage for the gc runs below."""
    src = tmp_path / "garbage-src"
    src.mkdir()
    (src / "g.bin").write_bytes(os.urandom(300_000))
    ds = Dataset.create(dataset_name="garbage", dataset_project="p")
    ds.add_files(src)
    ds.upload(show_progress=False)
    assert ds.finalize()
    backend = current().create_store().backend
    before = _listed(backend, PACKS)
    Dataset.delete(dataset_id=ds.id, delete_files=False)
    assert _listed(backend, PACKS) == before  # left for gc
    return before


def test_packs_of_an_upload_in_another_process_survive_gc_and_its_finalize_reads_back(
        tmp_path: Path, uploader: Uploader) -> None:
    backend = current().create_store().backend
    garbage = _garbage(tmp_path)
    src = tmp_path / "inflight-src"

    created = uploader.next_line()
    assert created.startswith("created ")
    draft_id = created.split()[1]
    uploader.go()
    where, pack = uploader.next_line().split()
    assert where == "in-flight"
    assert pack in _listed(backend, PACKS) and pack in _listed(backend, INDEX)
    assert _listed(backend, LOCKS)  # the uploader's shared lock

    # 1. mid-upload: no manifest or draft state names `pack` yet (a dry run, which takes no lock, would free
    # it), so only the uploader's lock stops gc, altogether
    code, out, err = _gc("--dry-run", "--grace", "0", "--json")
    assert code == 0 and {pack} | garbage <= set(json.loads(out)["pack_ids"])
    code, out, err = _gc("--grace", "0")
    assert code == 5, (out, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in out + err
    assert f"shared lock of upload by pid {uploader.proc.pid}" in err
    code, out, err = _gc()  # with the default grace period too
    assert code == 5 and "is locked" in err
    assert pack in _listed(backend, PACKS) and pack in _listed(backend, INDEX)
    assert garbage <= _listed(backend, PACKS)  # nothing at all was deleted

    # 2. uploaded, lock released: the draft's state names its packs, gc frees only the garbage
    uploader.go()
    assert uploader.next_line() == "uploaded"
    assert not _listed(backend, LOCKS)
    uploaded = _listed(backend, PACKS) - garbage
    assert pack in uploaded and len(uploaded) >= 4
    code, out, err = _gc("--grace", "0")
    assert code == 0, (out, err)
    assert f"freed {len(garbage)} pack{'' if len(garbage) == 1 else 's'} (" in out
    assert _listed(backend, PACKS) == uploaded and _listed(backend, INDEX) == uploaded

    # 3. the uploader finalizes: every pack it counted on is there, and the version reads back
    uploader.go()
    assert uploader.next_line() == "finalized"
    assert uploader.proc.wait(timeout=_STEP_TIMEOUT) == 0
    ds = Dataset.get(dataset_id=draft_id)
    assert ds.status == "completed"
    assert ds.verify_dataset_hash() == []
    copy = Path(ds.get_local_copy() or "")
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in src.iterdir())
    for f in src.iterdir():
        assert (copy / f.name).read_bytes() == f.read_bytes()
    code, out, err = _gc("--grace", "0")  # and a later gc keeps them: the manifest names them now
    assert code == 0 and "freed 0 packs" in out
    assert _listed(backend, PACKS) == uploaded
