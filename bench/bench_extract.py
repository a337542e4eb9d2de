"""Extraction speed and request economy against the emulator, beside a baseline of the same run.

Baseline: sequential offset paging with pageSize 50 sorted by update_time, as the documented sample
does (pages 1, 2, ... until a short page, for each scheduling type of each day). It is neither exact
nor fast; it is what a first client would do.

Request economy: the fewest requests that could return a day's instances are, per (day, scheduling
type), ceil(instances / pageSize) (at least one); the proof of completeness may cost at most 1.15
times that plus a small constant per (day, scheduling type) on a well-behaved gateway. Both figures
are printed from the same run.

With ``--compare REV`` the extractor of git revision REV (its ``flowinst_etl`` exported to a
temporary folder) is measured in the same run, against the same emulator, in a process of its
own, as is today's: requests per minimum and seconds side by side.

The emulator runs in a process of its own, as a gateway would.

    .venv/bin/python bench/bench_extract.py [--days 14] [--per-day 2000] [--latency-ms 20]
        [--workers 4 8 16] [--count-mode total|page] [--tie-order stable|by_page]
        [--compare REV]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from multiprocessing.connection import Connection

from flowinst_etl.config import EnosSettings
from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.extract import Extractor, minimum_requests
from flowinst_etl.gateway.client import EnosClient, SearchQuery
from flowinst_etl.model import SCHEDULING_TYPES
from flowinst_etl.windows import Window, day_window, parse_server_timezone

PAGE_SIZE = 50


def settings(base_url: str, config: EmulatorConfig) -> EnosSettings:
    credentials = config.credentials
    return EnosSettings(
        api_url=base_url,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        org_id=credentials.org_id,
        user_id=credentials.user_id,
        page_size=PAGE_SIZE,
    )


def baseline(
    base_url: str, config: EmulatorConfig, windows: list[Window]
) -> tuple[float, int, int]:
    """Seconds, requests and rows of sequential offset paging."""
    requests = rows = 0
    started = time.perf_counter()
    with EnosClient(settings(base_url, config)) as client:
        for window in windows:
            for scheduling_type in SCHEDULING_TYPES:
                page_no = 1
                while True:
                    query = SearchQuery(
                        scheduling_type,
                        window.start_ms,
                        window.end_ms,
                        page_no,
                        PAGE_SIZE,
                        "update_time",
                    )
                    page = client.search(query)
                    requests += 1
                    rows += len(page.records)
                    if len(page.records) < PAGE_SIZE:
                        break
                    page_no += 1
    return time.perf_counter() - started, requests, rows


def ours(
    base_url: str, config: EmulatorConfig, windows: list[Window], workers: int
) -> tuple[float, int, int]:
    """Seconds, requests and instances of the exact extractor."""
    requests = instances = 0
    started = time.perf_counter()
    with EnosClient(settings(base_url, config)) as client:
        for _, outcome in Extractor(client, max_workers=workers).extract_many(windows):
            if isinstance(outcome, Exception):
                raise outcome
            requests += outcome.reconciliation.requests
            instances += outcome.reconciliation.instances
    return time.perf_counter() - started, requests, instances


def ours_in(
    tree: str, base_url: str, args: argparse.Namespace, workers: int
) -> tuple[float, int, int]:
    """``ours`` run by the ``flowinst_etl`` found in ``tree``, in a process of its own."""
    command = [
        sys.executable,
        __file__,
        "--child",
        base_url,
        "--days",
        str(args.days),
        "--per-day",
        str(args.per_day),
        "--workers",
        str(workers),
    ]
    env = {**os.environ, "PYTHONPATH": tree}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    seconds, requests, instances = json.loads(done.stdout.splitlines()[-1])
    return seconds, requests, instances


def exported(revision: str, folder: str) -> str:
    """``flowinst_etl`` of git ``revision``, exported under ``folder``."""
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    archive = subprocess.run(
        ["git", "-C", repository, "archive", revision, "flowinst_etl"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


def serve(config: EmulatorConfig, windows: list[Window], conn: Connection) -> None:
    """Run the emulator in its own process (as a gateway would be), reporting its URL and the
    ground truth: instances of each (window, scheduling type)."""
    with Emulator(config) as emulator:
        per_part = [
            len(emulator.truth(w.start_ms, w.end_ms, kind))
            for w in windows
            for kind in SCHEDULING_TYPES
        ]
        conn.send((emulator.base_url, per_part))
        conn.recv()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--per-day", type=int, default=2000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument(
        "--count-mode", choices=("total", "page"), default="total", help="what count means"
    )
    parser.add_argument("--tie-order", choices=("stable", "by_page"), default="stable")
    parser.add_argument("--compare", metavar="REV", help="also measure the extractor of REV")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    first = date(2026, 11, 1)
    last = first + timedelta(days=args.days - 1)
    config = EmulatorConfig(
        seed=3,
        start_day=first - timedelta(days=1),
        end_day=last + timedelta(days=1),
        per_day=args.per_day,
        latency_ms=args.latency_ms,
        count_mode=args.count_mode,
        tie_order=args.tie_order,
    )
    server_tz = parse_server_timezone(config.server_timezone)
    windows = [day_window(first + timedelta(days=n), server_tz) for n in range(args.days)]
    if args.child:
        print(json.dumps(ours(args.child, config, windows, args.workers[0])))
        return
    ours_end, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(config, windows, theirs))
    server.start()
    try:
        base_url, per_part = ours_end.recv()
        base_s, base_requests, base_rows = baseline(base_url, config, windows)
        runs = {n: ours(base_url, config, windows, n) for n in args.workers}
        compared = {}
        if args.compare:
            with tempfile.TemporaryDirectory() as folder:
                tree = exported(args.compare, folder)
                compared = {n: ours_in(tree, base_url, args, n) for n in args.workers}
    finally:
        ours_end.send("stop")
        server.join()
    truth = sum(per_part)
    print(
        f"{args.days} days x {args.per_day} instances/day, {args.latency_ms} ms latency, "
        f"pageSize {PAGE_SIZE}, count {args.count_mode}, ties {args.tie_order}; "
        f"ground truth {truth} instances"
    )
    print(
        f"baseline (sequential offset paging):  {base_s:6.2f} s  {base_requests:4d} requests  "
        f"{base_rows} rows"
    )
    least = sum(minimum_requests(n, PAGE_SIZE) for n in per_part)
    parts = len(per_part)
    print(f"minimum requests (ceil(instances / pageSize) per day and type): {least}")
    for workers, (our_s, our_requests, our_instances) in runs.items():
        extra = (our_requests - 1.15 * least) / parts
        print(
            f"extractor, {workers:2d} workers:             {our_s:6.2f} s  "
            f"{our_requests:4d} requests  "
            f"exact: {our_instances == truth}  speed-up {base_s / our_s:5.2f}x (target >= 5x)  "
            f"requests/minimum {our_requests / least:4.2f}x; beyond 1.15x minimum: "
            f"{extra:+.2f} per (day, type) (target: a small constant)"
        )
    for workers, (then_s, then_requests, then_instances) in compared.items():
        now_s, now_requests, _ = runs[workers]
        print(
            f"{args.compare[:10]}, {workers:2d} workers: {then_s:6.2f} s  {then_requests:4d} "
            f"requests  exact: {then_instances == truth}  requests/minimum "
            f"{then_requests / least:4.2f}x; today/{args.compare[:10]}: requests "
            f"{now_requests / then_requests:4.2f}x, seconds {now_s / then_s:4.2f}x"
        )


if __name__ == "__main__":
    main()
