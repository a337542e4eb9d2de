"""Checks a run makes before it calls the gateway: the days, the dataset root, Dagster's home.

Each check raises ``ConfigError`` with one sentence naming the setting or flag at fault, so the
command line can refuse with exit 2 before anything is extracted or written.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path, PurePath

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from flowinst_etl.config import PipelineSettings, optional_setting
from flowinst_etl.exceptions import ConfigError
from flowinst_etl.storage.filesystem import CONTROL_FOLDER, Store, unnameable
from flowinst_etl.storage.root import RootRecord, check_root
from flowinst_etl.windows import zone


def check_days(first: date, last: date, settings: PipelineSettings) -> None:
    """``first``..``last`` is a range of finished partition days that Dagster knows.

    Raises:
        ConfigError: START after END, START before ``FLOWINST_START_DATE`` (Dagster's first
            partition), or END not over yet in the partition timezone.
    """
    if first > last:
        raise ConfigError(f"START {first} is after END {last}")
    if first < settings.start_date:
        raise ConfigError(
            f"START {first} is before FLOWINST_START_DATE {settings.start_date}, the first "
            f"partition day: start at {settings.start_date} or set FLOWINST_START_DATE earlier"
        )
    today = datetime.now(zone(settings.timezone)).date()
    if last >= today:
        raise ConfigError(
            f"END {last} is not over yet in {settings.timezone}; "
            f"the last complete day is {today - timedelta(days=1)}"
        )


def check_data_root(root: str, name: str, timezone: str) -> None:
    """The dataset root can take a day's files, and its days are cut in ``timezone``.

    A local root's name must reach the file system and pyarrow as the same bytes; a file is then
    created, renamed and removed where a day's files go (``_flowinst/`` and the root itself),
    with what that needed created and removed again, so a root that cannot be written fails
    here, before the first request. Last, the root's record must agree with the run.

    Args:
        root: a local path or an fsspec URL such as ``s3://bucket/prefix``.
        name: how the user set it (``--data-dir`` or ``FLOWINST_DATA_DIR``), for the message.
        timezone: the run's partition timezone.

    Raises:
        ConfigError: the root cannot hold the dataset (with the reason), or its days are cut
            in another timezone.
    """
    try:
        fs, path = url_to_fs(root)
    except ImportError as exc:
        raise ConfigError(f"{name} {root!r} cannot be opened: {_install_hint(root, exc)}") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name} {root!r} cannot be opened: {exc}") from exc
    if isinstance(fs, LocalFileSystem):
        problem = unnameable(root)
        if problem:
            raise ConfigError(f"{name} {problem}")
        _check_local_root(Path(path), root, name)
    else:
        _check_bucket(fs, path, root, name)
    try:
        _probe_writes(Store(fs, path.rstrip("/")))
    except Exception as exc:  # each filesystem raises its own errors; any of them means unusable
        raise ConfigError(f"{name} {root!r} cannot be written: {_one_line(exc)}") from exc
    check_root(root, RootRecord(partition_timezone=timezone))


def _check_bucket(fs: AbstractFileSystem, path: str, root: str, name: str) -> None:
    bucket = path.strip("/").split("/", 1)[0]
    try:
        found = fs.exists(bucket)
    except Exception as exc:  # each filesystem raises its own errors; any of them means unusable
        raise ConfigError(f"{name} {root!r}: bucket {bucket!r} does not answer: {exc}") from exc
    if not found:
        raise ConfigError(f"{name} {root!r}: bucket {bucket!r} does not exist or is not visible")


def _probe_writes(store: Store) -> None:
    """Create a file in the control folder, rename it into the root and remove it, as a day's
    write does with its files; folders made for it are removed afterwards (deepest first)."""
    probe = f".preflight-{uuid.uuid4().hex}"
    staged = f"{store.staging()}/{probe}"
    made = _missing_folders(store) if store.local else []  # object storage has no folders
    try:
        store.write(staged, b"")
        store.move(staged, f"{store.base}/{probe}")
        store.remove([f"{store.base}/{probe}"])
    finally:
        with contextlib.suppress(OSError):
            store.remove([staged])
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def _missing_folders(store: Store) -> list[str]:
    """The local folders the probe's file needs that do not exist yet, outermost first."""
    base = PurePath(store.base)
    needed = [*reversed(base.parents), base, base / CONTROL_FOLDER, PurePath(store.staging())]
    return [str(folder) for folder in needed if not os.path.lexists(folder)]


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _install_hint(root: str, exc: ImportError) -> str:
    """The install line of the project's extra for the root's protocol (README 'Configuration'),
    else fsspec's own advice."""
    if root.split("://", 1)[0] in ("s3", "s3a"):
        return "S3 needs the s3 extra: .venv/bin/pip install -e '.[s3]'"
    return str(exc)


def _check_local_root(path: Path, root: str, name: str) -> None:
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        what = "is a file" if existing == path else f"is inside {existing}, which is a file"
        raise ConfigError(f"{name} {root!r} {what}: give a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" (its nearest existing folder {existing} is not)"
        raise ConfigError(f"{name} {root!r} is not writable{where}")


def check_dagster_home() -> None:
    """``DAGSTER_HOME``, when set, is an existing directory (Dagster records runs there).

    Raises:
        ConfigError: it is set to something else.
    """
    home = optional_setting("DAGSTER_HOME")
    if home is None or Path(home).is_dir():
        return
    if Path(home).exists():
        raise ConfigError(f"DAGSTER_HOME {home!r} is a file: point it at a directory or unset it")
    raise ConfigError(
        f"DAGSTER_HOME {home!r} is not a directory: create it (mkdir -p {shlex.quote(home)}) "
        "or unset it"
    )
