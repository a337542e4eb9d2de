"""A day the change test found current, read in full without writing it and compared with the
write it holds: the check of the belief that every change moves an update time, for a run that
reads no such day in full anyway."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, tzinfo
from typing import Any

from flowinst_etl.changes.record import DayTracker
from flowinst_etl.changes.state import committed_read, committed_update_times, read_checks
from flowinst_etl.changes.update_time import clock_floor_ms
from flowinst_etl.extract import Extractor
from flowinst_etl.storage.filesystem import Store
from flowinst_etl.windows import day_window

#: Records taken at a time; of each only a hash and an update time are kept.
_READ_CHUNK = 5_000


def verify_current(
    extractor: Extractor,
    root: str,
    day: date,
    partition_tz: tzinfo,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[str | None, int]:
    """Read ``day`` in full and compare it with its write; nothing is written.

    Returns:
        Why the change test cannot be relied on, when the day changed though the test found
        it current (else ``None``), and the search requests the read took.

    Raises:
        FlowinstError: the gateway, the extraction or the dataset root failed.
    """
    store = Store.open(root, storage_options)
    server_tz = extractor.client.server_timezone()
    previous = committed_read(store, day, read_checks(store))
    tracker = DayTracker(server_tz, clock_floor_ms(0), previous)
    with extractor.extract(day_window(day, partition_tz)) as extraction:
        for chunk in extraction.chunks(_READ_CHUNK):
            tracker.add(chunk)
        requests = extraction.reconciliation.as_dict().get("requests", 0)
    record = tracker.finish(lambda: committed_update_times(root, day, storage_options))
    return record.violation, requests
