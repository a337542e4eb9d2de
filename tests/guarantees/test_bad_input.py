"""Bad input and unusable gateways: one clear line, a defined exit code, committed days untouched.

Every case runs against a data directory holding a day committed by an earlier backfill, with that
day inside the requested range, so a run that wrote anything would change its files. Exit 2 (bad
input or an unusable gateway, decided before anything is written) comes with exactly one error
line on stderr, preceded only by one warning line per retried request; a gateway that fails after
the pre-flight fails the days it breaks (exit 1) and leaves the committed version of each of those
days as it was.
"""

from __future__ import annotations

import re
import resource
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from flowinst_etl import read_table, write_day
from flowinst_etl.config import PipelineSettings
from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.model import FoundInstance
from flowinst_etl.tables.flatten import flatten_instances
from flowinst_etl.windows import day_window, zone
from pipelines.assets import build_flow_instance_tables
from pipelines.partitions import daily_partitions
from pipelines.resources import run_resources
from tests.guarantees.harness import (
    assert_days_exact,
    backfill_args,
    closed_port,
    describe,
    emulator_environment,
    run_cli,
    snapshot,
)

DAY = date(2026, 11, 20)
NEXT = DAY + timedelta(days=1)
TIMEZONE = "UTC"
#: A retried request as the command line shows it: what failed, attempt n of m, the next wait.
RETRY_LINE = re.compile(r"flowinst-etl: warning: .+; attempt \d+ of \d+ in \d+\.\d+ s")


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    config = EmulatorConfig(
        seed=61, start_day=DAY - timedelta(days=1), end_day=NEXT + timedelta(days=1), per_day=60
    )
    with Emulator(config) as running:
        yield running


