"""The Parquet store: pinned schemas on disk, one commit per day, manifests, reads, migration
from the old layout, S3."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from flowinst_etl.exceptions import ConfigError, StoreError
from flowinst_etl.model import FoundInstance
from flowinst_etl.store import (
    dataset,
    read_manifest,
    read_table,
    repair,
    write_day,
    written_days,
)
from flowinst_etl.tables.flatten import FlowTables, flatten_instances
from flowinst_etl.tables.schema import TABLES, schema_fingerprint
from tests.fixtures.enos_records import EXTRACTED_AT, GMT8, day_records
from tests.fixtures.old_layout import write_old_layout
from tests.support import S3

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


def only_committed_files(root: Path, day: date) -> bool:
    """Each table's folder holds exactly the file its commit names, and nothing is staged."""
    named = {table: [read_manifest(str(root), table, day)["file"]] for table in TABLES}  # type: ignore[index]
    staged = [p for p in (root / "_flowinst" / "staging").rglob("*") if p.is_file()]
    return listing(root, day) == named and not staged


def test_every_file_has_the_pinned_schema(tmp_path: Path) -> None:
    days = {
        date(2019, 8, 12): tables_of(12),
        date(2019, 8, 13): tables_of(0),
        date(2019, 8, 14): sparse_tables(),
    }
    paths = {
        day: write_day(str(tmp_path), day, tables.as_dict(), RECONCILIATION).paths
        for day, tables in days.items()
    }

    for table, schema in TABLES.items():
        for day in days:
            on_disk = pq.read_schema(paths[day][table])
            assert on_disk.equals(schema, check_metadata=False), (table, day)
            assert b"pandas" not in (on_disk.metadata or {})
    assert pq.read_metadata(paths[date(2019, 8, 13)]["flow_instances"]).num_rows == 0
    sparse = read_table("flow_instance_tasks", str(tmp_path), "2019-08-14", "2019-08-14")
    assert len(sparse) == 3 and sparse["task_id"].isna().all()


def test_a_day_reads_back_as_written(tmp_path: Path) -> None:
    tables = tables_of(12)
    written = write_day(str(tmp_path), DAY, tables.as_dict(), RECONCILIATION)

    assert written.rows == {name: len(frame) for name, frame in tables.as_dict().items()}
    assert written.paths["flow_instances"] == str(
        folder(tmp_path, "flow_instances", DAY) / f"part-{written.write_id}.parquet"
    )
    for name, frame in tables.as_dict().items():
        back = read_table(name, str(tmp_path), DAY, DAY)
        assert back["trigger_date"].unique().tolist() == [pd.Timestamp(DAY)]
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
    (stale / "part-1.parquet").write_bytes(b"a file no commit names")
    (stale / ".part-0.parquet.dead.tmp").write_bytes(b"a crashed write of the old layout")

    write_day(root, DAY, tables_of(12).as_dict(), RECONCILIATION)
    last = write_day(root, DAY, tables_of(12).as_dict(), RECONCILIATION)

    assert read_table("flow_instances", root)["instance_id"].is_unique
    assert len(read_table("flow_instances", root)) == 12
    assert listing(tmp_path, DAY) == {t: [f"part-{last.write_id}.parquet"] for t in TABLES}
    assert only_committed_files(tmp_path, DAY)


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
    assert only_committed_files(tmp_path, DAY)


