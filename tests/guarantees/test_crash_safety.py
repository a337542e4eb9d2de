"""A backfill killed with SIGKILL leaves only whole committed days to readers; a rerun completes.

The process is killed from outside while it pages a slow gateway, and from inside at chosen
steps (see ``killing_storage``): while a day's files are staged, and after every rename of a
publish. ``read_table`` and ``dataset()`` then see each day as exactly one write, the previous or
the new one; glob readers (pyarrow.dataset, DuckDB) see no partition folder without data and no
temporary file, and after a rerun exactly the committed files. Two backfills of the same days at
once both finish, each day as one complete write. The tests that apply to both table formats run
for a root of Delta tables too, where Delta readers see each day of a table as one committed
file, and a process killed between the table commits of a day is finished by the next run.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from flowinst_etl import dataset, read_manifest, read_table
from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.tables.flatten import flatten_instances
from flowinst_etl.tables.schema import TABLES
from tests.fixtures.enos_records import EXTRACTED_AT, GMT8, day_records
from tests.fixtures.old_layout import write_old_layout
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
    delta_day_files,
    describe,
    emulator_environment,
    file_listing,
    is_delta,
    run_cli,
    snapshot,
)
from tests.guarantees.killing_storage import (
    KILL_AFTER_MOVE,
    KILL_AFTER_TABLE_COMMIT,
    KILL_AT,
    PROTOCOL,
)

FIRST = date(2026, 11, 18)
DAYS = days_from(FIRST, 5)
TIMEZONE = "UTC"
KILLING_CLI = "tests.guarantees.killing_storage"
FORMATS = ["parquet", "delta"]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    config = EmulatorConfig(
        seed=53, start_day=DAYS[0] - timedelta(days=1), end_day=DAYS[-1] + timedelta(days=1)
    )
    with Emulator(config) as running:
        yield running


def committed_days(root: Path) -> set[str]:
    """Days with a commit record."""
    return {path.stem for path in root.glob("_flowinst/commits/*.json")}


def every_table(root: Path) -> dict[str, pd.DataFrame]:
    """Every table of the dataset, without the extraction time (which each run sets anew)."""
    return {
        table: read_table(table, str(root)).drop(columns="extracted_at", errors="ignore")
        for table in TABLES
    }


def assert_clean_folders(root: Path) -> None:
    """Every day folder holds exactly the data file its commit names (Delta tables: the newest
    version of each holds exactly that file for each day), nothing is staged."""
    if is_delta(root):
        assert_only_complete_days(root)
        assert not list((root / "_flowinst" / "staging").glob("*")), "a write left staging"
        return
    for folder in root.glob("*/trigger_date=*"):
        manifest = read_manifest(str(root), folder.parent.name, folder.name.split("=", 1)[1])
        assert manifest is not None, folder
        assert [p.name for p in folder.iterdir()] == [manifest["file"]], folder
    assert not [p for p in (root / "_flowinst" / "staging").rglob("*") if p.is_file()]


@pytest.mark.parametrize("table_format", FORMATS)
def test_a_backfill_killed_after_a_committed_day_leaves_only_complete_days(
    emulator: Emulator, tmp_path: Path, table_format: str
) -> None:
    root = tmp_path / "data"
    args = backfill_args(DAYS[0], DAYS[-1], root, "--timezone", TIMEZONE, "--workers", "1")
    env = emulator_environment(emulator, ENOS_PAGE_SIZE="20", FLOWINST_TABLE_FORMAT=table_format)
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
    tables, files = every_table(root), layout(root)

    again = run_cli(*args, env=env, cwd=tmp_path)
    assert again.returncode == 0, describe(again)
    assert layout(root) == files or table_format == "delta"  # Delta keeps replaced files
    assert_clean_folders(root)
    for table, frame in every_table(root).items():
        pd.testing.assert_frame_equal(frame, tables[table], obj=table)


def layout(root: Path) -> list[str]:
    """Every file under ``root``, with the write id in data file names left out."""
    return [re.sub(r"part-[0-9a-f]+\.parquet$", "part-*.parquet", p) for p in file_listing(root)]


def killing_backfill(
    emulator: Emulator, root: Path, kill_at: str, cwd: Path, table_format: str
) -> subprocess.CompletedProcess[str]:
    """The backfill of every day on the killing disk, dying at ``kill_at`` (``PREFIX:N``)."""
    return run_cli(
        *backfill_args(DAYS[0], DAYS[-1], f"{PROTOCOL}://{root}", "--timezone", TIMEZONE),
        env=emulator_environment(
            emulator, **{KILL_AT: kill_at, "FLOWINST_TABLE_FORMAT": table_format}
        ),
        cwd=cwd,
        module=KILLING_CLI,
    )


@pytest.mark.parametrize("table_format", FORMATS)
def test_a_crash_while_writing_a_day_keeps_its_previous_version(
    emulator: Emulator, tmp_path: Path, table_format: str
) -> None:
    root = tmp_path / "data"
    env = emulator_environment(emulator, FLOWINST_TABLE_FORMAT=table_format)
    args = backfill_args(DAYS[0], DAYS[-1], root, "--timezone", TIMEZONE)
    first = run_cli(*args, env=env, cwd=tmp_path)
    assert first.returncode == 0, describe(first)
    before = snapshot(root)

    crash = killing_backfill(emulator, root, "part-:2", tmp_path, table_format)

    assert crash.returncode == -signal.SIGKILL, describe(crash)
    after = snapshot(root)
    leftovers = sorted(set(after) - set(before))
    assert leftovers, "the crash came before any file was written: the test proves nothing"
    # Delta writes a day's files into its partition folders, where no Delta version names them
    # until committed (assert_whole_days checks what Delta readers see).
    uncommitted = r"_flowinst/.*|flow_\w+/trigger_date=[-\d]+/part-[0-9a-f]+\.parquet"
    pattern = uncommitted if table_format == "delta" else "_flowinst/.*"
    assert all(re.fullmatch(pattern, name) for name in leftovers), leftovers
    assert {name: after[name] for name in before} == before, "a committed file changed"
    assert assert_whole_days(root) == {day.isoformat() for day in DAYS}
    assert_readers_read(root)

    rerun = run_cli(*args, env=env, cwd=tmp_path)
    assert rerun.returncode == 0, describe(rerun)
    assert_days_exact(emulator, root, DAYS, TIMEZONE)
    assert_clean_folders(root)


@pytest.mark.parametrize("table_format", FORMATS)
def test_a_crash_while_committing_a_day_leaves_no_uncommitted_data_visible(
    emulator: Emulator, tmp_path: Path, table_format: str
) -> None:
    root = tmp_path / "data"

    # One commit record is staged per day: the 2nd opening is the second day's, after the first
    # day is committed and while the second is on its way.
    crash = killing_backfill(emulator, root, "commit.json:2", tmp_path, table_format)

    assert crash.returncode == -signal.SIGKILL, describe(crash)
    assert committed_days(root), "killed before any day was committed"
    assert_readers_read(root)
    assert_only_complete_days(root)

    args = backfill_args(DAYS[0], DAYS[-1], root, "--timezone", TIMEZONE)
    env = emulator_environment(emulator, FLOWINST_TABLE_FORMAT=table_format)
    rerun = run_cli(*args, env=env, cwd=tmp_path)
    assert rerun.returncode == 0, describe(rerun)
    assert_days_exact(emulator, root, DAYS, TIMEZONE)
    assert_clean_folders(root)


#: The renames of one day's publish: each table's data file, then the commit record.
PUBLISH_MOVES = len(TABLES) + 1


def committed_write(root: Path, day: date) -> str:
    """The one write id every table of ``day`` is committed by, as ``read_table`` sees it."""
    ids = {read_manifest(str(root), table, day)["write_id"] for table in TABLES}  # type: ignore[index]
    assert len(ids) == 1, f"{day}: tables committed by different writes {ids}"
    return ids.pop()


@pytest.mark.slow
def test_a_crash_between_any_two_renames_shows_one_write_and_the_next_run_repairs(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Killed after each rename of a publish in turn; each killed run starts by repairing what
    the one before left, and a last run leaves the day exact and clean."""
    root, day = tmp_path / "data", DAYS[0]
    args = backfill_args(day, day, root, "--timezone", TIMEZONE)
    first = run_cli(*args, env=emulator_environment(emulator), cwd=tmp_path)
    assert first.returncode == 0, describe(first)
    before = every_table(root)

    for moves in range(1, PUBLISH_MOVES + 1):
        previous = committed_write(root, day)
        crash = run_cli(
            *backfill_args(day, day, f"{PROTOCOL}://{root}", "--timezone", TIMEZONE),
            env=emulator_environment(emulator, **{KILL_AFTER_MOVE: str(moves)}),
            cwd=tmp_path,
            module=KILLING_CLI,
        )

        assert crash.returncode == -signal.SIGKILL, describe(crash)
        committed = committed_write(root, day)
        assert (committed == previous) == (moves < PUBLISH_MOVES), "the commit is the last rename"
        for table in TABLES:
            files = [Path(path).name for path in dataset(table, str(root)).files]
            assert files == [f"part-{committed}.parquet"], (moves, table, files)
            assert dataset(table, str(root)).count_rows() == len(before[table]), (moves, table)
        if committed == previous:  # still the first run's write, row for row
            for table, frame in every_table(root).items():
                pd.testing.assert_frame_equal(frame, before[table], obj=f"{moves} {table}")
        # Glob readers meet data files only: the committed write's and, until the next run
        # repairs, the interrupted one's (where its rename came before the kill).
        names = {path.name for path in root.glob("*/trigger_date=*/*")}
        assert names <= {f"part-{previous}.parquet", f"part-{crash_write(root)}.parquet"}, names

    rerun = run_cli(*args, env=emulator_environment(emulator), cwd=tmp_path)
    assert rerun.returncode == 0, describe(rerun)
    assert_days_exact(emulator, root, [day], TIMEZONE)
    assert assert_whole_days(root) == {day.isoformat()}
    assert_clean_folders(root)


