"""``flowinst-etl refresh`` as a user runs it (a subprocess) against the emulator: history changed
after a backfill is re-extracted day by day, unchanged days are left byte for byte, and a gateway
on which the change test cannot be relied on is caught, said loudly, and every day re-read."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from flowinst_etl import read_table
from flowinst_etl.emulator import Emulator, EmulatorConfig
from tests.guarantees.harness import (
    assert_days_exact,
    backfill_args,
    days_from,
    describe,
    emulator_environment,
    run_cli,
)
from tests.support import day_bounds_ms, day_truth
from tests.test_cli import BAD_INPUT, assert_refused

DAYS = days_from(date(2026, 11, 2), 6)  # 11-02 .. 11-07, UTC days
UNTRUSTED = Path("_flowinst") / "refresh" / "untrusted.json"


@pytest.fixture
def gateway() -> Iterator[Emulator]:
    """An emulator of the test's own: the tests change its history."""
    config = EmulatorConfig(
        seed=9, start_day=date(2026, 11, 1), end_day=date(2026, 11, 8), per_day=80
    )
    with Emulator(config) as running:
        yield running


def refresh(
    emulator: Emulator, root: Path, first: date, last: date
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "refresh", str(first), str(last), "--data-dir", str(root),
        env=emulator_environment(emulator), cwd=root.parent,
    )  # fmt: skip


def backfill(emulator: Emulator, root: Path, first: date, last: date) -> None:
    done = run_cli(
        *backfill_args(first, last, root), env=emulator_environment(emulator), cwd=root.parent
    )
    assert done.returncode == 0, describe(done)


def verdicts(done: subprocess.CompletedProcess[str]) -> dict[date, str]:
    """The verdict refresh printed for each day."""
    found = {}
    for line in done.stdout.splitlines():
        head, _, rest = line.partition("  ")
        if len(head) == 10 and head[4] == head[7] == "-" and rest.split():
            found[date.fromisoformat(head)] = rest.split()[0]
    return found


def day_files(root: Path, day: date) -> dict[str, tuple[str, int]]:
    """Every file of one day (its commit record and data files): content hash and mtime."""
    paths = [root / "_flowinst" / "commits" / f"{day}.json"]
    paths += sorted(root.glob(f"*/trigger_date={day}/*"))
    return {
        str(path.relative_to(root)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns,
        )
        for path in paths
    }


def assert_days_hold_the_final_truth(emulator: Emulator, root: Path, days: list[date]) -> None:
    """Each day is exact (instances, types, graph rows) and each instance has its status now."""
    assert_days_exact(emulator, root, days, "UTC")
    for day in days:
        truth = {
            t.record["instanceId"]: t.record["status"] for t in day_truth(emulator, day, "UTC")
        }
        frame = read_table("flow_instances", str(root), day, day, columns=["instance_id", "status"])
        assert dict(zip(frame["instance_id"], frame["status"], strict=True)) == truth, day


def change(emulator: Emulator, day: date, count: int) -> None:
    assert len(emulator.late_changes(count, *day_bounds_ms(day, "UTC"))) == count


def commit_record(root: Path, day: date) -> dict:
    return json.loads((root / "_flowinst" / "commits" / f"{day}.json").read_text())


def test_refresh_re_extracts_exactly_the_changed_days(gateway: Emulator, tmp_path: Path) -> None:
    root = tmp_path / "data"
    backfill(gateway, root, DAYS[1], DAYS[-1])  # DAYS[0] is left for refresh to extract
    before = {day: day_files(root, day) for day in DAYS[1:]}
    change(gateway, DAYS[2], 3)
    change(gateway, DAYS[4], 2)

    done = refresh(gateway, root, DAYS[0], DAYS[-1])

    assert done.returncode == 0, describe(done)
    assert verdicts(done) == {
        DAYS[0]: "new",
        DAYS[1]: "unchanged",
        DAYS[2]: "changed",
        DAYS[3]: "unchanged",
        DAYS[4]: "changed",
        DAYS[5]: "unchanged",
    }, done.stdout
    assert "3 instances updated since" in done.stdout and "now " in done.stdout
    assert "requests: " in done.stdout and " to extract 3 days" in done.stdout
    assert_days_hold_the_final_truth(gateway, root, DAYS)
    for day in (DAYS[1], DAYS[3], DAYS[5]):
        assert day_files(root, day) == before[day], f"{day} was rewritten"
    for day in (DAYS[2], DAYS[4]):
        assert day_files(root, day) != before[day]
        assert "as the change test sees" in commit_record(root, day)["changes"]["compared"]

    again = {day: day_files(root, day) for day in DAYS}
    done = refresh(gateway, root, DAYS[0], DAYS[-1])
    assert done.returncode == 0, describe(done)
    assert set(verdicts(done).values()) == {"unchanged"}, done.stdout
    assert {day: day_files(root, day) for day in DAYS} == again
    assert not (root / UNTRUSTED).exists()