@pytest.fixture(scope="module")
def committed(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory where DAY was committed by a real backfill."""
    folder = tmp_path_factory.mktemp("committed")
    root = folder / "data"
    done = run_cli(*backfill_args(DAY, DAY, root), env=emulator_environment(emulator), cwd=folder)
    assert done.returncode == 0, describe(done)
    assert_days_exact(emulator, root, [DAY], TIMEZONE)
    return root


@pytest.fixture
def data_dir(committed: Path, tmp_path: Path) -> Path:
    """A copy of the committed directory (modification times kept) for one case to run against."""
    root = tmp_path / "data"
    shutil.copytree(committed, root, copy_function=shutil.copy2)
    return root


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        message: text the one stderr line must contain.
        env: ENOS_*/FLOWINST_* changes (``None`` removes the variable); ``{port}`` and ``{url}``
            in values become a closed loopback port and the emulator's URL.
        switches: emulator settings for the duration of the case.
        argv: the command after ``flowinst-etl``; DAY..NEXT into the data directory by default.
    """

    message: str
    env: dict[str, str | None] = field(default_factory=dict)
    switches: dict[str, object] = field(default_factory=dict)
    argv: tuple[str, ...] | None = None


def backfill(first: str, last: str, *options: str) -> tuple[str, ...]:
    return ("backfill", first, last, *options)


EXIT_2 = {
    # settings
    "ENOS_API_URL missing": Case("ENOS_API_URL is not set", {"ENOS_API_URL": None}),
    "ENOS_API_URL empty": Case("ENOS_API_URL is empty", {"ENOS_API_URL": ""}),
    "ENOS_API_URL not a URL": Case(
        "ENOS_API_URL 'apigw.example.com' is not an http(s) URL",
        {"ENOS_API_URL": "apigw.example.com"},
    ),
    "ENOS_ACCESS_KEY missing": Case("ENOS_ACCESS_KEY is not set", {"ENOS_ACCESS_KEY": None}),
    "ENOS_SECRET_KEY blank": Case("ENOS_SECRET_KEY is empty", {"ENOS_SECRET_KEY": "   "}),
    "ENOS_ORG_ID missing": Case("ENOS_ORG_ID is not set", {"ENOS_ORG_ID": None}),
    "ENOS_USER_ID empty": Case("ENOS_USER_ID is empty", {"ENOS_USER_ID": ""}),
    "ENOS_PAGE_SIZE=0": Case("ENOS_PAGE_SIZE 0 is outside 1..1000", {"ENOS_PAGE_SIZE": "0"}),
    "ENOS_PAGE_SIZE=1001": Case(
        "ENOS_PAGE_SIZE 1001 is outside 1..1000", {"ENOS_PAGE_SIZE": "1001"}
    ),
    "ENOS_PAGE_SIZE not a number": Case(
        "ENOS_PAGE_SIZE='many' is not a whole number", {"ENOS_PAGE_SIZE": "many"}
    ),
    "ENOS_VERIFY_TLS=maybe": Case(
        "ENOS_VERIFY_TLS='maybe' is not true or false", {"ENOS_VERIFY_TLS": "maybe"}
    ),
    "ENOS_MAX_RETRIES=-1": Case(
        "ENOS_MAX_RETRIES -1 is outside 0..100", {"ENOS_MAX_RETRIES": "-1"}
    ),
    "ENOS_MAX_REQUESTS_PER_SECOND=0": Case(
        "ENOS_MAX_REQUESTS_PER_SECOND 0 is outside 0.01..10000",
        {"ENOS_MAX_REQUESTS_PER_SECOND": "0"},
    ),
    "ENOS_MAX_REQUESTS_PER_SECOND=inf": Case(
        "ENOS_MAX_REQUESTS_PER_SECOND='inf' is not a finite number",
        {"ENOS_MAX_REQUESTS_PER_SECOND": "inf"},
    ),
    "ENOS_MAX_REQUESTS_PER_SECOND=nan": Case(
        "ENOS_MAX_REQUESTS_PER_SECOND='nan' is not a finite number",
        {"ENOS_MAX_REQUESTS_PER_SECOND": "nan"},
    ),
    "ENOS_MAX_REQUESTS_PER_SECOND=1e309": Case(
        "ENOS_MAX_REQUESTS_PER_SECOND='1e309' is not a finite number",
        {"ENOS_MAX_REQUESTS_PER_SECOND": "1e309"},
    ),
    "ENOS_SERVER_TIMEZONE unreadable": Case(
        "unreadable server timezone 'Mars'", {"ENOS_SERVER_TIMEZONE": "Mars"}
    ),
    "FLOWINST_TIMEZONE unknown": Case(
        "unknown timezone 'Mars/Base'", {"FLOWINST_TIMEZONE": "Mars/Base"}
    ),
    "FLOWINST_MAX_WORKERS=0": Case(
        "FLOWINST_MAX_WORKERS 0 is outside 1..64", {"FLOWINST_MAX_WORKERS": "0"}
    ),
    "FLOWINST_MAX_WORKERS not a number": Case(
        "FLOWINST_MAX_WORKERS='two' is not a whole number", {"FLOWINST_MAX_WORKERS": "two"}
    ),
    "FLOWINST_START_DATE invalid": Case("invalid date 'soon'", {"FLOWINST_START_DATE": "soon"}),
    "--workers 0": Case(
        "argument --workers: 0 is outside 1..64",
        argv=backfill(str(DAY), str(NEXT), "--workers", "0"),
    ),
    # dates and timezones
    "dates out of order": Case(
        f"START {NEXT} is after END {DAY}", argv=backfill(str(NEXT), str(DAY))
    ),
    "invalid date": Case("invalid date '2026-11-31'", argv=backfill("2026-11-31", str(NEXT))),
    "not a date": Case("invalid date 'yesterday'", argv=backfill(str(DAY), "yesterday")),
    "basic date form": Case(
        "START: invalid date '20261120': expected YYYY-MM-DD", argv=backfill("20261120", str(NEXT))
    ),
    "week date form": Case(
        "END: invalid date '2026-W47-6': expected YYYY-MM-DD", argv=backfill(str(DAY), "2026-W47-6")
    ),
    "day not over yet": Case("is not over yet", argv=backfill(str(DAY), "2999-01-01")),
    "unknown timezone": Case(
        "unknown timezone 'Europe/Atlantis'",
        argv=backfill(str(DAY), str(NEXT), "--timezone", "Europe/Atlantis"),
    ),
    # credentials and account
    "wrong access key (1002)": Case(
        "EnOS error 1002: appKey not found", {"ENOS_ACCESS_KEY": "someone-else"}
    ),
    "wrong secret key (1003)": Case(
        "EnOS error 1003: invalid encryption", {"ENOS_SECRET_KEY": "guessed-secret"}
    ),
    "user not in the organisation (62101)": Case(
        "EnOS error 62101", {"ENOS_USER_ID": "u-stranger"}
    ),
    "wrong organisation (62101)": Case("EnOS error 62101", {"ENOS_ORG_ID": "o-elsewhere"}),
    "no privilege (62103)": Case("EnOS error 62103", switches={"forced_error": 62103}),
    "account locked (62105)": Case("EnOS error 62105", switches={"forced_error": 62105}),
    "sorter refused (62102)": Case(
        "accepts none of the sorter fields trigger_time, triggerTime",
        switches={"forced_error": 62102},
    ),
    "internal error (62109)": Case("EnOS error 62109", switches={"forced_error": 62109}),
    "unknown error code": Case("EnOS error 70000", switches={"forced_error": 70000}),
    "error code in a v2.0 envelope": Case(
        "EnOS error 62103", switches={"forced_error": 62103, "envelope": "v2.0"}
    ),
    # the gateway's answers
    "HTML error page": Case(
        "with a body that is not a JSON object: '<!DOCTYPE html>",
        switches={"body_fault": "html"},
    ),
    "empty body": Case("not a JSON object: (empty body)", switches={"body_fault": "empty"}),
    "truncated JSON": Case("not a JSON object", switches={"body_fault": "truncated"}),
    "not the gateway's path": Case("EnOS error 404", {"ENOS_API_URL": "{url}/not-the-gateway"}),
    # the network
    "unresolvable host": Case(
        "cannot reach the gateway at no-such-host.invalid: unknown host name",
        {"ENOS_API_URL": "http://no-such-host.invalid"},
    ),
    "connection refused": Case(
        "cannot reach the gateway at 127.0.0.1:{port}: connection refused",
        {"ENOS_API_URL": "http://127.0.0.1:{port}"},
    ),
    "TLS to a plain-HTTP gateway": Case(
        "TLS verification of 127.0.0.1", {"ENOS_API_URL": "{https}"}
    ),
}


def case_environment(emulator: Emulator, case: Case) -> tuple[dict[str, str], str]:
    """The environment of a case (quick retries), and its message with placeholders filled."""
    values = {
        "port": str(closed_port()),
        "url": emulator.base_url,
        "https": emulator.base_url.replace("http://", "https://"),
    }
    changes = {
        name: None if value is None else value.format(**values) for name, value in case.env.items()
    }
    env = emulator_environment(emulator, **{"ENOS_MAX_RETRIES": "1", **changes})
    return env, case.message.format(**values)


@pytest.mark.parametrize("case", EXIT_2.values(), ids=EXIT_2.keys())
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    emulator: Emulator, data_dir: Path, tmp_path: Path, case: Case
) -> None:
    env, message = case_environment(emulator, case)
    argv = case.argv or backfill(str(DAY), str(NEXT))
    before = snapshot(data_dir)
    emulator.reconfigure(**case.switches)
    try:
        done = run_cli(*argv, "--data-dir", str(data_dir), env=env, cwd=tmp_path)
    finally:
        emulator.reconfigure(forced_error=None, body_fault=None, envelope="v2.1")
    assert done.returncode == 2, describe(done)
    *retries, error = [line for line in done.stderr.splitlines() if line.strip()]
    assert error.startswith("flowinst-etl: error: ") and message in error, describe(done)
    assert all(RETRY_LINE.match(line) for line in retries), describe(done)
    assert "Traceback" not in done.stderr, describe(done)
    assert done.stdout == "", describe(done)
    assert snapshot(data_dir) == before, "a committed day was touched"


