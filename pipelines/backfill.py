"""Backfill a date range in-process through the same Dagster assets the deployment runs."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import dagster as dg

from flowinst_etl.config import PipelineSettings, optional_setting
from pipelines.assets import build_flow_instance_tables
from pipelines.partitions import daily_partitions
from pipelines.resources import DayListener, run_resources
from pipelines.schedules import RANGE_END_TAG, RANGE_START_TAG

_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_backfill(
    first: date, last: date, settings: PipelineSettings, listener: DayListener
) -> dg.ExecuteInProcessResult:
    """Materialise ``first``..``last`` (inclusive) as one run; ``listener`` hears of each day.

    The run goes to the instance of ``DAGSTER_HOME`` when set (so it shows in the UI), else to an
    ephemeral one.
    """
    partitions = daily_partitions(replace(settings, start_date=min(settings.start_date, first)))
    tables = build_flow_instance_tables(partitions)
    return dg.materialize(
        [tables],
        instance=dg.DagsterInstance.get()
        if _has_dagster_home()
        else dg.DagsterInstance.ephemeral(),
        resources=run_resources(settings, listener),
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
        run_config=_QUIET,
        raise_on_error=False,
    )


def _has_dagster_home() -> bool:
    return optional_setting("DAGSTER_HOME") is not None
