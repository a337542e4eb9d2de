"""Where extracted records wait until their day is written: in memory while a budget shared by
the whole run lasts, then in a temporary file, so a day of any size is read like any other.

A day's records must all be read before any of it can be written (a day is exact or refused as
a whole), and a day of 200,000 instances holds about a gigabyte of records as Python objects.
Records beyond the budget are pickled to an unnamed temporary file under ``TMPDIR`` (the kernel
removes it when the run ends, however it ends); pickling keeps every value as the page parser
gave it (NaN and infinities included), so a record read back is the record received.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import threading
from typing import Any, BinaryIO

from flowinst_etl.exceptions import ConfigError, StoreError

#: Records held in memory across every extracted window not yet written, by default: about
#: 100 MB of records (those of four 3,000-instance days in flight fit).
RECORDS_IN_MEMORY = 25_000


class RecordBudget:
    """How many more records may be held in memory; shared by the spools of one run."""

    def __init__(self, records: int = RECORDS_IN_MEMORY) -> None:
        if records < 0:
            raise ConfigError(f"records in memory must be 0 or more, not {records}")
        self._left = records
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Take room for one record; False when none is left."""
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True

    def give_back(self, records: int) -> None:
        with self._lock:
            self._left += records


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

    One thread writes a spool; any thread may read it once the writer is done.
    """

    def __init__(self, budget: RecordBudget) -> None:
        self.budget = budget
        self.held = 0
        self._file: BinaryIO | None = None
        self._size = 0

    def keep(self, record: dict[str, Any]) -> Kept:
        """Keep ``record``; what comes back gives it again through :func:`load`.

        Raises:
            StoreError: the temporary file could not be made or written (no room, no folder).
        """
        if self.budget.take():
            self.held += 1
            return record
        data = pickle.dumps(record, pickle.HIGHEST_PROTOCOL)
        try:
            self._append(data)
        except OSError as exc:
            raise StoreError(
                "records beyond FLOWINST_RECORDS_IN_MEMORY could not wait in a temporary file "
                f"under {tempfile.gettempdir()}: {exc}; point TMPDIR at a folder with room, or "
                "raise FLOWINST_RECORDS_IN_MEMORY"
            ) from exc
        self._size += len(data)
        return Spilled(self, self._size - len(data), len(data))

    def _append(self, data: bytes) -> None:
        if self._file is None:  # unnamed: gone with the process, whatever ends it
            self._file = tempfile.TemporaryFile(prefix="flowinst-records-", buffering=0)
        descriptor, offset = self._file.fileno(), self._size
        written = os.pwrite(descriptor, data, offset)
        while written < len(data):
            written += os.pwrite(descriptor, data[written:], offset + written)

    def read(self, offset: int, length: int) -> dict[str, Any]:
        assert self._file is not None
        data = os.pread(self._file.fileno(), length, offset)
        record: dict[str, Any] = pickle.loads(data)
        return record

    def close(self) -> None:
        """Give the memory budget back and remove the file; kept records become unreadable."""
        self.budget.give_back(self.held)
        self.held = 0
        if self._file is not None:
            self._file.close()
            self._file = None


def load(kept: Kept) -> dict[str, Any]:
    """The record that :meth:`Spool.keep` was given."""
    return kept.load() if isinstance(kept, Spilled) else kept
