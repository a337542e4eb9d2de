"""What tokens that die every few calls cost: renewals and retries per day, and wall time against
the same run with tokens that never expire (the baseline, measured in the same process).

Each run extracts the same days with the same fault mix (5xx answers, half of them HTML pages,
dropped connections, 429 above a request rate) from an emulator of its own; the expiring runs
answer a dead token in each shape a gateway may use, with or without refreshes that retire the
previous token.

    .venv/bin/python bench/bench_token_expiry.py [--days 4] [--per-day 300] [--token-calls 25]
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from datetime import date, timedelta

from bench_extract import settings as gateway_settings

from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.extract import Extractor
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.windows import day_window, zone

FIRST = date(2026, 11, 1)
STYLES = ("http401", "code1203", "apim4011")


def run(
    config: EmulatorConfig, days: list[date], workers: int, backoff_s: float
) -> dict[str, float]:
    """Wall seconds, and renewals, retries and 429s per day, of one extraction."""
    windows = [day_window(day, zone("UTC")) for day in days]
    totals = {"renewals": 0.0, "retries": 0.0, "throttled": 0.0}
    with Emulator(config) as emulator:
        settings = gateway_settings(emulator.base_url, config)
        settings = replace(settings, max_retries=10, backoff_s=backoff_s)
        started = time.perf_counter()
        with EnosClient(settings) as client:
            for _, outcome in Extractor(client, max_workers=workers).extract_many(windows):
                if isinstance(outcome, Exception):
                    raise outcome
                figures = outcome.reconciliation
                totals["renewals"] += figures.token_renewals
                totals["retries"] += figures.retries
                totals["throttled"] += figures.throttled
        seconds = time.perf_counter() - started
    per_day = {name: value / len(days) for name, value in totals.items()}
    return {"seconds": seconds, **per_day}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--per-day", type=int, default=300)
    parser.add_argument("--token-calls", type=int, default=25)
    parser.add_argument("--workers", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--backoff-s", type=float, default=0.1)
    args = parser.parse_args()
    logging.getLogger("flowinst_etl.gateway.transport").setLevel(logging.ERROR)  # retries counted
    days = [FIRST + timedelta(days=n) for n in range(args.days)]
    base = EmulatorConfig(
        seed=11,
        start_day=FIRST - timedelta(days=1),
        end_day=days[-1] + timedelta(days=1),
        per_day=args.per_day,
        server_timezone="UTC",
        error_rate=0.1,
        drop_rate=0.05,
        rate_limit_per_s=30.0,
        retry_after_s=1,
    )
    print(
        f"{args.days} days x {args.per_day} instances, page size 50, 10% 5xx, 5% drops, "
        f"429 above 30 requests/s (Retry-After 1); tokens expire every {args.token_calls} calls"
    )
    print(
        f"{'run':<46} {'wall s':>7} {'ratio':>6} {'renew/day':>9} {'retry/day':>9} {'429/day':>8}"
    )
    for workers in args.workers:
        baseline = run(base, days, workers, args.backoff_s)
        rows = [("no expiry (baseline)", baseline)]
        for style in STYLES:
            for invalidates in (False, True):
                config = replace(
                    base,
                    token_lifetime_calls=args.token_calls,
                    auth_error_style=style,
                    refresh_invalidates=invalidates,
                )
                name = style + (" + refresh invalidates" if invalidates else "")
                rows.append((name, run(config, days, workers, args.backoff_s)))
        for name, figures in rows:
            print(
                f"{f'{workers} workers, {name}':<46} {figures['seconds']:>7.2f} "
                f"{figures['seconds'] / baseline['seconds']:>6.2f} {figures['renewals']:>9.1f} "
                f"{figures['retries']:>9.1f} {figures['throttled']:>8.1f}"
            )


if __name__ == "__main__":
    main()
