"""Settings as frozen, validated dataclasses; the only module that reads the environment."""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from dotenv import dotenv_values

from flowinst_etl.exceptions import ConfigError
from flowinst_etl.spool import budget_bytes
from flowinst_etl.storage.root import PARQUET, check_format_name
from flowinst_etl.windows import parse_day, server_zone, zone

_T = TypeVar("_T")
log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 50
DEFAULT_MAX_RETRIES = 6
#: Hours Delta tables keep replaced files for readers and time travel (Delta's own default).
DEFAULT_RETENTION_HOURS = 168

#: Inclusive bounds of every numeric setting, by variable name (README 'Configuration').
RANGES: dict[str, tuple[float, float]] = {
    "ENOS_PAGE_SIZE": (1, 1000),
    "ENOS_MAX_RETRIES": (0, 100),
    "ENOS_MAX_REQUESTS_PER_SECOND": (0.01, 10_000),
    "FLOWINST_MAX_WORKERS": (1, 64),
    "FLOWINST_LOOKBACK_DAYS": (1, 366),
    "FLOWINST_REFRESH_DAYS": (1, 366),
    "FLOWINST_DAYS_PER_RUN": (1, 366),
    "FLOWINST_RECORDS_MEMORY_MB": (0, 1_048_576),
    "FLOWINST_RECORDS_IN_MEMORY": (0, 10_000_000),
    "FLOWINST_DELTA_RETENTION_HOURS": (1, 87_600),
}
#: Bounds of the numeric fields no variable sets (seconds).
_FIELD_RANGES: dict[str, tuple[float, float]] = {
    "connect_timeout_s": (0.1, 600),
    "read_timeout_s": (0.1, 3600),
    "backoff_s": (0, 600),
    "max_backoff_s": (0, 3600),
}
_ENOS_NUMBERS = {
    "page_size": "ENOS_PAGE_SIZE",
    "max_retries": "ENOS_MAX_RETRIES",
    "max_requests_per_s": "ENOS_MAX_REQUESTS_PER_SECOND",
}
_PIPELINE_NUMBERS = {
    "max_workers": "FLOWINST_MAX_WORKERS",
    "lookback_days": "FLOWINST_LOOKBACK_DAYS",
    "refresh_days": "FLOWINST_REFRESH_DAYS",
    "days_per_run": "FLOWINST_DAYS_PER_RUN",
    "records_memory_mb": "FLOWINST_RECORDS_MEMORY_MB",
    "records_in_memory": "FLOWINST_RECORDS_IN_MEMORY",
    "delta_retention_hours": "FLOWINST_DELTA_RETENTION_HOURS",
}

#: An owner Dagster accepts, besides ``team:NAME``: an email address (Dagster's own pattern).
_OWNER_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7}")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class EnosSettings:
    """How to reach and authenticate against one EnOS API gateway.

    ``secret_key`` never appears in ``repr`` so settings can be logged.
    """

    api_url: str
    access_key: str
    secret_key: str = field(repr=False)
    org_id: str
    user_id: str
    server_timezone: str | None = None
    verify_tls: bool = True
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    page_size: int = DEFAULT_PAGE_SIZE
    max_requests_per_s: float | None = None

    def __post_init__(self) -> None:
        _raise_all(_enos_problems(asdict(self)))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EnosSettings:
        """Settings from ``ENOS_*`` environment variables (see README).

        Raises:
            ConfigError: a variable is missing or invalid.
        """
        env = os.environ if environ is None else environ
        variables = {
            name: f"ENOS_{name.upper()}"
            for name in ("api_url", "access_key", "secret_key", "org_id", "user_id")
        }
        given: dict[str, Any] = {
            name: _optional(env, variable)
            for name, variable in variables.items()
            if _optional(env, variable) is not None
        }
        missing = [variable for name, variable in variables.items() if name not in given]
        problems = _absent(missing, env)
        given.update(collect(problems, enos_tuning_from_env, env) or {})
        if problems:  # list what else is wrong too, so one run names every problem
            _raise_all([*problems, *_enos_problems(given)])
        return cls(**given)


def enos_tuning_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The optional, non-secret ``ENOS_*`` settings that are set, as ``EnosSettings`` fields.

    Raises:
        ConfigError: a variable is not of its type.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []
    tuning: dict[str, Any] = {
        "server_timezone": _optional(env, "ENOS_SERVER_TIMEZONE"),
        "verify_tls": collect(problems, _flag, env, "ENOS_VERIFY_TLS"),
        "page_size": collect(problems, _integer, env, "ENOS_PAGE_SIZE"),
        "max_retries": collect(problems, _integer, env, "ENOS_MAX_RETRIES"),
        "max_requests_per_s": collect(problems, _number, env, "ENOS_MAX_REQUESTS_PER_SECOND"),
    }
    given = {name: value for name, value in tuning.items() if value is not None}
    _raise_all([*problems, *_out_of_range(given, _ENOS_NUMBERS)])
    return given


