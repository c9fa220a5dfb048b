"""Peak memory of this process (and its finished children), per phase of a run."""

from __future__ import annotations

import functools
import os
import resource
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak() -> bool:
    """Reset the kernel's high-water mark of this process's RSS (Linux: ``echo 5 > clear_refs``),
    so that the next ``peak_rss_mb()`` is the peak of what ran since. False where unsupported."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """This process's RSS high-water mark in MB (since start or the last ``reset_peak``)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release_memory() -> None:
    """Return freed memory to the OS: Arrow's pool (which keeps freed blocks for reuse) and the C
    heap. (No ``gc.collect()``: the data path frees by reference count, and a full collection
    costs ~0.1 s with transformers' objects loaded.)"""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    _malloc_trim()


@functools.cache
def _libc():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _malloc_trim() -> None:
    """glibc keeps freed heap memory for reuse; give it back (no-op elsewhere)."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity: 1 when pinned to one core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
