"""The daily schedule asks for yesterday, across a DST change too; the refresh sensor's days."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from flowinst_etl.config import PipelineSettings
from pipelines.definitions import build_definitions
from pipelines.refresh import refresh_days

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


def test_the_refresh_checks_older_days_and_re_reads_the_recent_ones() -> None:
    settings = PipelineSettings(refresh_days=30, lookback_days=3, start_date=date(2026, 1, 1))
    checked, recent = refresh_days(date(2026, 3, 30), settings)
    assert recent == [date(2026, 3, 27), date(2026, 3, 28), date(2026, 3, 29)]
    assert checked[0] == date(2026, 2, 28) and checked[-1] == date(2026, 3, 26)
    assert len(checked) == 27


def test_the_refresh_starts_at_the_first_day_and_covers_the_lookback() -> None:
    settings = PipelineSettings(refresh_days=2, lookback_days=4, start_date=date(2026, 1, 1))
    assert refresh_days(date(2026, 1, 3), settings) == ([], [date(2026, 1, 1), date(2026, 1, 2)])
    checked, recent = refresh_days(date(2026, 1, 10), settings)
    assert (checked, len(recent)) == ([], 4)


def test_the_schedule_and_the_sensor_are_off_in_code() -> None:
    assert schedule("flow_instances_daily").default_status == dg.DefaultScheduleStatus.STOPPED
    defs = build_definitions(PipelineSettings())
    sensor = defs.resolve_sensor_def("flow_instances_refresh")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
