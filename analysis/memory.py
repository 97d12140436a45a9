"""Memory settings for the duration of an analysis (glibc heap, numpy, Arrow)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
from collections.abc import Iterator

import pyarrow as pa
from numpy._core import multiarray as _np_multiarray

# glibc mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


@contextlib.contextmanager
def memory_tuning(enabled: bool = True, trim: bool = True) -> Iterator[None]:
    """Keep freed memory in the process while the analysis runs (glibc, numpy).

    The analysis allocates many short-lived arrays of tens of megabytes.  By default glibc
    maps each one fresh from the kernel and numpy asks for transparent huge pages, so every
    temporary array is zeroed again by the kernel — on virtual machines that is a large part
    of the run time.  Inside this context glibc serves large blocks from its heap and keeps
    what is freed (``M_MMAP_MAX=0``, high ``M_TRIM_THRESHOLD``) and numpy does not advise
    huge pages; on exit the defaults come back and the heap is trimmed (unless ``trim`` is
    false: a process about to end leaves that to the kernel).  Arrow allocates
    from the same tuned heap meanwhile (its system pool instead of mimalloc, which hands
    memory back to the kernel and takes it again).  Elsewhere than on glibc, or when numpy
    lacks the switch, this does nothing.
    """
    if not enabled:
        yield
        return
    libc = None
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.gnu_get_libc_version  # noqa: B018 - glibc only
        except (OSError, AttributeError):
            libc = None
    hugepage = getattr(_np_multiarray, "_set_madvise_hugepage", None)
    previous_huge = None
    previous_pool = None
    try:
        if libc is not None:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
            previous_pool = pa.default_memory_pool()
            pa.set_memory_pool(pa.system_memory_pool())
        if hugepage is not None:
            previous_huge = hugepage(False)
        yield
    finally:
        if hugepage is not None and previous_huge is not None:
            hugepage(previous_huge)
        if previous_pool is not None:
            pa.set_memory_pool(previous_pool)
        if libc is not None:
            libc.mallopt(_M_MMAP_MAX, 65536)
            libc.mallopt(_M_TRIM_THRESHOLD, 128 * 1024)
            if trim:
                libc.malloc_trim(0)
