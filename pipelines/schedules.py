"""Schedules: yesterday once a day, and a lookback re-extracting recent days as statuses settle."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # the type build_schedule_from_partitioned_job returns; not exported by dagster
    from dagster._core.definitions.partitions.partitioned_schedule import (
        UnresolvedPartitionedAssetScheduleDefinition,
    )

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def daily_schedule(
    job: dg.UnresolvedAssetJobDefinition,
) -> dg.ScheduleDefinition | UnresolvedPartitionedAssetScheduleDefinition:
    """Materialise the previous day shortly after midnight in the partition timezone."""
    return dg.build_schedule_from_partitioned_job(
        job,
        name="flow_instances_daily",
        hour_of_day=0,
        minute_of_hour=30,
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )


def lookback_range(scheduled_at: datetime, days: int) -> tuple[str, str]:
    """The partition keys of the ``days`` full days before ``scheduled_at`` (in its timezone)."""
    last = scheduled_at.date() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    return first.isoformat(), last.isoformat()


def lookback_schedule(
    job: dg.UnresolvedAssetJobDefinition, timezone: str, days: int
) -> dg.ScheduleDefinition:
    """Re-extract the last ``days`` days in one run every morning: instances change status late."""

    @dg.schedule(
        name="flow_instances_lookback",
        job=job,
        cron_schedule="0 6 * * *",
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    def flow_instances_lookback(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        assert context.scheduled_execution_time is not None
        first, last = lookback_range(context.scheduled_execution_time, days)
        return dg.RunRequest(
            run_key=f"lookback-{first}-{last}", tags={RANGE_START_TAG: first, RANGE_END_TAG: last}
        )

    return flow_instances_lookback
