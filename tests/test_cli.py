"""The command line as a user runs it (a subprocess): backfill, demo, settings from ``.env``,
pre-flight refusals, interrupts, failed days and what is shown while it runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from flowinst_etl import read_table, write_day, written_days
from flowinst_etl.emulator import DEMO_CREDENTIALS, Emulator, EmulatorConfig
from flowinst_etl.windows import day_window, zone
from tests.guarantees.harness import (
    REPOSITORY,
    assert_days_exact,
    backfill_args,
    cli_command,
    cli_environment,
    closed_port,
    describe,
    emulator_environment,
    run_cli,
)
from tests.support import day_truth, s3_bucket

FIRST = date(2026, 11, 2)
LAST = date(2026, 11, 4)
ENOS_VARIABLES = ("ENOS_API_URL", "ENOS_ACCESS_KEY", "ENOS_SECRET_KEY", "ENOS_ORG_ID")


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    config = EmulatorConfig(
        seed=4, start_day=date(2026, 11, 1), end_day=date(2026, 11, 5), per_day=120
    )
    with Emulator(config) as running:
        yield running


def stderr_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.strip()]


def assert_refused(done: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 2 with one error line; any line before it is a warning (a retried request)."""
    assert done.returncode == 2, describe(done)
    *before, last = stderr_lines(done)
    assert last.startswith("flowinst-etl: error: ") and message in last, describe(done)
    assert all(line.startswith("flowinst-etl: warning: ") for line in before), describe(done)
    assert "usage:" not in done.stderr and "Traceback" not in done.stderr


def test_backfill_commits_every_day_and_prints_a_summary(
    emulator: Emulator, tmp_path: Path
) -> None:
    done = run_cli(
        *backfill_args(FIRST, LAST, tmp_path / "out"),
        env=emulator_environment(emulator),
        cwd=tmp_path,
    )
    assert done.returncode == 0, describe(done)
    assert "flowinst-etl backfill" in done.stdout and "failed days" in done.stdout
    assert_days_exact(emulator, tmp_path / "out", [FIRST, FIRST + timedelta(days=1), LAST], "UTC")


