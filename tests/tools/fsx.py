#!/usr/bin/env python3
"""fsx-style randomized file-operation exerciser: a target directory against a plain reference.

Every step draws one operation from a seeded generator (create with ``O_EXCL``,
writes at random offsets and past EOF, ``O_APPEND``, ``O_TRUNC``, truncate grow and
shrink, reads, renames of files and directories over existing targets, mkdir,
rmdir, unlink, unlink of an open file kept alive through its fd, chmod, utime,
symlink/readlink, fsync, mmap reads and shared-mmap writes), runs it on the target
and on the reference, and compares the outcomes: both succeed with the same value
or both fail with the same errno. Then the entries the step touched are compared
(mode, uid, gid, size, link count, contents, link text, the fd's ``fstat``), and
every ``full_every`` steps and at the end the whole trees are.

The reference is the oracle, so the generator reads it (names, sizes) to choose
the next operation, and the run is a pure function of the seed and of the starting
tree: ``--seed S --steps K`` on fresh directories reproduces a failure at step K.
The last ``keep`` operations are also written as JSON lines on a mismatch; each
operation carries the seed of its data, so ``--replay LOG`` re-executes them
(the whole history when the failure came within the first ``keep`` steps).

Both directories must start equal (empty, or the reference a copy of the
target, e.g. ``cp -a`` of the dataset a writable mount was made from).

    python tests/tools/fsx.py --seed 1 --steps 100000 --target /mnt/w --reference /tmp/ref
    python tests/tools/fsx.py ... --restart-every 500 --restart-cmd 'kill -KILL $PID; remount'
    python -m tests.tools.fsx ...           # the same, from the repository root
    python tests/tools/fsx.py --replay /tmp/fsx-seed1.jsonl --target A --reference B

Restarts: before one, every open fd is fsync'd and closed and every file and
directory of the target is fsync'd (only what ``fsync`` acknowledged must survive
a SIGKILL of a FUSE daemon); after it the whole trees are compared again.

Exit status: 0 equal, 1 mismatch, 2 usage error, 3 the restart command failed.

The operations themselves (execution, the model of the tree, the generator) are
in ``fsx_ops.py``; this module compares, runs and is the command line.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

# a script beside its module: `python tests/tools/fsx.py` and `python -m tests.tools.fsx` alike
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fsx_ops import Generator, Model, Op, Outcome, Side, execute, scan_tree, with_fd  # noqa: E402

__all__ = ["Generator", "Mismatch", "Model", "Op", "Outcome", "RestartError", "RunResult", "Side", "compare_trees",
           "execute", "main", "read_log", "replay", "run", "scan_tree"]


class RestartError(Exception):
    """The user's restart hook failed; the run cannot go on (exit status 3)."""


# ---------------------------------------------------------------- comparison


def _read_all(path: str) -> bytes:
    with open(path, "rb", buffering=0) as f:
        return f.read()


def _entry_state(root: str, rel: str, st: os.stat_result, pinned: dict[str, int]) -> tuple[Any, ...]:
    """What must agree for one entry (directory sizes and link counts vary by file system)."""
    base: tuple[Any, ...] = (stat.filemode(st.st_mode), st.st_uid, st.st_gid)
    path = os.path.join(root, rel) if rel else root
    if stat.S_ISREG(st.st_mode):
        mtime = st.st_mtime_ns if rel in pinned else None
        return base + (st.st_size, st.st_nlink, mtime, _read_all(path))
    if stat.S_ISLNK(st.st_mode):
        return base + (os.readlink(path),)
    return base


