"""Backfill a date range in-process through the same Dagster assets the deployment runs."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from typing import Any

import dagster as dg
from dagster_shared.telemetry import get_or_set_instance_id

from flowinst_etl.config import PipelineSettings, optional_setting
from flowinst_etl.locks import held
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
        instance=_open_instance(verbose),
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


def _open_instance(verbose: bool) -> dg.DagsterInstance:
    """The instance of ``DAGSTER_HOME`` when set (its runs show in the UI), else an ephemeral one.

    On first use Dagster creates its SQLite storage in ``DAGSTER_HOME``; two processes doing
    that at once collide (``table alembic_version already exists``), so the creation holds an
    exclusive lock on the folder and concurrent first runs take turns. Its first-use notices
    (no ``dagster.yaml``, the telemetry banner) reach stderr only when ``verbose``.
    """
    home = optional_setting("DAGSTER_HOME")
    if home is None:
        return dg.DagsterInstance.ephemeral()
    with held(home), _notices_shown(verbose):
        instance = dg.DagsterInstance.get()
        if instance.telemetry_enabled:
            get_or_set_instance_id()  # prints the banner of a new home now, while it is held
    return instance


@contextlib.contextmanager
def _notices_shown(verbose: bool) -> Iterator[None]:
    """Dagster's warnings and its printed notices, shown only when ``verbose``."""
    if verbose:
        yield
        return
    logger = logging.getLogger("dagster")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
