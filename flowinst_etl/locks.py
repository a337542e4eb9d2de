"""Exclusive locks between processes of one machine: ``flock`` on a file or folder, which the
kernel releases when the holder dies, so a killed process never leaves a lock behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator


@contextlib.contextmanager
def held(path: str) -> Iterator[None]:
    """Hold the exclusive lock of ``path`` (a folder, or a file created if missing) while the
    block runs, waiting for another holder first."""
    flags = os.O_RDONLY if os.path.isdir(path) else os.O_RDWR | os.O_CREAT
    descriptor = os.open(path, flags, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
