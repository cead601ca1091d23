"""daemon/Containerfile, read as Docker would (no engine here to build it): every COPY
source is in the repository and survives the ignore file, pyfuse3 is built with
daemon/pyfuse3/build.sh before mountfs is installed, and the ENTRYPOINT is the
`mountfsd` console script."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPO / "daemon" / "Containerfile"
IGNORE = REPO / "daemon" / "Containerfile.dockerignore"
VENV_BIN = "/opt/mountfs/venv/bin"


@dataclass
class Instruction:
    cmd: str
    args: str
    stage: int  # index of the FROM it belongs to


def parse(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        cmd, _, args = full.partition(" ")
        cmd = cmd.upper()
        if cmd == "FROM":
            stage += 1
        out.append(Instruction(cmd, args.strip(), stage))
    assert not pending, "a continued line runs off the end of the file"
    return out


def flags_and_rest(args: str) -> tuple[dict[str, str], list[str]]:
    words = shlex.split(args)
    flags = {}
    while words and words[0].startswith("--"):
        k, _, v = words.pop(0)[2:].partition("=")
        flags[k] = v
    return flags, words


def env_of(instructions: list[Instruction], stage: int) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.cmd == "ENV" and ins.stage == stage:
            for item in shlex.split(ins.args):
                k, _, v = item.partition("=")
                env[k] = v
    return env


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(CONTAINERFILE)


def test_images_are_python_311_slim(instructions: list[Instruction]) -> None:
    args = {}
    for ins in instructions:
        if ins.cmd == "ARG" and ins.stage == -1:
            k, _, v = ins.args.partition("=")
            args[k] = v
    froms = [ins for ins in instructions if ins.cmd == "FROM"]
    assert froms
    for ins in froms:
        image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], ins.args.split()[0])
        assert image.startswith("python:3.11-slim"), image


def test_every_copy_source_is_in_the_repository(instructions: list[Instruction]) -> None:
    stages = {ins.args.split()[-1].lower(): ins.stage for ins in instructions
              if ins.cmd == "FROM" and " as " in ins.args.lower()}
    ignored = [p.strip() for p in IGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    copies = [ins for ins in instructions if ins.cmd in ("COPY", "ADD")]
    assert copies
    for ins in copies:
        flags, words = flags_and_rest(ins.args)
        if words and words[0].startswith("["):
            words = json.loads(ins.args[ins.args.index("["):])
        sources = words[:-1]
        assert sources, ins
        if "from" in flags:
            assert stages.get(flags["from"].lower(), ins.stage) < ins.stage, f"unknown stage in {ins}"
            continue
        for src in sources:
            path = REPO / src
            assert path.exists(), f"COPY source {src} is not in the repository"
            rel = Path(src).as_posix().rstrip("/")
            hit = [pat for pat in ignored if fnmatch.fnmatch(rel, pat.rstrip("/"))
                   or fnmatch.fnmatch(rel.split("/")[0], pat.rstrip("/"))]
            assert not hit, f"COPY source {src} is excluded by {IGNORE.name}: {hit}"


def test_the_build_copies_what_pip_install_needs(instructions: list[Instruction]) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    copied = set()
    for ins in instructions:
        if ins.cmd == "COPY" and "--from" not in ins.args:
            copied.update(Path(s).as_posix().rstrip("/") for s in flags_and_rest(ins.args)[1][:-1])
    assert {"pyproject.toml", project["readme"], "mountfs", "daemon/pyfuse3"} <= copied, copied


def test_pyfuse3_is_built_with_the_patch_before_mountfs_is_installed(instructions: list[Instruction]) -> None:
    runs = [ins.args for ins in instructions if ins.cmd == "RUN"]
    apt = " ".join(r for r in runs if "apt-get install" in r).split()
    assert {"fuse3", "libfuse3-dev", "pkg-config", "build-essential"} <= set(apt)
    build = next(i for i, r in enumerate(runs) if "daemon/pyfuse3/build.sh" in r)
    assert f"{VENV_BIN}/python" in runs[build]
    assert (REPO / "daemon" / "pyfuse3" / "build.sh").exists()
    install = next(i for i, r in enumerate(runs) if "pip install" in r and ".[fuse]" in r)
    assert build < install and f"{VENV_BIN}/pip" in runs[install]


def test_entrypoint_is_the_mountfsd_console_script(instructions: list[Instruction]) -> None:
    final = max(ins.stage for ins in instructions)
    (entry,) = [ins for ins in instructions if ins.cmd == "ENTRYPOINT"]
    (cmd,) = [ins for ins in instructions if ins.cmd == "CMD"]
    assert entry.stage == final and cmd.stage == final
    argv = json.loads(entry.args) + json.loads(cmd.args)  # exec form: mountfsd is PID 1 and gets SIGTERM
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert Path(argv[0]).name == "mountfsd" and scripts["mountfsd"] == "mountfs.daemon.main:main"
    assert argv[argv.index("--mountpoint") + 1] == "/datasets"
    env = env_of(instructions, final)
    assert VENV_BIN in env["PATH"].split(":")  # where pip put the console script
    assert env["MOUNTFS_CACHE_DIR"] == "/var/cache/mountfs"
    for name in (n for n in env if n.startswith("MOUNTFS_")):
        assert f'"{name}"' in (REPO / "mountfs" / "config.py").read_text(), f"the code never reads {name}"
    (health,) = [ins for ins in instructions if ins.cmd == "HEALTHCHECK"]
    assert "/datasets" in health.args
