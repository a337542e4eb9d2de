"""flowinst-etl: EnOS flow instances as a daily, hive-partitioned Parquet dataset.

The library behind the ``flowinst-etl`` command and the Dagster code location in ``pipelines``;
it never imports Dagster, so notebooks and scripts can use it directly.
"""

from __future__ import annotations

from flowinst_etl.changes import RefreshPlan, plan_refresh
from flowinst_etl.config import EnosSettings, PipelineSettings
from flowinst_etl.exceptions import (
    ApiError,
    AuthenticationError,
    ConfigError,
    FatalApiError,
    FlowinstError,
    IncompleteExtractionError,
    ResponseFormatError,
    RetriableApiError,
    StoreError,
    TransportError,
    UnreliableChangeTest,
)
from flowinst_etl.extract import Extraction, Extractor, Reconciliation
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.load import DayResult, load_days
from flowinst_etl.store import dataset, read_manifest, read_table, write_day, written_days
from flowinst_etl.tables.flatten import FlowTables, flatten_instances
from flowinst_etl.tables.schema import TABLES
from flowinst_etl.windows import Window, day_window

__all__ = [
    "TABLES",
    "ApiError",
    "AuthenticationError",
    "ConfigError",
    "DayResult",
    "EnosClient",
    "EnosSettings",
    "Extraction",
    "Extractor",
    "FatalApiError",
    "FlowTables",
    "FlowinstError",
    "IncompleteExtractionError",
    "PipelineSettings",
    "Reconciliation",
    "RefreshPlan",
    "ResponseFormatError",
    "RetriableApiError",
    "StoreError",
    "TransportError",
    "UnreliableChangeTest",
    "Window",
    "dataset",
    "day_window",
    "flatten_instances",
    "load_days",
    "plan_refresh",
    "read_manifest",
    "read_table",
    "write_day",
    "written_days",
]
