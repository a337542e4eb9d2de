"""The daily schedule: yesterday, shortly after midnight (the morning refresh is a sensor, in
``pipelines.refresh``)."""

from __future__ import annotations

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
