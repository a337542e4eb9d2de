"""Where extracted records wait until their day is written: in memory while a budget of bytes
shared by the whole run lasts, then in a temporary file, so a day of any size is read like any
other, whatever its records weigh.

A day's records must all be read before any of it can be written (a day is exact or refused as
a whole), and a day of 200,000 instances holds a gigabyte or more of records as Python objects.
A record is weighed by its JSON as received (its graph, and a share of the rest of its answer's
body): a count of records would bound nothing for a tenant whose graphs are ten times
larger. Records beyond the budget are pickled to an unnamed temporary file under ``TMPDIR``
(the kernel removes it when the run ends, however it ends); pickling keeps every value as the
page parser gave it (NaN and infinities included), so a record read back is the record received.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import threading
from collections.abc import Iterator
from typing import IO, Any

from flowinst_etl.exceptions import ConfigError, StoreError

#: Megabytes of records (as received JSON) held in memory across every extracted window not yet
#: written, by default; held as Python objects they take about twice that.
RECORDS_MEMORY_MB = 32
#: What a record weighed on average where ``FLOWINST_RECORDS_IN_MEMORY`` (a count, deprecated)
#: must still be read as bytes.
RECORD_BYTES_ASSUMED = 4096
#: Bytes a spool writes and reads at a time.
BLOCK_BYTES = 256 * 1024


def budget_bytes(records_memory_mb: int | None, records_in_memory: int | None = None) -> int:
    """The memory budget in bytes: ``records_memory_mb`` (``FLOWINST_RECORDS_MEMORY_MB``), else
    the deprecated count ``records_in_memory`` (``FLOWINST_RECORDS_IN_MEMORY``) read as records of
    ``RECORD_BYTES_ASSUMED`` bytes, else the default."""
    if records_memory_mb is not None:
        return records_memory_mb << 20
    if records_in_memory is not None:
        return records_in_memory * RECORD_BYTES_ASSUMED
    return RECORDS_MEMORY_MB << 20


class MemoryBudget:
    """How many more bytes of records may be held in memory; shared by the spools of one run.

    Args:
        max_bytes: the budget, in bytes of records as received.
    """

    def __init__(self, max_bytes: int = RECORDS_MEMORY_MB << 20) -> None:
        if max_bytes < 0:
            raise ConfigError(f"the memory budget must be 0 bytes or more, not {max_bytes}")
        self._left = max_bytes
        self._lock = threading.Lock()

    def has_room(self) -> bool:
        """Whether records may still be held in memory (none would be spilled now)."""
        return self._left > 0

    def take(self, size: int) -> bool:
        """Take room for a record of ``size`` bytes; False when not that much is left."""
        with self._lock:
            if self._left < size:
                return False
            self._left -= size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self._left += size


class Spilled:
    """A record in a spool's file: where it is, not what it is."""

    __slots__ = ("spool", "offset", "length")

    def __init__(self, spool: Spool, offset: int, length: int) -> None:
        self.spool, self.offset, self.length = spool, offset, length

    def load(self) -> dict[str, Any]:
        return self.spool.read(self.offset, self.length)


#: A kept record: the record itself, or where it was spilled.
Kept = dict[str, Any] | Spilled


class Spool:
    """The records of one walk: in memory while ``budget`` allows, then spilled to a file.

    One thread writes a spool; any thread may read it, each read under the spool's lock. The
    file is written and read in blocks of :data:`BLOCK_BYTES`, not a system call per record
    (those took about as long as pickling itself).
    """

    def __init__(self, budget: MemoryBudget) -> None:
        self.budget = budget
        self.held = 0
        self._file: IO[bytes] | None = None
        self._size = 0
        self._lock = threading.Lock()
        self._unflushed = False
        self._block = b""
        self._block_offset = 0
        self._read_to = -1

    def keep(self, record: dict[str, Any], size: int) -> Kept:
        """Keep ``record``, weighing ``size`` bytes; what comes back gives it again through
        :func:`load`.

        Raises:
            StoreError: the temporary file could not be made or written (no room, no folder).
        """
        if self.budget.take(size):
            self.held += size
            return record
        data = pickle.dumps(record, pickle.HIGHEST_PROTOCOL)
        with self._lock, _no_room_is_a_store_error():
            if self._file is None:  # unnamed: gone with the process, whatever ends it
                self._file = tempfile.TemporaryFile("w+b", BLOCK_BYTES, prefix="flowinst-records-")
            self._file.write(data)
            self._unflushed = True
        self._size += len(data)
        return Spilled(self, self._size - len(data), len(data))

    def read(self, offset: int, length: int) -> dict[str, Any]:
        """The record spilled at ``offset``, ``length`` bytes long.

        Raises:
            StoreError: what waits in the write buffer could not be written.
        """
        with self._lock:
            assert self._file is not None
            if self._unflushed:
                with _no_room_is_a_store_error():
                    self._file.flush()
                self._unflushed = False
            start = offset - self._block_offset
            if start < 0 or start + length > len(self._block):
                # A block when reading on from the last record (records are read back in the
                # order they were kept), else only this record; pread leaves the file position,
                # where the writer appends, as it is.
                size = max(length, BLOCK_BYTES) if offset == self._read_to else length
                self._block = os.pread(self._file.fileno(), size, offset)
                self._block_offset, start = offset, 0
            self._read_to = offset + length
            data = memoryview(self._block)[start : start + length]
        record: dict[str, Any] = pickle.loads(data)
        return record

    def close(self) -> None:
        """Give the memory budget back and remove the file; kept records become unreadable."""
        self.budget.give_back(self.held)
        self.held = 0
        with self._lock:
            if self._file is not None:
                with contextlib.suppress(OSError):  # unwritten records are not needed any more
                    self._file.close()
                self._file = None
            self._block = b""


@contextlib.contextmanager
def _no_room_is_a_store_error() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise StoreError(
            "records beyond FLOWINST_RECORDS_MEMORY_MB could not wait in a temporary file "
            f"under {tempfile.gettempdir()}: {exc}; point TMPDIR at a folder with room, or "
            "raise FLOWINST_RECORDS_MEMORY_MB"
        ) from exc


def load(kept: Kept) -> dict[str, Any]:
    """The record that :meth:`Spool.keep` was given."""
    return kept.load() if isinstance(kept, Spilled) else kept
