"""Yesterday's partition is watched: its freshness check fails while the day is missing and passes
once it is materialised; the sensor evaluates the checks exactly when their verdict can change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import dagster as dg
import pytest

from flowinst_etl.config import PipelineSettings
from flowinst_etl.emulator import Emulator, EmulatorConfig
from pipelines.definitions import build_definitions
from pipelines.freshness import FRESHNESS_SENSOR, due_partition
from tests.pipelines.conftest import enos_environment

TODAY = datetime.now(timezone.utc).date()
YESTERDAY = TODAY - timedelta(days=1)
TABLES = [
    "flow_instances",
    "flow_instance_tasks",
    "flow_instance_relations",
    "flow_instance_upstream_flows",
]


@pytest.fixture(scope="module")
def recent_days() -> Iterator[Emulator]:
    config = EmulatorConfig(seed=25, start_day=TODAY - timedelta(days=4), end_day=TODAY, per_day=40)
    with Emulator(config) as running:
        yield running


@pytest.fixture
def defs(
    recent_days: Emulator, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> dg.Definitions:
    """The code location over the last days, in UTC, with a deadline of midnight: whenever the
    test runs, yesterday's partition is due."""
    for name, value in enos_environment(recent_days).items():
        monkeypatch.setenv(name, value)
    settings = PipelineSettings(
        data_dir=str(tmp_path_factory.mktemp("data")),
        start_date=TODAY - timedelta(days=3),
        freshness_deadline=time(0, 0),
    )
    return build_definitions(settings)


def materialize(defs: dg.Definitions, instance: dg.DagsterInstance, day: date) -> None:
    job = defs.resolve_job_def("flow_instances_job")
    assert job.execute_in_process(partition_key=day.isoformat(), instance=instance).success


def sensor_tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> Any:
    context = dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor)
    return defs.resolve_sensor_def(FRESHNESS_SENSOR)(context), context.cursor


def run_requested_checks(
    defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest
) -> dict[str, bool]:
    """Execute the checks the sensor asked for, as the daemon would; table -> passed."""
    result = dg.materialize(
        [*(defs.assets or []), *(defs.asset_checks or [])],
        selection=dg.AssetSelection.checks(*(request.asset_check_keys or [])),
        instance=instance,
        resources=defs.resources,
        tags={"dagster/sensor_name": FRESHNESS_SENSOR},
    )
    return {e.asset_key.to_user_string(): e.passed for e in result.get_asset_check_evaluations()}


def recorded(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[str, bool]:
    """The latest freshness verdict of each table, as stored in the instance (what the UI shows)."""
    keys = [k for k in defs.resolve_asset_graph().asset_check_keys if k.name == "freshness_check"]
    verdicts = {}
    for key, summary in instance.event_log_storage.get_asset_check_summary_records(keys).items():
        record = summary.last_completed_check_execution_record
        assert record is not None and record.event is not None
        evaluation = record.event.asset_check_evaluation
        assert evaluation is not None
        verdicts[key.asset_key.to_user_string()] = evaluation.passed
    return verdicts


def test_a_missing_yesterday_fails_its_check_until_it_is_materialised(
    defs: dg.Definitions,
) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        materialize(defs, instance, YESTERDAY - timedelta(days=1))
        request, cursor = sensor_tick(defs, instance, None)
        assert isinstance(request, dg.RunRequest)
        assert run_requested_checks(defs, instance, request) == dict.fromkeys(TABLES, False)
        assert recorded(instance, defs) == dict.fromkeys(TABLES, False)

        skipped, cursor = sensor_tick(defs, instance, cursor)
        assert isinstance(skipped, dg.SkipReason), "nothing changed: no new evaluation"

        materialize(defs, instance, YESTERDAY)
        request, cursor = sensor_tick(defs, instance, cursor)
        assert isinstance(request, dg.RunRequest), "yesterday arrived: evaluate again"
        assert run_requested_checks(defs, instance, request) == dict.fromkeys(TABLES, True)
        assert recorded(instance, defs) == dict.fromkeys(TABLES, True)


def test_a_run_that_skipped_the_checks_gets_them_evaluated_once_runs_end(
    defs: dg.Definitions,
) -> None:
    """A run of the tables plans their freshness checks when selected by asset (as `dg launch
    --assets`, the UI and its backfills select) and skips them; the sensor evaluates them once
    no other run is in progress (a backfill's next run would skip them again)."""
    with dg.DagsterInstance.ephemeral() as instance:
        request, cursor = sensor_tick(defs, instance, None)
        run_requested_checks(defs, instance, request)
        implicit = defs.resolve_implicit_global_asset_job_def()
        day = YESTERDAY - timedelta(days=2)
        tables = [dg.AssetKey(t) for t in TABLES]
        skipping = implicit.execute_in_process(
            partition_key=day.isoformat(), instance=instance, asset_selection=tables
        )
        assert skipping.success
        next_run = dg.DagsterRun(job_name=implicit.name, status=dg.DagsterRunStatus.STARTED)
        instance.add_run(next_run)
        waiting, cursor = sensor_tick(defs, instance, cursor)
        assert isinstance(waiting, dg.SkipReason), "a run is in progress: not yet"

        instance.report_run_failed(next_run)
        request, cursor = sensor_tick(defs, instance, cursor)
        assert isinstance(request, dg.RunRequest)
        assert run_requested_checks(defs, instance, request) == dict.fromkeys(TABLES, False)
        skipped, _ = sensor_tick(defs, instance, cursor)
        assert isinstance(skipped, dg.SkipReason)


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (datetime(2026, 11, 10, 2, 59), "2026-11-08"),  # before 03:00: the day before yesterday
        (datetime(2026, 11, 10, 3, 0), "2026-11-09"),  # from 03:00: yesterday
        (datetime(2026, 11, 10, 23, 59), "2026-11-09"),
    ],
)
def test_the_due_partition_follows_the_deadline(now: datetime, due: str) -> None:
    assert due_partition(now, time(3, 0)) == due
