"""The code location loads, and the library stays free of Dagster."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from flowinst_etl.config import PipelineSettings
from pipelines.definitions import build_definitions

TABLES = {
    "flow_instances",
    "flow_instance_tasks",
    "flow_instance_relations",
    "flow_instance_upstream_flows",
}


def test_definitions_load_from_the_module_dagster_dev_uses() -> None:
    from pipelines.definitions import defs

    assert isinstance(defs, dg.Definitions)
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == TABLES
    assert {s.name for s in defs.schedules or []} == {
        "flow_instances_daily",
        "flow_instances_lookback",
    }
    assert defs.resolve_job_def("flow_instances_job") is not None


def test_partitions_follow_the_configured_timezone_and_start() -> None:
    settings = PipelineSettings(timezone="Asia/Shanghai", start_date=PipelineSettings().start_date)
    defs = build_definitions(settings)
    partitions = defs.resolve_job_def("flow_instances_job").partitions_def
    assert isinstance(partitions, dg.TimeWindowPartitionsDefinition)
    assert partitions.timezone == "Asia/Shanghai"
    assert partitions.get_first_partition_key() == settings.start_date.isoformat()


def test_every_asset_check_is_declared() -> None:
    defs = build_definitions(PipelineSettings())
    checks = {
        (key.asset_key.to_user_string(), key.name)
        for key in defs.resolve_asset_graph().asset_check_keys
    }
    assert ("flow_instances", "instance_ids_unique") in checks
    assert ("flow_instance_tasks", "rows_match_task_counts") in checks
    assert {a for a, name in checks if name == "rows_refer_to_instances_of_the_day"} == (
        TABLES - {"flow_instances"}
    )


def test_the_library_imports_without_dagster() -> None:
    code = (
        "import sys, flowinst_etl, flowinst_etl.cli, flowinst_etl.emulator; "
        "sys.exit(1 if 'dagster' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_documented_instance_settings_load(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).parents[2] / "docs" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
