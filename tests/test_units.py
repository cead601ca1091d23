"""Sizes as people read them (``mountfs/units.py``): the CLI's tables and gc's summary share them."""

from __future__ import annotations

import pytest

from mountfs.units import human_size


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (1, "1 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), ((1 << 20) - 1, "1024.0 KiB"),
    (1 << 20, "1.0 MiB"), (5 << 30, "5.0 GiB"), (3 << 40, "3.0 TiB"), (2048 << 40, "2.0 PiB"),
    (1 << 60, "1.0 EiB"), (99999999999999999999999, "84.7 ZiB"), (10 ** 40, "8.27e+15 YiB"),
])
def test_human_size(n, text):
    assert human_size(n) == text
