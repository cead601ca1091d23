"""``py-spy record`` (raw collapsed stacks) around a phase of a daemon, or attached to a step process.

Only with a bench's ``--profile DIR``; profiling costs CPU, so profiled numbers
are not comparable with unprofiled ones.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from harness.procs import ppid

PY_SPY = os.path.join(os.path.dirname(sys.executable), "py-spy")


def stop_spy(proc: "subprocess.Popen[bytes]", wait: float) -> None:
    """SIGINT (py-spy writes its output then), SIGKILL after ``wait`` seconds."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class PhaseProfiler:
    """Profiles of a daemon, one file per phase in ``dir`` (nothing when ``dir`` is None); ``files`` lists them."""

    def __init__(self, dir: str | None, opts: str = "", rate: int = 200):
        self.dir, self.opts, self.rate = dir, shlex.split(opts), rate
        self.files: list[str] = []

    def out(self, name: str) -> str:
        """Where the profile ``name`` goes (recorded in ``files``)."""
        assert self.dir is not None
        os.makedirs(self.dir, exist_ok=True)
        path = os.path.join(self.dir, f"{name}.txt")
        self.files.append(path)
        return path

    @contextmanager
    def phase(self, pid: int | None, name: str) -> Iterator[None]:
        """``py-spy record -p PID --threads`` while the block runs."""
        if not (self.dir and pid):
            yield
            return
        proc = subprocess.Popen([PY_SPY, "record", "-p", str(pid), "-r", str(self.rate), "--threads", "-f", "raw",
                                 "-o", self.out(name), *self.opts],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached before the phase starts
        try:
            yield
        finally:
            stop_spy(proc, 30)

    def around(self, name: str, cmd: list[str]) -> list[str]:
        """``cmd`` run under ``py-spy record --subprocesses`` (its children are profiled too)."""
        return [PY_SPY, "record", "--subprocesses", "-r", str(self.rate), "-f", "raw", "-o", self.out(name),
                *self.opts, "--", *cmd]


class StepSpy:
    """``py-spy record --nonblocking`` attached to the step process while it runs (``dir`` None: nothing).

    Attached by PID (found as our grandchild: bench -> launcher -> step), not
    wrapped around it, so the launcher's peak RSS is still the step's own;
    non-blocking sampling never pauses the step.  Raw collapsed stacks, one
    file per step; failures to profile are logged, never fatal.
    """

    def __init__(self, dir: str | None, rate: int, module: str, name: str, tag: str, log: Callable[[str], None]):
        self.dir, self.rate, self.module, self.name, self.tag, self.log = dir, rate, module, name, tag, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.done = threading.Event()
        self.thread: threading.Thread | None = None
        self.out = ""

    def __enter__(self) -> "StepSpy":
        if self.dir:
            os.makedirs(self.dir, exist_ok=True)
            self.out = os.path.join(self.dir, f"{self.name}-{self.tag}.txt")
            self.thread = threading.Thread(target=self._attach, daemon=True)
            self.thread.start()
        return self

    def _find(self) -> int | None:
        me = os.getpid()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as fh:
                    argv = fh.read().split(b"\0")
            except OSError:
                continue
            if self.module.encode() in argv and b"--step" in argv and self.name.encode() in argv \
                    and ppid(ppid(int(d))) == me:
                return int(d)
        return None

    def _attach(self) -> None:
        while not self.done.is_set():
            pid = self._find()
            if pid:
                with open(self.out + ".log", "w") as logfh:
                    self.proc = subprocess.Popen(
                        [PY_SPY, "record", "--pid", str(pid), "--nonblocking", "--threads", "-r", str(self.rate),
                         "-f", "raw", "-o", self.out], stdout=logfh, stderr=subprocess.STDOUT)
                return
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        if self.thread is None:
            return
        self.done.set()
        self.thread.join()
        if self.proc is not None:
            try:
                self.proc.wait(30)  # py-spy writes its file once the target has exited
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                self.proc.wait(10)
            self.log(f"py-spy profile of {self.name} {self.tag}: {self.out}")
        else:
            self.log(f"py-spy: {self.name} {self.tag} ended before it could be attached")
