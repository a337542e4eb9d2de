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

import pandas as pd
import pyarrow as pa

from flowinst_etl.changes.record import ChangeRecord, DayTracker
from flowinst_etl.changes.state import (
    CHANGES_KEY,
    committed_read,
    committed_update_times,
    read_checks,
    record_distrust,
)
from flowinst_etl.changes.update_time import clock_floor_ms
from flowinst_etl.config import DEFAULT_RETENTION_HOURS
from flowinst_etl.exceptions import ConfigError, FlowinstError
from flowinst_etl.extract import Extraction, Extractor
from flowinst_etl.interrupts import deferred_interrupts
from flowinst_etl.storage.root import DELTA, RootRecord, claim_root
from flowinst_etl.storage.write import DayWriter, open_day, repair, run_format, vacuum
from flowinst_etl.tables.flatten import flatten_instances
from flowinst_etl.windows import day_window

log = logging.getLogger(__name__)

PREVIEW_ROWS = 5
#: Instances flattened and written (as one row group per table) at a time at most, and their
#: bytes (as received JSON) at most: a day's memory is bounded by a chunk, not by the day's size
#: nor by what its records weigh.
CHUNK_INSTANCES = 20_000
CHUNK_BYTES = 16 << 20
#: The most ``chunk_bytes`` may be: a quarter of what one Arrow string array holds (2 GiB; a
#: column beyond it cannot be flattened), as a record weighs at least its graph's length in
#: characters, and a character takes at most four bytes in UTF-8.
MAX_CHUNK_BYTES = (2**31 - 1) // 4
CLOCK_SKEW_WARNING_MS = 60_000
PREVIEW_COLUMNS = ["instance_id", "flow_name", "type", "status_desc", "trigger_time"]


@dataclass(frozen=True)
class DayResult:
    """What loading one partition day did: rows per table, reconciliation and change record, or
    why it failed."""

    day: date
    rows: Mapping[str, int] = field(default_factory=dict)
    reconciliation: Mapping[str, int] = field(default_factory=dict)
    paths: Mapping[str, str] = field(default_factory=dict)
    preview: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    changes: ChangeRecord | None = None

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
    *,
    chunk_instances: int = CHUNK_INSTANCES,
    chunk_bytes: int = CHUNK_BYTES,
    table_format: str | None = None,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
) -> Iterator[DayResult]:
    """Extract, flatten and commit each day; days are extracted concurrently, committed one by one.

    A day is flattened and written ``chunk_instances`` at a time, and ``chunk_bytes`` of records
    at a time (a Parquet row group each), so its memory grows neither with its size nor with
    what its records weigh; its records wait in the extractor's spools.

    Args:
        extractor: extracts windows from the gateway.
        days: partition days, in ``partition_tz``.
        partition_tz: the timezone whose midnights bound a day.
        root: the dataset root, a local path or an fsspec URL.
        storage_options: fsspec options for ``root`` (endpoint, credentials).
        chunk_instances: instances flattened and written at a time, at most.
        chunk_bytes: bytes of records (as received JSON) flattened and written at a time, at
            most (1..``MAX_CHUNK_BYTES``); a record heavier than that is written alone.
        table_format: ``parquet`` or ``delta``, which must be the root's; ``None``: the root's
            (Parquet for a new root).
        retention_hours: how long Delta tables keep replaced files; older ones are vacuumed
            when the run starts.

    Yields:
        One result per day, as soon as the day is committed or has failed.

    Raises:
        ConfigError: ``chunk_instances`` is below 1, ``chunk_bytes`` out of range, or
            ``partition_tz`` (an IANA zone) or ``table_format`` is not the root's.
        StoreError: what earlier crashed writes left under ``root`` could not be removed.
    """
    if chunk_instances < 1:
        raise ConfigError(f"chunk_instances must be at least 1, not {chunk_instances}")
    if not 1 <= chunk_bytes <= MAX_CHUNK_BYTES:
        raise ConfigError(f"chunk_bytes must be 1..{MAX_CHUNK_BYTES}, not {chunk_bytes}")
    table_format = run_format(root, table_format, storage_options=storage_options)
    zone_name = getattr(partition_tz, "key", None)
    claim_root(
        root,
        RootRecord(partition_timezone=zone_name, table_format=table_format),
        storage_options,
    )
    for day in repair(root, storage_options=storage_options, days=days):
        log.warning("removed or finished what an unfinished write of %s left", day)
    if table_format == DELTA:
        removed = vacuum(root, storage_options=storage_options, retention_hours=retention_hours)
        log.info(
            "vacuum removed %d files replaced over %d hours ago", len(removed), retention_hours
        )
    windows = {day_window(day, partition_tz): day for day in days}
    server_tz = extractor.client.server_timezone()
    facts = {"clock_skew_ms": _noted_clock_skew(extractor)}
    read_from_ms = clock_floor_ms(facts["clock_skew_ms"])  # before any page of any day is read
    for window, outcome in extractor.extract_many(windows):
        # SIGINT/SIGTERM wait until the day is committed and its result taken by the caller.
        with deferred_interrupts():
            day = windows[window]
            if isinstance(outcome, Extraction):
                with outcome:
                    result = _load(
                        day,
                        outcome,
                        (server_tz, read_from_ms),
                        facts,
                        (root, storage_options, table_format),
                        (chunk_instances, chunk_bytes),
                    )
            else:
                result = DayResult(day, error=_reason(outcome))
            del outcome  # its records: freed before the next day is taken
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


