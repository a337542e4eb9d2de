"""One partition and a range materialised through Dagster against the emulator, vs its truth."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from flowinst_etl import read_table, write_day
from flowinst_etl.config import PipelineSettings
from flowinst_etl.emulator import Emulator
from flowinst_etl.storage.root import RootRecord, claim_root
from flowinst_etl.windows import day_window, zone
from pipelines.assets import build_flow_instance_tables
from pipelines.partitions import daily_partitions
from pipelines.resources import run_resources
from pipelines.schedules import RANGE_END_TAG, RANGE_START_TAG
from tests.guarantees.harness import REPOSITORY, snapshot
from tests.pipelines.conftest import FIRST_DAY
from tests.pipelines.test_check_history import assert_every_check_resolved_on_its_day
from tests.support import day_truth, expected_rows

TIMEZONE = "Asia/Shanghai"
CHECK_NAMES = [
    "instance_ids_unique",
    "rows_match_task_counts",
    *["rows_refer_to_instances_of_the_day"] * 3,
]
TABLES = [
    "flow_instances",
    "flow_instance_tasks",
    "flow_instance_relations",
    "flow_instance_upstream_flows",
]


def materialize(
    root: Path, tags: dict[str, str], table_format: str = "parquet"
) -> dg.ExecuteInProcessResult:
    partitions = daily_partitions(PipelineSettings(timezone=TIMEZONE, start_date=FIRST_DAY))
    settings = PipelineSettings(data_dir=str(root), max_workers=3, table_format=table_format)
    return dg.materialize(
        [build_flow_instance_tables(partitions, str(root))],
        resources=run_resources(settings),
        tags=tags,
        raise_on_error=False,
    )


def assert_day_matches_truth(emulator: Emulator, root: Path, day: date) -> None:
    truth = day_truth(emulator, day, TIMEZONE)
    instances = read_table("flow_instances", str(root), day, day)
    assert sorted(instances["instance_id"]) == sorted(t.record["instanceId"] for t in truth)
    expected = expected_rows(truth)
    for table in TABLES:
        assert len(read_table(table, str(root), day, day)) == expected[table], table


def materialized_partitions(result: dg.ExecuteInProcessResult, asset: str) -> set[str]:
    return {
        event.event_specific_data.materialization.partition
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(asset)
    }


@pytest.mark.parametrize("table_format", ["parquet", "delta"])
def test_one_partition_matches_the_ground_truth(
    enos_env: Emulator, tmp_path: Path, table_format: str
) -> None:
    day = FIRST_DAY + timedelta(days=1)
    result = materialize(tmp_path, {"dagster/partition": day.isoformat()}, table_format)
    assert result.success
    assert_day_matches_truth(enos_env, tmp_path, day)
    events = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["flow_instances"]
    ]
    metadata = events[0].event_specific_data.materialization.metadata
    assert metadata["dagster/row_count"].value == len(day_truth(enos_env, day, TIMEZONE))
    assert metadata["requests"].value >= 3 and "preview" in metadata
    assert metadata["table_format"].value == table_format
    assert (tmp_path / "flow_instances" / "_delta_log").is_dir() == (table_format == "delta")
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 5 and all(check.passed for check in checks)


def test_a_range_runs_once_and_commits_every_day(enos_env: Emulator, tmp_path: Path) -> None:
    days = [FIRST_DAY + timedelta(days=n) for n in range(5)]
    result = materialize(
        tmp_path, {RANGE_START_TAG: days[0].isoformat(), RANGE_END_TAG: days[-1].isoformat()}
    )
    assert result.success
    for table in TABLES:
        assert materialized_partitions(result, table) == {d.isoformat() for d in days}
    for day in days:
        assert_day_matches_truth(enos_env, tmp_path, day)
    # The lookback schedule and a UI backfill launch such a run: each day's checks on its day.
    evaluations = result.get_asset_check_evaluations()
    assert all(e.passed for e in evaluations)
    assert sorted((e.asset_check_key.name, e.partition) for e in evaluations) == sorted(
        (name, d.isoformat()) for d in days for name in CHECK_NAMES
    )


def test_a_failing_day_fails_the_run_but_not_the_other_days(
    enos_env: Emulator, tmp_path: Path
) -> None:
    days = [FIRST_DAY + timedelta(days=n) for n in range(4)]
    broken = day_window(days[2], zone(TIMEZONE))
    enos_env.reconfigure(failing_window_ms=(broken.start_ms, broken.end_ms - 1))
    try:
        result = materialize(
            tmp_path, {RANGE_START_TAG: days[0].isoformat(), RANGE_END_TAG: days[-1].isoformat()}
        )
    finally:
        enos_env.reconfigure(failing_window_ms=None)
    assert not result.success
    good = {d.isoformat() for d in days} - {days[2].isoformat()}
    assert materialized_partitions(result, "flow_instances") == good
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert days[2].isoformat() in failure.message or days[2].isoformat() in str(
        failure.event_specific_data.error
    )
    assert not (tmp_path / "flow_instances" / f"trigger_date={days[2]}").exists()
    for day in days:
        if day != days[2]:
            assert_day_matches_truth(enos_env, tmp_path, day)


@pytest.mark.parametrize("missing", ["ENOS_API_URL", "ENOS_SECRET_KEY"])
def test_missing_credentials_fail_before_anything_is_written(
    enos_env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.delenv(missing)
    with pytest.raises(dg.DagsterInvalidConfigError, match=missing):
        materialize(tmp_path, {"dagster/partition": FIRST_DAY.isoformat()})
    assert not any(tmp_path.iterdir())


def test_refused_credentials_fail_before_anything_is_written(
    enos_env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENOS_SECRET_KEY", "not-the-secret")
    result = materialize(tmp_path, {"dagster/partition": FIRST_DAY.isoformat()})
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "1003" in str(failure.event_specific_data.error)
    assert not any(tmp_path.iterdir())


def test_a_root_of_another_zone_fails_the_run_before_any_request(
    enos_env: Emulator, tmp_path: Path
) -> None:
    claim_root(str(tmp_path), RootRecord(partition_timezone="UTC"))
    before, requests = snapshot(tmp_path), enos_env.stats()["requests"]

    result = materialize(tmp_path, {"dagster/partition": FIRST_DAY.isoformat()})

    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    refusal = f"partition timezone UTC ({tmp_path}/_flowinst/root.json); this run's is {TIMEZONE}"
    assert refusal in str(failure.event_specific_data.error)
    assert enos_env.stats()["requests"] == requests, "the gateway was called"
    assert snapshot(tmp_path) == before


def test_dg_launch_materialises_a_partition_range(enos_env: Emulator, tmp_path: Path) -> None:
    """README's `dg launch --assets ... --partition-range`, from outside the project folder (dg
    reads .env from its working directory, and a developer's clone may hold one)."""
    days = [FIRST_DAY + timedelta(days=n) for n in range(2)]
    command = [
        str(Path(sys.executable).with_name("dg")),
        "launch",
        "--target-path",
        str(REPOSITORY),
        "--assets",
        "group:enos",
        "--partition-range",
        f"{days[0]}...{days[-1]}",
    ]
    settings = {
        "FLOWINST_DATA_DIR": str(tmp_path),
        "FLOWINST_TIMEZONE": TIMEZONE,
        "FLOWINST_START_DATE": FIRST_DAY.isoformat(),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    (tmp_path / "dagster_home").mkdir()
    done = subprocess.run(
        command,
        env={**os.environ, **settings},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for day in days:
        assert_day_matches_truth(enos_env, tmp_path, day)
    assert_every_check_resolved_on_its_day(tmp_path / "dagster_home", days)


def test_a_root_of_the_other_format_fails_the_run_before_any_request(
    enos_env: Emulator, tmp_path: Path
) -> None:
    write_day(str(tmp_path), FIRST_DAY, {}, {}, table_format="delta")
    before = enos_env.stats()["requests"]
    result = materialize(tmp_path, {"dagster/partition": FIRST_DAY.isoformat()})
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "holds days of table format delta" in str(failure.event_specific_data.error)
    assert enos_env.stats()["requests"] == before