def test_settings_come_from_dot_env_and_the_file_wins_as_in_dagster(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = emulator_environment(emulator)
    # the file holds every credential and the right URL; the environment holds a dead URL
    lines = [f"{name}={env[name]}" for name in (*ENOS_VARIABLES, "ENOS_USER_ID")]
    (tmp_path / ".env").write_text("\n".join(lines) + "\nFLOWINST_DATA_DIR=from-dotenv\n")
    dead_url = emulator_environment(
        emulator,
        ENOS_API_URL=f"http://127.0.0.1:{closed_port()}",
        **{name: None for name in (*ENOS_VARIABLES[1:], "ENOS_USER_ID")},
    )
    done = run_cli("backfill", str(FIRST), str(FIRST), env=dead_url, cwd=tmp_path)
    assert done.returncode == 0, describe(done)
    assert_days_exact(emulator, tmp_path / "from-dotenv", [FIRST], "UTC")


def test_every_missing_setting_is_named_at_once(tmp_path: Path) -> None:
    env = emulator_environment_without_enos()
    done = run_cli(*backfill_args(FIRST, LAST, tmp_path / "out"), env=env, cwd=tmp_path)
    assert_refused(
        done,
        "ENOS_API_URL, ENOS_ACCESS_KEY, ENOS_SECRET_KEY, ENOS_ORG_ID, ENOS_USER_ID are not set",
    )


def emulator_environment_without_enos() -> dict[str, str]:
    """This process's environment without any ENOS_*, FLOWINST_* or DAGSTER_HOME variable."""
    env = cli_environment("http://unused", DEMO_CREDENTIALS)
    return {name: value for name, value in env.items() if not name.startswith("ENOS_")}


BAD_INPUT = {
    "impossible date": (
        ["backfill", "2026-11-31", "2026-12-01"],
        {},
        "START: invalid date '2026-11-31': no such day",
    ),
    "not a date": (["backfill", "2026-11-02", "soon"], {}, "END: invalid date 'soon'"),
    "full-width digits": (
        ["backfill", "\uff12\uff10\uff12\uff16-\uff11\uff11-\uff10\uff12", "2026-11-03"],
        {},
        "expected YYYY-MM-DD",
    ),
    "start after end": (["backfill", "2026-11-04", "2026-11-02"], {}, "is after END"),
    "day not over": (["backfill", "2026-11-02", "2999-01-01"], {}, "is not over yet"),
    "before FLOWINST_START_DATE": (
        ["backfill", "2020-01-01", "2020-01-02"],
        {"FLOWINST_START_DATE": "2026-11-01"},
        "START 2020-01-01 is before FLOWINST_START_DATE 2026-11-01, the first partition day: "
        "start at 2026-11-01 or set FLOWINST_START_DATE earlier",
    ),
    "--workers 0": (
        ["backfill", "2026-11-02", "2026-11-03", "--workers", "0"],
        {},
        "argument --workers: 0 is outside 1..64",
    ),
    "--per-day -5": (["demo", "--per-day", "-5"], {}, "argument --per-day: -5 is outside"),
    "--days many": (["demo", "--days", "many"], {}, "argument --days: 'many' is not a whole"),
    "unknown flag": (["backfill", "2026-11-02", "2026-11-03", "--fast"], {}, "--fast"),
    "missing argument": (["backfill", "2026-11-02"], {}, "required: END"),
    "unknown timezone": (
        ["backfill", "2026-11-02", "2026-11-03", "--timezone", "Mars/Base"],
        {},
        "unknown timezone 'Mars/Base'",
    ),
    "rate limit inf": (
        ["backfill", "2026-11-02", "2026-11-03"],
        {"ENOS_MAX_REQUESTS_PER_SECOND": "inf"},
        "ENOS_MAX_REQUESTS_PER_SECOND='inf' is not a finite number",
    ),
    "rate limit nan": (
        ["backfill", "2026-11-02", "2026-11-03"],
        {"ENOS_MAX_REQUESTS_PER_SECOND": "nan"},
        "ENOS_MAX_REQUESTS_PER_SECOND='nan' is not a finite number",
    ),
    "wrong secret": (
        ["backfill", "2026-11-02", "2026-11-03"],
        {"ENOS_SECRET_KEY": "guessed-secret"},
        "EnOS error 1003",
    ),
    "user not in org": (
        ["backfill", "2026-11-02", "2026-11-03"],
        {"ENOS_USER_ID": "u-nobody"},
        "62101",
    ),
    "unreachable gateway": (
        ["backfill", "2026-11-02", "2026-11-03"],
        {"ENOS_API_URL": "http://127.0.0.1:{port}"},
        "cannot reach the gateway",
    ),
}


@pytest.mark.parametrize(("argv", "env", "message"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    emulator: Emulator, tmp_path: Path, argv: list[str], env: dict[str, str], message: str
) -> None:
    changes = {name: value.format(port=closed_port()) for name, value in env.items()}
    done = run_cli(
        *argv,
        "--data-dir",
        str(tmp_path / "out"),
        env=emulator_environment(emulator, ENOS_MAX_RETRIES="1", **changes),
        cwd=tmp_path,
    )
    assert_refused(done, message)
    assert "guessed-secret" not in done.stderr + done.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("place", ["a file", "inside a file"])
def test_an_unusable_data_directory_is_refused_before_the_gateway_is_called(
    emulator: Emulator, tmp_path: Path, place: str
) -> None:
    (tmp_path / "taken").write_text("not a directory")
    root = tmp_path / "taken" if place == "a file" else tmp_path / "taken" / "data"
    before = emulator.stats()["requests"]
    done = run_cli(
        *backfill_args(FIRST, LAST, root), env=emulator_environment(emulator), cwd=tmp_path
    )
    assert_refused(done, f"--data-dir '{root}' ")
    assert emulator.stats()["requests"] == before, "the gateway was called"
    assert (tmp_path / "taken").read_text() == "not a directory"


def test_a_data_directory_the_user_cannot_write_is_refused(
    emulator: Emulator, tmp_path: Path
) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders: this case needs an ordinary user")
    done = run_cli(
        *backfill_args(FIRST, LAST, folder / "data"),
        env=emulator_environment(emulator),
        cwd=tmp_path,
    )
    folder.chmod(0o700)
    assert_refused(done, "is not writable")


def test_dagster_home_must_be_a_directory(emulator: Emulator, tmp_path: Path) -> None:
    env = {**emulator_environment(emulator), "DAGSTER_HOME": str(tmp_path / "missing")}
    done = run_cli(*backfill_args(FIRST, LAST, tmp_path / "out"), env=env, cwd=tmp_path)
    assert_refused(done, f"DAGSTER_HOME '{tmp_path / 'missing'}' is not a directory")


def test_version_and_help_show_what_a_user_needs(tmp_path: Path) -> None:
    env = emulator_environment_without_enos()
    version = run_cli("--version", env=env, cwd=tmp_path)
    assert version.returncode == 0 and re.fullmatch(
        r"flowinst-etl \d+\.\d+\.\d+\S*\n", version.stdout
    )
    demo = run_cli("demo", "--help", env=env, cwd=tmp_path)
    shown = " ".join(demo.stdout.split())
    assert "instances per emulated day (default 200, as the emulator command's" in shown
    assert "how many days up to yesterday (default 7)" in " ".join(demo.stdout.split())


def test_a_failing_day_is_one_line_without_a_traceback(emulator: Emulator, tmp_path: Path) -> None:
    window = day_window(FIRST, zone("UTC"))
    emulator.reconfigure(failing_window_ms=(window.start_ms, window.end_ms - 1))
    try:
        done, verbose = (
            run_cli(
                *backfill_args(FIRST, LAST, tmp_path / "out", *options),
                env=emulator_environment(emulator, ENOS_MAX_RETRIES="1"),
                cwd=tmp_path,
            )
            for options in ([], ["--verbose"])
        )
    finally:
        emulator.reconfigure(failing_window_ms=None)
    assert done.returncode == 1, describe(done)
    lines = stderr_lines(done)
    assert lines == [f"{FIRST} failed: {lines[0].split(': ', 1)[1]}"], describe(done)
    assert "EnOS error 62109" in lines[0]
    assert_days_exact(emulator, tmp_path / "out", [FIRST + timedelta(days=1), LAST], "UTC")
    assert verbose.returncode == 1 and 'File "' in verbose.stderr, describe(verbose)


def test_warnings_show_as_one_line_each_while_the_run_goes_on(tmp_path: Path) -> None:
    config = EmulatorConfig(
        seed=5, start_day=FIRST, end_day=LAST, per_day=30, clock_skew_ms=120_000
    )
    with Emulator(config) as skewed:
        done = run_cli(
            *backfill_args(FIRST, FIRST, tmp_path / "out"),
            env=emulator_environment(skewed),
            cwd=tmp_path,
        )
    assert done.returncode == 0, describe(done)
    assert stderr_lines(done) == [
        "flowinst-etl: warning: the gateway's clock is +120 s off ours; signatures may be refused"
    ], describe(done)


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_exits_130_and_lists_the_committed_days(
    tmp_path: Path, sent: signal.Signals
) -> None:
    first, last = date(2026, 11, 1), date(2026, 11, 20)
    config = EmulatorConfig(seed=6, start_day=first, end_day=last, per_day=40, latency_ms=60)
    root = tmp_path / "out"
    with Emulator(config) as slow:
        process = subprocess.Popen(
            cli_command(*backfill_args(first, last, root, "--workers", "1")),
            env={**emulator_environment(slow), "PYTHONPATH": str(REPOSITORY)},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            while not root.exists() or not written_days(str(root), "flow_instances"):
                assert process.poll() is None, process.communicate()
                time.sleep(0.05)
            process.send_signal(sent)
            stdout, stderr = process.communicate(timeout=120)
        finally:
            process.kill()
        done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        assert done.returncode == 130, describe(done)
        lines = stderr_lines(done)
        assert len(lines) == 1 and lines[0].startswith("flowinst-etl: interrupted: "), describe(
            done
        )
        listed = [date.fromisoformat(day) for day in re.findall(r"\d{4}-\d{2}-\d{2}", lines[0])]
        assert listed and listed[-1] < last, describe(done)
        assert listed == written_days(str(root), "flow_instances")
        assert_days_exact(slow, root, listed, "UTC")
    leftovers = [path for path in root.rglob("*") if path.name.startswith(".")]
    assert not leftovers, leftovers


def test_demo_runs_the_main_job_and_its_hints_work(tmp_path: Path) -> None:
    env = emulator_environment_without_enos()
    done = run_cli("demo", "--days", "2", "--per-day", "60", env=env, cwd=tmp_path)
    assert done.returncode == 0, describe(done)
    # the days come from the demo's own output, so a run across midnight reads the right ones
    found = re.search(r"backfilling (\S+) \.\. (\S+)", done.stdout)
    assert found, done.stdout
    first, last = (date.fromisoformat(day) for day in found.groups())
    assert (last - first).days == 1
    for day in (first, last):
        assert len(read_table("flow_instances", str(tmp_path / "data"), day, day)) > 0
    hint = next(line.strip() for line in done.stdout.splitlines() if " -c " in line)
    printed = subprocess.run(
        hint, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert printed.returncode == 0 and str(last) in printed.stdout, printed.stderr
    commands = re.findall(r"^  (\S+) (?:emulator|dev)\b", done.stdout, re.MULTILINE)
    assert len(commands) == 2 and all(Path(tmp_path, c).is_file() for c in commands), commands
    assert f"--days {example_start_date()}:0" in done.stdout
    copy = re.search(r"^  (cp .+?)\s+#", done.stdout, re.MULTILINE)
    assert copy, done.stdout
    (tmp_path / ".env.example").write_text("FROM=example\n")
    (tmp_path / ".env").write_text("MINE=kept\n")
    subprocess.run(copy.group(1), shell=True, cwd=tmp_path, timeout=30, check=False)
    assert (tmp_path / ".env").read_text() == "MINE=kept\n", "the hint overwrote .env"
    # without DAGSTER_HOME the runs are recorded in ./.dagster_home, which the hint exports for
    # `dg dev`: the UI shows the demo's days
    home = tmp_path / ".dagster_home"
    assert f"  export DAGSTER_HOME={home}   #" in done.stdout
    with dg.DagsterInstance.from_config(str(home)) as instance:
        materialized = instance.get_materialized_partitions(dg.AssetKey("flow_instances"))
    assert {first.isoformat(), last.isoformat()} <= set(materialized)


def example_start_date() -> str:
    """FLOWINST_START_DATE of .env.example: the first day of every example."""
    found = re.search(
        r"^FLOWINST_START_DATE=(\S+)$", (REPOSITORY / ".env.example").read_text(), re.M
    )
    assert found, "FLOWINST_START_DATE missing from .env.example"
    return found.group(1)


def test_readme_and_env_example_use_days_from_the_first_partition_day() -> None:
    start = example_start_date()
    env_example = (REPOSITORY / ".env.example").read_text()
    readme = (REPOSITORY / "README.md").read_text()
    examples = env_example + "".join(re.findall(r"```.*?```", readme, re.DOTALL))
    days = set(re.findall(r"\b20\d\d-\d\d-\d\d\b", examples))
    assert min(days) == start, sorted(days)
    assert f"--days {start}:0" in env_example and f"--days {start}:0" in readme


RETRY_LINE = re.compile(
    r"flowinst-etl: warning: (POST|GET) /\S+ (failed: .+|answered HTTP \d+); "
    r"attempt (\d+) of (\d+) in \d+\.\d\d s"
)


def test_each_retry_of_the_preflight_is_one_line(tmp_path: Path) -> None:
    port = closed_port()
    env = cli_environment(f"http://127.0.0.1:{port}", DEMO_CREDENTIALS, ENOS_MAX_RETRIES="2")
    done = run_cli(*backfill_args(FIRST, LAST, tmp_path / "out"), env=env, cwd=tmp_path)
    assert_refused(done, "connection refused (after 2 retries)")
    *retries, _ = stderr_lines(done)
    found = [RETRY_LINE.fullmatch(line) for line in retries]
    assert all(found) and len(found) == 2, describe(done)
    assert [(m.group(3), m.group(4)) for m in found if m] == [("2", "3"), ("3", "3")]
    assert all("connection refused" in line for line in retries), describe(done)


def test_a_retried_request_during_a_backfill_prints_a_retry_line(tmp_path: Path) -> None:
    config = EmulatorConfig(
        seed=6, start_day=FIRST, end_day=LAST, per_day=200, error_rate=0.3, drop_rate=0.1
    )
    with Emulator(config) as faulty:
        done = run_cli(
            *backfill_args(FIRST, FIRST, tmp_path / "out"),
            env=emulator_environment(faulty, ENOS_PAGE_SIZE="10", ENOS_MAX_RETRIES="15"),
            cwd=tmp_path,
        )
        assert done.returncode == 0, describe(done)
        assert_days_exact(faulty, tmp_path / "out", [FIRST], "UTC")
    lines = stderr_lines(done)
    assert lines and all(RETRY_LINE.fullmatch(line) for line in lines), describe(done)


def test_an_empty_data_dir_flag_is_named(emulator: Emulator, tmp_path: Path) -> None:
    done = run_cli(
        *backfill_args(FIRST, LAST, ""), env=emulator_environment(emulator), cwd=tmp_path
    )
    assert_refused(done, "--data-dir is empty")


def test_the_demo_refuses_days_before_the_first_partition_day(tmp_path: Path) -> None:
    today = datetime.now(timezone.utc).date()
    start = today - timedelta(days=2)
    env = {**emulator_environment_without_enos(), "FLOWINST_START_DATE": str(start)}
    done = run_cli("demo", "--days", "5", env=env, cwd=tmp_path)
    assert_refused(
        done,
        f"--days 5 starts at {today - timedelta(days=5)}, before FLOWINST_START_DATE {start}, "
        "the first partition day: use --days 2 or set FLOWINST_START_DATE earlier",
    )
    assert done.stdout == "" and not (tmp_path / "data").exists()


def test_dagster_home_that_is_a_file_is_called_a_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")
    env = {**emulator_environment_without_enos(), "DAGSTER_HOME": str(home)}
    done = run_cli("demo", "--days", "1", env=env, cwd=tmp_path)
    assert_refused(done, f"DAGSTER_HOME '{home}' is a file: point it at a directory or unset it")
    assert "mkdir" not in done.stderr


def test_an_s3_root_without_s3fs_names_the_install_line(emulator: Emulator, tmp_path: Path) -> None:
    absent = tmp_path / "without_s3fs" / "s3fs"
    absent.mkdir(parents=True)
    (absent / "__init__.py").write_text("raise ImportError(\"No module named 's3fs'\")\n")
    before = emulator.stats()["requests"]
    done = subprocess.run(
        cli_command(*backfill_args(FIRST, LAST, "s3://bucket/flowinst")),
        env={**emulator_environment(emulator), "PYTHONPATH": f"{absent.parent}:{REPOSITORY}"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert_refused(done, "S3 needs the s3 extra: .venv/bin/pip install -e '.[s3]'")
    assert emulator.stats()["requests"] == before, "the gateway was called"


@pytest.mark.parametrize(("held", "asked"), [("parquet", "delta"), ("delta", "parquet")])
def test_a_root_of_the_other_table_format_is_refused_before_the_gateway_is_called(
    emulator: Emulator, tmp_path: Path, held: str, asked: str
) -> None:
    root = tmp_path / "out"
    write_day(str(root), FIRST, {}, {}, table_format=held)
    files = sorted(root.rglob("*"))
    before = emulator.stats()["requests"]
    done = run_cli(
        *backfill_args(FIRST, LAST, root),
        env=emulator_environment(emulator, FLOWINST_TABLE_FORMAT=asked),
        cwd=tmp_path,
    )
    record = root / "_flowinst" / "root.json"
    assert_refused(
        done,
        f"dataset root {root} holds days of table format {held} ({record}); this run's is "
        f"{asked}: set FLOWINST_TABLE_FORMAT to {held}, or write into another dataset root",
    )
    assert emulator.stats()["requests"] == before, "the gateway was called"
    assert sorted(root.rglob("*")) == files


def test_a_delta_backfill_on_s3_commits_every_day(emulator: Emulator, tmp_path: Path) -> None:
    with s3_bucket() as bucket:
        aws = {
            "AWS_ENDPOINT_URL": bucket.options["client_kwargs"]["endpoint_url"],
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        env = {**emulator_environment(emulator, FLOWINST_TABLE_FORMAT="delta"), **aws}
        second = FIRST + timedelta(days=1)
        done = run_cli(*backfill_args(FIRST, second, bucket.root), env=env, cwd=tmp_path)
        assert done.returncode == 0, describe(done)
        for day in (FIRST, second):
            frame = read_table(
                "flow_instances", bucket.root, day, day, storage_options=bucket.options
            )
            expected = {t.record["instanceId"] for t in day_truth(emulator, day, "UTC")}
            assert set(frame["instance_id"]) == expected and frame["instance_id"].is_unique
        log = bucket.client.list_objects_v2(
            Bucket="flowinst", Prefix="dataset/flow_instances/_delta_log/"
        )
        assert len(log["Contents"]) == 1 + 2  # the table's creation and a commit per day


def test_the_demo_writes_delta_tables(tmp_path: Path) -> None:
    env = {**emulator_environment_without_enos(), "FLOWINST_TABLE_FORMAT": "delta"}
    done = run_cli("demo", "--days", "1", "--per-day", "20", env=env, cwd=tmp_path)
    assert done.returncode == 0, describe(done)
    assert (tmp_path / "data" / "flow_instances" / "_delta_log").is_dir()
    hint = next(line.strip() for line in done.stdout.splitlines() if " -c " in line)
    printed = subprocess.run(
        hint, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert printed.returncode == 0 and "20" in printed.stdout, printed.stderr
