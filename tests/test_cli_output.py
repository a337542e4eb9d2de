"""What the command line prints (a subprocess against the emulator): on stderr the product's own
lines only, Dagster's first-use notices kept for ``--verbose``; output that survives any console
encoding; and first runs on a fresh ``DAGSTER_HOME`` that all finish when started at once."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from functools import partial
from pathlib import Path

import pytest

from flowinst_etl.emulator import Emulator, EmulatorConfig
from tests.guarantees.harness import (
    assert_days_exact,
    backfill_args,
    describe,
    emulator_environment,
    run_cli,
)

DAY = date(2026, 11, 2)
DAGSTER_NOTICES = ("No dagster instance configuration file", "Telemetry", "Welcome to Dagster")


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    config = EmulatorConfig(seed=13, start_day=date(2026, 11, 1), end_day=DAY, per_day=20)
    with Emulator(config) as running:
        yield running


def first_run(
    emulator: Emulator, folder: Path, *options: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    """A backfill of one day into ``folder/data`` with the new, empty ``folder/home`` as
    ``DAGSTER_HOME``."""
    home = folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = emulator_environment(emulator, DAGSTER_HOME=str(home), **settings)
    return run_cli(*backfill_args(DAY, DAY, folder / "data", *options), env=env, cwd=folder)


def test_dagster_notices_of_a_first_run_show_only_with_verbose(
    emulator: Emulator, tmp_path: Path
) -> None:
    quiet = first_run(emulator, tmp_path / "quiet")
    verbose = first_run(emulator, tmp_path / "verbose", "--verbose")

    assert quiet.returncode == 0 and quiet.stderr == "", describe(quiet)
    assert not any(notice in quiet.stdout for notice in DAGSTER_NOTICES), describe(quiet)
    assert verbose.returncode == 0, describe(verbose)
    assert all(notice in verbose.stderr for notice in DAGSTER_NOTICES), describe(verbose)


@pytest.mark.parametrize(
    "console",
    [{"PYTHONIOENCODING": "ascii"}, {"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "latin-1"}],
    ids=["ascii", "C locale, latin-1 console"],
)
def test_the_output_survives_any_console_encoding(
    emulator: Emulator, tmp_path: Path, console: dict[str, str]
) -> None:
    root = tmp_path / "数据"  # in neither ASCII nor latin-1
    done = run_cli(
        *backfill_args(DAY, DAY, root),
        env=emulator_environment(emulator, **console),
        cwd=tmp_path,
    )

    assert done.returncode == 0 and done.stderr == "", describe(done)
    assert done.stdout.splitlines()[-1] == f"data: {tmp_path}/\\u6570\\u636e", describe(done)
    assert_days_exact(emulator, root, [DAY], "UTC")


@pytest.mark.slow
@pytest.mark.timeout(600)  # ten command lines; about a minute alone, more on a loaded machine
def test_concurrent_first_runs_on_a_fresh_dagster_home_all_finish(
    emulator: Emulator, tmp_path: Path
) -> None:
    for round_ in range(5):
        folder = tmp_path / f"round-{round_}"
        with ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(partial(first_run, emulator), [folder, folder]))
        for done in runs:
            assert done.returncode == 0, f"round {round_}: {describe(done)}"
            assert done.stderr == "", f"round {round_}: {describe(done)}"
        assert_days_exact(emulator, folder / "data", [DAY], "UTC")
