#!/usr/bin/env python3
"""Run pjdfstest (the POSIX file-system suite, vendored in tests/vendor/pjdfstest) and report.

Two targets:

- ``--dir PATH``: any directory (a tmpfs or ext4 folder checks the runner itself);
- ``--writable-mount``: a fresh folder store with one small finalized version,
  mounted with ``mountfs mount --writable <project/name/version> DIR`` and unmounted
  with ``mountfs umount DIR`` afterwards.

pjdfstest is built with plain ``cc`` into a build dir outside the source tree,
then ``prove -r`` runs its ``.t`` scripts as root from inside a fresh folder of
the target (pjdfstest works in the current directory). The TAP summary is parsed
into per-file failures and totals, printed and written as JSON.

    python tests/pjdfs/run_pjdfstest.py --dir /dev/shm/x            # the whole suite
    python tests/pjdfs/run_pjdfstest.py --dir /tmp/x mkdir chmod/00.t
    python tests/pjdfs/run_pjdfstest.py --writable-mount --max-failures 24

Exit status: 0 when the failing cases are at most ``--max-failures`` (default 0),
1 when there are more, 2 on a usage error, 3 when the target cannot be set up
(e.g. this mountfs has no ``mount --writable`` yet).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence, TextIO

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO / "tests" / "vendor" / "pjdfstest"
DEFAULT_BUILD = REPO / "build" / "pjdfstest"
#: what ``--writable-mount`` creates in its private store
PROJECT, NAME, VERSION = "pjdfstest", "target", "1.0.0"


class SetupError(Exception):
    """The suite or its target could not be prepared (exit status 3)."""


# ------------------------------------------------------------------ results


@dataclass
class FileResult:
    """One ``.t`` file that did not pass cleanly."""

    file: str  # relative to the tests tree, e.g. "chmod/12.t"
    tests_run: int
    failed: list[int] = field(default_factory=list)  # subtest numbers that printed "not ok"
    planned: int | None = None
    missing: int = 0  # planned but never run: the script died or stopped early
    exit_status: int = 0
    wstat: int = 0
    parse_errors: list[str] = field(default_factory=list)
    details: dict[int, str] = field(default_factory=dict)  # subtest -> "tried ..., expected E, got R"

    @property
    def failing_cases(self) -> int:
        return len(self.failed) + self.missing


@dataclass
class Summary:
    """Everything ``prove`` reported about one run."""

    passed: bool
    files_total: int
    tests_total: int  # subtests that ran
    failures: list[FileResult]
    skipped_files: dict[str, str]  # file -> reason
    skipped_tests: int
    todo_passed: int = 0

    @property
    def failed_files(self) -> int:
        return len(self.failures)

    @property
    def failed_tests(self) -> int:
        return sum(len(f.failed) for f in self.failures)

    @property
    def missing_tests(self) -> int:
        return sum(f.missing for f in self.failures)

    @property
    def failing_cases(self) -> int:
        """Subtests that failed plus those a dying script never ran: the number held to the budget."""
        return self.failed_tests + self.missing_tests

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "passed": self.passed,
            "files_total": self.files_total,
            "tests_total": self.tests_total,
            "failed_files": self.failed_files,
            "failed_tests": self.failed_tests,
            "missing_tests": self.missing_tests,
            "failing_cases": self.failing_cases,
            "skipped_tests": self.skipped_tests,
            "skipped_files": self.skipped_files,
            "todo_passed": self.todo_passed,
        }
        files = []
        for f in self.failures:
            d = asdict(f)
            d["failing_cases"] = f.failing_cases
            d["details"] = {str(k): v for k, v in sorted(f.details.items())}
            files.append(d)
        out["failures"] = files
        return out


_HEADER = re.compile(r"^(\S.*?\.t) \.+ ?(.*)$")
_ENTRY = re.compile(r"^(\S.*?\.t)\s+\(Wstat: (\d+).*Tests: (\d+) Failed: (\d+)\)$")
#: the labelled lines under an entry of the Test Summary Report; longer values wrap onto indented lines
_KEYS = ("Failed tests", "TODO passed", "Non-zero exit status", "Non-zero wait status", "Parse errors")
_FILES = re.compile(r"^Files=(\d+), Tests=(\d+),")
_NOT_OK = re.compile(r"^not ok (\d+)(?:\s*-?\s*(.*))?$")
_SKIP_TEST = re.compile(r"^ok \d+ # skip", re.IGNORECASE)
_PLAN = re.compile(r"You planned (\d+) tests? but ran (\d+)")


def _numbers(text: str) -> Iterator[int]:
    """``"1-3, 7"`` -> 1, 2, 3, 7 (prove's list of failed subtests)."""
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        yield from range(int(lo), int(hi or lo) + 1)


def parse_prove(output: str, tests_root: str | os.PathLike[str]) -> Summary:
    """Read ``prove -r [-v]`` output: the Test Summary Report, and with ``-v`` each "not ok" message."""
    root = str(tests_root).rstrip("/") + "/"

    def rel(path: str) -> str:
        return path[len(root):] if path.startswith(root) else path

    lines = output.splitlines()
    details: dict[str, dict[int, str]] = {}
    skipped_files: dict[str, str] = {}
    skipped_tests = 0
    current: str | None = None
    summary_at = len(lines)
    for i, line in enumerate(lines):
        if line.startswith("Test Summary Report"):
            summary_at = i
            break
        m = _HEADER.match(line)
        if m:
            current = rel(m.group(1))
            rest = m.group(2).strip()
            if rest.startswith("skipped:"):
                skipped_files[current] = rest[len("skipped:"):].strip()
            continue
        if current is None:
            continue
        m = _NOT_OK.match(line)
        if m and "# TODO" not in line:
            details.setdefault(current, {})[int(m.group(1))] = (m.group(2) or "").strip()
        elif _SKIP_TEST.match(line):
            skipped_tests += 1

    failures: list[FileResult] = []
    entry: FileResult | None = None
    key: str | None = None
    files_total = tests_total = 0
    todo_passed = 0
    passed = False
    for line in lines:
        m = _FILES.match(line)
        if m:
            files_total, tests_total = int(m.group(1)), int(m.group(2))
        elif line.startswith("Result: "):
            passed = line.strip() == "Result: PASS"
    for line in lines[summary_at:]:
        m = _ENTRY.match(line)
        if m:
            entry = FileResult(file=rel(m.group(1)), tests_run=int(m.group(3)), wstat=int(m.group(2)))
            entry.details = details.get(entry.file, {})
            failures.append(entry)
            key = None
            continue
        if _FILES.match(line):
            entry = None
            continue
        if entry is None or not line.startswith(" "):
            continue
        stripped = line.strip()
        label, sep, rest = stripped.partition(":")
        if sep and label in _KEYS:
            key, value = label, rest.strip()
        elif key is None:
            continue
        else:
            value = stripped
        if key == "Failed tests":
            entry.failed.extend(_numbers(value))
        elif key == "TODO passed":
            todo_passed += len(list(_numbers(value)))
        elif key == "Non-zero exit status":
            entry.exit_status = int(value)
        elif key == "Parse errors":
            entry.parse_errors.append(value)
            pm = _PLAN.search(value)
            if pm:
                entry.planned = int(pm.group(1))
                entry.missing = max(0, int(pm.group(1)) - int(pm.group(2)))
    # an entry with only "TODO passed" is not a failure
    failures = [f for f in failures if f.failed or f.missing or f.exit_status or f.parse_errors or f.wstat]
    return Summary(passed, files_total, tests_total, failures, skipped_files, skipped_tests, todo_passed)


# ------------------------------------------------------------------ running


def check_tools() -> None:
    """cc, make and prove must be on PATH (``make setup`` installs them)."""
    missing = [t for t in ("cc", "make", "prove") if shutil.which(t) is None]
    if missing:
        raise SetupError(f"missing {', '.join(missing)}: run `make pjdfstest-tools` (Debian: gcc libc6-dev make perl)")


def build(build_dir: Path) -> Path:
    """Build the binary and lay out ``build_dir/tests`` next to it, as tests/misc.sh looks for it."""
    check_tools()
    build_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["make", "-s", "-f", str(VENDOR / "Makefile"), f"O={build_dir}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"building pjdfstest failed:\n{proc.stdout}{proc.stderr}")
    return build_dir


def select(tests_dir: Path, subset: Sequence[str]) -> list[Path]:
    """The ``.t`` files or folders named relative to the tests tree (all of it when none)."""
    if not subset:
        return [tests_dir]
    picked = []
    for name in subset:
        p = tests_dir / name
        if not p.exists() or tests_dir.resolve() not in [p.resolve(), *p.resolve().parents]:
            raise SetupError(f"no pjdfstest test {name!r} under {tests_dir}")
        picked.append(p)
    return picked


def run_prove(build_dir: Path, workdir: Path, subset: Sequence[str], jobs: int, log: Path,
              echo: bool = False, timeout: float = 3600.0) -> tuple[Summary, float]:
    """``prove -r`` from inside ``workdir``; the raw output goes to ``log``.

    A file system that hangs an operation would hang prove for ever: after
    ``timeout`` seconds prove's process group (prove and the scripts it runs) is killed.
    """
    if os.geteuid() != 0:
        raise SetupError("pjdfstest must run as root (it changes owners and switches users)")
    tests_dir = build_dir / "tests"
    targets = select(tests_dir, subset)
    # -v only when serial: its per-test lines are what name the errno of a failure,
    # and parallel runs interleave them
    cmd = ["prove", "-r", *(["-v"] if jobs <= 1 else ["-j", str(jobs)]), *map(str, targets)]
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    old_umask = os.umask(0o022)
    try:
        with open(log, "w") as fh:
            proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True, errors="replace",
                                    start_new_session=True)
            timed_out = threading.Event()

            def kill() -> None:
                timed_out.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

            timer = threading.Timer(timeout, kill)
            timer.start()
            try:
                assert proc.stdout is not None
                chunks = []
                for line in proc.stdout:
                    fh.write(line)
                    chunks.append(line)
                    if echo and _HEADER.match(line):
                        print(line.split(" ..", 1)[0].removeprefix(str(tests_dir) + "/"), flush=True)
                proc.wait()
            finally:
                timer.cancel()
    finally:
        os.umask(old_umask)
    seconds = time.monotonic() - started
    if timed_out.is_set():
        # prove's output to a pipe is block-buffered: the last file named may be well behind
        last = next((c.split(" ..", 1)[0] for c in reversed(chunks) if _HEADER.match(c)), None)
        where = f" (last file in its output: {last})" if last else ""
        raise SetupError(f"prove did not finish within {timeout:.0f}s{where}; see {log}")
    summary = parse_prove("".join(chunks), tests_dir)
    if summary.files_total == 0:
        raise SetupError(f"prove ran nothing (exit {proc.returncode}); see {log}")
    return summary, seconds


def fresh_workdir(parent: Path) -> Path:
    """A new root-owned 0755 folder inside the target for pjdfstest's files."""
    try:
        d = Path(tempfile.mkdtemp(prefix="pjdfstest.", dir=parent))
        os.chmod(d, 0o755)
    except OSError as exc:
        raise SetupError(f"cannot make a folder in {parent}: {exc.strerror}") from None
    return d


def fs_type(path: Path) -> str:
    proc = subprocess.run(["df", "-PT", str(path)], capture_output=True, text=True)
    rows = proc.stdout.splitlines()
    return rows[-1].split()[1] if proc.returncode == 0 and len(rows) > 1 else "unknown"


# ------------------------------------------------------------------ the writable mount


def _mountfs_command(given: str | None) -> list[str]:
    if given:
        return given.split()
    venv = REPO / ".venv" / "bin" / "mountfs"
    if venv.exists():
        return [str(venv)]
    found = shutil.which("mountfs")
    if found is None:
        raise SetupError("no mountfs command: run `make setup` or give --mountfs")
    return [found]


class WritableMount:
    """A private folder store holding ``pjdfstest/target/1.0.0``, mounted writable at ``mountpoint``."""

    def __init__(self, mountfs: list[str], work: Path) -> None:
        self.mountfs = mountfs
        self.work = work
        self.mountpoint = work / "mnt"
        self.mounted = False
        # nothing from the user's own config, store, cache or run dir
        self.env = dict(os.environ)
        self.env.update({
            "MOUNTFS_STORE": str(work / "store"),
            "MOUNTFS_CACHE_DIR": str(work / "cache"),
            "MOUNTFS_RUN_DIR": str(work / "run"),
            "MOUNTFS_CONFIG": os.devnull,  # no config file
        })

    def _run(self, *args: str) -> str:
        proc = subprocess.run([*self.mountfs, *args], env=self.env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise SetupError(f"`mountfs {' '.join(args)}` failed (exit {proc.returncode}): "
                             f"{(proc.stderr or proc.stdout).strip()}")
        return proc.stdout

    def check_supported(self) -> None:
        """Exit clearly, before touching anything, when this mountfs cannot mount writable."""
        proc = subprocess.run([*self.mountfs, "mount", "--help"], env=self.env, capture_output=True, text=True)
        if proc.returncode != 0 or "--writable" not in proc.stdout:
            raise SetupError(f"`{' '.join(self.mountfs)} mount --writable` is not available in this mountfs "
                             "(no writable mounts yet); run against a plain directory with --dir PATH")

    def __enter__(self) -> Path:
        self.check_supported()
        seed = self.work / "seed"
        seed.mkdir(parents=True)
        # one small file, so the mount shows a parent version's content next to pjdfstest's
        (seed / "README").write_text("the parent version of a pjdfstest run\n")
        ds_id = self._run("create", "--project", PROJECT, "--name", NAME, "--version", VERSION).strip()
        self._run("add", "--id", ds_id, "--files", str(seed))
        self._run("close", "--id", ds_id)
        self.mountpoint.mkdir()
        self._run("mount", "--writable", f"{PROJECT}/{NAME}/{VERSION}", str(self.mountpoint))
        self.mounted = True
        return self.mountpoint

    def __exit__(self, *exc: object) -> None:
        if self.mounted:
            self._run("umount", str(self.mountpoint))
            self.mounted = False


# ------------------------------------------------------------------ report


def report(summary: Summary, seconds: float, out: TextIO | None = None) -> None:
    w = (out or sys.stdout).write
    for f in summary.failures:
        extra = []
        if f.missing:
            extra.append(f"{f.missing} never ran (planned {f.planned})")
        if f.exit_status:
            extra.append(f"exit {f.exit_status}")
        nums = _ranges(f.failed) or "-"
        w(f"FAIL {f.file}: subtests {nums} of {f.tests_run}{'; ' + ', '.join(extra) if extra else ''}\n")
        for n, msg in sorted(f.details.items()):
            w(f"     {n}: {msg}\n")
    for name, reason in sorted(summary.skipped_files.items()):
        w(f"SKIP {name}: {reason}\n")
    w(f"failed files: {summary.failed_files}/{summary.files_total}  "
      f"failed subtests: {summary.failed_tests} (+{summary.missing_tests} never ran)  "
      f"failing cases: {summary.failing_cases}  subtests: {summary.tests_total}  "
      f"skipped subtests: {summary.skipped_tests}  time: {seconds:.0f}s\n")


def _ranges(nums: Sequence[int]) -> str:
    out: list[str] = []
    for n in sorted(set(nums)):
        if out and out[-1].split("-")[-1] == str(n - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--dir", type=Path, help="run in a fresh folder inside this directory")
    where.add_argument("--writable-mount", action="store_true",
                       help="run inside `mountfs mount --writable` of a new version in a private folder store")
    ap.add_argument("subset", nargs="*", help="test folders or .t files under tests/ (default: all), e.g. mkdir chmod/00.t")
    ap.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD, help="where pjdfstest is built (default: %(default)s)")
    ap.add_argument("--json", type=Path, help="write the result here (default: BUILD_DIR/result-<target>.json)")
    ap.add_argument("--log", type=Path, help="prove's raw output (default: BUILD_DIR/prove-<target>.log)")
    ap.add_argument("--jobs", type=int, default=1, help="prove -j (default 1: serial, with each failure's errno)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="kill prove after this many seconds (default: %(default)s)")
    ap.add_argument("--max-failures", type=int, default=0, help="exit 0 up to this many failing cases")
    ap.add_argument("--mountfs", help="mountfs command for --writable-mount (default: .venv/bin/mountfs)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (and the store of --writable-mount)")
    ap.add_argument("--progress", action="store_true", help="print each .t file as it starts")
    args = ap.parse_args(argv)

    label = "writable-mount" if args.writable_mount else "dir"
    json_path = args.json or args.build_dir / f"result-{label}.json"
    log_path = args.log or args.build_dir / f"prove-{label}.log"
    try:
        build_dir = build(args.build_dir.resolve())
        select(build_dir / "tests", args.subset)  # a typo fails before any mount
        if args.dir is not None:
            if not args.dir.is_dir():
                raise SetupError(f"{args.dir} is not a directory")
            workdir = fresh_workdir(args.dir)
            try:
                fstype = fs_type(workdir)
                summary, seconds = run_prove(build_dir, workdir, args.subset, args.jobs, log_path, args.progress,
                                             args.timeout)
            finally:
                if not args.keep:
                    shutil.rmtree(workdir, ignore_errors=True)
            target = str(args.dir)
        else:
            mountfs = _mountfs_command(args.mountfs)
            work = Path(tempfile.mkdtemp(prefix="pjdfstest-mount."))
            wm = WritableMount(mountfs, work)
            try:
                with wm as mountpoint:
                    workdir = fresh_workdir(mountpoint)
                    fstype = fs_type(workdir)
                    summary, seconds = run_prove(build_dir, workdir, args.subset, args.jobs, log_path, args.progress,
                                             args.timeout)
            finally:
                # still mounted means umount failed: deleting would reach into the mount
                if args.keep or wm.mounted:
                    print(f"kept {work}", file=sys.stderr)
                else:
                    shutil.rmtree(work, ignore_errors=True)
            target = f"mountfs mount --writable {PROJECT}/{NAME}/{VERSION}"
    except SetupError as exc:
        print(f"run_pjdfstest: {exc}", file=sys.stderr)
        return 3

    report(summary, seconds)
    result = {"target": target, "fs_type": fstype, "subset": list(args.subset), "seconds": round(seconds, 1),
              "jobs": args.jobs, "log": str(log_path), **summary.to_json()}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"json: {json_path}  log: {log_path}")
    return 0 if summary.failing_cases <= args.max_failures and summary.files_total else 1


if __name__ == "__main__":
    sys.exit(main())
