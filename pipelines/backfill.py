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

_INTERRUPTED = "DagsterExecutionInterruptedError"


def run_backfill(
    first: date,
    last: date,
    settings: PipelineSettings,
    listener: DayListener,
    *,
    verbose: bool = False,
) -> dg.ExecuteInProcessResult:
    """Materialise ``first``..``last`` (inclusive) as one run; ``listener`` hears of each day.

    The run goes to the instance of ``DAGSTER_HOME`` when set (so it shows in the UI), else to an
    ephemeral one. Dagster's console log shows warnings when ``verbose``, else nothing: the
    caller reports each day.

    Raises:
        KeyboardInterrupt: SIGINT or SIGTERM stopped the run; days committed before stay.
    """
    partitions = daily_partitions(replace(settings, start_date=min(settings.start_date, first)))
    tables = build_flow_instance_tables(partitions)
    result = dg.materialize(
        [tables],
        instance=dg.DagsterInstance.get()
        if _has_dagster_home()
        else dg.DagsterInstance.ephemeral(),
        resources=run_resources(settings, listener),
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
        run_config={
            "loggers": {"console": {"config": {"log_level": "WARNING" if verbose else "CRITICAL"}}}
        },
        raise_on_error=False,
    )
    if any(_INTERRUPTED in error for error in _errors(result)):
        raise KeyboardInterrupt
    return result


def run_error(result: dg.ExecuteInProcessResult) -> str | None:
    """The message of the first step failure of a run, if any."""
    return next(iter(_errors(result)), None)


def _errors(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        f"{failure.error.cls_name}: {failure.error.message}"
        for event in result.all_events
        if event.is_step_failure
        and (failure := event.step_failure_data) is not None
        and failure.error is not None
    ]


def _has_dagster_home() -> bool:
    return optional_setting("DAGSTER_HOME") is not None
