"""The benches in bench/ start, parse their options and import their modules.

Their quick runs take ~45 s together (SeaweedFS, FUSE, 2 cores), too long for
the suite: run them by hand (bench/README.md).  What is checked here is what
breaks first when the shared scaffolding (bench/harness/) or the SDK moves:
every entry point answers ``--help``, every module imports, bad options are
one-line errors, and the peer harness can still load its mountfs plugin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
PEERS = BENCH.parent.parent / "shared" / "peers"
#: what a user runs, and what the benches run in fresh interpreters
SCRIPTS = ("ingest.py", "read.py", "transfer.py")
STEP_MODULES = ("ingest_steps.py", "read_steps.py", "transfer_steps.py")


def run(*args: str, cwd: Path = BENCH) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("script", SCRIPTS + STEP_MODULES)
def test_help(script: str) -> None:
    p = run(str(BENCH / script), "--help")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("usage:")


@pytest.mark.parametrize("script", SCRIPTS)
def test_common_options(script: str) -> None:
    """Every bench takes the options bench/README.md documents for all of them."""
    out = run(str(BENCH / script), "--help").stdout
    for opt in ("--out", "--work", "--quick", "--only", "--repeat", "--keep"):
        assert opt in out


@pytest.mark.parametrize("args, message", [(["--only", "a,zz"], "unknown part(s) ['zz']"),
                                           (["--repeat", "0"], "--repeat must be >= 1")])
@pytest.mark.parametrize("script", SCRIPTS)
def test_bad_options_are_one_line_errors(script: str, args: list[str], message: str) -> None:
    p = run(str(BENCH / script), *args)
    assert p.returncode == 2
    assert message in p.stderr and "Traceback" not in p.stderr


#: the parts each bench offers with ``--only`` (bench/README.md's tables)
PARTS = {"ingest.py": ("a", "b", "delta", "insert", "scale", "sync", "gc")}


@pytest.mark.parametrize("script", sorted(PARTS))
def test_parts_are_listed(script: str) -> None:
    out = " ".join(run(str(BENCH / script), "--help").stdout.split())
    assert ",".join(PARTS[script]) in out


def test_every_module_imports() -> None:
    """In a fresh interpreter, as a bench sees them (bench/ first on sys.path)."""
    names = sorted(f[:-3] for f in os.listdir(BENCH) if f.endswith(".py") and f != "peers_mountfs.py")
    names += sorted(f"harness.{f[:-3]}" for f in os.listdir(BENCH / "harness") if f.endswith(".py"))
    code = f"import importlib, sys; sys.path.insert(0, {str(BENCH)!r})\nfor n in {names!r}: importlib.import_module(n)"
    p = run("-c", code)
    assert p.returncode == 0, p.stderr


def test_options_parse_parts_and_out() -> None:
    code = ("import sys; sys.path.insert(0, '.')\n"
            "from harness import options\n"
            "p = options.parser('x', 'doc', ('a', 'b'), work='w', quick='q')\n"
            "a = options.parse(p, ['--only', ' B,a '])\n"
            "print(a.parts, a.repeat, a.out.endswith('.json'), '/bench/results/x-' in a.out)")
    p = run("-c", code)
    assert p.stdout.split() == ["['b',", "'a']", "1", "True", "True"], p.stderr


@pytest.mark.skipif(not (PEERS / "common.py").exists(), reason="the peer harness (../shared/peers) is not here")
def test_peer_harness_loads_the_plugin() -> None:
    """As ``peers run --plugin bench/peers_mountfs.py`` does: the harness's ``common`` on the path, the file
    loaded by location; it registers system ``mountfs``, opt-in."""
    code = ("import importlib.util, sys; sys.path.insert(0, '.')\n"
            "import common\n"
            f"spec = importlib.util.spec_from_file_location('plugin_peers_mountfs', {str(BENCH / 'peers_mountfs.py')!r})\n"
            "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
            "print(common.REGISTRY['mountfs'].default)")
    p = run("-c", code, cwd=PEERS)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "False"
