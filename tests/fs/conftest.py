"""Fixtures for the kernel-free tests of mountfs/fs."""

from __future__ import annotations

import random

import pytest

from mountfs.session import current


@pytest.fixture
def session():
    """The test's session (its own store and cache, from the autouse isolated_env)."""
    return current()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)
