"""Delta Lake tables: each table a Delta table at ``<root>/<table>/`` partitioned by
``trigger_date``, a day's write one transaction per table that records the data file this
project wrote itself (pinned columns, zstd, an empty file for a day without instances).

Steps of one write of day D by write id W, after the day's files are written into their
partition folders (invisible to Delta readers until committed):

1. stage the day's commit record at ``_flowinst/staging/D/W/commit.json``: the intent, from
   which an interrupted write is finished;
2. per table, one transaction that adds ``part-W.parquet`` and removes the day's other files
   (a conflict with a concurrent commit of the table is retried on its newer version);
3. put the commit record in place, naming each table's Delta version;
4. check that every table still holds W for D. On object storage two runs may write the same
   day at once; the write that finds another one's files in any table writes all of its own
   again, so the last to finish leaves all four tables and the record as one write;
5. remove the staging folder.

A process killed between table commits leaves the intent in staging; the next write of the day
or :func:`flowinst_etl.storage.write.repair` finishes it (or drops it when a later write of the
day is recorded). Replaced files stay until :func:`vacuum` removes those older than the
retention.
"""

from __future__ import annotations

import json
import random
import time
from datetime import date, datetime, timezone
from typing import Any

import pyarrow as pa

from flowinst_etl.config import optional_setting
from flowinst_etl.exceptions import ConfigError, StoreError
from flowinst_etl.storage.commits import Manifest, encode, read_commit
from flowinst_etl.storage.filesystem import COMMIT_FILE, PARTITION_KEY, Store, data_file_name
from flowinst_etl.tables.schema import TABLES

_RECORD_FILE = "record.json"
#: Transactions of one table retried after a concurrent commit (of any day) conflicted.
_COMMIT_ATTEMPTS = 20
#: Writes of a day started again after another run's write of the same day replaced a table.
_WRITE_ATTEMPTS = 6
_WRITE_ID_KEY = "flowinst.write_id"


def _stored_type(data_type: pa.DataType) -> pa.DataType:
    return pa.timestamp("us", tz="UTC") if pa.types.is_timestamp(data_type) else data_type


#: The schema of each table's Delta data files: the pinned one with instants in microseconds,
#: the only timestamp unit of the Delta protocol (the values stay whole milliseconds).
STORED: dict[str, pa.Schema] = {
    name: pa.schema([pa.field(f.name, _stored_type(f.type), f.nullable) for f in schema])
    for name, schema in TABLES.items()
}


def require_deltalake() -> Any:
    """The deltalake module.

    Raises:
        ConfigError: it is not installed (the ``delta`` extra).
    """
    try:
        import deltalake
        import deltalake.exceptions
        import deltalake.transaction
    except ImportError as exc:
        raise ConfigError(
            "Delta tables need the delta extra: .venv/bin/pip install -e '.[delta]'"
        ) from exc
    return deltalake


def storage_options(store: Store) -> dict[str, str]:
    """deltalake's options for the root's object store: the endpoint and credentials given to
    fsspec; what is not given deltalake reads from the usual AWS variables itself."""
    if store.local:
        return {}
    fs = store.fs
    client = dict(getattr(fs, "client_kwargs", None) or {})
    endpoint = client.get("endpoint_url") or optional_setting("AWS_ENDPOINT_URL")
    given = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": getattr(fs, "key", None),
        "AWS_SECRET_ACCESS_KEY": getattr(fs, "secret", None),
        "AWS_SESSION_TOKEN": getattr(fs, "token", None),
        "AWS_REGION": client.get("region_name"),
        "AWS_ALLOW_HTTP": "true" if str(endpoint or "").startswith("http://") else None,
    }
    return {key: str(value) for key, value in given.items() if value}


def table_uri(store: Store, name: str) -> str:
    """Where deltalake finds a table: a local path, or a URL such as ``s3://bucket/x/table``."""
    path = store.table(name)
    return path if store.local else str(store.fs.unstrip_protocol(path))


def _now_ms() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1000)


def _pause(attempt: int) -> None:
    """A short random wait, growing with the attempt, so concurrent writers fall out of step."""
    time.sleep(random.uniform(0.02, 0.1) * attempt)


