"""The fsx-style exerciser (tests/tools/fsx.py) against a writable copy, compared with a plain folder after every
step, with the daemon stopped by SIGTERM and SIGKILL mid-run and the draft mounted again; then closed."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mfs import Harness, build, mount_writable, random_tree
from test_writable_durability import close_copy, files_only, snap, stored

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import fsx  # noqa: E402

pytestmark = pytest.mark.fuse


def test_seeded_operations_match_a_plain_folder_across_restarts(h: Harness, tmp_path: Path) -> None:
    build("p", "fsx", random_tree(tmp_path / "src", seed=3, files=10))
    mp = h.mountpoint()
    d, draft = mount_writable(h, mp, "p/fsx/1.0.0")
    ref = tmp_path / "ref"
    shutil.copytree(mp, ref, symlinks=True)  # the parent's files are exercised too
    kills = iter([signal.SIGTERM, signal.SIGKILL] * 10)
    current = [d]

    def restart() -> None:
        current[0].terminate(next(kills))
        # a killed daemon leaves its FUSE mount behind: `mountfs umount` cleans it
        subprocess.run(["fusermount3", "-uz", mp], capture_output=True)
        current[0], again = mount_writable(h, mp, draft=draft)
        assert again == draft

    result = fsx.run(11, 3000, mp, ref, restart=restart, restart_every=750, full_every=50)
    assert result.ok, result
    assert current[0].log_problems() == []
    # what the copy shows is what the version holds (links and FIFOs are left out, as documented); mtimes
    # differ between the two sides wherever the exerciser did not set them
    def content(s: dict) -> dict:
        return {k: (m, digest) for k, (m, _, digest) in s.items()}

    want = content(files_only(snap(mp)))
    assert want == content(files_only(snap(ref)))
    new_id = close_copy(h, mp)
    assert content(stored(new_id)) == want
