"""Dataset.get(alias=..., overridable=...) (issue 17): the run record says which version a job used, written
whole by several processes at once; an override is used only when the call allows it, never silently wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import Finalized

_GET = r"""
import sys
from mountfs import Dataset
overridable = sys.argv[1] == "1"
for alias in sys.argv[2:]:
    print(Dataset.get(dataset_project="p", dataset_name="ds", alias=alias, overridable=overridable).id)
"""


def _run(record: Path, aliases: list[str], overridable: bool = False, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _GET, "1" if overridable else "0", *aliases],
                            env={**os.environ, "MOUNTFS_RUN_RECORD": str(record), **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _done(proc: subprocess.Popen[str], code: int = 0) -> tuple[str, str]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    return out, err


def test_four_processes_record_their_aliases_in_one_record(finalized: Finalized, tmp_path: Path) -> None:
    finalized({"a.txt": b"1"})
    latest = finalized({"a.txt": b"2"})
    record = tmp_path / "run.json"
    procs = [_run(record, [f"w{i}-{k}" for k in range(3)]) for i in range(4)]
    for p in procs:
        assert _done(p)[0].split() == [latest.id] * 3
    doc = json.loads(record.read_text())
    assert sorted(doc["aliases"]) == sorted(f"w{i}-{k}" for i in range(4) for k in range(3))
    for entry in doc["aliases"].values():
        assert (entry["id"], entry["project"], entry["name"], entry["version"]) == (latest.id, "p", "ds", "1.0.1")
        assert entry["override"] is None and entry["pid"] > 0 and entry["host"]


def test_an_override_is_used_only_when_the_call_allows_it(finalized: Finalized, tmp_path: Path) -> None:
    first = finalized({"a.txt": b"1"})
    latest = finalized({"a.txt": b"2"})
    record = tmp_path / "run.json"
    out, err = _done(_run(record, ["train"], MOUNTFS_DATASET_TRAIN="p/ds/1.0.0"))
    assert out.split() == [latest.id] and "ignored" in err
    out, _ = _done(_run(record, ["train"], overridable=True, MOUNTFS_DATASET_TRAIN="p/ds/1.0.0"))
    assert out.split() == [first.id]
    entry = json.loads(record.read_text())["aliases"]["train"]
    assert entry["id"] == first.id and entry["requested"]["id"] == latest.id
    assert entry["override"] == {"from": "MOUNTFS_DATASET_TRAIN", "value": "p/ds/1.0.0"}


def test_an_override_naming_nothing_is_an_error(finalized: Finalized, tmp_path: Path) -> None:
    finalized({"a.txt": b"1"})
    record = tmp_path / "run.json"
    _, err = _done(_run(record, ["train"], overridable=True, MOUNTFS_DATASET_TRAIN="p/nope"), code=1)
    assert "names no dataset here" in err and "does not fall back" in err
    assert not record.exists() or "train" not in json.loads(record.read_text())["aliases"]