def _describe(a: Any, b: Any) -> str:
    """A short account of how two states differ (bytes by first differing offset)."""
    if isinstance(a, tuple) and isinstance(b, tuple) and "missing" in (a[0], b[0]):
        return f"lstat: {a[1] if a[0] == 'missing' else 'exists'} != {b[1] if b[0] == 'missing' else 'exists'}"
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        names = ("mode", "uid", "gid", "size", "nlink", "pinned mtime_ns", "contents")
        parts = [_describe(x, y) if isinstance(x, bytes) else f"{names[i] if i < len(names) else i}: {x!r} != {y!r}"
                 for i, (x, y) in enumerate(zip(a, b)) if x != y]
        return "; ".join(parts)
    if isinstance(a, bytes) and isinstance(b, bytes):
        at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        return (f"contents differ at offset {at} (lengths {len(a)} and {len(b)}; "
                f"target {a[at:at + 8].hex() or '<eof>'}, reference {b[at:at + 8].hex() or '<eof>'})")
    return f"{_short(a)} != {_short(b)}"


def _short(v: Any) -> str:
    if isinstance(v, bytes):
        return f"<{len(v)} bytes {v[:16].hex()}{'...' if len(v) > 16 else ''}>"
    if isinstance(v, tuple):
        return "(" + ", ".join(_short(x) for x in v) + ")"
    return repr(v)


def _compare_states(t: dict[str, Any], r: dict[str, Any]) -> str | None:
    only_t, only_r = sorted(t.keys() - r.keys()), sorted(r.keys() - t.keys())
    problems = []
    if only_t:
        problems.append(f"only in target: {only_t}")
    if only_r:
        problems.append(f"only in reference: {only_r}")
    for k in sorted(t.keys() & r.keys()):
        if t[k] != r[k]:
            problems.append(f"{k or '<root>'}: {_describe(t[k], r[k])}")
    return "\n".join(problems) or None


