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
from pathlib import Path

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

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


def check_data_root(root: str, name: str, record: RootRecord) -> None:
    """The dataset root can take a day's files, and its record agrees with ``record`` (the
    run's partition timezone and table format).

    A local root's name must reach the file system and pyarrow as the same bytes. Then the
    places a day's files go must take a write: a file is created, renamed and removed there
    (on a local disk in a folder of its own, made in the nearest existing folder of the
    staging area and of the root, so nothing of the root is made and no concurrent run is
    disturbed), so a root that cannot be written fails here, before the first request. Last,
    the root's record must agree with the run.

    Args:
        root: a local path or an fsspec URL such as ``s3://bucket/prefix``.
        name: how the user set it (``--data-dir`` or ``FLOWINST_DATA_DIR``), for the message.
        record: the run's settings that must match the root's.

    Raises:
        ConfigError: the root cannot hold the dataset (with the reason), or its days are cut
            in another timezone or its tables are of another format.
    """
    try:
        fs, path = url_to_fs(root)
    except ImportError as exc:
        raise ConfigError(f"{name} {root!r} cannot be opened: {_install_hint(root, exc)}") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name} {root!r} cannot be opened: {exc}") from exc
    store = Store(fs, path.rstrip("/"))
    if store.local:
        problem = unnameable(root)
        if problem:
            raise ConfigError(f"{name} {problem}")
        _check_local_root(Path(path), root, name)
        for folder in dict.fromkeys(map(_nearest_existing, (store.staging(), store.base))):
            try:
                _probe_folder(folder)
            except OSError as exc:
                raise ConfigError(
                    f"{name} {root!r} cannot be written: {folder} refuses a new file or folder "
                    f"({exc.strerror or exc})"
                ) from exc
    else:
        _check_bucket(fs, path, root, name)
        try:
            _probe_objects(store)
        except Exception as exc:  # each filesystem raises its own errors; any means unusable
            raise ConfigError(f"{name} {root!r} cannot be written: {_one_line(exc)}") from exc
    check_root(root, record)


def _check_bucket(fs: AbstractFileSystem, path: str, root: str, name: str) -> None:
    bucket = path.strip("/").split("/", 1)[0]
    try:
        found = fs.exists(bucket)
    except Exception as exc:  # each filesystem raises its own errors; any of them means unusable
        raise ConfigError(f"{name} {root!r}: bucket {bucket!r} does not answer: {exc}") from exc
    if not found:
        raise ConfigError(f"{name} {root!r}: bucket {bucket!r} does not exist or is not visible")


def _nearest_existing(path: str) -> str:
    return str(next(folder for folder in (Path(path), *Path(path).parents) if folder.exists()))


def _probe_folder(folder: str) -> None:
    """Make a folder of a unique name in ``folder``, a file in it, rename the file and remove
    both, as a day's write makes partition folders and renames its files."""
    probe = os.path.join(folder, f".flowinst-probe-{uuid.uuid4().hex}")
    made, renamed = os.path.join(probe, "staged"), os.path.join(probe, "published")
    os.mkdir(probe)
    try:
        with open(made, "wb"):
            pass
        os.rename(made, renamed)
        os.remove(renamed)
    finally:
        for leftover in (made, renamed):
            with contextlib.suppress(OSError):
                os.remove(leftover)
        os.rmdir(probe)


def _probe_objects(store: Store) -> None:
    """Write an object of a unique name in the staging area, move it into the control folder
    and remove it, as a day's write does with its files."""
    probe = f".flowinst-probe-{uuid.uuid4().hex}"
    staged, moved = f"{store.staging()}/{probe}", f"{store.base}/{CONTROL_FOLDER}/{probe}"
    try:
        store.write_bytes(staged, b"")
        store.move(staged, moved)
    finally:
        store.remove([staged, moved])


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _install_hint(root: str, exc: ImportError) -> str:
    """The install line of the project's extra for the root's protocol (README 'Configuration'),
    else fsspec's own advice."""
    if root.split("://", 1)[0] in ("s3", "s3a"):
        return "S3 needs the s3 extra: .venv/bin/pip install -e '.[s3]'"
    return str(exc)


def _check_local_root(path: Path, root: str, name: str) -> None:
    existing = Path(_nearest_existing(str(path)))
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
