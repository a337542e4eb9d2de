"""The hive-partitioned Parquet dataset: layout, commits, writes and reads."""