def _path_states(side: Side, rels: Iterable[str], pinned: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rel in rels:
        try:
            st = os.lstat(side.path(rel))
        except OSError as e:
            out[rel] = ("missing", errno.errorcode.get(e.errno or 0))
            continue
        out[rel] = _entry_state(side.root, rel, st, pinned)
        if stat.S_ISDIR(st.st_mode):
            for sub, sst in scan_tree(side.root, rel).items():
                out[sub] = _entry_state(side.root, sub, sst, pinned)
    return out


def _slot_states(side: Side, slots: Iterable[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for slot in slots:
        fd = side.fds.get(slot)
        if fd is None:
            out[f"<fd {slot}>"] = "not open"
            continue
        st = os.fstat(fd)
        out[f"<fd {slot}>"] = (stat.filemode(st.st_mode), st.st_uid, st.st_gid, st.st_size,
                               st.st_nlink, None, os.pread(fd, st.st_size, 0))
    return out


def compare_trees(target: Side, ref: Side, pinned: dict[str, int], slots: Iterable[int] = ()) -> str | None:
    """None when the trees (and the open fds) agree, else what differs."""
    def states(side: Side) -> dict[str, Any]:
        # not the root itself: a mount point's mode and owner are the mount's, not the tree's
        s = {rel: _entry_state(side.root, rel, st, pinned) for rel, st in scan_tree(side.root).items()}
        s.update(_slot_states(side, slots))
        return s
    return _compare_states(states(target), states(ref))


def _touched(op: Op) -> list[str]:
    return [op[k] for k in ("path", "src", "dst") if k in op]


# ---------------------------------------------------------------- the run


@dataclass
class Mismatch:
    """Where and how the target first disagreed with the reference."""

    seed: int | None
    step: int
    op: Op
    target: Outcome | None
    reference: Outcome | None
    detail: str
    log: str | None = None

    def report(self) -> str:
        """The multi-line account printed by the CLI."""
        lines = [f"fsx: MISMATCH seed={self.seed} step={self.step} op={self.op['op']}",
                 f"  op:        {json.dumps(self.op, sort_keys=True)}"]
        if self.target is not None and self.reference is not None:
            lines += [f"  target:    {self.target[0]} {_short(self.target[1])}",
                      f"  reference: {self.reference[0]} {_short(self.reference[1])}"]
        lines += ["  " + d for d in self.detail.splitlines()]
        if self.seed is not None:
            lines.append(f"  reproduce: --seed {self.seed} --steps {self.step} on directories in the same start state")
        if self.log:
            lines.append(f"  last ops:  {self.log} (replay with --replay)")
        return "\n".join(lines)


@dataclass
class RunResult:
    """The outcome of a run: ``mismatch`` is None when every comparison agreed."""

    seed: int | None
    steps: int
    steps_done: int
    elapsed_s: float
    op_counts: dict[str, int]
    restarts: int
    full_compares: int
    mismatch: Mismatch | None

    @property
    def ok(self) -> bool:
        """True when the target agreed with the reference throughout."""
        return self.mismatch is None

    def to_json(self) -> dict[str, Any]:
        """A JSON-serializable summary (the CLI's ``--json``)."""
        mm = None
        if self.mismatch is not None:
            m = self.mismatch
            mm = {"step": m.step, "op": m.op, "target": _short(m.target) if m.target else None,
                  "reference": _short(m.reference) if m.reference else None, "detail": m.detail, "log": m.log}
        return {"seed": self.seed, "steps": self.steps, "steps_done": self.steps_done, "ok": self.ok,
                "elapsed_s": round(self.elapsed_s, 3),
                "steps_per_s": round(self.steps_done / self.elapsed_s, 1) if self.elapsed_s else None,
                "op_counts": dict(sorted(self.op_counts.items())), "restarts": self.restarts,
                "full_compares": self.full_compares, "mismatch": mm}


#: called after each step's operation ran on both sides, before the comparison: (step, target root)
FaultHook = Callable[[int, Path], None]


class _Runner:
    def __init__(self, target: str | os.PathLike[str], reference: str | os.PathLike[str],
                 seed: int | None, keep: int, log_path: str | None, fault: FaultHook | None,
                 check_atime: bool = False) -> None:
        self.check_atime = check_atime
        self.t, self.r = Side(target), Side(reference, durable=False)
        self.model = Model.scan(self.r.root)
        self.seed, self.fault = seed, fault
        self.history: deque[Op] = deque(maxlen=keep)
        self.log_path = log_path
        self.counts: Counter[str] = Counter()
        self.restarts = self.full_compares = 0

    def close(self) -> None:
        for side in (self.t, self.r):
            for fd in side.fds.values():
                os.close(fd)
            side.fds.clear()

    def mismatch(self, step: int, op: Op, t: Outcome | None, r: Outcome | None, detail: str) -> Mismatch:
        log = self._write_log(step)
        return Mismatch(self.seed, step, op, t, r, detail, log)

    def _write_log(self, step: int) -> str | None:
        if not self.history:
            return None
        path = self.log_path or os.path.join(tempfile.gettempdir(), f"fsx-seed{self.seed}-step{step}.jsonl")
        with open(path, "w") as f:
            first = self.history[0]["step"]
            f.write(json.dumps({"seed": self.seed, "first_step": first, "failed_step": step,
                                "complete": first == 1}) + "\n")
            for op in self.history:
                f.write(json.dumps(op, sort_keys=True) + "\n")
        return path

    def full(self, step: int, op: Op) -> Mismatch | None:
        self.full_compares += 1
        diff = compare_trees(self.t, self.r, self.model.pinned, self.model.slots)
        if diff:
            return self.mismatch(step, op, None, None, "full tree compare:\n" + diff)
        kinds = Model.scan(self.r.root).kinds
        if kinds != self.model.kinds:  # a bug of this exerciser, not of the target
            raise AssertionError(f"fsx model out of step with the reference at step {step}")
        return None

    def step(self, step: int, op: Op) -> Mismatch | None:
        op = {"step": step, **op}
        self.history.append(op)
        self.counts[op["op"]] += 1
        r = execute(op, self.r)
        t = execute(op, self.t)
        self.model.update(op, r[0] == "ok", self.r)
        if self.fault is not None:
            self.fault(step, Path(self.t.root))
        if op["op"] == "utime" and not self.check_atime:
            # (mtime, atime): a version keeps mtime; atime only when asked for
            t, r = _drop_atime(t), _drop_atime(r)
        if t != r:
            return self.mismatch(step, op, t, r, "outcomes differ")
        pinned = self.model.pinned
        rels = _touched(op)
        slots = [op["slot"]] if "slot" in op and op["op"] != "fd_close" else []
        diff = _compare_states({**_path_states(self.t, rels, pinned), **_slot_states(self.t, slots)},
                               {**_path_states(self.r, rels, pinned), **_slot_states(self.r, slots)})
        if diff:
            return self.mismatch(step, op, t, r, "after the step:\n" + diff)
        return None

    def restart(self, step: int, hook: Callable[[], None]) -> Mismatch | None:
        self.t.close_all()
        self.r.close_all()
        self.model.slots.clear()
        _sync_tree(self.t.root)
        hook()
        self.restarts += 1
        return self.full(step, {"op": "restart", "after_step": step})


def _sync_tree(root: str) -> None:
    """fsync every file and directory: what a SIGKILLed daemon must keep."""
    for rel, st in scan_tree(root).items():
        if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
            with_fd(os.path.join(root, rel), os.O_RDONLY, os.fsync)
    with_fd(root, os.O_RDONLY, os.fsync)


def _drop_atime(o: Outcome) -> Outcome:
    return (o[0], o[1][0]) if o[0] == "ok" else o


def run(seed: int, steps: int, target: str | os.PathLike[str], reference: str | os.PathLike[str],
        restart: Callable[[], None] | None = None, restart_every: int = 0, *, full_every: int = 100,
        keep: int = 1000, log_path: str | None = None, fault: FaultHook | None = None,
        check_atime: bool = False) -> RunResult:
    """Run ``steps`` seeded operations on ``target`` and ``reference`` and compare them.

    ``restart`` is called every ``restart_every`` steps, after all fds were fsync'd and
    closed and the target tree fsync'd; the trees are compared right after it. ``fault``
    runs after each step's operation (tests use it to corrupt the target). The last
    ``keep`` operations are written to ``log_path`` (JSON lines) on a mismatch. The
    atime that utime set is compared only with ``check_atime`` (a version keeps mtime).
    """
    if restart_every and restart is None:
        raise ValueError("restart_every needs a restart callable")
    runner = _Runner(target, reference, seed, keep, log_path, fault, check_atime)
    gen = Generator(seed)
    start = time.monotonic()
    done, mm = 0, None
    try:
        mm = runner.full(0, {"op": "start"})
        for i in range(1, steps + 1):
            if mm is not None:
                break
            mm = runner.step(i, gen.next(runner.model, runner.r))
            done = i
            if mm is None and (i % full_every == 0 or i == steps):
                mm = runner.full(i, runner.history[-1])
            if mm is None and restart is not None and restart_every and i % restart_every == 0 and i < steps:
                mm = runner.restart(i, restart)
    finally:
        runner.close()
    return RunResult(seed, steps, done, time.monotonic() - start, dict(runner.counts),
                     runner.restarts, runner.full_compares, mm)


def replay(ops: Sequence[Op], target: str | os.PathLike[str], reference: str | os.PathLike[str],
           *, log_path: str | None = None, fault: FaultHook | None = None,
           check_atime: bool = False) -> RunResult:
    """Re-execute logged operations (see ``read_log``) with the same checks as ``run``.

    The trees are compared in full at the start and at the end only.
    """
    runner = _Runner(target, reference, None, max(1, len(ops)), log_path, fault, check_atime)
    start = time.monotonic()
    done, mm = 0, runner.full(0, {"op": "start"})
    try:
        for op in ops:
            if mm is not None:
                break
            op = {k: v for k, v in op.items() if k != "step"}
            if op["op"] in ("open", "unlink_open"):
                runner.model.next_slot = max(runner.model.next_slot, op["slot"])
            done += 1
            mm = runner.step(done, op)
        if mm is None:
            mm = runner.full(done, runner.history[-1] if runner.history else {"op": "end"})
    finally:
        runner.close()
    return RunResult(None, len(ops), done, time.monotonic() - start, dict(runner.counts), 0,
                     runner.full_compares, mm)


def read_log(path: str) -> list[Op]:
    """The operations of a log written on a mismatch (the header line is skipped)."""
    with open(path) as f:
        return [op for op in map(json.loads, f) if "op" in op]


# ---------------------------------------------------------------- CLI


def _shell_restart(cmd: str, target: str, every: int) -> Callable[[], None]:
    count = 0

    def restart() -> None:
        # the command may alternate SIGTERM and SIGKILL by the restart's number
        nonlocal count
        count += 1
        env = {**os.environ, "FSX_RESTART": str(count), "FSX_STEP": str(count * every), "FSX_TARGET": target}
        proc = subprocess.run(cmd, shell=True, env=env)
        if proc.returncode != 0:
            raise RestartError(f"restart command exited with status {proc.returncode}: {cmd}")
    return restart


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="fsx.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--target", required=True, help="the directory under test (e.g. a writable mount)")
    ap.add_argument("--reference", required=True, help="a plain local directory in the same start state")
    ap.add_argument("--full-every", type=int, default=100, metavar="K", help="compare whole trees every K steps")
    ap.add_argument("--restart-every", type=int, default=0, metavar="N")
    ap.add_argument("--restart-cmd", help="shell command run at each restart (stop the daemon, remount); "
                    "it sees FSX_RESTART (1, 2, ...), FSX_STEP and FSX_TARGET")
    ap.add_argument("--keep", type=int, default=1000, help="operations kept for the log")
    ap.add_argument("--log", help="where the last operations go on a mismatch (default: in $TMPDIR)")
    ap.add_argument("--replay", metavar="LOG", help="re-execute the operations of a log instead")
    ap.add_argument("--json", metavar="OUT", help="write a summary as JSON")
    ap.add_argument("--check-atime", action="store_true", help="utime's atime must read back too "
                    "(by default only mtime, which a version keeps)")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.restart_every and not a.restart_cmd:
        ap.error("--restart-every needs --restart-cmd")
    if a.steps < 0 or a.full_every < 1 or a.restart_every < 0:
        ap.error("--steps, --full-every and --restart-every must not be negative (--full-every >= 1)")
    for d in (a.target, a.reference):
        if not os.path.isdir(d):
            ap.error(f"not a directory: {d}")
    try:
        if a.replay:
            res = replay(read_log(a.replay), a.target, a.reference, log_path=a.log, check_atime=a.check_atime)
        else:
            restart = _shell_restart(a.restart_cmd, a.target, a.restart_every) if a.restart_cmd else None
            res = run(a.seed, a.steps, a.target, a.reference, restart, a.restart_every,
                      full_every=a.full_every, keep=a.keep, log_path=a.log, check_atime=a.check_atime)
    except RestartError as e:
        print(f"fsx: {e}", file=sys.stderr)
        return 3
    if a.json:
        Path(a.json).write_text(json.dumps(res.to_json(), indent=2) + "\n")
    if res.mismatch is not None:
        print(res.mismatch.report(), file=sys.stderr)
        return 1
    if not a.quiet:
        print(f"fsx: ok seed={res.seed} steps={res.steps_done} in {res.elapsed_s:.2f}s "
              f"({res.steps_done / max(res.elapsed_s, 1e-9):.0f} steps/s), "
              f"{res.full_compares} full compares, {res.restarts} restarts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