CRASHING_WRITER = """
import os, sys, time
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple
from flowinst_etl.tables.flatten import flatten_instances
from flowinst_etl.store import write_day
from tests.fixtures.enos_records import EXTRACTED_AT, GMT8, day_records
from tests.fixtures.old_layout import write_old_layout

root = sys.argv[1]
tables = flatten_instances(day_records(5), GMT8, EXTRACTED_AT).as_dict()
staging = Path(root, "_flowinst", "staging", "2019-08-12")

class DiesOnRelations(Mapping):
    # The process dies when the relations table is asked for, once the instances are staged.
    def __getitem__(self, name):
        if name == "flow_instance_relations":
            deadline = time.monotonic() + 10
            while not list(staging.glob("*/flow_instances/part-*")) and time.monotonic() < deadline:
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
    staged = list((tmp_path / "_flowinst" / "staging").rglob("*.parquet"))
    assert staged, "the crash came before anything was staged: the test proves nothing"
    pd.testing.assert_frame_equal(read_table("flow_instances", root), before)
    assert ds.dataset(tmp_path / "flow_instances", format="parquet").count_rows() == 12
    assert read_manifest(root, "flow_instances", DAY)["reconciliation"] == RECONCILIATION
    assert only_committed_files(tmp_path, DAY) is False, "the staged files are still there"

    write_day(root, DAY, tables_of(12).as_dict(), RECONCILIATION)
    assert only_committed_files(tmp_path, DAY)


def test_read_table_opens_only_the_days_asked_for(tmp_path: Path) -> None:
    root = str(tmp_path)
    for day in (date(2019, 8, 11), date(2019, 8, 12), date(2019, 8, 13), date(2019, 8, 14)):
        write_day(root, day, tables_of(3, day.isoformat()).as_dict(), RECONCILIATION)
    [committed] = folder(tmp_path, "flow_instances", date(2019, 8, 14)).iterdir()
    committed.write_bytes(b"junk")

    middle = read_table(
        "flow_instances", root, "2019-08-12", date(2019, 8, 13), columns=["instance_id"]
    )
    from_start = read_table("flow_instances", root, end="2019-08-11")
    empty = read_table("flow_instances", root, start="2019-09-01")

    assert list(middle.columns) == ["instance_id", "trigger_date"]
    assert (
        middle["trigger_date"].tolist()
        == [pd.Timestamp("2019-08-12")] * 3 + [pd.Timestamp("2019-08-13")] * 3
    )
    assert from_start["trigger_date"].unique().tolist() == [pd.Timestamp("2019-08-11")]
    assert empty.empty and list(empty.columns) == TABLES["flow_instances"].names + ["trigger_date"]
    assert str(empty["trigger_date"].dtype) == "datetime64[ms]"
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


def test_a_day_round_trips_through_s3(s3: S3) -> None:
    tables = tables_of(6)
    next_day = date(2019, 8, 13)

    write_day(s3.root, DAY, tables.as_dict(), RECONCILIATION, storage_options=s3.options)
    written = write_day(s3.root, DAY, tables.as_dict(), RECONCILIATION, storage_options=s3.options)
    write_day(s3.root, next_day, tables_of(0).as_dict(), RECONCILIATION, storage_options=s3.options)

    part = f"flow_instances/trigger_date=2019-08-12/part-{written.write_id}.parquet"
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
    assert names == [f"part-{written.write_id}.parquet"]
    staged = s3.client.list_objects_v2(Bucket="flowinst", Prefix="dataset/_flowinst/staging/")
    assert "Contents" not in staged


def test_a_root_of_the_old_layout_is_read_and_rewritten_without_a_duplicate_day(
    tmp_path: Path,
) -> None:
    root = str(tmp_path)
    old_day, kept_day = date(2019, 8, 12), date(2019, 8, 13)
    write_old_layout(tmp_path, old_day, tables_of(4))
    write_old_layout(tmp_path, kept_day, tables_of(2, "2019-08-13"))

    assert written_days(root, "flow_instances") == [old_day, kept_day]
    assert len(read_table("flow_instances", root)) == 6
    assert read_manifest(root, "flow_instance_tasks", old_day)["file"] == "part-0.parquet"  # type: ignore[index]

    written = write_day(root, old_day, tables_of(5).as_dict(), RECONCILIATION)

    days = read_table("flow_instances", root)["trigger_date"].value_counts().to_dict()
    assert days == {pd.Timestamp(old_day): 5, pd.Timestamp(kept_day): 2}
    assert listing(tmp_path, old_day) == {t: [f"part-{written.write_id}.parquet"] for t in TABLES}
    assert listing(tmp_path, kept_day) == {t: ["_manifest.json", "part-0.parquet"] for t in TABLES}
    assert written_days(root, "flow_instances") == [old_day, kept_day]
    assert dataset("flow_instances", root).count_rows() == 7

    # Every run repairs first: the days not written again get a commit record, and their
    # partition folders keep only their data.
    assert repair(root) == [kept_day]
    assert listing(tmp_path, kept_day) == {t: ["part-0.parquet"] for t in TABLES}
    assert read_manifest(root, "flow_instance_tasks", kept_day)["rows"] == len(  # type: ignore[index]
        tables_of(2, "2019-08-13").tasks
    )
    assert read_table("flow_instances", root)["trigger_date"].value_counts().to_dict() == days
    assert repair(root) == []


def test_a_corrupt_old_manifest_spoils_only_its_own_day(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = str(tmp_path)
    bad_day, good_day = date(2019, 8, 12), date(2019, 8, 13)
    write_old_layout(tmp_path, bad_day, tables_of(4))
    write_old_layout(tmp_path, good_day, tables_of(2, "2019-08-13"))
    corrupt = folder(tmp_path, "flow_instance_tasks", bad_day) / "_manifest.json"
    corrupt.write_text("")

    tasks = read_table("flow_instance_tasks", root)

    assert set(tasks["trigger_date"]) == {pd.Timestamp(good_day)}
    assert len(read_table("flow_instances", root)) == 6
    assert written_days(root, "flow_instance_tasks") == [good_day]
    assert str(corrupt) in caplog.text

    written = write_day(root, bad_day, tables_of(5).as_dict(), RECONCILIATION)

    days = read_table("flow_instance_tasks", root)["trigger_date"].value_counts().to_dict()
    assert days == {
        pd.Timestamp(bad_day): len(tables_of(5).tasks),
        pd.Timestamp(good_day): len(tables_of(2).tasks),
    }
    assert listing(tmp_path, bad_day) == {t: [f"part-{written.write_id}.parquet"] for t in TABLES}


def test_repair_removes_the_empty_partition_folders_a_killed_cleanup_leaves(
    tmp_path: Path,
) -> None:
    root, second, third = str(tmp_path), date(2019, 8, 13), date(2019, 8, 14)
    write_day(root, DAY, tables_of(3).as_dict(), RECONCILIATION)
    # A cleanup killed after emptying a folder no commit names (the staging still there), and
    # one killed after its staging went but before the folder's removal reached the disk.
    emptied = folder(tmp_path, "flow_instances", second)
    emptied.mkdir()
    (tmp_path / "_flowinst" / "staging" / second.isoformat() / "killed").mkdir(parents=True)
    left = folder(tmp_path, "flow_instance_tasks", third)
    left.mkdir()

    assert repair(root) == [second, third]
    assert not emptied.exists() and not left.exists()
    assert only_committed_files(tmp_path, DAY) and repair(root) == []


def test_a_file_where_a_table_folder_belongs_is_named(tmp_path: Path) -> None:
    (tmp_path / "flow_instance_relations").write_text("not a folder")

    with pytest.raises(StoreError, match="flow_instance_relations is a file where the dataset"):
        write_day(str(tmp_path), DAY, tables_of(2).as_dict(), RECONCILIATION)


def test_dataset_is_the_committed_files_with_a_date_partition(tmp_path: Path) -> None:
    root = str(tmp_path)
    for day in (date(2019, 8, 12), date(2019, 8, 13)):
        write_day(root, day, tables_of(3, day.isoformat()).as_dict(), RECONCILIATION)
    stray = folder(tmp_path, "flow_instances", date(2019, 8, 13)) / "part-stray.parquet"
    pq.write_table(pq.read_table(next(stray.parent.iterdir())), stray)

    whole = dataset("flow_instances", root)
    second = whole.to_table(filter=ds.field("trigger_date") == date(2019, 8, 13))

    assert whole.schema.field("trigger_date").type == pa.date32()
    assert whole.count_rows() == 6 and second.num_rows == 3
    assert dataset("flow_instances", root, start="2019-08-13").count_rows() == 3
    assert str(stray) not in whole.files


def test_a_crashed_publish_is_repaired_by_the_next_write(tmp_path: Path) -> None:
    root = str(tmp_path)
    write_day(root, DAY, tables_of(3).as_dict(), RECONCILIATION)
    # What a publish killed after moving one table's file leaves: a file no commit names, and
    # the write's staging folder.
    left = folder(tmp_path, "flow_instances", DAY) / "part-crashed.parquet"
    left.write_bytes(next(left.parent.iterdir()).read_bytes())
    (tmp_path / "_flowinst" / "staging" / DAY.isoformat() / "crashed").mkdir(parents=True)
    assert len(read_table("flow_instances", root)) == 3

    assert repair(root) == [DAY]
    assert only_committed_files(tmp_path, DAY) and repair(root) == []


def test_on_object_storage_a_run_repairs_only_its_own_days(s3: S3) -> None:
    # No lock exists there: a staging folder of a day this run does not write may be another
    # run's write in progress and must survive; one of this run's days was left by a crash.
    other = date(2019, 8, 13)
    staged = "dataset/_flowinst/staging/{day}/0123/flow_instances/part-0123.parquet"
    for day in (DAY, other):
        s3.client.put_object(Bucket="flowinst", Key=staged.format(day=day), Body=b"staged")

    assert repair(s3.root, storage_options=s3.options, days=[other]) == [other]

    listed = s3.client.list_objects_v2(Bucket="flowinst", Prefix="dataset/_flowinst/staging/")
    assert [item["Key"] for item in listed["Contents"]] == [staged.format(day=DAY)]
