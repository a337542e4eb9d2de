"""Backfill a date range in-process through the same Dagster assets the deployment runs."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

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
    tables = build_flow_instance_tables(partitions, settings.data_dir)
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
    if any(error.cls_name == _INTERRUPTED for chain in _failures(result) for error in chain):
        raise KeyboardInterrupt
    return result


def run_error(result: dg.ExecuteInProcessResult) -> str | None:
    """What stopped a run: the innermost cause of its first step failure, if any."""
    for chain in _failures(result):
        return " ".join(chain[-1].message.split())
    return None


def _failures(result: dg.ExecuteInProcessResult) -> list[list[Any]]:
    """Each step failure's error followed by its causes."""
    chains = []
    for event in result.all_events:
        failure = event.step_failure_data if event.is_step_failure else None
        error = failure.error if failure is not None else None
        chain = []
        while error is not None:
            chain.append(error)
            error = error.cause
        if chain:
            chains.append(chain)
    return chains


def _has_dagster_home() -> bool:
    return optional_setting("DAGSTER_HOME") is not None
