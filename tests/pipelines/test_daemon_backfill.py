"""A partition backfill as a deployment runs it: launched through Dagster's GraphQL API, split into
runs of ``FLOWINST_DAYS_PER_RUN`` days, queued, launched by the daemon in a process per run under
the ``enos_api`` pool, retried when killed, every day exact against the emulator's ground truth."""

from __future__ import annotations

import os
import signal
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import boto3
import dagster as dg
import fsspec
import pytest
from dagster._core.execution.backfill import BulkActionStatus

from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.tables.schema import TABLES
from tests.guarantees.harness import assert_days_exact
from tests.pipelines.conftest import enos_environment
from tests.pipelines.deployment import (
    Outcome,
    RetryDaemonMissed,
    RunSpan,
    days_between,
    environment,
    missed_by_retry_daemon,
    most_in_flight,
    retry_by_hand,
    run_backfill,
    workspace_file,
)
from tests.pipelines.test_check_history import assert_every_check_resolved_on_its_day
from tests.support import s3_server

FIRST, LAST = date(2026, 11, 1), date(2026, 11, 12)
DAYS_PER_RUN = 3
POOL_LIMIT = 3  # as docs/dagster.yaml sets it


@pytest.fixture(scope="module")
def gateway() -> Iterator[Emulator]:
    config = EmulatorConfig(
        seed=14,
        start_day=date(2026, 10, 31),
        end_day=date(2026, 11, 13),
        per_day=40,
        latency_ms=20,
    )
    with Emulator(config) as running:
        yield running


def run_environment(emulator: Emulator, root: str, **extra: str) -> dict[str, str]:
    """What every process of the deployment (code servers, runs) reads."""
    return {
        **enos_environment(emulator),
        "ENOS_PAGE_SIZE": "10",
        "ENOS_MAX_REQUESTS_PER_SECOND": "20",
        "FLOWINST_DATA_DIR": root,
        "FLOWINST_START_DATE": FIRST.isoformat(),
        "FLOWINST_TIMEZONE": "UTC",
        "FLOWINST_DAYS_PER_RUN": str(DAYS_PER_RUN),
        "FLOWINST_MAX_WORKERS": "1",
        **extra,
    }


def kill_a_run_after_its_first_day(instance: dg.DagsterInstance) -> str | None:
    """SIGKILL the process of a run that has committed its first day and is working on the next;
    the run's id, or None while no run is in that state."""
    records = instance.fetch_materializations(dg.AssetKey("flow_instances"), limit=100).records
    by_run: dict[str, list[dg.EventLogRecord]] = {}
    for record in records:
        by_run.setdefault(record.run_id, []).append(record)
    for run_id, committed in by_run.items():
        run = instance.get_run_by_id(run_id)
        event = committed[0].event_log_entry.dagster_event
        if len(committed) == 1 and run is not None and not run.is_finished and event is not None:
            assert event.pid is not None
            os.kill(event.pid, signal.SIGKILL)
            return run_id
    return None


@dataclass(frozen=True)
class Backfilled:
    """A backfill through the daemon, once Dagster has ended it."""

    outcome: Outcome
    killed_run_id: str | None = None
    #: The retry launched by hand of a killed run that Dagster's retry daemon passed over.
    retried_by_hand: str | None = None


def backfill(home: Path, env: dict[str, str], kill_one: bool) -> Backfilled:
    """The 12-day backfill through the daemon; with ``kill_one``, one run is killed mid-way.

    Should Dagster's retry daemon pass over the killed run (``missed_by_retry_daemon``), the run
    is retried by hand as docs/deployment.md tells a user to."""
    killed: list[str] = []
    retried: list[str] = []

    def kill(instance: dg.DagsterInstance) -> None:
        if kill_one and not killed:
            victim = kill_a_run_after_its_first_day(instance)
            killed.extend([victim] if victim else [])
        elif killed and not retried and missed_by_retry_daemon(instance, killed[0]):
            retried.append(retry_by_hand(instance, workspace_file(home), killed[0]))

    partitions = days_between(FIRST, LAST)
    outcome = run_backfill(home, env, partitions, POOL_LIMIT, on_poll=kill)
    assert outcome.status == BulkActionStatus.COMPLETED_SUCCESS, outcome.status
    with environment({"DAGSTER_HOME": str(home)}), dg.DagsterInstance.get() as instance:
        assert_partitions_recorded(instance, partitions)
    return Backfilled(outcome, next(iter(killed), None), next(iter(retried), None))


def assert_partitions_recorded(instance: dg.DagsterInstance, partitions: list[str]) -> None:
    """Each table has a materialisation recorded on every day of the range."""
    for table in TABLES:
        recorded = instance.get_materialized_partitions(dg.AssetKey(table))
        assert recorded == set(partitions), table


