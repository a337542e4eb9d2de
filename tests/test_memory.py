"""A run's process returns freed memory: Arrow allocates from the system allocator after it."""

from __future__ import annotations

import subprocess
import sys


def test_a_run_allocates_arrow_memory_from_the_system_allocator() -> None:
    # In a process of its own: the setting is process-wide and would outlive the test.
    code = (
        "import pyarrow as pa; from flowinst_etl.memory import return_freed_memory; "
        "before = pa.default_memory_pool().backend_name; return_freed_memory(); "
        "print(before, pa.default_memory_pool().backend_name)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = done.stdout.split()
    assert (before, after) == (before, "system") and before != "system"
