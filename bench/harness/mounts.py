"""``mountfs mount`` of a version through the CLI, the daemon's probes, and a thorough unmount.

Every mount of a run goes through one :class:`Mounts`, which knows what is
still mounted, so the bench's ``finally`` can stop it by PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Callable

from harness.machine import code_state
from harness.procs import alive, proc_cpu_s, proc_status
from harness.profile import PhaseProfiler, stop_spy
from mountfs.daemon.mounts import RuntimeFiles, mounted_fuse

MOUNTFS = os.path.join(os.path.dirname(sys.executable), "mountfs")
#: the daemon's counters kept from `mountfs status --json`
STATS = ("reads", "read_hits", "chunk_misses", "fetches", "bytes_fetched", "bytes_read", "fetch_errors")


class Mounts:
    """The ``mountfs`` CLI in a bench's environment (``env(cache)``), mountpoints under ``mnt_root``, daemons'
    runtime files in ``run_dir``; ``record`` is called with one entry per mount (its PID and the code it runs)."""

    def __init__(self, env: Callable[[str | None], dict[str, str]], mnt_root: str, run_dir: str,
                 profiler: PhaseProfiler, record: Callable[[dict[str, Any]], None], log: Callable[[str], None]):
        self.env, self.mnt_root, self.run_dir = env, mnt_root, run_dir
        self.profiler, self.record, self.log = profiler, record, log
        self.live: dict[str, Mount] = {}

    def cli(self, *args: str, cache: str | None = None, timeout: float = 600) -> str:
        """Run ``mountfs ARGS``; its stdout.  Raises ``RuntimeError`` with the end of stderr if it fails."""
        p = subprocess.run([MOUNTFS, *args], env=self.env(cache), capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"`mountfs {' '.join(args)}` failed (exit {p.returncode}): {p.stderr.strip()[-2000:]}")
        return p.stdout

    def mount(self, name: str, dataset_id: str, cache: str | None = None) -> "Mount":
        """A started :class:`Mount` of ``dataset_id`` at ``<mnt_root>/<name>``."""
        return Mount(self, name, dataset_id, cache).start()

    def stop_all(self) -> None:
        for m in list(self.live.values()):
            m.stop()


class Mount:
    """One ``mountfs mount`` of a version: its daemon's PID, probes, and a thorough unmount."""

    def __init__(self, mounts: Mounts, name: str, dataset_id: str, cache: str | None = None):
        self.m, self.name, self.id, self.cache = mounts, name, dataset_id, cache
        self.mnt = os.path.join(mounts.mnt_root, name)
        self.pid: int | None = None
        self.mount_s = 0.0

    def start(self) -> "Mount":
        os.makedirs(self.mnt, exist_ok=True)
        self.m.live[self.name] = self
        info = RuntimeFiles(self.m.run_dir, os.path.realpath(self.mnt)).info
        t0 = time.perf_counter()
        if self.m.profiler.dir:
            self._start_profiled(info)
        else:
            self.m.cli("mount", self.id, self.mnt, cache=self.cache)
        self.mount_s = time.perf_counter() - t0
        with open(info) as fh:
            self.pid = json.load(fh)["pid"]
        # the daemon runs the code of the working tree as it is now: others may be changing it
        self.m.record({"name": self.name, "pid": self.pid, "at": time.time(), "code": code_state()})
        self.m.log(f"mounted {self.name} ({self.id}) at {self.mnt} in {self.mount_s:.2f} s, daemon pid {self.pid}")
        return self

    def _start_profiled(self, info: str) -> None:
        """`mountfs mount` under `py-spy record --subprocesses`, so the daemon's start (the manifest import)
        is in the profile; py-spy would follow the detached daemon until it exits, so it is stopped
        (SIGINT) as soon as the mount is up, which is when `mountfs mount` itself returns."""
        cmd = self.m.profiler.around(f"mount-{self.name}", [MOUNTFS, "mount", self.id, self.mnt])
        spy = subprocess.Popen(cmd, env=self.m.env(self.cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 600
            while not (mounted_fuse(self.mnt) and os.path.exists(info)):
                if spy.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mount of {self.name} under py-spy failed (exit {spy.returncode}); "
                                       f"log in {self.m.run_dir}")
                time.sleep(0.02)
        finally:
            if spy.poll() is None:
                stop_spy(spy, 60)

    def stats(self) -> dict[str, Any]:
        """The daemon's own counters (`mountfs status --json`): reads, hits, fetches (ranged GETs), bytes."""
        try:
            rows = json.loads(self.m.cli("status", "--json", cache=self.cache, timeout=30))
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            return {"error": str(exc)[:300]}
        row: dict[str, Any] = next((r for r in rows if r.get("pid") == self.pid), {})
        return {k: row[k] for k in STATS if k in row}

    def probe(self) -> dict[str, Any]:
        """The daemon's memory (VmHWM, VmRSS = RssAnon + RssFile) and CPU seconds; raises if it died."""
        assert self.pid is not None
        if not alive(self.pid):
            raise RuntimeError(f"the daemon of {self.name} (pid {self.pid}) died; log: {self.m.run_dir}")
        # RssFile includes the LMDB index pages the daemon touched (mapped, reclaimable page cache)
        return {"vm_hwm_bytes": proc_status(self.pid, "VmHWM"), "vm_rss_bytes": proc_status(self.pid, "VmRSS"),
                "rss_anon_bytes": proc_status(self.pid, "RssAnon"), "rss_file_bytes": proc_status(self.pid, "RssFile"),
                "cpu_s": proc_cpu_s(self.pid)}

    def stop(self) -> None:
        """`mountfs umount`; then, if needed, SIGTERM/SIGKILL by PID and fusermount3 -uz."""
        self.m.live.pop(self.name, None)
        try:
            self.m.cli("umount", self.mnt, cache=self.cache, timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            self.m.log(f"umount {self.mnt}: {exc}")
        if self.pid:
            for sig, wait in ((None, 15.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                if sig is not None and alive(self.pid):
                    self.m.log(f"daemon pid {self.pid} still running: {sig.name}")
                    try:
                        os.kill(self.pid, sig)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + wait
                while alive(self.pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not alive(self.pid):
                    break
        if mounted_fuse(self.mnt):
            subprocess.run(["fusermount3", "-uz", self.mnt], check=False)