def naming(done: subprocess.CompletedProcess[str], *words: str) -> bool:
    """Whether one line of the command's output holds every word."""
    lines = (done.stdout + "\n" + done.stderr).splitlines()
    return any(all(word in line for word in words) for line in lines)


def test_a_day_failing_after_the_preflight_keeps_its_committed_version(
    emulator: Emulator, data_dir: Path, tmp_path: Path
) -> None:
    before = snapshot(data_dir)
    window = day_window(DAY, zone(TIMEZONE))
    # The next day is asked from its start less 1 ms (either bound's meaning reads the same).
    emulator.reconfigure(failing_window_ms=(window.start_ms, window.end_ms - 1))
    try:
        done = run_cli(
            *backfill_args(DAY, NEXT, data_dir),
            env=emulator_environment(emulator, ENOS_MAX_RETRIES="1"),
            cwd=tmp_path,
        )
    finally:
        emulator.reconfigure(failing_window_ms=None)
    assert done.returncode == 1, describe(done)
    assert naming(done, str(DAY), "EnOS error 62109"), describe(done)
    assert not naming(done, str(NEXT), "EnOS error"), describe(done)
    after = snapshot(data_dir)
    assert {name: file for name, file in after.items() if str(NEXT) not in name} == before
    assert_days_exact(emulator, data_dir, [NEXT], TIMEZONE)


