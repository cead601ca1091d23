"""The fsx-style exerciser (tests/tools/fsx.py): plain directories agree, and injected faults are caught.

Two plain directories (and a tmpfs) must agree for thousands of steps; a byte
flipped in the target, an entry removed behind its back, or a restart that
changes the tree must be reported at the step where it shows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

import fsx

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "tools" / "fsx.py"


def _dirs(tmp_path: Path, name: str = "") -> tuple[Path, Path]:
    a, b = tmp_path / f"target{name}", tmp_path / f"reference{name}"
    a.mkdir()
    b.mkdir()
    return a, b


def _flip_first_byte(target: Path) -> bool:
    """Flip one byte of the first non-empty regular file; False when there is none."""
    for rel, st in sorted(fsx.scan_tree(str(target)).items()):
        path = target / rel
        if path.is_file() and not path.is_symlink() and st.st_size > 0:
            with open(path, "r+b") as f:
                b = f.read(1)
                f.seek(0)
                f.write(bytes([b[0] ^ 0xFF]))
            return True
    return False


def test_plain_dirs_agree_for_2000_steps(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    res = fsx.run(1, 2000, a, b)
    assert res.ok, res.mismatch and res.mismatch.report()
    assert res.steps_done == 2000
    assert res.full_compares == 21  # at start, every 100 steps (the last is the end)
    # every kind of operation ran (rename_dir is logged as rename)
    kinds = set(fsx.Generator.WEIGHTS) - {"rename_dir"}
    assert kinds <= set(res.op_counts), kinds - set(res.op_counts)
    assert fsx.compare_trees(fsx.Side(a), fsx.Side(b), {}) is None


def test_same_seed_same_run(tmp_path: Path) -> None:
    a1, b1 = _dirs(tmp_path, "1")
    a2, b2 = _dirs(tmp_path, "2")
    r1, r2 = fsx.run(7, 500, a1, b1), fsx.run(7, 500, a2, b2)
    assert r1.ok and r2.ok
    assert r1.op_counts == r2.op_counts
    assert fsx.compare_trees(fsx.Side(a1), fsx.Side(a2), {}) is None
    assert fsx.run(8, 500, *_dirs(tmp_path, "3")).op_counts != r1.op_counts


def test_flipped_byte_is_reported_at_its_step(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    flipped: list[int] = []

    def fault(step: int, target: Path) -> None:
        if step >= 300 and not flipped and _flip_first_byte(target):
            flipped.append(step)

    log = tmp_path / "fsx.jsonl"
    res = fsx.run(3, 1000, a, b, full_every=1, log_path=str(log), fault=fault)
    assert flipped, "no non-empty file to corrupt"
    m = res.mismatch
    assert m is not None
    assert m.step == flipped[0] == res.steps_done
    assert "contents differ at offset 0" in m.detail
    report = m.report()
    assert f"seed=3 step={m.step}" in report and str(log) in report
    header, *ops = log.read_text().splitlines()
    assert json.loads(header)["failed_step"] == m.step
    assert [json.loads(o)["step"] for o in ops] == list(range(1, m.step + 1))


def test_flipped_byte_is_caught_by_the_periodic_full_compare(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    flipped: list[int] = []

    def fault(step: int, target: Path) -> None:
        if step >= 150 and not flipped and _flip_first_byte(target):
            flipped.append(step)

    res = fsx.run(4, 1000, a, b, fault=fault, log_path=str(tmp_path / "log"))
    assert res.mismatch is not None and flipped
    # the touched-entry check may see it first, the full compare every 100 steps at the latest
    assert flipped[0] <= res.mismatch.step <= (flipped[0] // 100 + 1) * 100


def test_errno_difference_is_reported(tmp_path: Path) -> None:
    """rmdir of a directory the target emptied behind our back: ok there, ENOTEMPTY on the reference."""
    a, b = _dirs(tmp_path)
    ops: list[fsx.Op] = [
        {"op": "mkdir", "path": "d", "mode": 0o755},
        {"op": "create", "path": "d/x", "mode": 0o644, "len": 10, "ds": 1},
        {"op": "create", "path": "y", "mode": 0o644, "len": 0, "ds": 2},
        {"op": "rmdir", "path": "d"},
    ]

    def fault(step: int, target: Path) -> None:
        if step == 3:
            (target / "d" / "x").unlink()

    res = fsx.replay(ops, a, b, log_path=str(tmp_path / "log"), fault=fault)
    m = res.mismatch
    assert m is not None and m.step == 4 and m.detail == "outcomes differ"
    assert m.target == ("ok", None) and m.reference == ("err", "ENOTEMPTY")


def test_unlinked_open_file_stays_usable(tmp_path: Path) -> None:
    side = fsx.Side(tmp_path)
    assert fsx.execute({"op": "create", "path": "f", "mode": 0o644, "len": 100, "ds": 5}, side) == ("ok", 100)
    mode, size, nlink = fsx.execute({"op": "unlink_open", "path": "f", "slot": 1}, side)[1]
    assert (size, nlink) == (100, 0) and not (tmp_path / "f").exists()
    assert fsx.execute({"op": "fd_write", "slot": 1, "off": 200, "len": 4, "ds": 6}, side) == ("ok", (4, 204))
    assert fsx.execute({"op": "fd_read", "slot": 1, "off": 100, "len": 10}, side) == ("ok", bytes(10))
    assert fsx.execute({"op": "fd_close", "slot": 1}, side) == ("ok", None)
    assert not side.fds


def test_log_replays_the_run(tmp_path: Path) -> None:
    """A mismatch within the first ``keep`` steps leaves the whole history: it replays cleanly."""
    a, b = _dirs(tmp_path)
    log = tmp_path / "fsx.jsonl"

    def fault(step: int, target: Path) -> None:
        if step == 400:
            (target / "intruder").write_bytes(b"x")

    res = fsx.run(5, 1000, a, b, full_every=1, log_path=str(log), fault=fault)
    assert res.mismatch is not None and res.mismatch.step == 400
    assert "only in target: ['intruder']" in res.mismatch.detail
    again = fsx.replay(fsx.read_log(str(log)), *_dirs(tmp_path, "2"))
    assert again.ok and again.steps_done == 400


def test_restart_hook_runs_between_steps_and_the_tree_is_reverified(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    calls: list[int] = []

    def restart() -> None:
        calls.append(len(os.listdir(a)))

    res = fsx.run(6, 1000, a, b, restart=restart, restart_every=250)
    assert res.ok and res.restarts == len(calls) == 3  # not after the last step
    assert res.full_compares == 11 + 3


def test_a_restart_that_changes_the_target_is_reported(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)

    def restart() -> None:  # a daemon that lost a file's tail on restart
        files = [p for p in a.rglob("*") if p.is_file() and not p.is_symlink() and p.stat().st_size]
        os.truncate(files[0], files[0].stat().st_size - 1)

    res = fsx.run(6, 1000, a, b, restart=restart, restart_every=250, log_path=str(tmp_path / "log"))
    m = res.mismatch
    assert m is not None and m.step == 250 and m.op == {"op": "restart", "after_step": 250}
    assert "full tree compare" in m.detail and "size" in m.detail


def test_restart_every_needs_a_hook(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        fsx.run(1, 10, *_dirs(tmp_path), restart_every=5)


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_cli_ok_with_json(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    out = tmp_path / "out.json"
    p = _cli(str(SCRIPT), "--seed", "2", "--steps", "300", "--target", str(a), "--reference", str(b),
             "--json", str(out), "--restart-every", "100",
             "--restart-cmd", f'echo "$FSX_RESTART $FSX_STEP $FSX_TARGET" >> {tmp_path}/restarts')
    assert p.returncode == 0, p.stderr
    assert "fsx: ok seed=2 steps=300" in p.stdout
    summary = json.loads(out.read_text())
    assert summary["ok"] and summary["steps_done"] == 300 and summary["restarts"] == 2
    assert (tmp_path / "restarts").read_text() == f"1 100 {a}\n2 200 {a}\n"


def test_cli_as_module_from_the_repo_root(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    p = _cli("-m", "tests.tools.fsx", "--steps", "50", "--target", str(a), "--reference", str(b), "-q")
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""


def test_cli_mismatch_from_restart_cmd(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    log, out = tmp_path / "log.jsonl", tmp_path / "out.json"
    p = _cli(str(SCRIPT), "--seed", "3", "--steps", "300", "--target", str(a), "--reference", str(b),
             "--restart-every", "100", "--restart-cmd", f"touch {a}/extra", "--log", str(log), "--json", str(out))
    assert p.returncode == 1
    assert "fsx: MISMATCH seed=3 step=100 op=restart" in p.stderr
    assert "only in target: ['extra']" in p.stderr and str(log) in p.stderr
    assert "Traceback" not in p.stderr
    assert json.loads(out.read_text())["mismatch"]["step"] == 100
    # the log replays on fresh directories (the restart itself is not an operation)
    a2, b2 = _dirs(tmp_path, "2")
    p = _cli(str(SCRIPT), "--replay", str(log), "--target", str(a2), "--reference", str(b2))
    assert p.returncode == 0, p.stderr


def test_cli_errors(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    p = _cli(str(SCRIPT), "--target", str(a), "--reference", str(b), "--restart-every", "5")
    assert p.returncode == 2 and "needs --restart-cmd" in p.stderr
    p = _cli(str(SCRIPT), "--target", str(a / "nope"), "--reference", str(b))
    assert p.returncode == 2 and "not a directory" in p.stderr
    p = _cli(str(SCRIPT), "--steps", "20", "--target", str(a), "--reference", str(b),
             "--restart-every", "10", "--restart-cmd", "exit 4")
    assert p.returncode == 3 and "status 4" in p.stderr and "Traceback" not in p.stderr
    (a / "stray").write_text("x")
    p = _cli(str(SCRIPT), "--steps", "20", "--target", str(a), "--reference", str(b))
    assert p.returncode == 1 and "step=0 op=start" in p.stderr and "only in target: ['stray']" in p.stderr


@pytest.fixture
def tmpfs_dir(tmp_path: Path) -> Iterator[Path]:
    """A private tmpfs (root only), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_tmpfs_agrees_with_a_plain_dir(tmpfs_dir: Path, tmp_path: Path) -> None:
    ref = tmp_path / "reference"
    ref.mkdir()
    res = fsx.run(11, 2000, tmpfs_dir, ref)
    assert res.ok, res.mismatch and res.mismatch.report()


