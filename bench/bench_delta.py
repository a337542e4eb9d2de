"""Benchmark: the cost per day of a Delta commit beside the Parquet write, and a Delta table's
commit time as its log grows.

(a) ``--days`` days of ``--instances`` realistic instances each (see ``bench_flatten_store``),
    flattened once, then each day written with ``write_day`` to a Parquet root and to a Delta
    root, alternately, in the same run: seconds per day of each and their ratio.
(b) one table (``flow_instances``, 10 instances a day) written ``--commits`` days in a row to a
    Delta root, one commit per day: the median time of a day's write over the first commits,
    around the first checkpoint (delta-rs writes one every 100 commits) and over the last ones.

Both roots are on the local disk given by ``--root`` (a temporary folder by default).
Run: ``python bench/bench_delta.py [--days 30] [--instances 3000] [--commits 365]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
from bench_flatten_store import make_records

from flowinst_etl.model import FoundInstance
from flowinst_etl.store import write_day
from flowinst_etl.tables.flatten import flatten_instances

SERVER_TZ = timezone(timedelta(hours=8))
FIRST = date(2025, 1, 1)
EXTRACTED_AT = datetime(2025, 1, 1, tzinfo=timezone.utc)


def day_tables(count: int, seed: int) -> dict[str, pd.DataFrame]:
    """One day's four tables, flattened from ``count`` generated records."""
    records = [FoundInstance(1, record) for record in make_records(count, seed)]
    return flatten_instances(records, SERVER_TZ, EXTRACTED_AT).as_dict()


def per_day(root: Path, days: int, instances: int) -> None:
    """(a): every day written to both roots, alternately; seconds per day."""
    tables = [day_tables(instances, seed) for seed in range(days)]
    spent: dict[str, list[float]] = {"parquet": [], "delta": []}
    for number, day in enumerate(tables):
        when = FIRST + timedelta(days=number)
        for table_format, seconds in spent.items():
            start = time.perf_counter()
            write_day(str(root / table_format), when, day, {}, table_format=table_format)
            seconds.append(time.perf_counter() - start)
    parquet, delta = (statistics.median(spent[name]) for name in ("parquet", "delta"))
    print(f"(a) {days} days x {instances} instances, all four tables, median seconds per day")
    print(f"    parquet write       {parquet:8.3f}")
    print(f"    delta write+commit  {delta:8.3f}   ({delta / parquet:.2f}x parquet)")
    print(f"    delta extra per day {delta - parquet:8.3f}")


def log_growth(root: Path, commits: int) -> None:
    """(b): one table committed ``commits`` times; median seconds per commit by stretch."""
    instances = day_tables(10, 0)["flow_instances"]
    seconds = []
    for number in range(commits):
        start = time.perf_counter()
        write_day(
            str(root / "log"),
            FIRST + timedelta(days=number),
            {"flow_instances": instances},
            {},
            table_format="delta",
        )
        seconds.append(time.perf_counter() - start)
    print(f"(b) one table, {commits} days in a row, one commit each: median seconds per day")
    stretches = [(1, 10), (91, 99), (101, 110), (commits - 9, commits)]
    for first, last in stretches:
        if last <= commits:
            median = statistics.median(seconds[first - 1 : last])
            print(f"    commits {first:3}-{last:3}  {median:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--instances", type=int, default=3000)
    parser.add_argument("--commits", type=int, default=365)
    parser.add_argument("--root", type=Path, help="folder for the roots (default: temporary)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.root) as folder:
        per_day(Path(folder), args.days, args.instances)
        log_growth(Path(folder), args.commits)


if __name__ == "__main__":
    main()