def days_of(span: RunSpan) -> list[str]:
    """The partition keys one run covered."""
    first, last = span.partition_range
    return days_between(date.fromisoformat(first), date.fromisoformat(last))


def assert_scaled_out(outcome: Outcome) -> None:
    """Runs of N days each, each in processes of its own, never more in flight than the pool."""
    spans = outcome.spans
    successful = [s for s in spans if s.status == dg.DagsterRunStatus.SUCCESS]
    assert sorted({day for s in successful for day in days_of(s)}) == days_between(FIRST, LAST)
    assert all(len(days_of(s)) == DAYS_PER_RUN for s in spans)
    assert len({s.partition_range for s in spans}) == len(days_between(FIRST, LAST)) // DAYS_PER_RUN
    pids = [s.pids for s in spans]
    assert all(len(p) == 1 for p in pids), pids
    every_pid = [pid for p in pids for pid in p]
    assert len(set(every_pid)) == len(spans), "two runs shared a process"
    assert not {os.getpid(), outcome.daemon_pid} & set(every_pid)
    assert most_in_flight(spans) <= POOL_LIMIT


def backfill_with_a_killed_run(gateway: Emulator, folder: Path) -> Backfilled:
    """The backfill with one run killed: runs in pooled processes, the killed run failed and
    retried once for the same days, every day exact."""
    root = folder / "data"
    done = backfill(folder / "home", run_environment(gateway, str(root)), kill_one=True)
    outcome, killed_run_id = done.outcome, done.killed_run_id
    assert_scaled_out(outcome)
    assert killed_run_id is not None
    killed = [s for s in outcome.spans if s.run_id == killed_run_id]
    assert killed and killed[0].status == dg.DagsterRunStatus.FAILURE
    retries = [s for s in outcome.spans if s.parent_run_id == killed_run_id]
    assert [s.status for s in retries] == [dg.DagsterRunStatus.SUCCESS]
    assert retries[0].partition_range == killed[0].partition_range
    assert_days_exact(
        gateway, root, [date.fromisoformat(d) for d in days_between(FIRST, LAST)], "UTC"
    )
    return done


@pytest.mark.slow
@pytest.mark.filterwarnings("default::tests.pipelines.deployment.RetryDaemonMissed")
def test_a_daemon_backfill_runs_in_pooled_processes_and_a_killed_run_is_retried(
    gateway: Emulator, tmp_path: Path
) -> None:
    """Dagster's retry daemon retries the killed run. Dagster 1.13's can pass over one
    (docs/deployment.md, "A failed run left unretried"); the run is then retried by hand as that
    page says, the backfill must still end exact, and it is run once more, where the daemon
    itself must retry: one miss is Dagster's race, two in a row a daemon that does not retry."""
    first = backfill_with_a_killed_run(gateway, tmp_path / "first")
    if first.retried_by_hand is None:
        return
    warnings.warn(
        f"Dagster's retry daemon passed over killed run {first.killed_run_id}; it was retried by "
        f"hand as {first.retried_by_hand}, and the backfill is run once more",
        RetryDaemonMissed,
        stacklevel=1,
    )
    second = backfill_with_a_killed_run(gateway, tmp_path / "second")
    assert second.retried_by_hand is None, "Dagster's retry daemon passed over a killed run twice"


@pytest.fixture
def bucket() -> Iterator[tuple[str, dict[str, str]]]:
    """A bucket on an S3-compatible server on loopback and the AWS variables that reach it."""
    with s3_server() as aws:
        boto3.client(
            "s3",
            endpoint_url=aws["AWS_ENDPOINT_URL"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket="flowinst-daemon")
        yield "s3://flowinst-daemon/dataset", aws


@pytest.mark.slow
def test_the_same_backfill_writes_to_object_storage(
    gateway: Emulator, bucket: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    root, aws = bucket
    home = tmp_path / "home"
    outcome = backfill(home, run_environment(gateway, root, **aws), kill_one=False).outcome

    assert_scaled_out(outcome)
    assert all(s.status == dg.DagsterRunStatus.SUCCESS for s in outcome.spans)
    days = [date.fromisoformat(d) for d in days_between(FIRST, LAST)]
    assert_every_check_resolved_on_its_day(home, days)
    local = tmp_path / "copy"
    fs = fsspec.filesystem(
        "s3",
        key="testing",
        secret="testing",
        client_kwargs={"endpoint_url": aws["AWS_ENDPOINT_URL"]},
    )
    fs.get("flowinst-daemon/dataset/", str(local), recursive=True)
    assert_days_exact(gateway, local, days, "UTC")
