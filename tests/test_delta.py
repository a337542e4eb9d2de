"""Delta Lake roots: a day's write is one Delta commit per table of the project's own files, a
root keeps one format, replaced files go with vacuum, and concurrent writers on a local disk and
on S3 leave every day as one write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from flowinst_etl.exceptions import ConfigError
from flowinst_etl.storage.delta import STORED, storage_options, table_uri
from flowinst_etl.storage.filesystem import Store
from flowinst_etl.storage.write import vacuum
from flowinst_etl.store import read_manifest, read_table, write_day
from flowinst_etl.tables.flatten import FlowTables, flatten_instances
from flowinst_etl.tables.schema import TABLES, schema_fingerprint
from tests.fixtures.enos_records import EXTRACTED_AT, GMT8, day_records
from tests.support import S3

DAY, EMPTY_DAY = date(2019, 8, 12), date(2019, 8, 13)
RECONCILIATION = {"instances": 12}


def tables_of(count: int, day: date = DAY) -> FlowTables:
    return flatten_instances(day_records(count, day.isoformat()), GMT8, EXTRACTED_AT)


def delta_files(root: str, table: str, day: date, options: dict | None = None) -> list[str]:
    """The data files the newest version of a Delta table holds for ``day``, by name."""
    store = Store.open(root, options)
    uris = DeltaTable(table_uri(store, table), storage_options=storage_options(store)).file_uris(
        file_pruning_predicate=[("trigger_date", "=", day.isoformat())]
    )
    return sorted(uri.rsplit("/", 1)[-1] for uri in uris)


def assert_one_write_per_day(root: str, days: list[date], options: dict | None = None) -> None:
    """Every table holds one file per day in its Delta log, the one the day's record names,
    and every table of a day was written by one write."""
    for day in days:
        writes = set()
        for table in TABLES:
            manifest = read_manifest(root, table, day, storage_options=options)
            assert manifest is not None, (table, day)
            assert delta_files(root, table, day, options) == [manifest["file"]], (table, day)
            writes.add(manifest["write_id"])
        assert len(writes) == 1, (day, writes)


def test_a_day_is_one_delta_commit_per_table_of_the_files_written(tmp_path: Path) -> None:
    root = str(tmp_path)
    tables = tables_of(12)
    write_day(root, DAY, tables.as_dict(), RECONCILIATION, table_format="delta")
    written = write_day(root, DAY, tables.as_dict(), RECONCILIATION, table_format="delta")
    write_day(root, EMPTY_DAY, tables_of(0, EMPTY_DAY).as_dict(), RECONCILIATION)

    assert_one_write_per_day(root, [DAY, EMPTY_DAY])
    for name, frame in tables.as_dict().items():
        back = read_table(name, root, DAY, DAY)  # the pinned types, milliseconds included
        pd.testing.assert_frame_equal(back.drop(columns="trigger_date"), frame)
        manifest = read_manifest(root, name, DAY)
        assert manifest is not None and manifest["write_id"] == written.write_id
        assert manifest["schema_fingerprint"] == schema_fingerprint(STORED[name])
        at_version = DeltaTable(f"{root}/{name}", version=manifest["delta_version"])
        assert [uri.rsplit("/", 1)[-1] for uri in at_version.file_uris()] == [manifest["file"]]
        assert pq.read_schema(written.paths[name]).equals(STORED[name])
    empty = tmp_path / "flow_instances" / f"trigger_date={EMPTY_DAY}"
    [file] = list(empty.iterdir())
    assert pq.read_metadata(file).num_rows == 0
    # Delta readers: the day once (the replaced write's files are still on disk), instants in us
    scanned = pl.scan_delta(f"{root}/flow_instances").collect()
    assert scanned.height == 12 and scanned["instance_id"].is_unique().all()
    assert scanned.schema["trigger_time"] == pl.Datetime("us", "UTC")
    assert scanned.schema["trigger_date"] == pl.Date
    assert len(list((tmp_path / "flow_instances" / f"trigger_date={DAY}").iterdir())) == 2


def test_a_root_keeps_one_table_format(tmp_path: Path) -> None:
    parquet, delta = tmp_path / "parquet", tmp_path / "delta"
    write_day(str(parquet), DAY, tables_of(2).as_dict(), RECONCILIATION)
    write_day(str(delta), DAY, tables_of(2).as_dict(), RECONCILIATION, table_format="delta")
    (delta / "_flowinst" / "root.json").write_text(
        '{"table_format": "delta", "partition_timezone": "Asia/Shanghai"}'
    )
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())

    with pytest.raises(ConfigError, match="holds days of table format parquet .*this run's is d"):
        write_day(str(parquet), EMPTY_DAY, tables_of(1).as_dict(), {}, table_format="delta")
    with pytest.raises(ConfigError, match="holds days of table format delta"):
        write_day(str(delta), EMPTY_DAY, tables_of(1).as_dict(), {}, table_format="parquet")

    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == before
    assert json.loads((parquet / "_flowinst" / "root.json").read_text()) == {
        "table_format": "parquet"
    }
    write_day(str(delta), EMPTY_DAY, tables_of(1).as_dict(), {})  # the root's format
    assert json.loads((delta / "_flowinst" / "root.json").read_text()) == {
        "partition_timezone": "Asia/Shanghai",
        "table_format": "delta",
    }
    assert (delta / "flow_instances" / f"trigger_date={EMPTY_DAY}").is_dir()


def test_a_root_without_a_recorded_format_has_it_found_from_its_tables(tmp_path: Path) -> None:
    write_day(str(tmp_path), DAY, tables_of(2).as_dict(), RECONCILIATION, table_format="delta")
    record = tmp_path / "_flowinst" / "root.json"
    record.write_text('{"partition_timezone": "UTC"}')  # a record of before the format
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())

    with pytest.raises(ConfigError, match=r"table format delta \(found in its tables\)"):
        write_day(str(tmp_path), EMPTY_DAY, tables_of(1).as_dict(), {}, table_format="parquet")
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == before

    write_day(str(tmp_path), EMPTY_DAY, tables_of(1).as_dict(), {})  # the root's format
    assert json.loads(record.read_text()) == {"partition_timezone": "UTC", "table_format": "delta"}
    assert delta_files(str(tmp_path), "flow_instances", EMPTY_DAY) != []


def test_vacuum_removes_replaced_files_older_than_the_retention(tmp_path: Path) -> None:
    root = str(tmp_path)
    first = write_day(root, DAY, tables_of(3).as_dict(), {}, table_format="delta")
    last = write_day(root, DAY, tables_of(3).as_dict(), {}, table_format="delta")

    assert vacuum(root) == []  # a week by default
    removed = vacuum(root, retention_hours=0)

    assert sorted(removed) == [f"trigger_date={DAY}/part-{first.write_id}.parquet"] * len(TABLES)
    for table in TABLES:
        folder = tmp_path / table / f"trigger_date={DAY}"
        assert [p.name for p in folder.iterdir()] == [f"part-{last.write_id}.parquet"]
    assert len(read_table("flow_instances", root)) == 3
    assert vacuum(str(tmp_path / "elsewhere")) == []


WRITER = """
import sys
from datetime import date
from flowinst_etl.exceptions import StoreError
from flowinst_etl.store import write_day
from flowinst_etl.tables.flatten import flatten_instances
from tests.fixtures.enos_records import EXTRACTED_AT, GMT8, day_records

