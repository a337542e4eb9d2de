"""CPU per record of the client's per-request, per-row and flattening paths, beside floors.

The emulator serves in a process of its own (no latency); this process fetches every page of a few
server days through the real ``EnosClient`` and measures, in CPU seconds of this process
(``time.process_time``: all its threads, not the wall clock of a shared machine), per 1,000
records:

  fetch      ``EnosClient.search`` of every page (request building, signing, transport, parsing),
             beside the fetch floor: the same pages signed by hand and sent on a bare
             ``requests.Session``, bodies read with ``orjson`` (``bench_backfill.search``).
  row checks what extraction checks for every row's time strings: ``names_one_instant`` of the
             four time fields and ``server_time_to_epoch_ms`` of ``triggerTime``, beside the
             floor of reading the same strings with ``datetime.fromisoformat``.
  flatten    ``flatten_instances`` of each day's records (all four tables, as Arrow-backed
             frames) and ``FlowTables.to_arrow``, beside the floor of ``orjson.loads`` of every
             graph.

Rounds alternate between ours and the floor; medians are printed with their ratios. Run one tree
against another with ``PYTHONPATH=<other tree>`` to compare versions on the same records.

    .venv/bin/python bench/bench_cpu_paths.py [--days 3] [--per-day 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

import orjson
import requests
from bench_backfill import PAGE_SIZE, SCHEDULING_TYPES, access_token, emulator, search

from flowinst_etl.config import EnosSettings
from flowinst_etl.gateway.client import EnosClient, SearchQuery
from flowinst_etl.model import FoundInstance
from flowinst_etl.tables.flatten import flatten_instances
from flowinst_etl.windows import day_window, names_one_instant, server_time_to_epoch_ms

_TIMES = ("triggerTime", "startTime", "endTime", "timestamp")
Pages = list[tuple[tuple[int, int, int], int]]


def cpu(step: Callable[[], object]) -> float:
    """CPU seconds of this process (every thread) spent in ``step``."""
    started = time.process_time()
    step()
    return time.process_time() - started


def pages_of(client: EnosClient, windows: list[tuple[int, int, int]]) -> tuple[Pages, list[Any]]:
    """Every (window, page number) of the windows, and each window's records, fetched once."""
    pages: Pages = []
    found: list[Any] = []
    for window in windows:
        kind, start, end = window
        page_no = 1
        while True:
            query = SearchQuery(kind, start, end, page_no, PAGE_SIZE, "trigger_time")
            records = client.search(query).records
            pages.append((window, page_no))
            found += [FoundInstance(kind, record) for record in records]
            if len(records) < PAGE_SIZE:
                break
            page_no += 1
    return pages, found


def fetch_ours(client: EnosClient, pages: Pages) -> None:
    for (kind, start, end), page_no in pages:
        client.search(SearchQuery(kind, start, end, page_no, PAGE_SIZE, "trigger_time"))


def fetch_floor(session: requests.Session, gateway: Any, token: str, pages: Pages) -> None:
    for window, page_no in pages:
        orjson.loads(search(session, gateway, token, window, page_no).content)


def checks_ours(records: list[dict[str, Any]], server_tz: Any) -> None:
    for record in records:
        for key in _TIMES:
            text = record.get(key)
            if isinstance(text, str) and text:
                names_one_instant(text, server_tz)
        server_time_to_epoch_ms(record["triggerTime"], server_tz)


def checks_floor(records: list[dict[str, Any]], server_tz: Any) -> None:
    for record in records:
        for key in _TIMES:
            text = record.get(key)
            if isinstance(text, str) and text:
                datetime.fromisoformat(text)
        datetime.fromisoformat(record["triggerTime"]).replace(tzinfo=server_tz).timestamp()


def flatten_ours(days: list[list[FoundInstance]], server_tz: Any) -> None:
    for found in days:
        flatten_instances(found, server_tz, datetime.now(timezone.utc)).to_arrow()


def flatten_floor(days: list[list[FoundInstance]]) -> None:
    for found in days:
        for item in found:
            orjson.loads(item.record["graph"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--per-day", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    first = date(2026, 1, 1)
    last = first + timedelta(days=args.days - 1)
    with emulator(first, last, args.per_day, 0) as gateway:
        settings = EnosSettings(
            api_url=gateway.url,
            access_key=gateway.access_key,
            secret_key=gateway.secret_key,
            org_id=gateway.org_id,
            user_id=gateway.user_id,
            page_size=PAGE_SIZE,
        )
        with EnosClient(settings) as client:
            server_tz = client.server_timezone()
            days: list[list[FoundInstance]] = []
            pages: Pages = []
            for number in range(args.days):
                window = day_window(first + timedelta(days=number), server_tz)
                day_pages, found = pages_of(
                    client, [(kind, window.start_ms, window.end_ms) for kind in SCHEDULING_TYPES]
                )
                pages += day_pages
                days.append(found)
            records = [dict(item.record) for found in days for item in found]
            session = requests.Session()
            token = access_token(session, gateway)
            runs: dict[str, list[float]] = {name: [] for name in ("fetch", "checks", "flatten")}
            floors: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(args.rounds):
                runs["fetch"].append(cpu(lambda: fetch_ours(client, pages)))
                floors["fetch"].append(cpu(lambda: fetch_floor(session, gateway, token, pages)))
                runs["checks"].append(cpu(lambda: checks_ours(records, server_tz)))
                floors["checks"].append(cpu(lambda: checks_floor(records, server_tz)))
                runs["flatten"].append(cpu(lambda: flatten_ours(days, server_tz)))
                floors["flatten"].append(cpu(lambda: flatten_floor(days)))
    count = len(records)
    print(
        f"{args.days} days x {args.per_day} instances ({count} records, {len(pages)} pages of "
        f"{PAGE_SIZE}), server zone {server_tz}; CPU s per 1000 records, medians of "
        f"{args.rounds} rounds"
    )
    print(f"{'path':<12} {'ours':>8} {'floor':>8} {'ours/floor':>11}")
    for name, times in runs.items():
        ours = statistics.median(times) / count * 1000
        floor = statistics.median(floors[name]) / count * 1000
        # each round's ratio is of two runs back to back, so a load that comes and goes on a
        # shared machine moves it less than the medians
        ratio = statistics.median(a / b for a, b in zip(times, floors[name], strict=True))
        print(f"{name:<12} {ours:8.4f} {floor:8.4f} {ratio:10.2f}x")


if __name__ == "__main__":
    main()