def test_a_gateway_refusing_after_the_preflight_fails_the_run_and_writes_nothing(
    emulator: Emulator, data_dir: Path, tmp_path: Path
) -> None:
    before = snapshot(data_dir)
    searches = emulator.stats()["searches"]
    preflight_done = threading.Event()

    def refuse_after_the_preflight() -> None:
        # The pre-flight asks once (the sorter); the run starts after Dagster is loaded.
        deadline = time.monotonic() + 60
        while emulator.stats()["searches"] < searches + 1 and time.monotonic() < deadline:
            time.sleep(0.002)
        emulator.reconfigure(forced_error=62103)
        preflight_done.set()

    thread = threading.Thread(target=refuse_after_the_preflight, daemon=True)
    thread.start()
    try:
        done = run_cli(
            *backfill_args(DAY, NEXT, data_dir),
            env=emulator_environment(emulator, ENOS_MAX_RETRIES="1"),
            cwd=tmp_path,
        )
    finally:
        thread.join()
        emulator.reconfigure(forced_error=None)
    assert preflight_done.is_set()
    assert done.returncode == 1, describe(done)
    assert naming(done, "EnOS error 62103: User has no privilege"), describe(done)
    assert snapshot(data_dir) == before


# --- the same through Dagster ------------------------------------------------------------------


def materialize(root: Path) -> dg.ExecuteInProcessResult:
    partitions = daily_partitions(PipelineSettings(timezone=TIMEZONE, start_date=DAY))
    return dg.materialize(
        [build_flow_instance_tables(partitions, str(root))],
        resources=run_resources(PipelineSettings(data_dir=str(root), max_workers=2)),
        partition_key=DAY.isoformat(),
        raise_on_error=False,
    )


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        str(event.event_specific_data.error)  # type: ignore[union-attr]
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE"
    )


#: What a deployment of the code location sets (pipelines.resources.EnosGateway.from_env).
DEPLOYMENT_VARIABLES = (
    "ENOS_API_URL",
    "ENOS_ACCESS_KEY",
    "ENOS_SECRET_KEY",
    "ENOS_ORG_ID",
    "ENOS_USER_ID",
)
DAGSTER_CASES = {
    "ENOS_API_URL not a URL": Case("is not an http(s) URL", {"ENOS_API_URL": "ftp://gateway"}),
    "ENOS_SERVER_TIMEZONE unreadable": Case(
        "unreadable server timezone", {"ENOS_SERVER_TIMEZONE": "Mars"}
    ),
    "wrong access key (1002)": Case("EnOS error 1002", {"ENOS_ACCESS_KEY": "someone-else"}),
    "wrong secret key (1003)": Case("EnOS error 1003", {"ENOS_SECRET_KEY": "guessed-secret"}),
    "user not in the organisation (62101)": Case(
        "EnOS error 62101", {"ENOS_USER_ID": "u-stranger"}
    ),
    "no privilege (62103)": Case("EnOS error 62103", switches={"forced_error": 62103}),
    "HTML error page": Case("not a JSON object", switches={"body_fault": "html"}),
    "TLS to a plain-HTTP gateway": Case("TLS verification", {"ENOS_API_URL": "{https}"}),
}


