"""Every day's checks resolve on that day's partition in the Dagster instance when a range of
days runs as one run (``dagster asset materialize --partition-range``: ``test_assets.py``)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from flowinst_etl.config import PipelineSettings
from flowinst_etl.emulator import Emulator
from pipelines.checks import day_checks
from pipelines.partitions import daily_partitions
from tests.pipelines.conftest import FIRST_DAY, enos_environment
from tests.test_cli import run_cli

DAYS = [FIRST_DAY + timedelta(days=n) for n in range(3)]
#: The checks of the code location, named as the README lists them.
CHECKS = {
    ("flow_instances", "instance_ids_unique"),
    ("flow_instance_tasks", "rows_match_task_counts"),
    ("flow_instance_tasks", "rows_refer_to_instances_of_the_day"),
    ("flow_instance_relations", "rows_refer_to_instances_of_the_day"),
    ("flow_instance_upstream_flows", "rows_refer_to_instances_of_the_day"),
}


def check_keys() -> list[dg.AssetCheckKey]:
    keys = [c.spec.key for c in day_checks(daily_partitions(PipelineSettings()))]
    assert {(key.asset_key.to_user_string(), key.name) for key in keys} == CHECKS
    return keys


def check_history(home: Path, days: list[date]) -> dict[tuple[str, str, str], list[str]]:
    """(asset, check, day) -> the statuses of every execution recorded on that partition, and
    under (asset, check, "none") those recorded on no partition."""
    history = {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        for key in check_keys():
            name = (key.asset_key.to_user_string(), key.name)
            for partition in [*(day.isoformat() for day in days), None]:
                records = storage.get_asset_check_execution_history(
                    key, limit=50, partition_filter=PartitionKeyFilter(key=partition)
                )
                history[(*name, partition or "none")] = [r.status.value for r in records]
    return history


def assert_every_check_resolved_on_its_day(home: Path, days: list[date]) -> None:
    history = check_history(home, days)
    resolved = AssetCheckExecutionRecordStatus.SUCCEEDED.value
    for asset, check in CHECKS:
        for day in days:
            assert history[(asset, check, day.isoformat())] == [resolved], (asset, check, day)
        assert history[(asset, check, "none")] == [], (asset, check, "a result on no partition")


def test_a_cli_backfill_resolves_every_check_of_every_day(
    emulator: Emulator, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    settings = {"DAGSTER_HOME": str(home), "FLOWINST_START_DATE": FIRST_DAY.isoformat()}

    done = run_cli(
        "backfill",
        DAYS[0].isoformat(),
        DAYS[-1].isoformat(),
        "--data-dir",
        str(tmp_path / "data"),
        env={**enos_environment(emulator), **settings},
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert_every_check_resolved_on_its_day(home, DAYS)
