"""The change test of refresh: which committed days the gateway changed since they were read.

What it relies on, where each belief is checked, and the test that fails without the check:

- Every change of an instance moves its update time (a rerun, a late end, a cancellation; also
  a new instance in a past day). Not visible in any one answer: whenever a committed day is read
  in full anyway (daily run, backfill, lookback, refresh), ``DayTracker`` compares it with the
  write it replaces; a day that changed while no instance's update time passed the watermark is
  a proof against the test (tests/test_refresh.py, frozen update times).
- ``timestamp`` shows the update time: never before ``startTime``/``endTime`` (``update_ms``, on
  every record the probe reads and every record of a full read; emulator ``timestamp_shows``
  "create"), and the order of the update-time sorter (below).
- The sorter is accepted (``update_time``, else ``updateTime``; 62102 means not) and honoured:
  update times never rise along the pages (``UpdateProbe``; emulator ``sorter_names``).
- The trigger filter holds: every row inside the window asked (``UpdateProbe``).
- Pages hold what they say: no more rows than asked; a short page with rows after it means a
  cap, and the walk starts again at the size served; rows dropped after paging are a proof
  against the test (``UpdateProbe``).
- Clocks: a watermark is the earlier of this machine's clock and the gateway's, less
  ``CLOCK_MARGIN_MS`` (``clock_floor_ms``).

A proof against the test is kept at the root (``state``): from then on every refresh re-reads
every day, and says why on every run.
"""

from __future__ import annotations

from flowinst_etl.changes.plan import CHANGED, NEW, UNCHANGED, DayCheck, RefreshPlan, plan_refresh
from flowinst_etl.changes.record import ChangeRecord, CommittedRead, DayTracker

__all__ = [
    "CHANGED",
    "NEW",
    "UNCHANGED",
    "ChangeRecord",
    "CommittedRead",
    "DayCheck",
    "DayTracker",
    "RefreshPlan",
    "plan_refresh",
]
