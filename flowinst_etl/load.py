"""Loading days: extract each day's window, flatten it, and commit it to the store on its own.

A failing day is reported and skipped; it neither blocks nor rolls back the days around it, whatever
the exception (a bug in one day's data must not cost the other days).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone, tzinfo
from typing import Any

from flowinst_etl.exceptions import FlowinstError
from flowinst_etl.extract import Extraction, Extractor
from flowinst_etl.interrupts import deferred_interrupts
from flowinst_etl.store import repair, write_day
from flowinst_etl.tables.flatten import FlowTables, flatten_instances
from flowinst_etl.windows import day_window

log = logging.getLogger(__name__)

PREVIEW_ROWS = 5
CLOCK_SKEW_WARNING_MS = 60_000
PREVIEW_COLUMNS = ["instance_id", "flow_name", "type", "status_desc", "trigger_time"]


@dataclass(frozen=True)
class DayResult:
    """What loading one partition day did: rows per table and reconciliation, or why it failed."""

    day: date
    rows: Mapping[str, int] = field(default_factory=dict)
    reconciliation: Mapping[str, int] = field(default_factory=dict)
    paths: Mapping[str, str] = field(default_factory=dict)
    preview: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the day was committed."""
        return self.error is None


def load_days(
    extractor: Extractor,
    days: Sequence[date],
    partition_tz: tzinfo,
    root: str,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[DayResult]:
    """Extract, flatten and commit each day; days are extracted concurrently, committed one by one.

    Args:
        extractor: extracts windows from the gateway.
        days: partition days, in ``partition_tz``.
        partition_tz: the timezone whose midnights bound a day.
        root: the dataset root, a local path or an fsspec URL.
        storage_options: fsspec options for ``root`` (endpoint, credentials).

    Yields:
        One result per day, as soon as the day is committed or has failed.

    Raises:
        StoreError: what earlier crashed writes left under ``root`` could not be removed.
    """
    for day in repair(root, storage_options=storage_options):
        log.warning("removed what an unfinished write of %s left", day)
    windows = {day_window(day, partition_tz): day for day in days}
    server_tz = extractor.client.server_timezone()
    facts = {"clock_skew_ms": _noted_clock_skew(extractor)}
    for window, outcome in extractor.extract_many(windows):
        # SIGINT/SIGTERM wait until the day is committed and its result taken by the caller.
        with deferred_interrupts():
            day = windows[window]
            if isinstance(outcome, Extraction):
                staged = _flatten(day, outcome, server_tz, facts)
            else:
                staged = DayResult(day, error=_reason(outcome))
            del outcome  # the records: the tables stand in for them while the day is written
            if isinstance(staged, DayResult):
                result = staged
            else:
                result = _write(staged, root, storage_options)
            if not result.ok:
                log.error("day %s failed: %s", day, result.error)
            yield result


def _noted_clock_skew(extractor: Extractor) -> int:
    """The gateway's clock minus ours; a large skew is worth a warning because signed requests
    carry our timestamp (windows are absolute epoch ms and do not depend on it)."""
    skew = extractor.client.clock_skew_ms()
    if abs(skew) > CLOCK_SKEW_WARNING_MS:
        log.warning(
            "the gateway's clock is %+d s off ours; signatures may be refused", round(skew / 1000)
        )
    return skew


@dataclass(frozen=True)
class _Flattened:
    """One extracted day as tables, with its reconciliation, ready to be written."""

    day: date
    tables: FlowTables
    reconciliation: Mapping[str, int]


def _flatten(
    day: date, extraction: Extraction, server_tz: tzinfo, facts: Mapping[str, int]
) -> _Flattened | DayResult:
    try:
        tables = flatten_instances(extraction.instances, server_tz, datetime.now(timezone.utc))
    except Exception as error:  # noqa: BLE001 - any failure stays in its day
        return DayResult(day, error=_reason(error))
    reconciliation = {
        **extraction.reconciliation.as_dict(),
        "graph_errors": tables.graph_errors,
        **facts,
    }
    return _Flattened(day, tables, reconciliation)


def _write(staged: _Flattened, root: str, storage_options: Mapping[str, Any] | None) -> DayResult:
    day, tables = staged.day, staged.tables
    try:
        written = write_day(
            root, day, tables.as_dict(), staged.reconciliation, storage_options=storage_options
        )
    except Exception as error:  # noqa: BLE001 - any failure stays in its day
        return DayResult(day, error=_reason(error))
    preview = tables.instances.head(PREVIEW_ROWS)[PREVIEW_COLUMNS].astype(str).to_dict("records")
    return DayResult(day, dict(written.rows), staged.reconciliation, dict(written.paths), preview)


def _reason(error: Exception) -> str:
    """One line: the message of an expected failure, with the exception's type for anything else."""
    text = str(error) if isinstance(error, FlowinstError) else f"{type(error).__name__}: {error}"
    return " ".join(text.split()) or type(error).__name__
