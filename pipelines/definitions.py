"""The flowinst-etl code location: ``dagster dev`` loads ``defs`` from here (see pyproject)."""

from __future__ import annotations

import dagster as dg

from flowinst_etl.config import PipelineSettings
from pipelines.assets import build_flow_instance_tables
from pipelines.freshness import freshness_checks, freshness_sensor
from pipelines.partitions import backfill_policy, daily_partitions
from pipelines.refresh import Clock, refresh_sensor, system_clock
from pipelines.resources import run_resources
from pipelines.schedules import daily_schedule


def build_definitions(settings: PipelineSettings, clock: Clock = system_clock) -> dg.Definitions:
    """Every definition of the code location for one set of pipeline settings; ``clock`` tells
    the refresh sensor the time.

    Runs execute in the run worker's own process: a run is one step, so a second process per run
    (Dagster's multiprocess default) would only add start-up time, and killing the run worker
    stops the extraction with it.
    """
    partitions = daily_partitions(settings)
    tables = build_flow_instance_tables(
        partitions, settings.data_dir, backfill_policy(settings), settings.owners
    )
    freshness = freshness_checks(tables, settings.timezone, settings.freshness_deadline)
    # the freshness checks run on their own (their sensor), not in every run of the tables
    job = dg.define_asset_job(
        "flow_instances_job",
        selection=dg.AssetSelection.assets(tables) - dg.AssetSelection.checks(*freshness),
    )
    return dg.Definitions(
        assets=[tables],
        asset_checks=freshness,
        jobs=[job],
        schedules=[daily_schedule(job)],
        sensors=[
            refresh_sensor(job, settings, clock),
            freshness_sensor(freshness, settings.timezone, settings.freshness_deadline),
        ],
        resources=run_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions(PipelineSettings.from_env())
