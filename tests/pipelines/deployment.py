"""A real Dagster deployment on this machine, for the daemon tests and the scale-out benchmark.

The instance is configured from ``docs/dagster.yaml`` (only the pool limit and the daemon's polling
interval changed); the backfill is launched through Dagster's GraphQL API with the mutation the UI
sends; ``dagster-daemon run`` is a subprocess that queues, launches (one process per run) and
retries the runs; what happened is then read back from the instance's event log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES, BulkActionStatus
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster_graphql.test.utils import execute_dagster_graphql

from flowinst_etl.tables.schema import TABLES
from tests.support import stop_process_group

REPOSITORY = Path(__file__).resolve().parents[2]
DOCUMENTED_INSTANCE = REPOSITORY / "docs" / "dagster.yaml"
POOL = "enos_api"
PARENT_RUN_TAG = "dagster/parent_run_id"
BACKFILL_TAG = "dagster/backfill"
WILL_RETRY_TAG = "dagster/will_retry"
AUTO_RETRY_RUN_ID_TAG = "dagster/auto_retry_run_id"

#: The mutation the UI sends for Materialize > partitions > Launch backfill.
LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""

#: The mutation the UI sends for Re-execute > From failure.
REEXECUTE = """
mutation Reexecute($params: ReexecutionParams!) {
  launchRunReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
  }
}
"""

#: Where Dagster's retry daemon (its event log consumer) keeps how far it read RUN_FAILURE events.
RETRY_DAEMON_CURSOR = f"EVENT_LOG_CONSUMER_CURSOR-{dg.DagsterEventType.RUN_FAILURE.value}"


class RetryDaemonMissed(UserWarning):
    """Dagster's retry daemon passed over a failed run it had tagged to retry."""


#: The shortest polling the daemon allows: dequeue every second, retry failed runs within a second.
FAST_DAEMON = {"DAGSTER_EVENT_LOG_CONSUMER_DAEMON_INTERVAL_SECONDS": "1"}


@dataclass(frozen=True)
class Outcome:
    """What an ended backfill left in the instance."""

    status: BulkActionStatus
    spans: list[RunSpan]
    daemon_pid: int
    first_queued: float

    @property
    def wall_s(self) -> float:
        """Seconds from the first run entering the queue to the last run ending."""
        return max(span.ended for span in self.spans) - self.first_queued


@dataclass(frozen=True)
class RunSpan:
    """One run as the event log tells it: when it ran, in which processes, how it ended."""

    run_id: str
    status: dg.DagsterRunStatus
    started: float
    ended: float
    pids: frozenset[int]
    parent_run_id: str | None
    partition_range: tuple[str, str]


def days_between(first: date, last: date) -> list[str]:
    """Partition keys ``first``..``last`` inclusive."""
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def workspace_file(home: Path) -> Path:
    """The workspace file of the deployment at ``home``."""
    return home / "workspace.yaml"


