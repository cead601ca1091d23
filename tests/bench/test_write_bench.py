"""``bench/write.py --quick`` runs end to end (real FUSE mounts, a folder store) and its JSON has every part.

No timing is checked: only that each part measured both sides, that the
close of a writable copy recorded the change it was given, and that the
null filesystem of ``floor`` saw the writes.  Smaller than
``--quick`` (``--size-seq/--size-rand/--ops``) and without page-cache drops,
so it takes a few seconds and leaves other work on the machine alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse"),
    pytest.mark.skipif(shutil.which("fusermount3") is None, reason="no fusermount3"),
]


def test_quick_run_writes_every_part(tmp_path: Path) -> None:
    out, work = tmp_path / "write.json", tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOUNTFS_")}
    p = subprocess.run([sys.executable, str(BENCH / "write.py"), "--quick", "--no-drop", "--out", str(out),
                        "--work", str(work), "--size-seq", "8M", "--size-rand", "4M", "--ops", "200"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(out.read_text())
    parts = doc["parts"]
    assert set(parts) == {"seq", "rand", "cp", "close", "floor"}
    for key in ("seq", "rand", "cp"):
        s = parts[key]["summary"]
        assert s["ratio"]["n"] == 1 and s["ratio"]["median"] > 0
        assert set(parts[key]["runs"][0]) == {"local", "mount"}
    assert parts["seq"]["summary"]["bytes"] == 8 << 20
    assert parts["rand"]["summary"]["ops"] == 200
    close = parts["close"]["summary"]
    n = close["files_edited"]
    assert n >= 1 and close["modified"] == {"diff": [n], "sdk": [n]}
    assert close["upload"]["close_growth_bytes"]["median"] > 0
    assert close["time"]["close_s"]["median"] > 0 and close["time"]["sdk_s"]["median"] > 0
    assert doc["layout"]["same_filesystem"] is True
    floor = parts["floor"]["summary"]
    for mode in ("write_through", "writeback"):
        assert floor[mode]["seq_requests"]["median"] >= 8 and floor[mode]["rand_requests"]["median"] >= 1
    assert {r["part"] for r in doc["rows"]} == {"seq", "rand", "cp", "close", "floor"}
    assert "| part" in p.stdout
    # the stores, caches, copies and mounts are gone; only the generated data stays in a given --work
    assert sorted(x.name for x in work.iterdir() if not x.name.startswith("data-A")) == []
    mounts = Path("/proc/mounts").read_text()
    assert str(work) not in mounts
