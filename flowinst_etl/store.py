"""Hive-partitioned Parquet with one commit per day, and the readers that honour it.

Layout, for each table of :data:`flowinst_etl.tables.schema.TABLES`::

    <root>/<table>/trigger_date=YYYY-MM-DD/part-<write id>.parquet
    <root>/_flowinst/commits/YYYY-MM-DD.json     (which file of each table is the day)
    <root>/_flowinst/staging/, <root>/_flowinst/locks/

Partition folders hold data files only. A day becomes visible to :func:`read_table` and
:func:`dataset` as one write across its tables, when its commit record is replaced (see
:mod:`flowinst_etl.storage.write` for the steps and what a crash leaves). A day with no
instances still gets files with the full schema, so "nothing happened" differs from "not
extracted" (no commit, no folder). With ``FLOWINST_TABLE_FORMAT=delta`` the tables are Delta Lake
tables of the same files, published through each table's log (:mod:`flowinst_etl.storage.delta`)
and kept until :func:`vacuum`.
"""

from __future__ import annotations

from flowinst_etl.storage.filesystem import PARTITION_KEY, table_uri
from flowinst_etl.storage.read import PARTITIONING, dataset, read_manifest, read_table, written_days
from flowinst_etl.storage.write import WrittenDay, repair, vacuum, write_day

__all__ = [
    "PARTITIONING",
    "PARTITION_KEY",
    "WrittenDay",
    "dataset",
    "read_manifest",
    "read_table",
    "repair",
    "table_uri",
    "vacuum",
    "write_day",
    "written_days",
]
