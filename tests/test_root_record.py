"""A dataset root keeps one partition timezone: the command line (a subprocess against the
emulator) refuses a run in another zone before any request, leaving the root as it was; a root
written before roots had records takes the zone of its next run, and says so once."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.exceptions import ConfigError
from flowinst_etl.extract import Extractor
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.load import load_days
from flowinst_etl.windows import zone
from tests.guarantees.harness import (
    assert_days_exact,
    backfill_args,
    describe,
    emulator_environment,
    run_cli,
    snapshot,
)
from tests.support import settings_for

FIRST, SECOND = date(2026, 11, 2), date(2026, 11, 3)
RECORD = Path("_flowinst", "root.json")


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    config = EmulatorConfig(seed=9, start_day=date(2026, 11, 1), end_day=SECOND, per_day=40)
    with Emulator(config) as running:
        yield running


def backfill(
    emulator: Emulator, root: Path, day: date, *options: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        *backfill_args(day, day, root, *options),
        env=emulator_environment(emulator, **env),
        cwd=root.parent,
    )


def record(root: Path) -> dict[str, str]:
    return dict(json.loads((root / RECORD).read_text()))


@pytest.mark.parametrize("how", ["--timezone", "FLOWINST_TIMEZONE"])
def test_a_run_in_another_zone_is_refused_and_the_root_is_untouched(
    emulator: Emulator, tmp_path: Path, how: str
) -> None:
    root = tmp_path / "data"
    first = backfill(emulator, root, FIRST)
    assert first.returncode == 0, describe(first)
    assert record(root) == {"partition_timezone": "UTC", "table_format": "parquet"}
    before, requests = snapshot(root), emulator.stats()["requests"]

    if how == "--timezone":
        done = backfill(emulator, root, SECOND, "--timezone", "Asia/Shanghai")
    else:
        done = backfill(emulator, root, SECOND, FLOWINST_TIMEZONE="Asia/Shanghai")

    assert done.returncode == 2, describe(done)
    assert done.stderr.splitlines() == [
        f"flowinst-etl: error: dataset root {root} holds days of partition timezone UTC "
        f"({root / RECORD}); this run's is Asia/Shanghai: set FLOWINST_TIMEZONE or --timezone "
        "to UTC, or write into another dataset root"
    ], describe(done)
    assert emulator.stats()["requests"] == requests, "the gateway was called"
    assert snapshot(root) == before, "the root changed"


def test_a_root_written_before_records_takes_its_next_runs_zone_and_says_so_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    assert backfill(emulator, root, FIRST, "--timezone", "Asia/Shanghai").returncode == 0
    (root / RECORD).unlink()  # what the version before root records left

    adopting = backfill(emulator, root, SECOND, "--timezone", "Asia/Shanghai")
    again = backfill(emulator, root, SECOND, "--timezone", "Asia/Shanghai")
    other = backfill(emulator, root, SECOND)

    assert adopting.returncode == 0, describe(adopting)
    assert adopting.stderr.splitlines() == [
        f"flowinst-etl: warning: dataset root {root} had no record of its partition timezone: "
        "it takes this run's (Asia/Shanghai), so the days written before are taken to be cut "
        "in it"
    ], describe(adopting)
    assert record(root) == {"partition_timezone": "Asia/Shanghai", "table_format": "parquet"}
    assert again.returncode == 0 and again.stderr == "", describe(again)
    assert other.returncode == 2 and "timezone Asia/Shanghai" in other.stderr, describe(other)
    assert_days_exact(emulator, root, [FIRST, SECOND], "Asia/Shanghai")


def test_a_new_root_records_its_zone_with_its_first_run_only(
    emulator: Emulator, tmp_path: Path
) -> None:
    refused = backfill(emulator, tmp_path / "data", FIRST, ENOS_SECRET_KEY="guessed")
    assert refused.returncode == 2 and not (tmp_path / "data").exists(), describe(refused)

    done = backfill(emulator, tmp_path / "data", FIRST, "--timezone", "Europe/Berlin")

    assert done.returncode == 0 and done.stderr == "", describe(done)
    assert record(tmp_path / "data") == {
        "partition_timezone": "Europe/Berlin",
        "table_format": "parquet",
    }


def test_the_library_load_holds_a_root_to_its_zone_and_records_a_new_ones(
    emulator: Emulator, tmp_path: Path
) -> None:
    """``load_days`` (what ``refresh`` and scripts call) records the zone of a new root and
    refuses another, before any request, as the command line does."""
    root = tmp_path / "data"
    with EnosClient(settings_for(emulator)) as client:
        (result,) = load_days(Extractor(client), [FIRST], zone("Asia/Shanghai"), str(root))
        assert result.ok, result.error
        assert record(root)["partition_timezone"] == "Asia/Shanghai"
        before, requests = snapshot(root), emulator.stats()["requests"]
        with pytest.raises(ConfigError, match="partition timezone Asia/Shanghai"):
            list(load_days(Extractor(client), [SECOND], zone("UTC"), str(root)))
    assert snapshot(root) == before
    assert emulator.stats()["requests"] == requests