class DeltaDay:
    """The Delta tables of a root as one write of ``day`` by ``write_id`` sees them."""

    def __init__(self, store: Store, day: date, write_id: str) -> None:
        self.store, self.day, self.write_id = store, day, write_id
        self.file = data_file_name(write_id)
        self._ours = f"{PARTITION_KEY}={day.isoformat()}/{self.file}"
        self._tables: dict[str, Any] = {}

    def _table(self, name: str) -> Any:
        """The table at its newest version, created on first use."""
        table = self._tables.get(name)
        if table is not None:
            table.update_incremental()
            return table
        deltalake = require_deltalake()
        uri, options = table_uri(self.store, name), storage_options(self.store)
        full = STORED[name].append(pa.field(PARTITION_KEY, pa.date32()))
        if not deltalake.DeltaTable.is_deltatable(uri, storage_options=options):
            try:
                deltalake.DeltaTable.create(
                    uri, full, partition_by=[PARTITION_KEY], name=name, storage_options=options
                )
            except deltalake.exceptions.DeltaError:
                if not deltalake.DeltaTable.is_deltatable(uri, storage_options=options):
                    raise  # not a concurrent run creating it first
        table = deltalake.DeltaTable(uri, storage_options=options)
        found = pa.schema(table.schema().to_arrow())
        if [(f.name, f.type) for f in found] != [(f.name, f.type) for f in full]:
            raise StoreError(f"Delta table {uri} does not have the columns of {name}: {found}")
        self._tables[name] = table
        return table

    def _day_files(self, table: Any) -> dict[str, int]:
        """Path (relative to the table) -> size of each file of the day in ``table``."""
        actions = pa.table(table.get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return {}
        columns = ("path", "size_bytes", f"partition.{PARTITION_KEY}")
        paths, sizes, days = (actions.column(column).to_pylist() for column in columns)
        rows = zip(paths, sizes, days, strict=True)
        return {path: size for path, size, day in rows if day == self.day}

    def holds(self, name: str) -> bool:
        """Whether ``name``'s newest version has exactly this write's file for the day."""
        return self._holds_in(self._table(name))

    def _holds_in(self, table: Any) -> bool:
        return list(self._day_files(table)) == [self._ours]

    def commit(self, name: str, rows: int) -> int | None:
        """Make this write's file the day of ``name`` in one transaction (none when it already
        is); the version then seen, or ``None`` when another write of the day replaced it.

        Raises:
            StoreError: the commit kept conflicting with concurrent ones.
        """
        deltalake = require_deltalake()
        transaction = deltalake.transaction
        size = self.store.fs.size(f"{self.store.folder(name, self.day)}/{self.file}")
        partition = {PARTITION_KEY: self.day.isoformat()}
        for attempt in range(1, _COMMIT_ATTEMPTS + 1):
            table = self._table(name)
            current = self._day_files(table)
            if list(current) == [self._ours]:
                return int(table.version())
            now = _now_ms()
            stats = json.dumps({"numRecords": rows})
            actions = [transaction.AddAction(self._ours, size, partition, now, True, stats)]
            actions += [
                transaction.RemoveAction(path, True, now, bytes_, partition)
                for path, bytes_ in current.items()
                if path != self._ours
            ]
            metadata = {_WRITE_ID_KEY: self.write_id, PARTITION_KEY: self.day.isoformat()}
            try:
                table.create_write_transaction(
                    actions,
                    "append",
                    table.schema(),
                    [PARTITION_KEY],
                    commit_properties=transaction.CommitProperties(custom_metadata=metadata),
                )
            except deltalake.exceptions.CommitFailedError:
                _pause(attempt)
                continue
            table = self._table(name)
            return int(table.version()) if self._holds_in(table) else None
        raise StoreError(
            f"could not commit {name} of {self.day}: {_COMMIT_ATTEMPTS} attempts conflicted "
            "with concurrent commits"
        )


def publish(store: Store, day: date, commit: dict[str, Any], stage: str) -> None:
    """Commit the tables ``commit`` (the day's staged record) writes to their Delta tables,
    then put the record in place naming each table's version, until no other write of the day
    replaced any of them meanwhile (see the module's steps 2 to 4).

    Raises:
        StoreError: other writes of the day kept replacing this one, or a commit kept
            conflicting. The staged record stays, so a later run finishes one of the writes.
        OSError: the storage failed.
    """
    try:
        _publish(store, day, commit, stage)
    except require_deltalake().exceptions.DeltaError as exc:
        raise StoreError(f"could not commit {day} to its Delta tables: {exc}") from exc


def _publish(store: Store, day: date, commit: dict[str, Any], stage: str) -> None:
    write_id = commit["write_id"]
    written = commit["tables"]
    names = [name for name in TABLES if written.get(name, {}).get("write_id") == write_id]
    tables = DeltaDay(store, day, write_id)
    for attempt in range(1, _WRITE_ATTEMPTS + 1):
        versions: dict[str, int] = {}
        for name in names:
            version = tables.commit(name, commit["tables"][name]["rows"])
            if version is None:
                break
            versions[name] = version
        else:
            record = dict(commit)
            record["tables"] = {
                name: {**m, "delta_version": versions[name]} if name in versions else m
                for name, m in commit["tables"].items()
            }
            staged = f"{stage}/{_RECORD_FILE}"
            store.write_bytes(staged, encode(record))
            store.fs.makedirs(store.commits(), exist_ok=True)
            store.move(staged, store.commit_path(day))
            if all(tables.holds(name) for name in names):
                return
        _pause(attempt)
    raise StoreError(
        f"day {day}: another run wrote it at the same time and kept replacing this run's "
        f"tables ({_WRITE_ATTEMPTS} attempts); the next run finishes one of the writes"
    )


def _superseded(intent: dict[str, Any], record: dict[str, Manifest], write_id: str) -> bool:
    """Whether the day's record names a write started after the staged one."""
    for name, manifest in intent["tables"].items():
        recorded = record.get(name)
        if manifest["write_id"] == write_id and recorded is not None:
            if recorded["write_id"] != write_id and recorded["written_at"] > manifest["written_at"]:
                return True
    return False


def finish_staged(store: Store, day: date) -> None:
    """Finish the writes of ``day`` whose staged record is still there (a process killed
    between table commits), unless a later write of the day is recorded; remove the data files
    of writes killed before staging their record (their ids are staging folders on a local disk;
    on object storage such files stay until :func:`vacuum`), then the day's staging.

    Raises:
        StoreError: a write could not be finished.
        OSError: the storage failed.
    """
    for folder in store.listing(store.staging(day)):
        write_id = folder.rsplit("/", 1)[-1]
        intent = store.read_object(f"{folder}/{COMMIT_FILE}", "commit record")
        if intent is None:
            if not store.local:  # another run's write between its record's two moves
                continue
            file = data_file_name(write_id)
            store.remove([f"{store.folder(name, day)}/{file}" for name in TABLES])
        elif not _superseded(intent, read_commit(store, day), write_id):
            publish(store, day, intent, folder)
        drop_stage(store, day, folder)


def drop_stage(store: Store, day: date, folder: str) -> None:
    """Remove a write's staging folder, and on a local disk the day's when it is left empty
    (object storage has no empty folders; another run's write may be staged beside it)."""
    store.remove([folder])
    if store.local and not store.listing(store.staging(day)):
        store.remove([store.staging(day)])


def vacuum(store: Store, retention_hours: int) -> list[str]:
    """Delete the files of every Delta table that no version younger than ``retention_hours``
    uses (replaced days, files of killed writes); returns them. Readers and time travel older
    than the retention lose those files, and so would a write in progress whose files are older
    (hence a retention of an hour at least while other runs may be writing).

    Raises:
        StoreError: the storage failed.
    """
    deltalake = require_deltalake()
    removed: list[str] = []
    options = storage_options(store)
    for name in TABLES:
        uri = table_uri(store, name)
        if not deltalake.DeltaTable.is_deltatable(uri, storage_options=options):
            continue
        try:
            removed += deltalake.DeltaTable(uri, storage_options=options).vacuum(
                retention_hours=retention_hours,
                dry_run=False,
                enforce_retention_duration=False,
                full=True,  # also files no log version names: writes killed before their commit
            )
        except deltalake.exceptions.DeltaError as exc:
            raise StoreError(f"could not vacuum {uri}: {exc}") from exc
    return removed