root, day, count, options = sys.argv[1], date.fromisoformat(sys.argv[2]), int(sys.argv[3]), None
if len(sys.argv) > 4:
    endpoint = {"endpoint_url": sys.argv[4]}
    options = {"client_kwargs": endpoint, "key": "testing", "secret": "testing"}
tables = flatten_instances(day_records(4, day.isoformat()), GMT8, EXTRACTED_AT).as_dict()
failed = 0
for _ in range(count):
    try:
        write_day(root, day, tables, {}, storage_options=options, table_format="delta")
    except StoreError as exc:  # a write of the day another writer kept replacing: one line
        assert "\\n" not in str(exc)
        failed += 1
print(failed)
"""


def run_writers(root: str, days: list[date], count: int, endpoint: str = "") -> list[int]:
    """Writers of ``days`` (one process each, at once), each writing its day ``count`` times;
    how many writes of each failed."""
    extra = [endpoint] if endpoint else []
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), root, day.isoformat(), str(count)]
            + extra,
            cwd=Path(__file__).parents[1],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for day in days
    ]
    outputs = [process.communicate(timeout=240) for process in processes]
    assert [p.returncode for p in processes] == [0] * len(days), [err for _, err in outputs]
    return [int(out) for out, _ in outputs]


def test_concurrent_writers_on_a_local_disk_leave_each_day_one_write(tmp_path: Path) -> None:
    root, other = str(tmp_path), date(2019, 8, 14)
    write_day(root, DAY, tables_of(1).as_dict(), {}, table_format="delta")

    failed = run_writers(root, [DAY, DAY, other], count=3)

    assert failed == [0, 0, 0]  # same-day writers take turns at the day's lock
    assert_one_write_per_day(root, [DAY, other])
    frame = read_table("flow_instances", root)
    assert frame.groupby(frame.trigger_date.dt.date).size().to_dict() == {DAY: 4, other: 4}
    assert pl.scan_delta(f"{root}/flow_instances").collect().height == 8


def test_concurrent_writers_on_s3_commit_different_days_and_never_mix_one(s3: S3) -> None:
    endpoint = s3.options["client_kwargs"]["endpoint_url"]
    other = date(2019, 8, 14)

    failed = run_writers(s3.root, [DAY, DAY, other], count=2, endpoint=endpoint)

    assert failed[2] == 0, "a writer of another day failed"
    assert failed[0] + failed[1] < 4, "no write of the contended day was committed"
    assert_one_write_per_day(s3.root, [DAY, other], s3.options)
    frame = read_table("flow_instances", s3.root, storage_options=s3.options)
    assert frame.groupby(frame.trigger_date.dt.date).size().to_dict() == {DAY: 4, other: 4}
    store = Store.open(s3.root, s3.options)
    files = DeltaTable(
        table_uri(store, "flow_instances"), storage_options=storage_options(store)
    ).file_uris()
    assert len(files) == 2  # a file for each day: none duplicated
    listed = s3.client.list_objects_v2(Bucket="flowinst", Prefix="dataset/_flowinst/staging/")
    assert "Contents" not in listed, [item["Key"] for item in listed.get("Contents", [])]


def test_vacuum_removes_files_no_log_version_names(tmp_path: Path) -> None:
    """A write killed before its commit leaves a file that no log version names; a vacuum past
    the retention removes it too, not only files the log replaced."""
    root = str(tmp_path)
    kept = write_day(root, DAY, tables_of(3).as_dict(), {}, table_format="delta")
    folder = tmp_path / "flow_instances" / f"trigger_date={DAY}"
    orphan = folder / "part-orphan.parquet"
    orphan.write_bytes((folder / f"part-{kept.write_id}.parquet").read_bytes())
    hours_ago = time.time() - 5 * 3600
    os.utime(orphan, (hours_ago, hours_ago))

    assert f"trigger_date={DAY}/part-orphan.parquet" in vacuum(root, retention_hours=1)
    assert [p.name for p in folder.iterdir()] == [f"part-{kept.write_id}.parquet"]
    assert len(read_table("flow_instances", root)) == 3
