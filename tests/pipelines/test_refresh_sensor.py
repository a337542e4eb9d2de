"""The morning refresh sensor against the emulator: history changed after a backfill, the sensor
launches runs for the changed and recent days only, and every day ends as the emulator's truth;
a gateway whose update times do not move is caught by a recent day's full read, said loudly,
and the next morning re-reads every day."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from flowinst_etl import read_table
from flowinst_etl.config import PipelineSettings
from flowinst_etl.emulator import Emulator, EmulatorConfig
from pipelines.definitions import build_definitions
from pipelines.schedules import RANGE_END_TAG, RANGE_START_TAG
from tests.pipelines.conftest import enos_environment
from tests.support import day_bounds_ms, day_truth

TIMEZONE = "Asia/Shanghai"
DAYS = [date(2026, 11, 2) + timedelta(days=n) for n in range(6)]  # 11-02 .. 11-07
MORNING = datetime(2026, 11, 8, 7, 0)


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """An emulator of its own (history is changed), the ENOS_* variables pointing at it."""
    config = EmulatorConfig(
        seed=5, start_day=date(2026, 10, 31), end_day=date(2026, 11, 9), per_day=90
    )
    with Emulator(config) as running:
        for name, value in enos_environment(running).items():
            monkeypatch.setenv(name, value)
        yield running


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as temporary:
        yield temporary


def definitions(root: Path, at: datetime) -> dg.Definitions:
    settings = PipelineSettings(
        data_dir=str(root),
        timezone=TIMEZONE,
        start_date=date(2026, 11, 1),
        max_workers=3,
        refresh_days=6,
        lookback_days=2,
    )
    return build_definitions(settings, clock=lambda tz: at.replace(tzinfo=tz))


def run(defs: dg.Definitions, instance: dg.DagsterInstance, tags: dict[str, str]) -> None:
    job = defs.resolve_job_def("flow_instances_job")
    assert job.execute_in_process(instance=instance, tags=tags).success


def backfilled(root: Path, instance: dg.DagsterInstance) -> dg.Definitions:
    """The definitions on MORNING, with every day of DAYS committed through them."""
    defs = definitions(root, MORNING)
    run(defs, instance, {RANGE_START_TAG: str(DAYS[0]), RANGE_END_TAG: str(DAYS[-1])})
    return defs


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> Any:
    sensor = defs.resolve_sensor_def("flow_instances_refresh")
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
    ) as context:
        return sensor.evaluate_tick(context)


def ranges(data: Any) -> list[tuple[str, str]]:
    return [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in data.run_requests]


def verdicts(data: Any) -> dict[str, str]:
    return {event.partition: event.metadata["verdict"].value for event in data.asset_events}


def commit_bytes(root: Path, day: date) -> bytes:
    return (root / "_flowinst" / "commits" / f"{day}.json").read_bytes()


def assert_days_are_the_truth(emulator: Emulator, root: Path, days: list[date]) -> None:
    """Each day holds exactly the emulator's instances with their status now."""
    for day in days:
        truth = {
            t.record["instanceId"]: t.record["status"] for t in day_truth(emulator, day, TIMEZONE)
        }
        frame = read_table("flow_instances", str(root), day, day, columns=["instance_id", "status"])
        assert dict(zip(frame["instance_id"], frame["status"], strict=True)) == truth, day


def change(emulator: Emulator, day: date, count: int) -> set[str]:
    return {c.instance_id for c in emulator.late_changes(count, *day_bounds_ms(day, TIMEZONE))}


def test_the_sensor_reads_the_changed_and_recent_days_only(
    gateway: Emulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    defs = backfilled(root, instance)
    untouched = {day: commit_bytes(root, day) for day in (DAYS[0], DAYS[3])}
    assert change(gateway, DAYS[1], 2) and change(gateway, DAYS[2], 3)
    assert change(gateway, DAYS[5], 2)  # a recent day: re-read in full anyway

    early = tick(definitions(root, MORNING.replace(hour=5)), instance, None)
    assert early.skip_message == "the refresh of 2026-11-08 starts at 06:00"
    data = tick(defs, instance, None)

    assert ranges(data) == [(str(DAYS[1]), str(DAYS[2])), (str(DAYS[4]), str(DAYS[5]))]
    assert verdicts(data) == {
        str(DAYS[0]): "unchanged",
        str(DAYS[1]): "changed",
        str(DAYS[2]): "changed",
        str(DAYS[3]): "unchanged",
        str(DAYS[4]): "re-read",
        str(DAYS[5]): "re-read",
    }
    assert all(e.metadata["change_test"].value == "trusted" for e in data.asset_events)
    assert data.cursor == "2026-11-08"
    for request in data.run_requests:
        run(defs, instance, request.tags)

    assert_days_are_the_truth(gateway, root, DAYS)
    assert {day: commit_bytes(root, day) for day in untouched} == untouched
    assert tick(defs, instance, data.cursor).skip_message == "2026-11-08 is refreshed"


def test_a_gateway_whose_update_times_stay_is_caught_and_every_day_is_re_read(
    gateway: Emulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    defs = backfilled(root, instance)
    gateway.reconfigure(update_times="frozen")
    change(gateway, DAYS[1], 3)
    change(gateway, DAYS[5], 3)

    data = tick(defs, instance, None)
    # the probe's own answers show it: an instance that ended after its update time
    proof = json.loads((root / "_flowinst" / "refresh" / "untrusted.json").read_text())
    assert "timestamp is not the time of the last update" in proof["reason"], proof
    assert ranges(data) == [(str(DAYS[0]), str(DAYS[5]))]  # so every day is re-read
    assert all(e.metadata["change_test"].value.startswith("NOT TRUSTED") for e in data.asset_events)
    for request in data.run_requests:
        run(defs, instance, request.tags)
    assert_days_are_the_truth(gateway, root, DAYS)
