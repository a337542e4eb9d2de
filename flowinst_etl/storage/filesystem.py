"""Where a dataset lives: the paths of its layout on one fsspec filesystem, durable writes, moves
that readers cannot observe half-done, and the per-day lock of a local root."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from flowinst_etl.exceptions import ConfigError, StoreError
from flowinst_etl.locks import held

PARTITION_KEY = "trigger_date"
#: The folder of everything that is not table data. Readers never meet it: they are pointed at
#: a table's folder, and hive discovery skips names starting with ``_`` anyway.
CONTROL_FOLDER = "_flowinst"
#: A write's commit record, staged beside its files before it is published.
COMMIT_FILE = "commit.json"
#: The data file of the old layout, named by a ``_manifest.json`` beside it.
LEGACY_MANIFEST = "_manifest.json"


def data_file_name(write_id: str) -> str:
    """The name of the data file a write puts in each partition folder."""
    return f"part-{write_id}.parquet"


@dataclass(frozen=True)
class Store:
    """A dataset root on some filesystem, and the paths of its layout."""

    fs: AbstractFileSystem
    base: str

    @classmethod
    def open(cls, root: str, storage_options: Mapping[str, Any] | None) -> Store:
        """The store at ``root`` (a path or an fsspec URL).

        Raises:
            ConfigError: the root is empty or fsspec cannot open it.
        """
        if not root:
            raise ConfigError(
                "empty dataset root: give a local path or a URL such as s3://bucket/x"
            )
        try:
            fs, base = url_to_fs(root, **dict(storage_options or {}))
        except (ImportError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot open dataset root {root!r}: {exc}") from exc
        problem = unnameable(root) if isinstance(fs, LocalFileSystem) else None
        if problem:
            raise ConfigError(f"dataset root {problem}")
        return cls(fs, base.rstrip("/"))

    @property
    def local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def table(self, table: str) -> str:
        return f"{self.base}/{table}"

    def folder(self, table: str, day: date) -> str:
        return f"{self.base}/{table}/{PARTITION_KEY}={day.isoformat()}"

    def commit_path(self, day: date) -> str:
        return f"{self.base}/{CONTROL_FOLDER}/commits/{day.isoformat()}.json"

    def commits(self) -> str:
        return f"{self.base}/{CONTROL_FOLDER}/commits"

    def refresh_state(self, name: str) -> str:
        """A file of what refresh keeps about the root as a whole."""
        return f"{self.base}/{CONTROL_FOLDER}/refresh/{name}"

    def staging(self, day: date | None = None) -> str:
        folder = f"{self.base}/{CONTROL_FOLDER}/staging"
        return folder if day is None else f"{folder}/{day.isoformat()}"

    def url(self, path: str) -> str:
        return path if self.local else self.fs.unstrip_protocol(path)

    def uri(self, path: str) -> str:
        """``path`` as a URI: ``file://`` on a local disk, the filesystem's URL elsewhere. The
        ``=`` of a partition folder stays as it is: RFC 3986 allows it in a path."""
        return "file://" + quote(path, safe="/=") if self.local else self.fs.unstrip_protocol(path)

    @contextlib.contextmanager
    def create(self, path: str) -> Iterator[Any]:
        """A new file to write into, made durable on a local disk when the block ends without
        an exception."""
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(path, "wb") as handle:
            yield handle
            if self.local:
                handle.flush()
                os.fsync(handle.fileno())

    def read_object(self, path: str, what: str) -> dict[str, Any] | None:
        """The JSON object in the file at ``path``; ``None`` when there is no such file.

        Raises:
            StoreError: the file cannot be read or holds no JSON object (``what`` names it).
        """
        try:
            with self.fs.open(path, "rb") as handle:
                loaded = json.loads(handle.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(f"unreadable {what} {self.url(path)}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise StoreError(f"unreadable {what} {self.url(path)}: not a JSON object")
        return loaded

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write a new file holding ``data``, durably on a local disk."""
        with self.create(path) as handle:
            handle.write(data)

    def move(self, source: str, target: str) -> None:
        """Give a finished file or folder its final name in one step readers cannot observe
        half-done: a rename on a local disk (made durable), a single copy on object storage."""
        self.fs.mv(source, target, recursive=True)
        if self.local:
            fsync_folder(os.path.dirname(target))

    def remove(self, paths: Sequence[str]) -> None:
        for path in paths:
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)

    def require_folder(self, path: str) -> None:
        """Make sure ``path`` is a folder or absent.

        Raises:
            StoreError: a file stands where the layout has a folder.
        """
        if self.fs.isfile(path):
            raise StoreError(f"{self.url(path)} is a file where the dataset has a folder")

    def listing(self, folder: str) -> list[str]:
        """The paths directly in ``folder``; none when it does not exist."""
        self.fs.invalidate_cache(folder)
        try:
            return [path.rstrip("/") for path in self.fs.ls(folder, detail=False)]
        except FileNotFoundError:
            return []

    @contextlib.contextmanager
    def day_lock(self, day: date) -> Iterator[None]:
        """Hold the day's lock: writers of one day on a local disk take turns (the kernel
        releases the lock of a killed process). Object storage has no lock; there one writer
        per day at a time is assumed (the ``enos_api`` pool with limit 1 gives that)."""
        if not self.local:
            yield
            return
        folder = f"{self.base}/{CONTROL_FOLDER}/locks"
        os.makedirs(folder, exist_ok=True)
        with held(f"{folder}/{day.isoformat()}.lock"):
            yield


def unnameable(root: str) -> str | None:
    """Why a local root cannot be used, if its name reaches the file system and pyarrow as
    different bytes: Python names files in the file system encoding, pyarrow in UTF-8, so any
    other root (bytes that are not UTF-8, or a UTF-8 name under a locale that cannot spell it)
    would be written by one and not found by the other. ``None`` for a root both name alike.
    """
    try:
        raw: bytes | None = os.fsencode(root)
    except UnicodeError:  # a UTF-8 name (from .env) that the locale's encoding cannot spell
        raw = None
    try:
        spelt = None if raw is None else raw.decode("utf-8")
    except UnicodeDecodeError:
        shown = raw.decode("utf-8", "backslashreplace") if raw is not None else root
        return f"'{shown}' is not a UTF-8 name, and pyarrow reads UTF-8 paths only: rename it"
    if spelt != root:
        return (
            f"'{spelt or root}' needs a UTF-8 locale (the file system encoding is "
            f"{sys.getfilesystemencoding()}): run with LANG=C.UTF-8 or PYTHONUTF8=1"
        )
    return None


def fsync_folder(folder: str) -> None:
    """Make the renames in a local folder survive a power loss."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def table_uri(
    root: str,
    table: str,
    day: date | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> str:
    """Where a table lives, or one day of it: the URI of its folder or of the day's partition
    folder (``file:///…/flow_instances/trigger_date=2026-11-01``, ``s3://bucket/x/…``).

    Raises:
        ConfigError: the root is empty or fsspec cannot open it.
    """
    store = Store.open(root, storage_options)
    return store.uri(store.table(table) if day is None else store.folder(table, day))
