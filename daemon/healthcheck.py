"""Health check of a mountfsd mount, for container HEALTHCHECKs and Kubernetes probes.

    python3 healthcheck.py [MOUNTPOINT] [--timeout SECONDS]     (default /datasets, 5 s)

Exit 0 when a FUSE filesystem is mounted at MOUNTPOINT and its daemon answers a
lookup; 1 otherwise, with the reason on stderr. The lookup is of a random name,
so the kernel cannot answer it from its caches: a live daemon says "no such
file", a dead one leaves ENOTCONN, a hung one no answer within the timeout.
It never touches the store, so an unreachable store does not make a daemon that
serves its cache look unhealthy. Standard library only.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import threading


def mounted_fuse(mountpoint: str, mounts: str = "/proc/self/mounts") -> bool:
    with open(mounts) as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 2 and fields[1].replace("\\040", " ") == mountpoint and fields[2].startswith("fuse"):
                return True
    return False


def answers(mountpoint: str, timeout: float) -> str | None:
    """None when the daemon answers a lookup in time, else why not."""
    result: list[str | None] = []

    def lookup() -> None:
        try:
            os.stat(os.path.join(mountpoint, ".mountfs-healthcheck-" + os.urandom(8).hex()))
            result.append(None)
        except FileNotFoundError:
            result.append(None)
        except OSError as exc:
            result.append(f"{mountpoint}: {os.strerror(exc.errno) if exc.errno else exc}"
                          + (" (the daemon is gone)" if exc.errno in (errno.ENOTCONN, errno.ECONNABORTED) else ""))

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(timeout)
    if not result:
        return f"{mountpoint}: no answer within {timeout:g}s (the daemon hangs)"
    return result[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Is mountfsd serving MOUNTPOINT?")
    parser.add_argument("mountpoint", nargs="?", default="/datasets")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the daemon (default 5)")
    args = parser.parse_args(argv)
    mountpoint = os.path.abspath(args.mountpoint)
    if not mounted_fuse(mountpoint):
        print(f"{mountpoint}: no FUSE filesystem is mounted there", file=sys.stderr)
        return 1
    problem = answers(mountpoint, args.timeout)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # a lookup still stuck in a hung mount must not keep the process alive
    os._exit(code)
