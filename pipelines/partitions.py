"""The daily partitions: one per day of trigger time, in the configured partition timezone."""

from __future__ import annotations

from datetime import date

import dagster as dg

from flowinst_etl.config import PipelineSettings


def daily_partitions(settings: PipelineSettings) -> dg.DailyPartitionsDefinition:
    """Days from ``FLOWINST_START_DATE`` to yesterday, between midnights of the partition zone."""
    return dg.DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(), timezone=settings.timezone
    )


def backfill_policy(settings: PipelineSettings) -> dg.BackfillPolicy:
    """How a range backfill is split into runs: one run for the whole range, or
    ``FLOWINST_DAYS_PER_RUN`` consecutive days per run, each run queued and launched on its own."""
    if settings.days_per_run is None:
        return dg.BackfillPolicy.single_run()
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=settings.days_per_run)


def partition_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[date]:
    """The days a run materialises: one for a partition run, many for a range backfill."""
    return [date.fromisoformat(key) for key in context.partition_keys]
