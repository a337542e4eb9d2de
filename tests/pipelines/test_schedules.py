"""Schedules ask for the right partitions, across a DST change too."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from flowinst_etl.config import PipelineSettings
from pipelines.definitions import build_definitions
from pipelines.schedules import RANGE_END_TAG, RANGE_START_TAG, lookback_range

BERLIN = ZoneInfo("Europe/Berlin")


def schedule(name: str, timezone: str = "Europe/Berlin") -> dg.ScheduleDefinition:
    settings = PipelineSettings(timezone=timezone, lookback_days=3)
    defs = build_definitions(settings)
    return defs.resolve_schedule_def(name)


def run_requests(definition: dg.ScheduleDefinition, at: datetime) -> list[dg.RunRequest]:
    defs = build_definitions(PipelineSettings(timezone=str(at.tzinfo), lookback_days=3))
    with dg.build_schedule_context(
        scheduled_execution_time=at, repository_def=defs.get_repository_def()
    ) as context:
        data = definition.evaluate_tick(context)
    return list(data.run_requests or [])


@pytest.mark.parametrize(
    ("at", "partition"),
    [
        (datetime(2026, 11, 15, 0, 30, tzinfo=BERLIN), "2026-11-14"),
        (datetime(2026, 3, 30, 0, 30, tzinfo=BERLIN), "2026-03-29"),  # a 23-hour day
        (datetime(2026, 10, 26, 0, 30, tzinfo=BERLIN), "2026-10-25"),  # a 25-hour day
    ],
)
def test_daily_schedule_materialises_yesterday(at: datetime, partition: str) -> None:
    daily = schedule("flow_instances_daily")
    assert daily.execution_timezone == "Europe/Berlin"
    (request,) = run_requests(daily, at)
    assert request.partition_key == partition


def test_lookback_schedule_requests_the_last_days_in_one_run() -> None:
    lookback = schedule("flow_instances_lookback")
    (request,) = run_requests(lookback, datetime(2026, 3, 30, 6, 0, tzinfo=BERLIN))
    assert request.tags[RANGE_START_TAG] == "2026-03-27"
    assert request.tags[RANGE_END_TAG] == "2026-03-29"


def test_lookback_range_counts_whole_days() -> None:
    assert lookback_range(datetime(2026, 1, 1, 6, tzinfo=BERLIN), 1) == ("2025-12-31", "2025-12-31")


def test_schedules_are_off_in_code() -> None:
    for name in ("flow_instances_daily", "flow_instances_lookback"):
        assert schedule(name).default_status == dg.DefaultScheduleStatus.STOPPED
