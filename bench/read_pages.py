"""Kernel page-cache probes behind ``read.py``'s B warm figures.

Why warm B through any FUSE mount is slower than ext4: the kernel copies page
cache to the reader one folio at a time, and ext4 caches big files in large
folios while this kernel's FUSE caches 4 KiB pages.  :func:`large_folio_share`
measures that; :func:`fill_small_pages` builds the like-for-like control.
"""

from __future__ import annotations

import ctypes
import os
import struct

from read_steps import BUF


def large_folio_share(path: str, pages: int = 8192) -> float | None:
    """Share of the first ``pages`` cached pages of ``path`` that sit in large (multi-page) folios.

    Maps the file, touches each page, looks up its frame in /proc/self/pagemap
    and its compound-page flags in /proc/kpageflags (root only; None without them)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = min(pages * 4096, os.path.getsize(path)) // 4096 * 4096
    if not size:
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        if addr in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            for off in range(0, size, 4096):
                ctypes.c_char.from_address(addr + off).value  # fault the page in (it is cached: warm)
            with open("/proc/self/pagemap", "rb") as pm, open("/proc/kpageflags", "rb") as kf:
                large = 0
                for i in range(size // 4096):
                    pm.seek(((addr >> 12) + i) * 8)
                    pfn = struct.unpack("<Q", pm.read(8))[0] & ((1 << 55) - 1)
                    if not pfn:
                        return None  # frame numbers hidden: not root
                    kf.seek(pfn * 8)
                    large += bool(struct.unpack("<Q", kf.read(8))[0] & (3 << 15))  # COMPOUND_HEAD | COMPOUND_TAIL
        finally:
            libc.munmap(addr, size)
    except OSError:
        return None
    finally:
        os.close(fd)
    return large / (size // 4096)


def fill_small_pages(root: str) -> None:
    """Bring every file under ``root`` into the page cache in 4 KiB folios.

    With POSIX_FADV_RANDOM the kernel skips read-ahead and adds each missing
    page as a single-page folio: the page cache of local files then looks like
    the one this kernel (6.18) builds for any FUSE file, which makes it the
    like-for-like control for warm reads through a mount."""
    for d, _, names in os.walk(root):
        for name in names:
            fd = os.open(os.path.join(d, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
                off = 0
                while os.pread(fd, BUF, off):
                    off += BUF
            finally:
                os.close(fd)
