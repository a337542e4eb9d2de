"""The code location loads, and the library stays free of Dagster."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.instance.config import PoolGranularity

from flowinst_etl.config import PipelineSettings
from flowinst_etl.exceptions import ConfigError
from pipelines.definitions import build_definitions

ROOT = Path(__file__).parents[2]
DOCUMENTED_INSTANCE = ROOT / "docs" / "dagster.yaml"
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
    assert {s.name for s in defs.schedules or []} == {"flow_instances_daily"}
    assert {s.name for s in defs.sensors or []} == {
        "flow_instances_refresh",
        "flow_instances_freshness",
    }
    assert defs.resolve_job_def("flow_instances_job") is not None


def test_dg_check_defs_loads_the_project(tmp_path: Path) -> None:
    """`dg check defs` (CI runs it) finds the project from pyproject's [tool.dg] and loads it."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dg")), "check", "defs", "--target-path", str(ROOT)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "All definitions loaded successfully." in done.stdout + done.stderr


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
    assert {a for a, name in checks if name == "freshness_check"} == TABLES


def test_the_library_imports_without_dagster() -> None:
    code = (
        "import sys, flowinst_etl, flowinst_etl.cli, flowinst_etl.emulator; "
        "sys.exit(1 if 'dagster' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_documented_instance_is_what_the_deployment_guide_says(tmp_path: Path) -> None:
    """docs/dagster.yaml loads into an instance with a run queue, a process per run, the enos_api
    pool limiting whole runs to 3 at a time, and run retries; docs/deployment.md shows that same
    file."""
    shutil.copy(DOCUMENTED_INSTANCE, tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert isinstance(instance.run_launcher, dg.DefaultRunLauncher)
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.pool_granularity == PoolGranularity.RUN
        assert concurrency.pool_config.default_pool_limit == 3
        assert concurrency.run_queue_config is not None
        assert concurrency.run_queue_config.max_concurrent_runs == 6
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
    guide = (ROOT / "docs" / "deployment.md").read_text()
    start = guide.index("```yaml\n# $DAGSTER_HOME/dagster.yaml") + len("```yaml\n")
    shown = guide[start : guide.index("```", start)]
    assert yaml.safe_load(shown) == yaml.safe_load(DOCUMENTED_INSTANCE.read_text())


def test_the_deployer_names_the_owners_of_the_tables() -> None:
    settings = PipelineSettings.from_env({"FLOWINST_OWNERS": "team:data, ops@example.com"})
    graph = build_definitions(settings).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert graph.get(key).owners == ["team:data", "ops@example.com"]
    assert build_definitions(PipelineSettings()).resolve_asset_graph().get(key).owners == []
    with pytest.raises(ConfigError, match="FLOWINST_OWNERS: 'data' is neither an email nor team"):
        PipelineSettings.from_env({"FLOWINST_OWNERS": "team:data, data"})


def test_a_range_backfill_is_one_run_unless_days_per_run_is_set() -> None:
    def policy(environ: dict[str, str]) -> dg.BackfillPolicy | None:
        defs = build_definitions(PipelineSettings.from_env(environ))
        return defs.resolve_assets_def("flow_instances").backfill_policy

    assert policy({}) == dg.BackfillPolicy.single_run()
    assert policy({"FLOWINST_DAYS_PER_RUN": "3"}) == dg.BackfillPolicy.multi_run(3)
    for wrong in ("0", "367", "three"):
        with pytest.raises(ConfigError, match="FLOWINST_DAYS_PER_RUN"):
            PipelineSettings.from_env({"FLOWINST_DAYS_PER_RUN": wrong})
