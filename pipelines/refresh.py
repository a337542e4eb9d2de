"""The morning refresh: the last ``FLOWINST_REFRESH_DAYS`` days checked for changes, runs launched
for the changed (and missing) days only, the last ``FLOWINST_LOOKBACK_DAYS`` days re-read in full.

The recent days change most, and reading them in full also verifies the change test on them
(docs/refresh.md). Each checked day gets an observation on ``flow_instances``: when, the verdict,
what told it, and the requests of the check.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

import dagster as dg

from flowinst_etl.changes import RefreshPlan, plan_refresh
from flowinst_etl.config import PipelineSettings
from flowinst_etl.extract import Extractor
from flowinst_etl.windows import consecutive_ranges, zone
from pipelines.resources import Dataset, EnosGateway
from pipelines.schedules import RANGE_END_TAG, RANGE_START_TAG

#: Local hour of the partition timezone from which a day's refresh runs.
REFRESH_HOUR = 6
#: Seconds between evaluations: a day's refresh starts within this of ``REFRESH_HOUR``.
INTERVAL_S = 600
OBSERVED_ASSET = "flow_instances"

Clock = Callable[[tzinfo], datetime]


def system_clock(tz: tzinfo) -> datetime:
    """The time now in ``tz``."""
    return datetime.now(tz)


def refresh_days(today: date, settings: PipelineSettings) -> tuple[list[date], list[date]]:
    """The days to check for changes, and the recent days to re-read in full, for a refresh on
    ``today``: together the last ``refresh_days`` (or ``lookback_days``, if more) full days,
    none before ``start_date``."""
    last = today - timedelta(days=1)
    span = max(settings.refresh_days, settings.lookback_days)
    days = [last - timedelta(days=n) for n in reversed(range(span))]
    days = [day for day in days if day >= settings.start_date]
    recent = days[-settings.lookback_days :]
    return [day for day in days if day not in recent], recent


def refresh_sensor(
    job: dg.UnresolvedAssetJobDefinition, settings: PipelineSettings, clock: Clock = system_clock
) -> dg.SensorDefinition:
    """The sensor ``flow_instances_refresh``; ``clock`` gives the time now in a timezone."""
    tz = zone(settings.timezone)

    @dg.sensor(
        name="flow_instances_refresh",
        job=job,
        minimum_interval_seconds=INTERVAL_S,
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def flow_instances_refresh(
        context: dg.SensorEvaluationContext, enos: EnosGateway, dataset: Dataset
    ) -> dg.SensorResult | dg.SkipReason:
        """Each morning: check the last FLOWINST_REFRESH_DAYS days for changes, launch runs for
        the changed days only, and re-read the last FLOWINST_LOOKBACK_DAYS days in full."""
        now = clock(tz)
        today = now.date().isoformat()
        if now.hour < REFRESH_HOUR:
            return dg.SkipReason(f"the refresh of {today} starts at {REFRESH_HOUR:02d}:00")
        if context.cursor == today:
            return dg.SkipReason(f"{today} is refreshed")
        checked, recent = refresh_days(now.date(), settings)
        with enos.client() as client:
            plan = plan_refresh(Extractor(client), dataset.root, checked, tz)
        to_read = [*plan.to_read(), *recent]
        if plan.untrusted:
            context.log.warning(
                "refresh cannot rely on its change test on this gateway, so every day is "
                f"re-read: {plan.untrusted}"
            )
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"refresh-{today}-{first}-{last}",
                    tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
                )
                for first, last in consecutive_ranges(to_read)
            ],
            asset_events=_observations(plan, recent),
            cursor=today,
        )

    return flow_instances_refresh


def _observations(plan: RefreshPlan, recent: list[date]) -> list[dg.AssetObservation]:
    """One observation per day checked: when, the verdict and what told it."""
    shared: dict[str, Any] = {
        "checked_at": plan.checked_at,
        "check_requests": plan.requests,
        "change_test": "trusted" if plan.untrusted is None else f"NOT TRUSTED: {plan.untrusted}",
    }
    verdicts = [(check.day, check.verdict, check.reason) for check in plan.days]
    verdicts += [(day, "re-read", "recent: re-read in full every morning") for day in recent]
    return [
        dg.AssetObservation(
            asset_key=OBSERVED_ASSET,
            partition=day.isoformat(),
            metadata={**shared, "verdict": verdict, "reason": reason},
        )
        for day, verdict, reason in verdicts
    ]