def test_atime_is_compared_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A target that keeps mtime but not the atime utime set (as a version does) passes by default."""
    a, b = _dirs(tmp_path)
    real = fsx.execute

    def execute(op: fsx.Op, side: fsx.Side) -> fsx.Outcome:
        out = real(op, side)
        if op["op"] == "utime" and side.root == str(a):  # the target reads atime back as mtime
            out = ("ok", (out[1][0], out[1][0]))
        return out

    monkeypatch.setattr(fsx, "execute", execute)
    ops: list[fsx.Op] = [
        {"op": "create", "path": "f", "mode": 0o644, "len": 3, "ds": 1},
        {"op": "utime", "path": "f", "atime": 1_600_000_000 * 10**9, "mtime": 1_500_000_000 * 10**9},
    ]
    assert fsx.replay(ops, a, b).ok
    a, b = _dirs(tmp_path, "2")
    m = fsx.replay(ops, a, b, check_atime=True, log_path=str(tmp_path / "log")).mismatch
    assert m is not None and m.step == 2 and m.detail == "outcomes differ"


def test_a_path_that_fails_differently_is_described_by_its_errno() -> None:
    # what the writable mount once did: lstat of a renamed directory's old name gave EIO
    assert fsx._describe(("missing", "EIO"), ("missing", "ENOENT")) == "lstat: EIO != ENOENT"
    assert fsx._describe(("missing", "ENOENT"), ("-rw-r--r--", 0, 0)) == "lstat: ENOENT != exists"
