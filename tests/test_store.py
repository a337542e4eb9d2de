"""The Parquet store: pinned schemas on disk, atomic and idempotent days, manifests, reads, S3."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

import boto3
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer

from flowinst_etl.exceptions import ConfigError, StoreError
from flowinst_etl.model import FoundInstance
from flowinst_etl.store import read_manifest, read_table, write_day, written_days
from flowinst_etl.tables.flatten import FlowTables, flatten_instances
from flowinst_etl.tables.schema import TABLES, schema_fingerprint
from tests.fixtures.enos_records import EXTRACTED_AT, GMT8, day_records

DAY = date(2019, 8, 12)
RECONCILIATION = {"instances": 12, "pages": 2, "server_timezone": "GMT+8", "complete": True}


def tables_of(count: int, trigger_day: str = "2019-08-12") -> FlowTables:
    return flatten_instances(day_records(count, trigger_day), GMT8, EXTRACTED_AT)


def sparse_tables() -> FlowTables:
    """Instances with only an id and a bare graph: every optional column is null."""
    bare = [
        {"instanceId": f"x-{n}", "graph": '{"tasks": [{}], "relations": [{}], "flows": [{}]}'}
        for n in range(3)
    ]
    return flatten_instances([FoundInstance(1, record) for record in bare], GMT8, EXTRACTED_AT)


def folder(root: Path, table: str, day: date) -> Path:
    return root / table / f"trigger_date={day.isoformat()}"


def listing(root: Path, day: date) -> dict[str, list[str]]:
    return {table: sorted(os.listdir(folder(root, table, day))) for table in TABLES}


def test_every_file_has_the_pinned_schema(tmp_path: Path) -> None:
    days = {
        date(2019, 8, 12): tables_of(12),
        date(2019, 8, 13): tables_of(0),
        date(2019, 8, 14): sparse_tables(),
    }
    for day, tables in days.items():
        write_day(str(tmp_path), day, tables.as_dict(), RECONCILIATION)

    for table, schema in TABLES.items():
        for day in days:
            on_disk = pq.read_schema(folder(tmp_path, table, day) / "part-0.parquet")
            assert on_disk.equals(schema, check_metadata=False), (table, day)
            assert b"pandas" not in (on_disk.metadata or {})
    assert (
        pq.read_metadata(
            folder(tmp_path, "flow_instances", date(2019, 8, 13)) / "part-0.parquet"
        ).num_rows
        == 0
    )
    sparse = read_table("flow_instance_tasks", str(tmp_path), "2019-08-14", "2019-08-14")
    assert len(sparse) == 3 and sparse["task_id"].isna().all()


def test_a_day_reads_back_as_written(tmp_path: Path) -> None:
    tables = tables_of(12)
    written = write_day(str(tmp_path), DAY, tables.as_dict(), RECONCILIATION)

    assert written.rows == {name: len(frame) for name, frame in tables.as_dict().items()}
    assert written.paths["flow_instances"] == str(
        folder(tmp_path, "flow_instances", DAY) / "part-0.parquet"
    )
    for name, frame in tables.as_dict().items():
        back = read_table(name, str(tmp_path), DAY, DAY)
        assert back["trigger_date"].unique().tolist() == [DAY]
        pd.testing.assert_frame_equal(back.drop(columns="trigger_date"), frame)


def test_the_manifest_commits_the_day(tmp_path: Path) -> None:
    written = write_day(str(tmp_path), DAY, tables_of(12).as_dict(), RECONCILIATION)

    manifest = read_manifest(str(tmp_path), "flow_instance_tasks", DAY)
    assert manifest is not None
    assert manifest["rows"] == written.rows["flow_instance_tasks"]
    assert manifest["schema_fingerprint"] == schema_fingerprint(TABLES["flow_instance_tasks"])
    assert manifest["trigger_date"] == "2019-08-12" and manifest["reconciliation"] == RECONCILIATION
    assert manifest["write_id"] == written.write_id and manifest["written_at"].endswith("+00:00")
    assert read_manifest(str(tmp_path), "flow_instance_tasks", date(2019, 8, 13)) is None
    assert written_days(str(tmp_path), "flow_instances") == [DAY]


def test_rewriting_a_day_replaces_it(tmp_path: Path) -> None:
    root = str(tmp_path)
    write_day(root, DAY, tables_of(12).as_dict(), RECONCILIATION)
    stale = folder(tmp_path, "flow_instances", DAY)
    (stale / "part-1.parquet").write_bytes(b"an older layout")
    (stale / ".part-0.parquet.dead.tmp").write_bytes(b"a crashed write")

    write_day(root, DAY, tables_of(12).as_dict(), RECONCILIATION)
    write_day(root, DAY, tables_of(12).as_dict(), RECONCILIATION)

    assert read_table("flow_instances", root)["instance_id"].is_unique
    assert len(read_table("flow_instances", root)) == 12
    assert all(
        names == ["_manifest.json", "part-0.parquet"] for names in listing(tmp_path, DAY).values()
    )


def test_a_table_that_does_not_fit_leaves_the_previous_day_intact(tmp_path: Path) -> None:
    root = str(tmp_path)
    write_day(root, DAY, tables_of(12).as_dict(), RECONCILIATION)
    before = {name: read_table(name, root) for name in TABLES}
    manifests = {name: read_manifest(root, name, DAY) for name in TABLES}
    broken = tables_of(5).as_dict()
    broken["flow_instance_upstream_flows"] = broken["flow_instance_upstream_flows"].assign(
        flow_id="not a number"
    )

    with pytest.raises(ConfigError, match="flow_instance_upstream_flows"):
        write_day(root, DAY, broken, RECONCILIATION)

    for name in TABLES:
        pd.testing.assert_frame_equal(read_table(name, root), before[name])
        assert read_manifest(root, name, DAY) == manifests[name]
    assert all(
        names == ["_manifest.json", "part-0.parquet"] for names in listing(tmp_path, DAY).values()
    )


CRASHING_WRITER = """
import os, sys, time
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple
from flowinst_etl.tables.flatten import flatten_instances
from flowinst_etl.store import write_day
from tests.fixtures.enos_records import EXTRACTED_AT, GMT8, day_records

