#!/usr/bin/env bash
# Build pyfuse3 from its PyPI sdist with the "no open" change (README.md beside
# this file; docs/FUSE.md item 5) and install it into a venv.
#
#   daemon/pyfuse3/build.sh [PYTHON]     # default: .venv/bin/python of the repo
#
# Env: PYFUSE3_VERSION (default 3.5.0), CYTHON_VERSION (default 3.2.4, the one
# that generated the sdist's C), FORCE=1 to rebuild although already installed.
# Only pip talks to the network (PyPI). Idempotent: a second run is a no-op.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
PY="${1:-$root/.venv/bin/python}"
VERSION="${PYFUSE3_VERSION:-3.5.0}"
CYTHON_VERSION="${CYTHON_VERSION:-3.2.4}"
LOCAL_VERSION="$VERSION+mountfs.noopen1"   # PEP 440 local label: still satisfies pyfuse3==$VERSION
SHA256_3_5_0=88399a9494b88603230bba300f4ba9ad63fece5ed514ca3633d555a0c6a42b24

[ -x "$PY" ] || { echo "build.sh: no python at $PY" >&2; exit 1; }

check='import importlib.metadata as m, pyfuse3, sys
sys.exit(0 if getattr(pyfuse3, "MOUNTFS_NOOPEN_INO", False) and m.version("pyfuse3") == sys.argv[1] else 1)'
if [ "${FORCE:-0}" != 1 ] && "$PY" -c "$check" "$LOCAL_VERSION" 2>/dev/null; then
  echo "pyfuse3 $LOCAL_VERSION (no-open) already installed in $PY"
  exit 0
fi

# the one slow step of `make setup`, silent otherwise (pip -q): say what it is and how long it takes
echo "building pyfuse3 $VERSION from source with the mountfs no-open change (Cython, then a C compile):"
echo "  this takes about 5 to 10 minutes on 2 cores, once; later runs find it installed"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$PY" -m pip download -q --no-binary :all: --no-deps "pyfuse3==$VERSION" -d "$work"
sdist="$work/pyfuse3-$VERSION.tar.gz"
if [ "$VERSION" = 3.5.0 ]; then
  echo "$SHA256_3_5_0  $sdist" | sha256sum -c --quiet -
fi
tar -xzf "$sdist" -C "$work"
src="$work/pyfuse3-$VERSION"

# The edit. Fails loudly if pyfuse3's read handler no longer looks like this.
"$PY" - "$src/src/pyfuse3" <<'EOF'
import pathlib, sys
d = pathlib.Path(sys.argv[1])
old = """    c.off = off
    c.fh = fi.fh
    save_retval(fuse_read_async(c))
"""
new = """    c.off = off
    # mountfs: when open() answered ENOSYS the kernel (FUSE_NO_OPEN_SUPPORT)
    # sends READ with fh 0; hand Operations.read the inode instead.
    c.fh = fi.fh if fi.fh != 0 else ino
    save_retval(fuse_read_async(c))
"""
h = d / "handlers.pxi"
text = h.read_text()
if text.count(old) != 1 or "cdef void fuse_read (fuse_req_t req, fuse_ino_t ino," not in text:
    sys.exit("build.sh: pyfuse3's fuse_read handler changed; review the no-open edit")
h.write_text(text.replace(old, new))
with open(d / "__init__.pyx", "a") as f:
    f.write("\n# mountfs: read() receives the inode when fh is 0 (no-open mode)\n"
            "MOUNTFS_NOOPEN_INO = True\n")
# The shipped C was generated from the unedited source: remove it so that the
# build must run Cython (a build without Cython fails instead of going stale).
(d / "__init__.c").unlink()
EOF

# Build in a throwaway venv of the same interpreter with a pinned Cython, so the
# target venv gets nothing but pyfuse3.
"$PY" -m venv "$work/bvenv"
"$work/bvenv/bin/pip" install -q "Cython==$CYTHON_VERSION" "setuptools>=78.1.1" "setuptools_scm>=8" wheel
SETUPTOOLS_SCM_PRETEND_VERSION_FOR_PYFUSE3="$LOCAL_VERSION" \
  "$work/bvenv/bin/pip" wheel -q --no-build-isolation --no-deps -w "$work/dist" "$src"

"$PY" -m pip uninstall -q -y pyfuse3 2>/dev/null || true
"$PY" -m pip install -q "$work"/dist/pyfuse3-*.whl
"$PY" -c "$check" "$LOCAL_VERSION" || { echo "build.sh: marker missing after install" >&2; exit 1; }
echo "installed pyfuse3 $LOCAL_VERSION (no-open) into $PY"
