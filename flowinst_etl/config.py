"""Settings as frozen, validated dataclasses; the only module that reads the environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flowinst_etl.exceptions import ConfigError
from flowinst_etl.windows import parse_day, server_zone, zone

_T = TypeVar("_T")

DEFAULT_PAGE_SIZE = 50
DEFAULT_MAX_RETRIES = 6

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
        parts = urlsplit(self.api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"ENOS_API_URL {self.api_url!r} is not an http(s) URL such as https://apigw.example.com"
            )
        for name in ("access_key", "secret_key", "org_id", "user_id"):
            if not getattr(self, name).strip():
                raise ConfigError(
                    f"ENOS_{name.upper()} is empty: set it to the application's value"
                )
        if self.server_timezone is not None:
            server_zone(self.server_timezone)
        if not 1 <= self.page_size <= 1000:
            raise ConfigError(f"ENOS_PAGE_SIZE {self.page_size} is outside 1..1000")
        if self.max_requests_per_s is not None and self.max_requests_per_s <= 0:
            raise ConfigError("ENOS_MAX_REQUESTS_PER_SECOND must be positive")
        if self.max_retries < 0 or self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ConfigError("ENOS_MAX_RETRIES must be >= 0 and timeouts positive")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EnosSettings:
        """Settings from ``ENOS_*`` environment variables (see README).

        Raises:
            ConfigError: a variable is missing or invalid.
        """
        env = os.environ if environ is None else environ
        return cls(
            api_url=_required(env, "ENOS_API_URL"),
            access_key=_required(env, "ENOS_ACCESS_KEY"),
            secret_key=_required(env, "ENOS_SECRET_KEY"),
            org_id=_required(env, "ENOS_ORG_ID"),
            user_id=_required(env, "ENOS_USER_ID"),
            **enos_tuning_from_env(env),
        )


def enos_tuning_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The optional, non-secret ``ENOS_*`` settings that are set, as ``EnosSettings`` fields.

    Raises:
        ConfigError: a variable is not of its type.
    """
    env = os.environ if environ is None else environ
    tuning: dict[str, Any] = {
        "server_timezone": _optional(env, "ENOS_SERVER_TIMEZONE"),
        "verify_tls": _flag(env, "ENOS_VERIFY_TLS"),
        "page_size": _integer(env, "ENOS_PAGE_SIZE"),
        "max_retries": _integer(env, "ENOS_MAX_RETRIES"),
        "max_requests_per_s": _number(env, "ENOS_MAX_REQUESTS_PER_SECOND"),
    }
    return {name: value for name, value in tuning.items() if value is not None}


@dataclass(frozen=True)
class PipelineSettings:
    """Where and how the dataset is built: root, partition timezone, first day, parallelism."""

    data_dir: str = "data"
    timezone: str = "UTC"
    start_date: date = date(2026, 1, 1)
    max_workers: int = 4
    lookback_days: int = 3

    def __post_init__(self) -> None:
        zone(self.timezone)
        if not self.data_dir.strip():
            raise ConfigError("FLOWINST_DATA_DIR is empty")
        if not 1 <= self.max_workers <= 64:
            raise ConfigError(f"FLOWINST_MAX_WORKERS {self.max_workers} is outside 1..64")
        if self.lookback_days < 1:
            raise ConfigError("FLOWINST_LOOKBACK_DAYS must be at least 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PipelineSettings:
        """Settings from ``FLOWINST_*`` environment variables, defaults where unset."""
        env = os.environ if environ is None else environ
        start = _optional(env, "FLOWINST_START_DATE")
        given: dict[str, Any] = {
            "data_dir": _optional(env, "FLOWINST_DATA_DIR"),
            "timezone": _optional(env, "FLOWINST_TIMEZONE"),
            "start_date": parse_day(start) if start else None,
            "max_workers": _integer(env, "FLOWINST_MAX_WORKERS"),
            "lookback_days": _integer(env, "FLOWINST_LOOKBACK_DAYS"),
        }
        return cls(**{name: value for name, value in given.items() if value is not None})


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _required(env: Mapping[str, str], name: str) -> str:
    value = _optional(env, name)
    if value is None:
        raise ConfigError(f"{name} is not set: see README 'Configuration'")
    return value


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
    return _parsed(env, name, float, "a number")


def _integer(env: Mapping[str, str], name: str) -> int | None:
    return _parsed(env, name, int, "a whole number")


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