def test_update_times_that_do_not_move_are_caught_and_every_day_is_re_read(
    gateway: Emulator, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    backfill(gateway, root, DAYS[0], DAYS[-1])
    gateway.reconfigure(update_times="frozen")
    change(gateway, DAYS[1], 3)
    change(gateway, DAYS[-1], 3)  # the newest day, which refresh also reads in full to verify

    done = refresh(gateway, root, DAYS[0], DAYS[-1])

    assert done.returncode == 0, describe(done)
    assert "warning: the change test cannot be relied on on this gateway" in done.stderr
    assert set(verdicts(done).values()) == {"changed"}, done.stdout
    assert "re-read: the change test is not trusted" in done.stdout
    assert_days_hold_the_final_truth(gateway, root, DAYS)
    proof = json.loads((root / UNTRUSTED).read_text())
    # the probe's answers already show it: an instance that ended after its update time
    assert "timestamp is not the time of the last update" in proof["reason"], proof

    done = refresh(gateway, root, DAYS[0], DAYS[-1])  # said again on every run
    assert done.returncode == 0, describe(done)
    assert proof["reason"] in " ".join(done.stderr.split())
    assert set(verdicts(done).values()) == {"changed"}, done.stdout


def test_a_full_read_that_shows_timestamp_is_no_update_time_says_so(
    emulator, tmp_path: Path
) -> None:
    gateway = emulator(
        start_day=date(2026, 11, 1), end_day=date(2026, 11, 8), per_day=60, timestamp_shows="create"
    )
    root = tmp_path / "data"
    done = run_cli(
        *backfill_args(DAYS[0], DAYS[1], root), env=emulator_environment(gateway), cwd=tmp_path
    )

    assert done.returncode == 0, describe(done)
    assert "refresh cannot rely on its change test on this gateway" in done.stderr
    violation = commit_record(root, DAYS[0])["changes"]["violation"]
    assert "timestamp is not the time of the last update" in violation
    done = refresh(gateway, root, DAYS[0], DAYS[1])
    assert done.returncode == 0, describe(done)
    assert verdicts(done) == {DAYS[0]: "changed", DAYS[1]: "changed"}
    assert "timestamp is not the time of the last update" in done.stderr
    assert_days_hold_the_final_truth(gateway, root, DAYS[:2])


def test_a_failing_check_exits_1_and_writes_nothing(gateway: Emulator, tmp_path: Path) -> None:
    root = tmp_path / "data"
    backfill(gateway, root, DAYS[0], DAYS[2])
    change(gateway, DAYS[0], 2)
    before = {day: day_files(root, day) for day in DAYS[:3]}
    gateway.reconfigure(failing_window_ms=day_bounds_ms(DAYS[2], "UTC"))
    done = run_cli(
        "refresh", str(DAYS[0]), str(DAYS[2]), "--data-dir", str(root),
        env=emulator_environment(gateway, ENOS_MAX_RETRIES="1"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, describe(done)
    assert done.stderr.startswith(
        "flowinst-etl: the check for changes failed, no day was refreshed"
    )
    assert "EnOS error 62109" in done.stderr and "Traceback" not in done.stderr
    assert {day: day_files(root, day) for day in DAYS[:3]} == before


@pytest.mark.parametrize(
    "case", ["impossible date", "start after end", "day not over", "before FLOWINST_START_DATE"]
)
def test_refresh_refuses_what_backfill_refuses(
    gateway: Emulator, tmp_path: Path, case: str
) -> None:
    argv, env, message = BAD_INPUT[case]
    done = run_cli(
        "refresh", *argv[1:], "--data-dir", str(tmp_path / "out"),
        env=emulator_environment(gateway, **env), cwd=tmp_path,
    )  # fmt: skip
    assert_refused(done, message)
    assert not (tmp_path / "out").exists()