@pytest.mark.parametrize("case", DAGSTER_CASES.values(), ids=DAGSTER_CASES.keys())
def test_bad_input_fails_the_dagster_run_and_writes_nothing(
    emulator: Emulator, data_dir: Path, monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    env, message = case_environment(emulator, case)
    for name in [*DEPLOYMENT_VARIABLES, "ENOS_SERVER_TIMEZONE"]:
        if name in env:
            monkeypatch.setenv(name, env[name])
        else:
            monkeypatch.delenv(name, raising=False)
    before = snapshot(data_dir)
    emulator.reconfigure(**case.switches)
    try:
        result = materialize(data_dir)
    finally:
        emulator.reconfigure(forced_error=None, body_fault=None)
    assert not result.success
    assert message in failure_text(result), failure_text(result)
    assert snapshot(data_dir) == before


def test_a_missing_secret_fails_the_dagster_run_before_it_starts(
    emulator: Emulator, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = emulator_environment(emulator)
    for name in DEPLOYMENT_VARIABLES:
        monkeypatch.setenv(name, env[name])
    monkeypatch.delenv("ENOS_SECRET_KEY")
    before = snapshot(data_dir)
    with pytest.raises(dg.DagsterInvalidConfigError, match="ENOS_SECRET_KEY"):
        materialize(data_dir)
    assert snapshot(data_dir) == before


# --- statuses the documentation does not list ---------------------------------------------------


def test_instances_with_unknown_status_codes_are_kept(tmp_path: Path) -> None:
    """The emulator only serves the documented codes -1..10, so records come straight in here."""
    gmt8 = timezone(timedelta(hours=8))
    records = [
        {"instanceId": "7-20261120000000", "status": 42, "statusDesc": "PAUSED_BY_POLICY"},
        {"instanceId": "8-20261120000000", "status": -7, "statusDesc": "ARCHIVED"},
        {"instanceId": "9-20261120000000", "status": 1, "statusDesc": "SUCCESS"},
        {"instanceId": "10-20261120000000", "status": 99999, "statusDesc": "OVERFLOW"},
    ]
    for record in records:
        record |= {"triggerTime": "2026-11-20 08:00:00", "graph": '{"tasks": []}'}
    tables = flatten_instances(
        [FoundInstance(1, r) for r in records], gmt8, datetime.now(timezone.utc)
    )
    write_day(str(tmp_path), DAY, tables.as_dict(), {"instances": len(records)})
    frame = read_table("flow_instances", str(tmp_path), DAY, DAY).set_index("instance_id")

    assert len(frame) == len(records)
    assert frame.loc["7-20261120000000", "status"] == 42
    assert frame.loc["7-20261120000000", "status_desc"] == "PAUSED_BY_POLICY"
    assert frame.loc["8-20261120000000", "status"] == -7
    assert frame.loc["8-20261120000000", "status_desc"] == "ARCHIVED"
    assert pd.isna(frame.loc["7-20261120000000", "record_error"])
    # beyond the int16 column the code cannot be kept, but the instance and the reason are
    assert pd.isna(frame.loc["10-20261120000000", "status"])
    assert "status: 99999 is out of range" in frame.loc["10-20261120000000", "record_error"]


def _no_room_for_files() -> None:
    """In the child: files may not grow past 64 KB, and writing past that is an error, not a
    signal; records waiting beyond the memory budget need more."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_records_that_cannot_wait_on_disk_fail_their_day_naming_the_settings(
    emulator: Emulator, data_dir: Path, tmp_path: Path
) -> None:
    before = snapshot(data_dir)
    env = emulator_environment(emulator, FLOWINST_RECORDS_MEMORY_MB="0", TMPDIR=str(tmp_path))
    done = run_cli(
        *backfill_args(DAY, DAY, data_dir), env=env, cwd=tmp_path, before_start=_no_room_for_files
    )
    assert done.returncode == 1, describe(done)
    assert naming(done, str(DAY), "FLOWINST_RECORDS_MEMORY_MB", "TMPDIR"), describe(done)
    assert snapshot(data_dir) == before, "the committed day was touched"