def crash_write(root: Path) -> str:
    """The id of the write a crash interrupted: the one staging folder it left."""
    [staged] = list(root.glob("_flowinst/staging/*/*"))
    return staged.name


@pytest.mark.parametrize("table_format", FORMATS)
def test_two_backfills_of_the_same_days_at_once_both_finish_with_whole_days(
    emulator: Emulator, tmp_path: Path, table_format: str
) -> None:
    root, days = tmp_path / "data", DAYS[:3]
    args = backfill_args(days[0], days[-1], root, "--timezone", TIMEZONE)
    environment = {
        **emulator_environment(emulator, FLOWINST_TABLE_FORMAT=table_format),
        "PYTHONPATH": str(REPOSITORY),
    }
    runs = [
        subprocess.Popen(
            cli_command(*args),
            env=environment,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    errors = [run.communicate(timeout=CLI_TIMEOUT_S)[1] for run in runs]

    assert [run.returncode for run in runs] == [0, 0], errors
    assert_days_exact(emulator, root, days, TIMEZONE)
    assert assert_whole_days(root) == {day.isoformat() for day in days}
    assert_clean_folders(root)


def test_a_migration_of_the_old_layout_killed_at_any_step_reads_the_same_and_is_finished(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Days of the previous layout, then backfills of another day killed while the run first
    migrates them: when staging a day's commit record, and right after putting one in place
    (its manifests still there). Every killed run leaves the old days reading as they were; the
    next run finishes, and glob readers then read every day."""
    root, old_days, new_day = tmp_path / "data", DAYS[:2], DAYS[2]
    for count, day in enumerate(old_days, start=3):
        tables = flatten_instances(day_records(count, day.isoformat()), GMT8, EXTRACTED_AT)
        write_old_layout(root, day, tables)
    before = every_table(root)
    killing = backfill_args(new_day, new_day, f"{PROTOCOL}://{root}", "--timezone", TIMEZONE)

    for kill in ({KILL_AT: "commit.json:1"}, {KILL_AFTER_MOVE: "1"}, {KILL_AFTER_MOVE: "1"}):
        crash = run_cli(
            *killing, env=emulator_environment(emulator, **kill), cwd=tmp_path, module=KILLING_CLI
        )

        assert crash.returncode == -signal.SIGKILL, describe(crash)
        for table, frame in every_table(root).items():
            pd.testing.assert_frame_equal(frame, before[table], obj=f"{kill} {table}")

    rerun = run_cli(
        *backfill_args(new_day, new_day, root, "--timezone", TIMEZONE),
        env=emulator_environment(emulator),
        cwd=tmp_path,
    )
    assert rerun.returncode == 0, describe(rerun)
    assert not list(root.glob("**/_manifest.json"))
    assert_days_exact(emulator, root, [new_day], TIMEZONE)
    assert assert_whole_days(root) == {day.isoformat() for day in (*old_days, new_day)}
    counts = assert_readers_read(root)
    assert counts["flow_instances"] == len(before["flow_instances"]) + len(
        read_table("flow_instances", str(root), start=new_day, end=new_day)
    )
    assert_clean_folders(root)


def committed_delta_writes(root: Path, day: date) -> dict[str, str]:
    """The write id of the file each Delta table's newest version holds for ``day``."""
    found = {}
    for table in TABLES:
        [name] = delta_day_files(root, table)[day.isoformat()]
        found[table] = re.fullmatch(r"part-([0-9a-f]+)\.parquet", name).group(1)  # type: ignore[union-attr]
    return found


@pytest.mark.slow
def test_a_delta_write_killed_between_its_table_commits_is_finished_by_the_next_run(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Killed right after a day's first table commit, and after its last (the record not yet
    in place): ``read_table`` and ``dataset()`` keep showing the recorded write,
    Delta readers see each table's day as one whole file, and the next run finishes the killed
    write before it writes its own, leaving the day exact."""
    root, day = tmp_path / "data", DAYS[0]
    env = emulator_environment(emulator, FLOWINST_TABLE_FORMAT="delta")
    args = backfill_args(day, day, root, "--timezone", TIMEZONE)
    first = run_cli(*args, env=env, cwd=tmp_path)
    assert first.returncode == 0, describe(first)
    before = every_table(root)

    # Between the first two table commits, and after the last (the record not yet in place).
    for kill in ({KILL_AFTER_TABLE_COMMIT: "1"}, {KILL_AFTER_TABLE_COMMIT: str(len(TABLES))}):
        recorded = committed_write(root, day)
        crash = run_cli(
            *backfill_args(day, day, f"{PROTOCOL}://{root}", "--timezone", TIMEZONE),
            env={**env, **kill},
            cwd=tmp_path,
            module=KILLING_CLI,
        )

        assert crash.returncode == -signal.SIGKILL, describe(crash)
        [staged] = list(root.glob("_flowinst/staging/*/*"))
        killed = staged.name
        writes = committed_delta_writes(root, day)
        commits, held = int(kill[KILL_AFTER_TABLE_COMMIT]), list(writes.values())
        assert held[:commits] == [killed] * commits, writes  # the first N tables: killed write
        assert killed not in held[commits:], writes
        assert committed_write(root, day) == recorded, "the record moved before the commits"
        for table, frame in every_table(root).items():
            pd.testing.assert_frame_equal(frame, before[table], obj=f"{kill} {table}")
        assert_only_complete_days(root)
        assert_readers_read(root)

        rerun = run_cli(*args, env=env, cwd=tmp_path)
        assert rerun.returncode == 0, describe(rerun)
        assert "finished what an unfinished write" in rerun.stderr, describe(rerun)
        assert_days_exact(emulator, root, [day], TIMEZONE)
        assert assert_whole_days(root) == {day.isoformat()}
        assert_clean_folders(root)
        before = every_table(root)