def _load(
    day: date,
    extraction: Extraction,
    read: tuple[tzinfo, int],
    facts: Mapping[str, int],
    store: tuple[str, Mapping[str, Any] | None, str],
    chunk: tuple[int, int],
) -> DayResult:
    """Flatten and write one extracted day a chunk (instances, bytes) at a time, as one commit
    to ``store`` (root, storage options and table format), with its change record; ``read`` is
    the server zone and when the read began (``clock_floor_ms``)."""
    root, storage_options, table_format = store
    server_tz, read_from_ms = read
    extracted_at = datetime.now(timezone.utc)
    graph_errors = 0
    preview: list[dict[str, Any]] = []
    try:
        with open_day(
            root, day, storage_options=storage_options, table_format=table_format
        ) as writer:
            previous = committed_read(writer.store, day, read_checks(writer.store))
            tracker = DayTracker(server_tz, read_from_ms, previous)
            for found in extraction.chunks(*chunk):
                tracker.add(found)
                tables = flatten_instances(found, server_tz, extracted_at)
                del found  # the records: the tables stand in for them while they are written
                graph_errors += tables.graph_errors
                preview = preview or _preview(tables.arrow["flow_instances"])
                writer.append(tables.arrow)
            reconciliation = {
                **extraction.reconciliation.as_dict(),
                "graph_errors": graph_errors,
                **facts,
            }
            changes = tracker.finish(lambda: committed_update_times(root, day, storage_options))
            if changes.violation:  # kept before the commit: a day committed is a day compared
                _report_violation(writer, changes.violation)
            written = writer.commit(reconciliation, {CHANGES_KEY: changes.as_json()})
    except Exception as error:  # noqa: BLE001 - any failure stays in its day
        return DayResult(day, error=_reason(error))
    return DayResult(day, written.rows, reconciliation, written.paths, preview, changes=changes)


def _report_violation(writer: DayWriter, violation: str) -> None:
    """Say loudly that the change test cannot be relied on, and keep the proof at the root so
    every later refresh re-reads every day."""
    log.warning(
        "refresh cannot rely on its change test on this gateway, so it will re-read every day: "
        "%s: %s",
        writer.day,
        violation,
    )
    record_distrust(writer.store, violation, writer.day)


def _preview(instances: pa.Table) -> list[dict[str, Any]]:
    head = instances.select(PREVIEW_COLUMNS).slice(0, PREVIEW_ROWS)
    frame = head.to_pandas(types_mapper=pd.ArrowDtype)
    return frame.astype(str).to_dict("records")


def _reason(error: Exception) -> str:
    """One line: the message of an expected failure, with the exception's type for anything else."""
    text = str(error) if isinstance(error, FlowinstError) else f"{type(error).__name__}: {error}"
    return " ".join(text.split()) or type(error).__name__
