"""Resources: the EnOS gateway and the dataset, configured from the environment at run time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg

from flowinst_etl.config import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_PAGE_SIZE,
    DEFAULT_RETENTION_HOURS,
    EnosSettings,
    PipelineSettings,
    enos_tuning_from_env,
)
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.load import DayResult
from flowinst_etl.spool import budget_bytes
from flowinst_etl.storage.root import PARQUET

DayListener = Callable[[DayResult], None]


class EnosGateway(dg.ConfigurableResource):
    """An EnOS API gateway and the application credentials to use it."""

    api_url: str
    access_key: str
    secret_key: str
    org_id: str
    user_id: str
    server_timezone: str | None = None
    verify_tls: bool = True
    page_size: int = DEFAULT_PAGE_SIZE
    max_retries: int = DEFAULT_MAX_RETRIES
    max_requests_per_s: float | None = None

    def settings(self) -> EnosSettings:
        """The validated client settings."""
        return EnosSettings(
            api_url=self.api_url,
            access_key=self.access_key,
            secret_key=self.secret_key,
            org_id=self.org_id,
            user_id=self.user_id,
            server_timezone=self.server_timezone,
            verify_tls=self.verify_tls,
            page_size=self.page_size,
            max_retries=self.max_retries,
            max_requests_per_s=self.max_requests_per_s,
        )

    @contextmanager
    def client(self) -> Iterator[EnosClient]:
        """A client for the duration of one run."""
        with EnosClient(self.settings()) as client:
            yield client

    @classmethod
    def from_env(cls) -> EnosGateway:
        """Credentials from ``ENOS_*`` variables, resolved when a run starts, never at import;
        the optional, non-secret ``ENOS_*`` settings are read when the definitions load."""
        return cls(
            api_url=dg.EnvVar("ENOS_API_URL"),
            access_key=dg.EnvVar("ENOS_ACCESS_KEY"),
            secret_key=dg.EnvVar("ENOS_SECRET_KEY"),
            org_id=dg.EnvVar("ENOS_ORG_ID"),
            user_id=dg.EnvVar("ENOS_USER_ID"),
            **enos_tuning_from_env(),
        )


class Dataset(dg.ConfigurableResource):
    """Where the dataset lives (a path or an fsspec URL), how many extractions run at once, how
    many megabytes of extracted records wait in memory (the rest in temporary files;
    ``records_in_memory``, a count, is its deprecated form), the table format
    (``parquet`` or ``delta``) and how long Delta tables keep replaced files."""

    root: str = "data"
    max_workers: int = 8
    records_memory_mb: int | None = None
    records_in_memory: int | None = None
    table_format: str = PARQUET
    delta_retention_hours: int = DEFAULT_RETENTION_HOURS

    def records_memory_bytes(self) -> int:
        """The bytes of extracted records that may wait in memory."""
        return budget_bytes(self.records_memory_mb, self.records_in_memory)


def no_listener(result: DayResult) -> None:
    """The default: Dagster's own event log already records each day."""


def run_resources(
    settings: PipelineSettings, listener: DayListener = no_listener
) -> dict[str, object]:
    """The resources every run of the assets needs, for one set of pipeline settings."""
    return {
        "enos": EnosGateway.from_env(),
        "dataset": Dataset(
            root=settings.data_dir,
            max_workers=settings.max_workers,
            records_memory_mb=settings.records_memory_mb,
            records_in_memory=settings.records_in_memory,
            table_format=settings.table_format,
            delta_retention_hours=settings.delta_retention_hours,
        ),
        "day_listener": dg.ResourceDefinition.hardcoded_resource(listener),
    }
