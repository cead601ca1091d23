"""The error hierarchy (mountfs/errors.py): one family per kind of failure, each with its exit code.

Exit codes are an interface: scripts branch on them, so the table below changes only on purpose.
How the CLI prints each error (one line, that code, no traceback) is tests/cli/test_main.py.
"""

from __future__ import annotations

import inspect

import pytest

from mountfs import errors
from mountfs.errors import (AlreadyExists, MountfsError, ObjectNotFound, PermissionDenied, StoreError,
                            TransientStoreError)

#: every family (a direct subclass of MountfsError) and its exit code; the classes below them keep it
FAMILY_CODES: dict[type[MountfsError], int] = {
    errors.MountfsError: 1,
    errors.UsageError: 2,  # bad input, as click's own usage errors
    errors.ConfigError: 2,  # bad input too: the config file or environment
    errors.NotFound: 3,
    errors.StateError: 4,
    errors.Conflict: 5,
    errors.IntegrityError: 6,
    errors.SourceChanged: 7,
    errors.LocalDiskError: 8,
    errors.StoreError: 9,
    errors.CacheUnusable: 10,
}
#: the one code two families share: both are the caller's input to fix
SHARED = {2: {errors.UsageError, errors.ConfigError}}

ALL = [cls for _, cls in inspect.getmembers(errors, inspect.isclass)
       if issubclass(cls, MountfsError) and cls.__module__ == errors.__name__]


def _family(cls: type[MountfsError]) -> type[MountfsError]:
    """The direct subclass of MountfsError that ``cls`` descends from (MountfsError for itself)."""
    return next((c for c in reversed(cls.__mro__) if MountfsError in c.__bases__), MountfsError)


def test_every_family_has_its_code() -> None:
    families = {cls for cls in ALL if cls.__bases__ == (MountfsError,)} | {MountfsError}
    assert families == set(FAMILY_CODES), "a new family needs its own exit code in this table (and in the docs)"
    for cls, code in FAMILY_CODES.items():
        assert cls.__dict__.get("exit_code") == code, cls


def test_families_are_told_apart_by_their_code() -> None:
    by_code: dict[int, set[type[MountfsError]]] = {}
    for cls, code in FAMILY_CODES.items():
        by_code.setdefault(code, set()).add(cls)
    assert {code: classes for code, classes in by_code.items() if len(classes) > 1} == SHARED


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_class_keeps_its_familys_code(cls: type[MountfsError]) -> None:
    assert cls.exit_code == FAMILY_CODES[_family(cls)]
    # 0 is success, and shells give 126 and up their own meanings (not executable, signals)
    assert 1 <= cls.exit_code <= 125
    assert cls.__doc__ and cls.__doc__.strip(), "each error says what it means"


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_the_message_is_the_text_the_user_sees(cls: type[MountfsError]) -> None:
    err = cls("store s3://b/p is not reachable; check the endpoint")
    assert str(err) == "store s3://b/p is not reachable; check the endpoint"
    assert isinstance(err, MountfsError)


def test_store_error_family() -> None:
    # callers catch StoreError for any storage failure
    for cls in (ObjectNotFound, AlreadyExists, PermissionDenied, TransientStoreError):
        assert issubclass(cls, StoreError)


def test_conditions_of_a_mount_belong_to_the_families_callers_already_catch() -> None:
    assert issubclass(errors.IsADirectory, errors.UsageError)
    assert issubclass(errors.VersionGone, errors.NotFound)
    assert issubclass(errors.DiskFull, errors.LocalDiskError)
