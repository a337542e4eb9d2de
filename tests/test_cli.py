"""The command line end to end: backfill and demo as a user runs them, and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from flowinst_etl import read_table
from flowinst_etl.cli import main
from flowinst_etl.emulator import Emulator, EmulatorConfig
from tests.pipelines.conftest import enos_environment
from tests.support import day_truth

FIRST = date(2026, 11, 2)
LAST = date(2026, 11, 4)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    config = EmulatorConfig(
        seed=4, start_day=date(2026, 11, 1), end_day=date(2026, 11, 5), per_day=120
    )
    with Emulator(config) as running:
        yield running


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ENOS_", "FLOWINST_"))}
    return subprocess.run(
        [sys.executable, "-m", "flowinst_etl.cli", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_backfill_commits_every_day_and_prints_a_summary(
    emulator: Emulator, tmp_path: Path
) -> None:
    done = run_cli(
        "backfill",
        str(FIRST),
        str(LAST),
        "--data-dir",
        str(tmp_path / "out"),
        env=enos_environment(emulator),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "flowinst-etl backfill" in done.stdout and "failed days" in done.stdout
    for offset in range(3):
        day = FIRST + timedelta(days=offset)
        assert day.isoformat() in done.stdout
        frame = read_table("flow_instances", str(tmp_path / "out"), day, day)
        truth = day_truth(emulator, day, "UTC")
        assert sorted(frame["instance_id"]) == sorted(t.record["instanceId"] for t in truth)


def test_demo_runs_the_main_job_on_the_built_in_emulator(tmp_path: Path) -> None:
    done = run_cli("demo", "--days", "2", "--per-day", "60", env={}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    assert len(read_table("flow_instances", str(tmp_path / "data"), yesterday, yesterday)) > 0
    assert "read_parquet" in done.stdout and "dagster dev" in done.stdout


BAD_INPUT = {
    "invalid date": (["backfill", "2026-11-31", "2026-12-01"], {}, "invalid date '2026-11-31'"),
    "start after end": (["backfill", "2026-11-04", "2026-11-02"], {}, "is after END"),
    "day not over": (["backfill", "2026-11-02", "2999-01-01"], {}, "is not over yet"),
    "unknown timezone": (
        ["backfill", "2026-11-02", "2026-11-03", "--timezone", "Mars/Base"],
        {},
        "unknown timezone 'Mars/Base'",
    ),
    "missing url": (
        ["backfill", "2026-11-02", "2026-11-03"],
        {"ENOS_API_URL": None},
        "ENOS_API_URL is not set",
    ),
    "wrong access key": (
        ["backfill", "2026-11-02", "2026-11-03"],
        {"ENOS_ACCESS_KEY": "nobody"},
        "ENOS_ACCESS_KEY",
    ),
    "wrong secret": (
        ["backfill", "2026-11-02", "2026-11-03"],
        {"ENOS_SECRET_KEY": "guessed-secret"},
        "ENOS_SECRET_KEY",
    ),
    "user not in org": (
        ["backfill", "2026-11-02", "2026-11-03"],
        {"ENOS_USER_ID": "u-nobody"},
        "62101",
    ),
    "unreachable gateway": (
        ["backfill", "2026-11-02", "2026-11-03"],
        {"ENOS_API_URL": "http://127.0.0.1:9"},
        "cannot reach the gateway",
    ),
}


@pytest.mark.parametrize(("argv", "env", "message"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: dict[str, str | None],
    message: str,
) -> None:
    for name, value in {**enos_environment(emulator), **env}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("ENOS_MAX_RETRIES", "1")
    assert main([*argv, "--data-dir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error
    assert "guessed-secret" not in error[0]
    assert not (tmp_path / "out").exists()
