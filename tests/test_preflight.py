"""The pre-flight of the command line (a subprocess against the emulator): a root that cannot
take a day's files, or whose name the file system and pyarrow would spell differently, exits 2
before the first request and leaves nothing behind; a UTF-8 name under a C locale works end to
end, reads included.

Tests run as root, whom file modes do not stop: a folder is made read-only with the immutable
attribute (``chattr +i``, which binds root too), and ``/proc`` takes no new folder."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import boto3
import pytest

from flowinst_etl import read_table
from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.exceptions import ConfigError
from tests.guarantees.harness import (
    REPOSITORY,
    assert_days_exact,
    backfill_args,
    describe,
    emulator_environment,
    file_listing,
    run_cli,
)
from tests.support import s3_server

DAY = date(2026, 11, 2)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    config = EmulatorConfig(seed=12, start_day=date(2026, 11, 1), end_day=DAY, per_day=30)
    with Emulator(config) as running:
        yield running


@contextlib.contextmanager
def immutable(folder: Path) -> Iterator[None]:
    """``folder`` refuses every change, to root as well, while the block runs."""
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"this file system has no immutable attribute: {made.stderr!r}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def refused(
    emulator: Emulator, root: Path | str, cwd: Path, **settings: str
) -> subprocess.CompletedProcess[str]:
    """A backfill into ``root`` that must exit 2 with one error line naming it, no request
    sent."""
    requests = emulator.stats()["requests"]
    done = run_cli(
        *backfill_args(DAY, DAY, root), env=emulator_environment(emulator, **settings), cwd=cwd
    )
    assert done.returncode == 2, describe(done)
    [line] = done.stderr.splitlines()
    assert line.startswith("flowinst-etl: error: --data-dir '"), describe(done)
    assert emulator.stats()["requests"] == requests, "the gateway was called"
    return done


def test_a_root_under_proc_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    done = refused(emulator, "/proc/flowinst_test", tmp_path)
    assert "'/proc/flowinst_test' cannot be written: " in done.stderr
    assert not os.path.exists("/proc/flowinst_test")


def test_a_root_in_a_read_only_folder_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    with immutable(folder):
        done = refused(emulator, folder / "data", tmp_path)
    assert "is not writable" in done.stderr
    assert not any(folder.iterdir())


def test_a_root_whose_control_folder_is_read_only_is_refused(
    emulator: Emulator, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    (root / "_flowinst").mkdir(parents=True)
    (root / "_flowinst" / "root.json").write_text('{"partition_timezone": "UTC"}')
    with immutable(root / "_flowinst"):
        done = refused(emulator, root, tmp_path)
    assert f"'{root}' cannot be written: " in done.stderr, describe(done)
    assert file_listing(root) == ["_flowinst/root.json"]


def test_a_missing_bucket_is_refused_and_a_probed_one_keeps_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    with s3_server() as aws:
        missing = refused(emulator, "s3://no-such-bucket/flowinst", tmp_path, **aws)
        s3 = boto3.client(
            "s3",
            endpoint_url=aws["AWS_ENDPOINT_URL"],
            aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
            region_name=aws["AWS_DEFAULT_REGION"],
        )
        s3.create_bucket(Bucket="lake")
        bad_secret = run_cli(
            *backfill_args(DAY, DAY, "s3://lake/flowinst"),
            env={**emulator_environment(emulator, ENOS_SECRET_KEY="guessed"), **aws},
            cwd=tmp_path,
        )
        kept = s3.list_objects_v2(Bucket="lake").get("Contents", [])

    assert "bucket 'no-such-bucket' does not exist" in missing.stderr
    assert bad_secret.returncode == 2 and "EnOS error 1003" in bad_secret.stderr
    assert kept == [], "the pre-flight left objects behind"


# --- names ---------------------------------------------------------------------------------------

C_LOCALE = {"LC_ALL": "C", "LANG": "C"}
#: Python as the C locale makes it when UTF-8 mode and locale coercion are off: ASCII names.
ASCII_PYTHON = {**C_LOCALE, "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}


def test_a_root_named_in_latin_1_bytes_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    root = tmp_path / os.fsdecode(b"caf\xe9")
    done = refused(emulator, root, tmp_path)
    assert f"'{tmp_path}/caf\\xe9' is not a UTF-8 name" in done.stderr, describe(done)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="is not a UTF-8 name"):
        read_table("flow_instances", str(root))


def test_a_utf_8_name_under_an_ascii_locale_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    done = refused(emulator, tmp_path / "données", tmp_path, **ASCII_PYTHON)
    assert "needs a UTF-8 locale (the file system encoding is ascii)" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_utf_8_name_under_the_c_locale_works_end_to_end(
    emulator: Emulator, tmp_path: Path
) -> None:
    root = tmp_path / "données 数据"
    done = run_cli(
        *backfill_args(DAY, DAY, root), env=emulator_environment(emulator, **C_LOCALE), cwd=tmp_path
    )
    assert done.returncode == 0 and done.stderr == "", describe(done)
    truth = assert_days_exact(emulator, root, [DAY], "UTC")[DAY]
    read = subprocess.run(
        [sys.executable, "-c", "import sys, flowinst_etl as f; print(len(f.read_table("
         "'flow_instances', sys.argv[1])))", str(root)],
        env={**os.environ, **C_LOCALE, "PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert read.returncode == 0 and read.stdout == f"{len(truth)}\n", read.stderr
