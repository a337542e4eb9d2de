"""Freed memory goes back to the system, so a run's peak RSS is what it holds at once, not what
its threads once held.

Two allocators keep freed memory for their own reuse by default: glibc's malloc gives threads
arenas of their own (up to eight per core), and Arrow's default pool (mimalloc) keeps its pages.
A run parses pages in its worker threads while its main thread flattens and writes days, so both
grow with the run; bench/bench_backfill.py measures what they cost in peak RSS.
"""

from __future__ import annotations

import ctypes
import sys

import pyarrow as pa

#: ``mallopt``'s parameter for the most arenas glibc's malloc makes (malloc.h).
M_ARENA_MAX = -8
#: Arenas kept: one for the main thread, one shared by the workers.
ARENAS = 2


def return_freed_memory() -> None:
    """Make this process return freed memory: Arrow allocates from the system allocator, and
    glibc's malloc (on Linux) keeps at most ``ARENAS`` arenas. Process-wide; call it once,
    before threads start, from what owns the process (the CLI, a Dagster run's code location)."""
    pa.set_memory_pool(pa.system_memory_pool())
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).mallopt(M_ARENA_MAX, ARENAS)
        except (OSError, AttributeError):  # not glibc: its allocator keeps its own rules
            pass
