"""Dataset aliases: which data a job used, kept in a run record file (``Dataset.get(alias=...)``).

ClearML writes the id of each dataset a task got under the task's "Datasets"
hyperparameters, and with ``overridable=True`` lets a remote run swap it.
mountfs has no task server: ``get`` records ``alias -> version`` in a JSON file
(``Config.run_record``: ``$MOUNTFS_RUN_RECORD``, else ``./.mountfs/run.json``),
and an override comes from ``MOUNTFS_DATASET_<ALIAS>`` or the record's own
``"overrides"``.  The format is docs/FORMAT.md, "Run records".

Several aliases and several processes (DataLoader workers, ranks of one job)
update one record: each update is a read, change and atomic replace of the
whole file under an exclusive ``flock`` of a lock file beside it, so a reader
sees the old record or the new one, never half of either, and no update is lost.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import logging
import os
import re
import secrets
import socket
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from ..catalog import DatasetRecord, names
from ..config import DATASET_OVERRIDE_PREFIX, Config
from ..errors import NotFound, UsageError
from ..session import Session
from . import lifecycle
from .version import Version

log = logging.getLogger(__name__)

#: the key naming a run record's format, and its version
FORMAT_KEY = "mountfs_run_record"
FORMAT_VERSION = 1
#: what the record says for a dataset field it does not know (a requested dataset that does not exist here)
_UNKNOWN = None


def record_path(cfg: Config) -> Path:
    """The run record this process writes: ``cfg.run_record``, a relative path taken in the working folder."""
    return Path(os.path.abspath(os.path.expanduser(cfg.run_record)))


def variable_name(alias: str) -> str:
    """``MOUNTFS_DATASET_<ALIAS>``: the alias upper-cased, every character but letters, digits and ``_`` as ``_``."""
    return DATASET_OVERRIDE_PREFIX + re.sub(r"[^A-Z0-9_]", "_", alias.upper())


def check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not alias.strip():
        raise UsageError(f"alias must be a non-empty string, not {alias!r}")
    return alias


# --------------------------------------------------------------------------- reading a record


def empty_record() -> dict[str, Any]:
    return {FORMAT_KEY: FORMAT_VERSION, "overrides": {}, "aliases": {}}


def load(path: str | Path, missing_ok: bool = False) -> dict[str, Any]:
    """The run record at ``path``, checked: ``UsageError`` naming the file when it is not one.

    A missing file is ``NotFound``, or an empty record with ``missing_ok``.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return empty_record()
        raise NotFound(f"no run record at {path}; `Dataset.get(alias=...)` writes one "
                       "(MOUNTFS_RUN_RECORD names it, else ./.mountfs/run.json)") from None
    except IsADirectoryError:
        raise UsageError(f"run record {path} is a folder; name the record's JSON file") from None
    except UnicodeDecodeError:
        raise UsageError(f"run record {path} is not UTF-8 text; fix or remove it") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"run record {path} is not valid JSON ({exc.msg}, line {exc.lineno}); "
                         "fix or remove it") from None
    return check_record(doc, str(path))


