"""Scale-out through the Dagster daemon: one backfill, pool limit 1 (the baseline) against 3.

Run it as a module from the repository root (it shares the test deployment helpers).

Each configuration launches the same partition backfill through Dagster's GraphQL API on a fresh
instance configured from docs/dagster.yaml, with ``FLOWINST_DAYS_PER_RUN`` days per run; the daemon
queues the runs and launches each in its own process. Figures: wall time from the first run queued
to the last run ended, the most runs in flight at once, and the busiest second the emulator saw
against the bounds docs/deployment.md derives from the settings: pool limit x
(ENOS_MAX_REQUESTS_PER_SECOND + 1) in any one second, pool limit x ENOS_MAX_REQUESTS_PER_SECOND
sustained.

    .venv/bin/python -m bench.bench_daemon_backfill [--days 12] [--days-per-run 3] [--rate 20]
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date, timedelta
from pathlib import Path

from flowinst_etl.emulator import Emulator, EmulatorConfig
from tests.pipelines.conftest import enos_environment
from tests.pipelines.deployment import days_between, most_in_flight, run_backfill

FIRST = date(2026, 11, 1)


def measure(args: argparse.Namespace, pool_limit: int, folder: Path) -> dict[str, float]:
    """Run the backfill once with ``pool_limit``; its figures."""
    last = FIRST + timedelta(days=args.days - 1)
    config = EmulatorConfig(
        seed=14,
        start_day=FIRST - timedelta(days=1),
        end_day=last + timedelta(days=1),
        per_day=args.per_day,
        latency_ms=args.latency_ms,
    )
    with Emulator(config) as emulator:
        env = {
            **enos_environment(emulator),
            "ENOS_PAGE_SIZE": "10",
            "ENOS_MAX_REQUESTS_PER_SECOND": str(args.rate),
            "FLOWINST_DATA_DIR": str(folder / "data"),
            "FLOWINST_START_DATE": FIRST.isoformat(),
            "FLOWINST_DAYS_PER_RUN": str(args.days_per_run),
        }
        outcome = run_backfill(folder / "home", env, days_between(FIRST, last), pool_limit)
        return {
            "wall_s": outcome.wall_s,
            "runs": len(outcome.spans),
            "in_flight": most_in_flight(outcome.spans),
            "peak_rps": emulator.peak_requests_per_second(),
            "requests": emulator.stats()["requests"],
            "sustained_bound": pool_limit * args.rate,
            "second_bound": pool_limit * (args.rate + 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--days-per-run", type=int, default=3)
    parser.add_argument("--per-day", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20.0, help="ENOS_MAX_REQUESTS_PER_SECOND")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        figures = {limit: measure(args, limit, Path(folder, f"limit{limit}")) for limit in (1, 3)}
    baseline = figures[1]["wall_s"]
    print(f"{args.days} days, {args.days_per_run} days per run, {args.per_day} instances a day")
    print(
        "pool limit | runs | most in flight | wall s | vs limit 1 | busiest second"
        " | bound: 1 s, sustained"
    )
    for limit, f in figures.items():
        print(
            f"{limit:>10} | {f['runs']:>4.0f} | {f['in_flight']:>14.0f} | {f['wall_s']:>6.1f} | "
            f"{baseline / f['wall_s']:>9.2f}x | {f['peak_rps']:>14.0f} | "
            f"{f['second_bound']:>4.0f}, {f['sustained_bound']:.0f}"
        )


if __name__ == "__main__":
    main()