root = sys.argv[1]
tables = flatten_instances(day_records(5), GMT8, EXTRACTED_AT).as_dict()
staging = Path(root, "flow_instances", "trigger_date=2019-08-12")

class DiesOnRelations(Mapping):
    # The process dies when the relations table is asked for, once the instances are staged.
    def __getitem__(self, name):
        if name == "flow_instance_relations":
            deadline = time.monotonic() + 10
            while not list(staging.glob(".part-0.parquet.*.tmp")) and time.monotonic() < deadline:
                time.sleep(0.01)
            os._exit(3)
        return tables[name]
    def __iter__(self):
        return iter(tables)
    def __len__(self):
        return len(tables)

write_day(root, date(2019, 8, 12), DiesOnRelations(), {"instances": 5})
"""


def test_a_crash_before_publishing_leaves_the_previous_day_readable(tmp_path: Path) -> None:
    root = str(tmp_path)
    write_day(root, DAY, tables_of(12).as_dict(), RECONCILIATION)
    before = read_table("flow_instances", root)

    crash = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASHING_WRITER), root],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        check=False,
    )

    assert crash.returncode == 3, crash.stderr
    leftovers = [
        p.name
        for p in tmp_path.rglob("*")
        if p.name not in ("_manifest.json", "part-0.parquet") and p.is_file()
    ]
    assert leftovers and all(name.startswith(".") for name in leftovers)
    pd.testing.assert_frame_equal(read_table("flow_instances", root), before)
    dataset = ds.dataset(tmp_path / "flow_instances", format="parquet", partitioning="hive")
    assert dataset.count_rows() == 12
    assert read_manifest(root, "flow_instances", DAY)["reconciliation"] == RECONCILIATION

    write_day(root, DAY, tables_of(12).as_dict(), RECONCILIATION)
    assert all(
        names == ["_manifest.json", "part-0.parquet"] for names in listing(tmp_path, DAY).values()
    )


def test_read_table_opens_only_the_days_asked_for(tmp_path: Path) -> None:
    root = str(tmp_path)
    for day in (date(2019, 8, 11), date(2019, 8, 12), date(2019, 8, 13), date(2019, 8, 14)):
        write_day(root, day, tables_of(3, day.isoformat()).as_dict(), RECONCILIATION)
    (folder(tmp_path, "flow_instances", date(2019, 8, 14)) / "part-0.parquet").write_bytes(b"junk")

    middle = read_table(
        "flow_instances", root, "2019-08-12", date(2019, 8, 13), columns=["instance_id"]
    )
    from_start = read_table("flow_instances", root, end="2019-08-11")
    empty = read_table("flow_instances", root, start="2019-09-01")

    assert list(middle.columns) == ["instance_id", "trigger_date"]
    assert middle["trigger_date"].tolist() == [date(2019, 8, 12)] * 3 + [date(2019, 8, 13)] * 3
    assert from_start["trigger_date"].unique().tolist() == [date(2019, 8, 11)]
    assert empty.empty and list(empty.columns) == TABLES["flow_instances"].names + ["trigger_date"]
    assert str(empty["trigger_date"].dtype) == "date32[day][pyarrow]"
    with pytest.raises(StoreError, match="could not read flow_instances"):
        read_table("flow_instances", root, start="2019-08-14")


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"table": "flow_instance"}, ConfigError, "unknown table 'flow_instance'"),
        ({"start": "2019-13-01"}, ConfigError, "invalid date '2019-13-01'"),
        ({"start": "2019-08-13", "end": "2019-08-12"}, ConfigError, "is after end"),
        ({"columns": ["instance_id", "nope"]}, ConfigError, r"unknown columns \['nope'\]"),
        ({"table": "flow_instance_tasks", "root": "elsewhere"}, StoreError, "nothing written"),
    ],
)
def test_read_table_says_what_is_wrong(
    tmp_path: Path, arguments: dict, error: type, message: str
) -> None:
    write_day(str(tmp_path), DAY, {"flow_instances": tables_of(1).instances}, RECONCILIATION)
    call = {"table": "flow_instances", "root": str(tmp_path), **arguments}
    if call["root"] == "elsewhere":
        call["root"] = str(tmp_path / "elsewhere")

    with pytest.raises(error, match=message):
        read_table(**call)


@pytest.mark.parametrize(
    ("tables", "reconciliation", "message"),
    [
        ({"flow_instance": None}, {}, "unknown tables"),
        ({}, {"instances": None}, "is not a str, int, float or bool"),
        ({}, {"ratio": float("nan")}, "not valid JSON"),
        ({"flow_instances": pd.DataFrame({"instance_id": ["a"]})}, {}, "missing"),
    ],
)
def test_write_day_refuses_bad_arguments(
    tmp_path: Path, tables: dict, reconciliation: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        write_day(str(tmp_path), DAY, tables, reconciliation)
    assert not any(tmp_path.rglob("*.parquet*"))


class S3(NamedTuple):
    root: str
    options: dict
    client: Any


@pytest.fixture
def s3() -> Iterator[S3]:
    """A bucket on a real S3-compatible server on loopback, stopped after the test."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="flowinst")
    options = {"client_kwargs": {"endpoint_url": endpoint}, "key": "testing", "secret": "testing"}
    yield S3("s3://flowinst/dataset", options, client)
    server.stop()


