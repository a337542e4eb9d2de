"""Freshness: yesterday's partition of each table is due by a time of day in the partition timezone.

The verdict is Dagster's time-partition freshness check: once the deadline has passed, the day
before it must have a materialization, whatever older days were re-committed since, so a day that
failed or was never run fails its check. (``FreshnessPolicy``, which Dagster 1.13 offers in its
place, judges an asset by its latest materialization of any partition: a lookback re-committing
older days would make it look fresh.)

The sensor is this module's own. Every run that materialises the tables also plans their
freshness checks and skips them (the multi-asset reports each day as a materialization rather than
as an output the checks could wait for); Dagster's freshness sensor never evaluates a check whose
only record is such a skipped one, and leaves a skipped execution on show until the next deadline.
This sensor evaluates the checks when their verdict can change, and after a run skipped them.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from datetime import datetime, time, timedelta

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster._core.storage.tags import SENSOR_NAME_TAG

from flowinst_etl.windows import zone

FRESHNESS_SENSOR = "flow_instances_freshness"


def freshness_checks(
    tables: dg.AssetsDefinition, timezone: str, deadline: time
) -> Sequence[dg.AssetChecksDefinition]:
    """One ``freshness_check`` per table: once ``deadline`` has passed in ``timezone`` (the
    partition timezone), yesterday's partition must be materialised, else the check fails."""
    with warnings.catch_warnings():  # superseded by FreshnessPolicy, which judges no partition
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return dg.build_time_partition_freshness_checks(
            assets=[tables],
            deadline_cron=f"{deadline.minute} {deadline.hour} * * *",
            timezone=timezone,
            severity=dg.AssetCheckSeverity.ERROR,
        )


def due_partition(now: datetime, deadline: time) -> str:
    """The partition key the checks expect at ``now`` (aware, in the partition timezone): the
    day before the latest deadline passed."""
    latest_deadline = now.date() if now.time() >= deadline else now.date() - timedelta(days=1)
    return (latest_deadline - timedelta(days=1)).isoformat()


def freshness_sensor(
    checks: Sequence[dg.AssetChecksDefinition], timezone: str, deadline: time
) -> dg.SensorDefinition:
    """Runs the freshness checks when the due partition changes (a deadline passed), when it
    arrives for a table, and after runs, other than this sensor's, that left a check skipped
    (once no other run is in progress, so a backfill of many runs costs one evaluation). Running
    by default: it calls no gateway and launches a run only then."""
    keys = [spec.key for check in checks for spec in check.check_specs]

    @dg.sensor(
        name=FRESHNESS_SENSOR,
        asset_selection=dg.AssetSelection.checks(*checks),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
    )
    def flow_instances_freshness(
        context: dg.SensorEvaluationContext,
    ) -> dg.RunRequest | dg.SkipReason:
        """Evaluate the freshness checks when their verdict can have changed."""
        due = due_partition(datetime.now(zone(timezone)), deadline)
        arrived = [key.asset_key.to_user_string() for key in keys if _has(context, key, due)]
        seen = json.loads(context.cursor) if context.cursor else {}
        state = f"{due}: {', '.join(arrived) or 'none arrived'}"
        skipped_by = _skipping_run(context, keys)
        if skipped_by is None or _other_runs_in_progress(context):
            skipped_by = seen.get("skipped_by")  # a backfill's runs: evaluate once after them
        if state == seen.get("state") and skipped_by == seen.get("skipped_by"):
            return dg.SkipReason(f"unchanged since the last evaluation ({state})")
        context.update_cursor(json.dumps({"state": state, "skipped_by": skipped_by}))
        return dg.RunRequest(asset_check_keys=keys)

    return flow_instances_freshness


def _has(context: dg.SensorEvaluationContext, key: dg.AssetCheckKey, partition: str) -> bool:
    """Whether the checked table has a materialization of ``partition``."""
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key.asset_key, asset_partitions=[partition]), limit=1
    )
    return bool(found.records)


def _skipping_run(
    context: dg.SensorEvaluationContext, keys: Sequence[dg.AssetCheckKey]
) -> str | None:
    """The id of a finished run, not this sensor's, that planned a check and never evaluated
    it, when that is a check's latest execution."""
    summaries = context.instance.event_log_storage.get_asset_check_summary_records(keys)
    for summary in summaries.values():
        latest = summary.last_check_execution_record
        if latest is None or latest.status != AssetCheckExecutionRecordStatus.PLANNED:
            continue
        run = context.instance.get_run_by_id(latest.run_id)
        if run and run.is_finished and run.tags.get(SENSOR_NAME_TAG) != FRESHNESS_SENSOR:
            return run.run_id
    return None


def _other_runs_in_progress(context: dg.SensorEvaluationContext) -> bool:
    """Whether a run other than this sensor's is queued or running."""
    records = context.instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES))
    return any(r.dagster_run.tags.get(SENSOR_NAME_TAG) != FRESHNESS_SENSOR for r in records)