def _enos_problems(values: Mapping[str, Any]) -> Iterator[str]:
    """What is wrong with the given ``EnosSettings`` fields (absent ones are not checked)."""
    url = values.get("api_url")
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            yield f"ENOS_API_URL {url!r} is not an http(s) URL such as https://apigw.example.com"
    for name in ("access_key", "secret_key", "org_id", "user_id"):
        if values.get(name) is not None and not values[name].strip():
            yield f"ENOS_{name.upper()} is empty: set it to the application's value"
    if values.get("server_timezone") is not None:
        yield from _problems_of(server_zone, values["server_timezone"])
    yield from _out_of_range(values, _ENOS_NUMBERS)
    for name, bounds in _FIELD_RANGES.items():
        problem = None if values.get(name) is None else out_of_range(name, values[name], *bounds)
        if problem:
            yield problem


@dataclass(frozen=True)
class PipelineSettings:
    """Where and how the dataset is built: root, partition timezone, first day, parallelism, the
    recent days re-read in full every morning and the days checked for changes, how many days
    one run of a range backfill covers (``None``: the whole range in one run), how many megabytes
    of extracted records wait in memory (the rest in temporary files under ``TMPDIR``;
    ``records_in_memory``, a count, is its deprecated form), the time of
    day, in the partition timezone, by which yesterday's partition is due, who owns the tables
    (Dagster owners: emails or ``team:NAME``), the table format of a new root (``parquet`` or
    ``delta``), and how long Delta tables keep replaced files."""

    data_dir: str = "data"
    timezone: str = "UTC"
    start_date: date = date(2026, 1, 1)
    max_workers: int = 8
    lookback_days: int = 3
    refresh_days: int = 30
    days_per_run: int | None = None
    records_memory_mb: int | None = None
    records_in_memory: int | None = None
    freshness_deadline: time = time(3, 0)
    owners: tuple[str, ...] = ()
    table_format: str = PARQUET
    delta_retention_hours: int = DEFAULT_RETENTION_HOURS

    def __post_init__(self) -> None:
        _raise_all(_pipeline_problems(asdict(self)))

    @property
    def records_memory_bytes(self) -> int:
        """The bytes of extracted records that may wait in memory (see ``spool.budget_bytes``)."""
        return budget_bytes(self.records_memory_mb, self.records_in_memory)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PipelineSettings:
        """Settings from ``FLOWINST_*`` environment variables, defaults where unset."""
        env = os.environ if environ is None else environ
        problems: list[str] = []
        start = _optional(env, "FLOWINST_START_DATE")
        read: dict[str, Any] = {
            "data_dir": _optional(env, "FLOWINST_DATA_DIR"),
            "timezone": _optional(env, "FLOWINST_TIMEZONE"),
            "start_date": collect(problems, _start_date, start) if start else None,
            "max_workers": collect(problems, _integer, env, "FLOWINST_MAX_WORKERS"),
            "lookback_days": collect(problems, _integer, env, "FLOWINST_LOOKBACK_DAYS"),
            "refresh_days": collect(problems, _integer, env, "FLOWINST_REFRESH_DAYS"),
            "days_per_run": collect(problems, _integer, env, "FLOWINST_DAYS_PER_RUN"),
            "records_memory_mb": collect(problems, _integer, env, "FLOWINST_RECORDS_MEMORY_MB"),
            "records_in_memory": collect(problems, _integer, env, "FLOWINST_RECORDS_IN_MEMORY"),
            "freshness_deadline": collect(
                problems, _time_of_day, env, "FLOWINST_FRESHNESS_DEADLINE"
            ),
            "owners": _owners(env),
            "table_format": _optional(env, "FLOWINST_TABLE_FORMAT"),
            "delta_retention_hours": collect(
                problems, _integer, env, "FLOWINST_DELTA_RETENTION_HOURS"
            ),
        }
        given = {name: value for name, value in read.items() if value is not None}
        _raise_all([*problems, *_pipeline_problems(given)])
        settings = cls(**given)
        if settings.records_in_memory is not None:
            _deprecated(
                "FLOWINST_RECORDS_IN_MEMORY is deprecated and will be removed: "
                + (
                    "ignored, as FLOWINST_RECORDS_MEMORY_MB is set"
                    if settings.records_memory_mb is not None
                    else f"read as {settings.records_memory_bytes / 2**20:.1f} MB of records; "
                    "set FLOWINST_RECORDS_MEMORY_MB instead"
                )
            )
        return settings


@functools.cache
def _deprecated(message: str) -> None:
    """Say ``message`` once per process, however often the settings are read."""
    log.warning(message)


def _start_date(text: str) -> date:
    try:
        return parse_day(text)
    except ConfigError as exc:
        raise ConfigError(f"FLOWINST_START_DATE: {exc}") from exc