def check_record(doc: Any, where: str) -> dict[str, Any]:
    """``doc`` if it has a run record's shape, else a ``UsageError`` saying what is wrong in ``where``."""
    def bad(what: str) -> UsageError:
        return UsageError(f"run record {where}: {what}; fix or remove it")

    if not isinstance(doc, dict):
        raise bad(f"not a JSON object but {type(doc).__name__}")
    version = doc.setdefault(FORMAT_KEY, FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise bad(f"{FORMAT_KEY} {version!r} is not a format this mountfs reads (up to {FORMAT_VERSION})")
    overrides = doc.setdefault("overrides", {})
    if not isinstance(overrides, dict) or not all(isinstance(v, str) and v.strip() for v in overrides.values()):
        raise bad('"overrides" must be an object of alias -> dataset id or "project/name/version"')
    aliases = doc.setdefault("aliases", {})
    if not isinstance(aliases, dict):
        raise bad('"aliases" must be an object of alias -> the dataset it named')
    for alias, entry in aliases.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise bad(f"alias {alias!r} has no dataset id")
    return doc


# --------------------------------------------------------------------------- writing a record


def update(path: Path, alias: str, entry: dict[str, Any]) -> None:
    """Set ``aliases[alias]`` of the record at ``path`` to ``entry``, keeping everything else in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        # the whole read-change-replace under the lock: two writers reading the same old record
        # would each drop the other's alias
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        doc = load(path, missing_ok=True)
        doc["aliases"][alias] = entry
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "x", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2, ensure_ascii=False)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    finally:
        os.close(lock_fd)  # releases the flock


def _script() -> str:
    """The calling script: ``__main__``'s file (also in spawned workers), else ``sys.argv[0]`` (``-c``, a REPL: "")."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if isinstance(path, str) and path:
        return os.path.abspath(path)
    return sys.argv[0] if sys.argv and sys.argv[0] else ""


def _dataset(rec: DatasetRecord) -> dict[str, Any]:
    return {"id": rec.id, "project": rec.project, "name": rec.name, "version": rec.version}


def describe_entry(entry: dict[str, Any]) -> str:
    """``project/name version (id)`` of a record's alias entry (or its ``requested`` part)."""
    if not entry.get("project"):
        return str(entry.get("id") or entry.get("query") or "?")
    return f"{entry.get('project')}/{entry.get('name')} {entry.get('version')} ({entry.get('id')})"


# --------------------------------------------------------------------------- get with an alias


@dataclass(frozen=True)
class Query:
    """What a ``Dataset.get`` call asked for (``lifecycle.get``'s parameters)."""

    dataset_id: str | None = None
    dataset_project: str | None = None
    dataset_name: str | None = None
    dataset_tags: Sequence[str] | None = None
    only_completed: bool = False
    only_published: bool = False
    auto_create: bool = False
    writable_copy: bool = False
    dataset_version: str | None = None

    def text(self) -> str:
        """The query in one string, for the record and messages."""
        what = self.dataset_id or "/".join(x for x in (self.dataset_project, self.dataset_name,
                                                      self.dataset_version) if x) or "any dataset"
        return what + (f" tags={','.join(self.dataset_tags)}" if self.dataset_tags else "")

    def run(self, sess: Session, **changed: Any) -> Version:
        """``lifecycle.get`` of this query, with the ``changed`` fields."""
        q = replace(self, **changed)
        return lifecycle.get(sess, q.dataset_id, q.dataset_project, q.dataset_name, q.dataset_tags, q.only_completed,
                             q.only_published, q.auto_create, q.writable_copy, q.dataset_version)


def find_override(cfg: Config, alias: str, doc: dict[str, Any], path: Path) -> tuple[str, str] | None:
    """(where it was set, the dataset it names) of the override for ``alias``: the variable, then the record's."""
    variable = variable_name(alias)
    spec = cfg.dataset_overrides.get(variable[len(DATASET_OVERRIDE_PREFIX):])
    if spec:
        return variable, spec
    spec = doc["overrides"].get(alias)
    if spec:
        return f'"overrides" of {path}', spec
    return None


def resolve_override(sess: Session, spec: str, query: Query) -> Version:
    """The version an override names (``names.parse_selector``), with the call's status filters and
    ``writable_copy``; the other reading of ``p/n/2024`` too, as for the CLI's ``DATASET``."""
    sel = names.parse_selector(spec)
    same = dict(dataset_tags=None, auto_create=False)  # an override names its dataset itself
    if sel.dataset_id:
        return query.run(sess, dataset_id=sel.dataset_id, dataset_project=None, dataset_name=None,
                         dataset_version=None, **same)
    try:
        return query.run(sess, dataset_id=None, dataset_project=sel.project, dataset_name=sel.name,
                         dataset_version=sel.version, **same)
    except NotFound:
        other = names.other_reading(sel)
        if other is None:
            raise
        try:
            return query.run(sess, dataset_id=None, dataset_project=other.project, dataset_name=other.name,
                             dataset_version=None, **same)
        except NotFound:
            pass
        raise


def get(sess: Session, alias: str, overridable: bool, query: Query) -> Version:
    """``Dataset.get(..., alias=alias, overridable=...)``: the version, recorded under ``alias``.

    With ``overridable`` an override (``find_override``) replaces what the query
    finds, and the record shows both; one that names nothing is a
    ``UsageError``, never a fallback to the query.  Without it an override is
    ignored with a warning.  A record that cannot be written is warned about:
    the job still gets its data.
    """
    check_alias(alias)
    path = record_path(sess.config)
    doc = load(path, missing_ok=True)  # before anything is looked up: its overrides may be what counts
    override = find_override(sess.config, alias, doc, path)
    if override is not None and not overridable:
        log.warning("alias %r: an override is set (%s=%s) but Dataset.get() was called without "
                    "overridable=True; ignored, using %s", alias, override[0], override[1], query.text())
        override = None
    requested: dict[str, Any]
    if override is None:
        used = query.run(sess)
        requested = {"query": query.text(), **_dataset(used.record)}
    else:
        where, spec = override
        try:
            used = resolve_override(sess, spec, query)
        except (NotFound, UsageError) as exc:
            raise UsageError(f"alias {alias!r}: the override {where}={spec!r} names no dataset here ({exc}); "
                             "fix or remove it (mountfs does not fall back to the requested dataset)") from None
        try:
            requested = {"query": query.text(), **_dataset(query.run(sess, auto_create=False,
                                                                     writable_copy=False).record)}
        except NotFound:  # asked for something this store lacks: what was asked is still worth recording
            requested = {"query": query.text(), "id": _UNKNOWN, "project": query.dataset_project,
                         "name": query.dataset_name, "version": query.dataset_version}
    entry = {
        **_dataset(used.record),
        "store": sess.catalog_url,
        "requested": requested,
        "override": None if override is None else {"from": override[0], "value": override[1]},
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "script": _script(),
    }
    try:
        update(path, alias, entry)
    except OSError as exc:
        log.warning("alias %r -> %s: cannot write the run record %s (%s); set MOUNTFS_RUN_RECORD to a "
                    "writable file", alias, used.record.id, path, exc.strerror or exc)
        return used
    if override is None:
        log.info("alias %r -> %s (%s) recorded in %s", alias, used.record.id, describe_entry(entry), path)
    else:
        log.info("alias %r -> %s (%s), overridden by %s (requested %s), recorded in %s", alias, used.record.id,
                 describe_entry(entry), override[0], describe_entry(requested), path)
    return used


# --------------------------------------------------------------------------- comparing two records


def diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Which aliases changed from record ``a`` to ``b``: ``added``, ``removed``, ``changed`` (another
    dataset id) and ``same``."""
    aa, bb = a["aliases"], b["aliases"]
    return {
        "added": {k: bb[k] for k in sorted(bb.keys() - aa.keys())},
        "removed": {k: aa[k] for k in sorted(aa.keys() - bb.keys())},
        "changed": {k: {"from": aa[k], "to": bb[k]} for k in sorted(aa.keys() & bb.keys())
                    if aa[k]["id"] != bb[k]["id"]},
        "same": sorted(k for k in aa.keys() & bb.keys() if aa[k]["id"] == bb[k]["id"]),
    }