def write_deployment(home: Path, pool_limit: int) -> Path:
    """``$DAGSTER_HOME/dagster.yaml`` (the documented one with ``pool_limit`` and the shortest
    dequeue interval) and a workspace loading the code location; returns the workspace file."""
    config = yaml.safe_load(DOCUMENTED_INSTANCE.read_text())
    config["concurrency"]["pools"]["default_limit"] = pool_limit
    config["run_coordinator"]["config"] = {"dequeue_interval_seconds": 1}
    config["telemetry"] = {"enabled": False}
    config["code_servers"] = {"wait_for_local_processes_on_shutdown": True}
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    workspace = workspace_file(home)
    location = {"module_name": "pipelines.definitions", "working_directory": str(REPOSITORY)}
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": location}]}))
    return workspace


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` set in this process's environment (which code servers inherit), then restored."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def working_directory(folder: Path) -> Iterator[None]:
    """``folder`` as this process's working directory (code servers, the daemon and runs inherit
    it), then restored. Dagster's commands read ``.env`` from theirs, over the environment, and
    the repository's may name a user's own tenant and dataset."""
    saved = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(saved)


def graphql(instance: dg.DagsterInstance, workspace: Path, query: str, variables: dict) -> dict:
    """The data of ``query`` run against the deployment, as the UI's requests are."""
    target = WorkspaceFileTarget(paths=[str(workspace)])
    with WorkspaceProcessContext(instance, target) as process_context:
        result = execute_dagster_graphql(process_context.create_request_context(), query, variables)
    assert not result.errors, result.errors
    return dict(result.data)


def launch_backfill(instance: dg.DagsterInstance, workspace: Path, partitions: list[str]) -> str:
    """Launch a backfill of the four tables over ``partitions`` through GraphQL; its id."""
    params = {
        "partitionNames": partitions,
        "assetSelection": [{"path": [table]} for table in TABLES],
    }
    launched = graphql(instance, workspace, LAUNCH_BACKFILL, {"params": params})
    launched = launched["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return str(launched["backfillId"])


def retry_by_hand(instance: dg.DagsterInstance, workspace: Path, run_id: str) -> str:
    """Retry the failed run ``run_id`` as docs/deployment.md tells a user to: re-execute it from
    failure, as the UI's button does, then tag it ``dagster/auto_retry_run_id`` with the new run,
    as Dagster's retry daemon tags a run it retries. Without the tag the backfill waits for ever
    for the retry ``dagster/will_retry=true`` promises
    (``DagsterRun.is_complete_and_waiting_to_retry``). The new run keeps the parent's tags, so it
    belongs to the same backfill. Returns its id."""
    params = {"parentRunId": run_id, "strategy": "FROM_FAILURE"}
    launched = graphql(instance, workspace, REEXECUTE, {"params": params})
    launched = launched["launchRunReexecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    retry_id = str(launched["run"]["runId"])
    instance.add_run_tags(run_id, {AUTO_RETRY_RUN_ID_TAG: retry_id})
    return retry_id


def missed_by_retry_daemon(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether Dagster's retry daemon has passed over the failure of ``run_id`` without retrying
    a run it tagged ``dagster/will_retry=true``.

    The daemon reads each RUN_FAILURE event once, at a cursor. The process reporting a failure
    stores that event before it marks the run FAILURE and tags it, so a daemon reading in between
    sees a run that has not failed, moves its cursor past the event and never retries the run
    (Dagster 1.13, ``auto_run_reexecution.should_retry``). The daemon tags a run it retries before
    it stores its cursor, so the cursor is read first: past the event with no retry tag after it is
    a miss, never a retry on its way.
    """
    cursor = instance.daemon_cursor_storage.get_cursor_values({RETRY_DAEMON_CURSOR})
    if RETRY_DAEMON_CURSOR not in cursor:
        return False
    failures = instance.event_log_storage.get_logs_for_all_runs_by_log_id(
        after_cursor=-1, dagster_event_type=dg.DagsterEventType.RUN_FAILURE
    )
    read = [i for i, event in failures.items() if event.run_id == run_id]
    run = instance.get_run_by_id(run_id)
    return (
        bool(read)
        and int(cursor[RETRY_DAEMON_CURSOR]) >= max(read)
        and run is not None
        and run.status == dg.DagsterRunStatus.FAILURE
        and run.tags.get(WILL_RETRY_TAG) == "true"
        and AUTO_RETRY_RUN_ID_TAG not in run.tags
    )


@contextmanager
def running_daemon(home: Path, workspace: Path, env: Mapping[str, str]) -> Iterator[int]:
    """``dagster-daemon run`` for the instance at ``home``; yields its pid, stops it on exit."""
    with (home / "daemon.log").open("wb") as log:
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
            env={**os.environ, **env, **FAST_DAEMON, "DAGSTER_HOME": str(home)},
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield daemon.pid
        finally:
            stop_process_group(daemon, timeout_s=30)


def run_backfill(
    home: Path,
    env: Mapping[str, str],
    partitions: list[str],
    pool_limit: int,
    on_poll: Callable[[dg.DagsterInstance], None] = lambda instance: None,
    timeout_s: float = 240,  # under pytest-timeout's 300 s: a stuck backfill fails naming its log
) -> Outcome:
    """Launch a backfill of ``partitions`` with every process reading ``env``, run the daemon until
    Dagster ends the backfill (``on_poll`` is called on every poll meanwhile), and read what
    happened. The backfill daemon ends it on its first tick (every 30 s) after every run, and
    every retry Dagster owes, has finished."""
    workspace = write_deployment(home, pool_limit)
    with (
        working_directory(home),
        environment({**env, "DAGSTER_HOME": str(home)}),
        dg.DagsterInstance.get() as instance,
    ):
        backfill_id = launch_backfill(instance, workspace, partitions)
        with running_daemon(home, workspace, env) as daemon_pid:

            def done() -> bool:
                on_poll(instance)
                return ended(instance, backfill_id) is not None

            wait_until(done, timeout_s, f"backfill {backfill_id} (see {home}/daemon.log)")
        status = ended(instance, backfill_id)
        assert status is not None
        runs = backfill_runs(instance, backfill_id)
        queued = min(
            record.create_timestamp.timestamp()
            for record in instance.get_run_records(dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}))
        )
        return Outcome(status, run_spans(instance, runs), daemon_pid, queued)


def backfill_runs(instance: dg.DagsterInstance, backfill_id: str) -> list[dg.DagsterRun]:
    """Every run of the backfill, retries included (they carry the backfill's tag too)."""
    return list(instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_TAG: backfill_id})))


def ended(instance: dg.DagsterInstance, backfill_id: str) -> BulkActionStatus | None:
    """The backfill's final status, ``None`` while Dagster has not ended it."""
    backfill = instance.get_backfill(backfill_id)
    assert backfill is not None, backfill_id
    return backfill.status if backfill.status in BULK_ACTION_TERMINAL_STATUSES else None


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` every half second until it holds; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


def run_spans(instance: dg.DagsterInstance, runs: list[dg.DagsterRun]) -> list[RunSpan]:
    """Each launched run's span from its start to its end event, and the pids of its events."""
    spans = []
    for run in runs:
        records = instance.all_logs(run.run_id)
        events = [r for r in records if r.dagster_event is not None]
        started = [
            r.timestamp for r in events if r.dagster_event_type == dg.DagsterEventType.RUN_START
        ]
        ended = [
            r.timestamp
            for r in events
            if r.dagster_event_type
            in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE)
        ]
        if not started:
            continue
        pids = {r.dagster_event.pid for r in events if r.dagster_event.pid is not None}  # type: ignore[union-attr]
        spans.append(
            RunSpan(
                run_id=run.run_id,
                status=run.status,
                started=min(started),
                ended=max(ended),
                pids=frozenset(pids),
                parent_run_id=run.tags.get(PARENT_RUN_TAG),
                partition_range=(
                    run.tags["dagster/asset_partition_range_start"],
                    run.tags["dagster/asset_partition_range_end"],
                ),
            )
        )
    return spans


def most_in_flight(spans: list[RunSpan]) -> int:
    """The most runs whose start..end spans overlap at any instant."""
    edges = sorted([(s.started, 1) for s in spans] + [(s.ended, -1) for s in spans])
    peak = current = 0
    for _, change in edges:  # an end sorts before a start at the same instant
        current += change
        peak = max(peak, current)
    return peak
