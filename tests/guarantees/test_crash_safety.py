"""A backfill killed with SIGKILL leaves only whole committed days to readers; a rerun completes.

The process is killed from outside while it pages a slow gateway, and from inside at chosen
writes (see ``killing_storage``): while a day's data files are written, and while the day is
being committed. Readers are pyarrow.dataset, DuckDB and ``read_table``; they skip files whose
names start with ``.`` or ``_``.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from flowinst_etl import read_table
from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.store import MANIFEST_FILE, PART_FILE
from flowinst_etl.tables.schema import TABLES
from tests.guarantees.harness import (
    CLI_TIMEOUT_S,
    REPOSITORY,
    assert_days_exact,
    assert_only_complete_days,
    assert_readers_read,
    assert_whole_days,
    backfill_args,
    cli_command,
    days_from,
    describe,
    emulator_environment,
    file_listing,
    run_cli,
    snapshot,
)
from tests.guarantees.killing_storage import KILL_AT, PROTOCOL

FIRST = date(2026, 11, 18)
DAYS = days_from(FIRST, 5)
TIMEZONE = "UTC"
KILLING_CLI = "tests.guarantees.killing_storage"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    config = EmulatorConfig(
        seed=53, start_day=DAYS[0] - timedelta(days=1), end_day=DAYS[-1] + timedelta(days=1)
    )
    with Emulator(config) as running:
        yield running


def committed_days(root: Path) -> set[str]:
    """Days whose four tables all have a manifest."""
    manifests = Counter(path.parent.name for path in root.glob(f"*/*/{MANIFEST_FILE}"))
    return {folder.split("=", 1)[1] for folder, count in manifests.items() if count == len(TABLES)}


def every_table(root: Path) -> dict[str, pd.DataFrame]:
    """Every table of the dataset, without the extraction time (which each run sets anew)."""
    return {
        table: read_table(table, str(root)).drop(columns="extracted_at", errors="ignore")
        for table in TABLES
    }


def assert_clean_folders(root: Path) -> None:
    """Every day folder holds exactly its data file and its manifest, nothing left over."""
    for folder in root.glob("*/trigger_date=*"):
        assert sorted(p.name for p in folder.iterdir()) == [MANIFEST_FILE, PART_FILE], folder


def test_a_backfill_killed_after_a_committed_day_leaves_only_complete_days(
    emulator: Emulator, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    args = backfill_args(DAYS[0], DAYS[-1], root, "--timezone", TIMEZONE, "--workers", "1")
    env = emulator_environment(emulator, ENOS_PAGE_SIZE="20")
    emulator.reconfigure(latency_ms=60)
    try:
        process = subprocess.Popen(
            cli_command(*args),
            env={**env, "PYTHONPATH": str(REPOSITORY)},
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while process.poll() is None and not committed_days(root):
            assert time.monotonic() < deadline, "no day was committed in time"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=60)
    finally:
        emulator.reconfigure(latency_ms=0)
    assert process.returncode == -signal.SIGKILL, stderr.decode()

    visible = assert_only_complete_days(root)["flow_instances"]
    assert 1 <= len(visible) < len(DAYS), f"killed with {visible} committed: not mid-run"
    assert_readers_read(root)

    rerun = run_cli(*args, env=env, cwd=tmp_path)
    assert rerun.returncode == 0, describe(rerun)
    assert_days_exact(emulator, root, DAYS, TIMEZONE)
    assert assert_whole_days(root) == {day.isoformat() for day in DAYS}
    assert_clean_folders(root)
    tables, files = every_table(root), file_listing(root)

    again = run_cli(*args, env=env, cwd=tmp_path)
    assert again.returncode == 0, describe(again)
    assert file_listing(root) == files
    for table, frame in every_table(root).items():
        pd.testing.assert_frame_equal(frame, tables[table], obj=table)


def killing_backfill(
    emulator: Emulator, root: Path, kill_at: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """The backfill of every day on the killing disk, dying at ``kill_at`` (``PREFIX:N``)."""
    return run_cli(
        *backfill_args(DAYS[0], DAYS[-1], f"{PROTOCOL}://{root}", "--timezone", TIMEZONE),
        env=emulator_environment(emulator, **{KILL_AT: kill_at}),
        cwd=cwd,
        module=KILLING_CLI,
    )


def test_a_crash_while_writing_a_day_keeps_its_previous_version(
    emulator: Emulator, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    args = backfill_args(DAYS[0], DAYS[-1], root, "--timezone", TIMEZONE)
    first = run_cli(*args, env=emulator_environment(emulator), cwd=tmp_path)
    assert first.returncode == 0, describe(first)
    before = snapshot(root)

    crash = killing_backfill(emulator, root, ".part-0.parquet:2", tmp_path)

    assert crash.returncode == -signal.SIGKILL, describe(crash)
    after = snapshot(root)
    leftovers = sorted(set(after) - set(before))
    assert leftovers, "the crash came before any file was written: the test proves nothing"
    assert all(Path(name).name.startswith(".") for name in leftovers), leftovers
    assert {name: after[name] for name in before} == before, "a committed file changed"
    assert assert_whole_days(root) == {day.isoformat() for day in DAYS}
    assert_readers_read(root)

    rerun = run_cli(*args, env=emulator_environment(emulator), cwd=tmp_path)
    assert rerun.returncode == 0, describe(rerun)
    assert_days_exact(emulator, root, DAYS, TIMEZONE)
    assert_clean_folders(root)


def test_a_crash_while_committing_a_day_leaves_no_uncommitted_data_visible(
    emulator: Emulator, tmp_path: Path
) -> None:
    root = tmp_path / "data"

    # Four manifests are staged per day: the 6th opening is the second committed day's second
    # table, after the first day is committed and while the second is on its way.
    crash = killing_backfill(emulator, root, "._manifest.json:6", tmp_path)

    assert crash.returncode == -signal.SIGKILL, describe(crash)
    assert list(root.glob(f"*/*/{MANIFEST_FILE}")), "killed before any day was committed"
    assert_readers_read(root)
    assert_only_complete_days(root)

    args = backfill_args(DAYS[0], DAYS[-1], root, "--timezone", TIMEZONE)
    rerun = run_cli(*args, env=emulator_environment(emulator), cwd=tmp_path)
    assert rerun.returncode == 0, describe(rerun)
    assert_days_exact(emulator, root, DAYS, TIMEZONE)
    assert_clean_folders(root)