def test_a_day_round_trips_through_s3(s3: S3) -> None:
    tables = tables_of(6)
    next_day = date(2019, 8, 13)

    write_day(s3.root, DAY, tables.as_dict(), RECONCILIATION, storage_options=s3.options)
    written = write_day(s3.root, DAY, tables.as_dict(), RECONCILIATION, storage_options=s3.options)
    write_day(s3.root, next_day, tables_of(0).as_dict(), RECONCILIATION, storage_options=s3.options)

    part = "flow_instances/trigger_date=2019-08-12/part-0.parquet"
    assert written.paths["flow_instances"] == f"{s3.root}/{part}"
    back = read_table("flow_instance_tasks", s3.root, DAY, DAY, storage_options=s3.options)
    pd.testing.assert_frame_equal(back.drop(columns="trigger_date"), tables.tasks)
    assert written_days(s3.root, "flow_instances", storage_options=s3.options) == [DAY, next_day]
    manifest = read_manifest(s3.root, "flow_instances", DAY, storage_options=s3.options)
    assert manifest is not None
    assert manifest["write_id"] == written.write_id and manifest["rows"] == 6
    listed = s3.client.list_objects_v2(
        Bucket="flowinst", Prefix="dataset/flow_instances/trigger_date=2019-08-12/"
    )
    names = sorted(item["Key"].rsplit("/", 1)[1] for item in listed["Contents"])
    assert names == ["_manifest.json", "part-0.parquet"]