def _pipeline_problems(values: Mapping[str, Any]) -> Iterator[str]:
    """What is wrong with the given ``PipelineSettings`` fields (absent ones are not checked)."""
    if values.get("timezone") is not None:
        yield from _problems_of(zone, values["timezone"])
    if values.get("data_dir") is not None and not values["data_dir"].strip():
        yield "FLOWINST_DATA_DIR is empty"
    for owner in values.get("owners") or ():
        if not (_OWNER_EMAIL.fullmatch(owner) or (owner.startswith("team:") and owner[5:])):
            yield f"FLOWINST_OWNERS: {owner!r} is neither an email nor team:NAME"
    if values.get("table_format") is not None:
        yield from _problems_of(check_format_name, values["table_format"])
    yield from _out_of_range(values, _PIPELINE_NUMBERS)


def load_dotenv_file(folder: Path | None = None) -> Path | None:
    """Put the variables of ``.env`` in ``folder`` (the working directory) into the environment,
    over any already set there: ``dg`` and ``dagster`` do the same with that file, so one rule
    holds for every program (the file wins; a command's flags win over both). Returns the file
    read, ``None`` when there is none."""
    path = (folder or Path.cwd()) / ".env"
    if not path.is_file():
        return None
    os.environ.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    return path


def out_of_range(name: str, value: float, low: float, high: float) -> str | None:
    """``"NAME VALUE is outside LOW..HIGH"`` when ``value`` is not a finite number in range."""
    if math.isfinite(value) and low <= value <= high:
        return None
    return f"{name} {_number_text(value)} is outside {_number_text(low)}..{_number_text(high)}"


def _number_text(value: float) -> str:
    """A number as written, whole ones in full (``10000001``, never ``1e+07``)."""
    if isinstance(value, int) or (math.isfinite(value) and value.is_integer()):
        return str(int(value))
    return f"{value:g}"


def _out_of_range(values: Mapping[str, Any], names: Mapping[str, str]) -> Iterator[str]:
    for name, variable in names.items():
        value = values.get(name)
        problem = None if value is None else out_of_range(variable, value, *RANGES[variable])
        if problem:
            yield problem


def _problems_of(check: Callable[[Any], object], value: Any) -> Iterator[str]:
    try:
        check(value)
    except ConfigError as exc:
        yield str(exc)


def collect(problems: list[str], read: Callable[..., _T], *args: Any) -> _T | None:
    """``read(*args)``, or ``None`` with its ConfigError's message added to ``problems``."""
    try:
        return read(*args)
    except ConfigError as exc:
        problems.append(str(exc))
        return None


def _raise_all(problems: Iterator[str] | list[str]) -> None:
    """One ConfigError naming every problem, if there is any."""
    found = list(problems)
    if found:
        raise ConfigError("; ".join(found))


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _absent(names: list[str], env: Mapping[str, str]) -> list[str]:
    """One problem for the required variables not set, one for those set to blanks."""
    empty = [name for name in names if name in env]
    unset = [name for name in names if name not in env]
    problems = []
    for group, state in ((unset, "not set"), (empty, "empty")):
        if group:
            verb = "is" if len(group) == 1 else "are"
            problems.append(f"{', '.join(group)} {verb} {state}: see README 'Configuration'")
    return problems


def _parsed(
    env: Mapping[str, str], name: str, convert: Callable[[str], _T], what: str
) -> _T | None:
    """The variable converted, ``None`` when unset, a ConfigError naming it when unreadable."""
    text = _optional(env, name)
    if text is None:
        return None
    try:
        return convert(text)
    except ValueError as exc:
        raise ConfigError(f"{name}={text!r} is not {what}") from exc


def _number(env: Mapping[str, str], name: str) -> float | None:
    return _parsed(env, name, _finite, "a finite number")


def _finite(text: str) -> float:
    """``float(text)``, refusing ``nan``, ``inf`` and numbers too large for a float (``1e309``)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _integer(env: Mapping[str, str], name: str) -> int | None:
    return _parsed(env, name, int, "a whole number")


def _owners(env: Mapping[str, str]) -> tuple[str, ...] | None:
    """``FLOWINST_OWNERS``, comma-separated, as a tuple; ``None`` when unset."""
    text = _optional(env, "FLOWINST_OWNERS")
    return None if text is None else tuple(part.strip() for part in text.split(",") if part.strip())


def _time_of_day(env: Mapping[str, str], name: str) -> time | None:
    return _parsed(env, name, _hours_minutes, "a time of day HH:MM, such as 03:00")


def _hours_minutes(text: str) -> time:
    hours, colon, minutes = text.partition(":")
    if not (colon and len(hours) == 2 and len(minutes) == 2 and (hours + minutes).isdigit()):
        raise ValueError(text)
    return time(int(hours), int(minutes))  # ValueError past 23:59


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    return _parsed(env, name, _truth, "true or false")


def _truth(text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(text)


def optional_setting(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """One optional, non-secret setting from the environment (``None`` when unset or blank)."""
    return _optional(os.environ if environ is None else environ, name)
