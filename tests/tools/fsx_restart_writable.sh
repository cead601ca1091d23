#!/bin/bash
# fsx.py --restart-cmd for a writable mount at $FSX_TARGET: odd restarts SIGTERM the daemon,
# even ones SIGKILL it (only what fsync acknowledged must survive), then the same draft is
# mounted again. The store, cache and run dir come from the MOUNTFS_* environment, as for
# the mount itself; MOUNTFS_CMD overrides the mountfs command.
#   python tests/tools/fsx.py --target MNT --reference REF --restart-every 5000 \
#       --restart-cmd tests/tools/fsx_restart_writable.sh
set -euo pipefail
M=${MOUNTFS_CMD:-$(dirname "$0")/../../.venv/bin/mountfs}
read -r pid draft < <("$M" status --json | python3 -c '
import json, os, sys
t = os.path.realpath(os.environ["FSX_TARGET"])
m = [m for m in json.load(sys.stdin) if os.path.realpath(m["mountpoint"]) == t]
print(m[0]["pid"], m[0]["dataset"]) if m else sys.exit("no mountfs daemon serves " + t)')
if (( FSX_RESTART % 2 )); then sig=TERM; else sig=KILL; fi
echo "fsx restart $FSX_RESTART after step $FSX_STEP: SIG$sig daemon $pid" >&2
kill -"$sig" "$pid"
for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then echo "daemon $pid did not exit" >&2; exit 1; fi
# a killed daemon leaves its FUSE mount behind ("transport endpoint is not connected")
if grep -q " $(realpath "$FSX_TARGET") " /proc/mounts; then umount -l "$FSX_TARGET"; fi
"$M" mount --writable --id "$draft" "$FSX_TARGET" >&2
