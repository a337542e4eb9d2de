"""flowinst-etl: EnOS flow instances as a daily, hive-partitioned Parquet dataset."""

from __future__ import annotations

__all__: list[str] = []
