"""tests/pjdfs/run_pjdfstest.py: builds the vendored pjdfstest, runs prove, reads its TAP summary.

The full suite against a writable mount is `make pjdfstest` (minutes); here the
runner itself is checked on a plain folder with pjdfstest's mkdir tests, and its
parser on prove's real output for scripts that fail, die and skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import run_pjdfstest as runner


@pytest.fixture(autouse=True)
def tools_and_root() -> None:
    # not a skip: `make setup`/`make pjdfstest-tools` provide these, and the suite runs as root
    missing = [t for t in ("cc", "make", "prove") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {missing}: run `make pjdfstest-tools`", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("pjdfstest needs root", pytrace=False)


@pytest.mark.slow  # builds pjdfstest and runs 13 scripts: seconds
def test_mkdir_subset_passes_on_a_plain_folder(tmp_path: Path) -> None:
    target, build = tmp_path / "target", tmp_path / "build"
    target.mkdir()
    out = tmp_path / "result.json"
    code = runner.main(["--dir", str(target), "--build-dir", str(build), "--json", str(out), "mkdir"])
    result = json.loads(out.read_text())
    assert code == 0, result
    assert (build / "pjdfstest").is_file() and (build / "tests" / "mkdir" / "00.t").is_file()
    assert result["files_total"] == len(list((runner.VENDOR / "tests" / "mkdir").glob("*.t")))
    assert result["tests_total"] > 100
    assert (result["failed_files"], result["failed_tests"], result["failing_cases"]) == (0, 0, 0)
    assert result["passed"] is True and result["failures"] == []
    assert result["fs_type"] != "unknown"
    assert list(target.iterdir()) == []  # its work folder is removed


def test_parser_reads_failures_deaths_and_skips(tmp_path: Path) -> None:
    t = tmp_path / "t"
    t.mkdir()
    (t / "bad.t").write_text(
        "#!/bin/sh\necho 1..30\necho ok 1\n"
        "echo \"not ok 2 - tried 'mkdir x 0755', expected 0, got EPERM\"\n"
        "echo 'not ok 3 # TODO known'\n"
        # enough failures that prove wraps the list onto a second line
        "n=4; while [ $n -le 28 ]; do echo \"not ok $n - tried 'x', expected ENOENT, got 0\"; n=$((n+1)); done\n"
    )
    (t / "die.t").write_text("#!/bin/sh\necho 1..3\necho ok 1\nexit 3\n")
    (t / "good.t").write_text("#!/bin/sh\necho 1..2\necho ok 1\necho 'ok 2 # SKIP no such call'\n")
    (t / "none.t").write_text("#!/bin/sh\necho '1..0 # SKIP not on this system'\n")
    proc = subprocess.run(["prove", "-rv", str(t)], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0
    s = runner.parse_prove(proc.stdout + proc.stderr, t)

    assert (s.passed, s.files_total, s.tests_total) == (False, 4, 31)
    assert [f.file for f in s.failures] == ["bad.t", "die.t"]
    bad, die = s.failures
    assert bad.failed == [2, *range(4, 29)] and bad.planned == 30 and bad.missing == 2
    assert bad.details[2] == "tried 'mkdir x 0755', expected 0, got EPERM"
    assert 3 not in bad.details  # a TODO is not a failure
    assert (die.failed, die.missing, die.exit_status) == ([], 2, 3)
    assert (s.failed_files, s.failed_tests, s.missing_tests, s.failing_cases) == (2, 26, 4, 30)
    assert s.skipped_files == {"none.t": "not on this system"} and s.skipped_tests == 1
    assert s.to_json()["failures"][0]["details"]["2"].endswith("got EPERM")  # type: ignore[index]


def test_a_mountfs_without_writable_mounts_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "mountfs"
    fake.write_text("#!/bin/sh\necho 'Usage: mountfs mount [OPTIONS] [DATASET] DIR'\n")
    fake.chmod(0o755)
    code = runner.main(["--writable-mount", "--build-dir", str(tmp_path / "build"), "--mountfs", str(fake), "mkdir"])
    assert code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mount --writable` is not available" in err[0]


def test_a_hanging_run_is_killed_after_the_timeout(tmp_path: Path) -> None:
    build, work = tmp_path / "build", tmp_path / "work"
    (build / "tests").mkdir(parents=True)
    work.mkdir()
    (build / "tests" / "hang.t").write_text("#!/bin/sh\necho 1..1\nsleep 600\necho ok 1\n")
    with pytest.raises(runner.SetupError, match="did not finish within 1s"):
        runner.run_prove(build, work, [], 1, tmp_path / "prove.log", timeout=1)
    gone = subprocess.run(["pgrep", "-f", str(build / "tests" / "hang.t")], capture_output=True)
    assert gone.returncode == 1  # the script went with prove: the whole group is killed
