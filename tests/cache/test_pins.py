"""Pins (mountfs/cache/pins.py): files wait for the reads that hold one of their chunks."""

from __future__ import annotations

import threading

import pytest

from mountfs.cache.pins import Pins

A, B, C = b"a" * 16, b"b" * 16, b"c" * 16


def make() -> tuple[Pins, list[bytes]]:
    deleted: list[bytes] = []
    return Pins(deleted.append), deleted


def test_a_file_with_no_pinned_chunk_is_deleted_at_once() -> None:
    pins, deleted = make()
    pins.start_read(C)
    pins.delete_when_free([(b"f1", [A, B])])
    assert deleted == [b"f1"]
    pins.end_read(C)
    assert pins.idle()


def test_a_file_waits_for_the_last_pin_of_any_of_its_chunks() -> None:
    pins, deleted = make()
    pins.start_read(A)
    pins.start_read(A)  # two reads of one chunk
    pins.hold([B])
    pins.delete_when_free([(b"f1", [A, B]), (b"f2", [C])])
    assert deleted == [b"f2"]
    pins.end_read(A)
    pins.release([B])
    assert deleted == [b"f2"]  # one read of A is still on
    assert pins.now() == {A}
    pins.end_read(A)
    assert deleted == [b"f2", b"f1"] and pins.idle()


def test_release_of_what_is_not_held_is_an_error() -> None:
    pins, _ = make()
    pins.hold([A])
    pins.release([A])
    with pytest.raises(ValueError, match="not pinned"):
        pins.release([A])


def test_forget_doomed_hands_over_what_waits() -> None:
    pins, deleted = make()
    pins.start_read(A)
    pins.delete_when_free([(b"f1", [A])])
    assert pins.forget_doomed() == [b"f1"] and deleted == []
    pins.end_read(A)
    assert deleted == [] and pins.idle()


def test_threads_unpinning_while_files_are_doomed_leave_nothing_behind() -> None:
    """Reads end while evictions doom their files, in every interleaving the threads find:
    each file is deleted exactly once, and none is left waiting."""
    pins, deleted = make()
    rounds = 2000
    go = threading.Barrier(2)

    def reader() -> None:
        for i in range(rounds):
            go.wait()
            pins.end_read(i.to_bytes(16, "big"))

    for i in range(rounds):
        pins.start_read(i.to_bytes(16, "big"))
    t = threading.Thread(target=reader)
    t.start()
    for i in range(rounds):
        go.wait()
        pins.delete_when_free([(b"f%d" % i, [i.to_bytes(16, "big")])])
    t.join(30)
    assert sorted(deleted) == sorted(b"f%d" % i for i in range(rounds)) and pins.idle()
