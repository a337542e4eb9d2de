"""Requests of a 30-day ``flowinst-etl refresh``, as a share of a 30-day backfill's in the same run.

For each day size, against an emulator in this process (so history can be changed between runs),
the real command line, each run a process of its own:

  backfill   ``flowinst-etl backfill`` of the range;
  unchanged  ``flowinst-etl refresh`` of the range right after: nothing changed;
  5 changed  late changes (reruns, late ends, cancellations) to instances of 5 days spread over
             the range, then ``flowinst-etl refresh`` again.

Requests are every request the emulator received (token and time calls, searches, retries).
Goals, at each day size: unchanged at most 10 % of the backfill; with changes at most the changed
days' share (5/30) plus 10 %. A partition day (UTC) holds about ``--per-day`` instances.

    .venv/bin/python bench/bench_refresh.py [--days 30] [--per-day 500 3000] [--changed 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from flowinst_etl.emulator import Emulator, EmulatorConfig

FIRST = date(2026, 10, 1)
CHANGES_PER_DAY = 3
UNCHANGED_GOAL = 0.10
CHANGED_MARGIN = 0.10


def run(emulator: Emulator, *args: str) -> tuple[int, str]:
    """Run ``flowinst-etl ARGS``; the requests the emulator received, and the output."""
    credentials = emulator.config.credentials
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ENOS_", "FLOWINST_"))},
        "ENOS_API_URL": emulator.base_url,
        "ENOS_ACCESS_KEY": credentials.access_key,
        "ENOS_SECRET_KEY": credentials.secret_key,
        "ENOS_ORG_ID": credentials.org_id,
        "ENOS_USER_ID": credentials.user_id,
    }
    env.pop("DAGSTER_HOME", None)
    before = emulator.stats()["requests"]
    done = subprocess.run(
        [sys.executable, "-m", "flowinst_etl.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"flowinst-etl {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return emulator.stats()["requests"] - before, done.stdout


def verdict_counts(stdout: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in stdout.splitlines():
        head, _, rest = line.partition("  ")
        if len(head) == 10 and head[4] == "-" and rest.split():
            counts[rest.split()[0]] = counts.get(rest.split()[0], 0) + 1
    return counts


def day_ms(day: date) -> tuple[int, int]:
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return int(start.timestamp() * 1000), int((start + timedelta(days=1)).timestamp() * 1000)


def measure(per_day: int, days: int, changed: int) -> None:
    last = FIRST + timedelta(days=days - 1)
    config = EmulatorConfig(
        seed=11, start_day=FIRST - timedelta(days=1), end_day=last + timedelta(days=1),
        per_day=per_day,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as folder, Emulator(config) as emulator:
        root = str(Path(folder) / "data")
        span = ["--data-dir", root]
        backfill, _ = run(emulator, "backfill", str(FIRST), str(last), *span)
        unchanged, out = run(emulator, "refresh", str(FIRST), str(last), *span)
        assert verdict_counts(out) == {"unchanged": days}, out
        step = days // changed
        for n in range(changed):
            emulator.late_changes(
                CHANGES_PER_DAY, *day_ms(FIRST + timedelta(days=step // 2 + n * step))
            )
        with_changes, out = run(emulator, "refresh", str(FIRST), str(last), *span)
        assert verdict_counts(out) == {"unchanged": days - changed, "changed": changed}, out
    share = changed / days
    print(f"{per_day} instances a day, {days} days: backfill {backfill} requests")
    print(
        f"  refresh, nothing changed: {unchanged:5d} requests = {unchanged / backfill:6.1%} "
        f"of the backfill (goal <= {UNCHANGED_GOAL:.0%})"
    )
    print(
        f"  refresh, {changed} days changed:  {with_changes:5d} requests = "
        f"{with_changes / backfill:6.1%} of the backfill (goal <= {share:.1%} + "
        f"{CHANGED_MARGIN:.0%} = {share + CHANGED_MARGIN:.1%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="days of the range (30)")
    parser.add_argument(
        "--per-day", type=int, nargs="+", default=[500, 3000], help="instances a day (500 3000)"
    )
    parser.add_argument("--changed", type=int, default=5, help="days changed (5)")
    args = parser.parse_args()
    for per_day in args.per_day:
        measure(per_day, args.days, args.changed)


if __name__ == "__main__":
    main()
