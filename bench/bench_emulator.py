"""Requests per second the EnOS emulator serves, so it is never the bottleneck of other benchmarks.

Measures signed List Flow Instances pages (pageSize 50, one server-local day per window) and, as a
baseline from the same run, GET getCurrentTime (the cheapest endpoint), each with 1 and 4 client
threads on keep-alive sessions. Clients and server share this process (and its GIL), as in tests.

    .venv/bin/python bench/bench_emulator.py [--days 14] [--per-day 2000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta

import requests

from flowinst_etl.emulator import DEMO_CREDENTIALS, Emulator, EmulatorConfig
from flowinst_etl.gateway.signing import request_signature, token_encryption
from flowinst_etl.windows import day_window, parse_server_timezone

PAGE_SIZE = 50
TIME_PATH = "/batch-processing-service/v2.1/time"
SEARCH_PATH = "/batch-processing-service/v2.1/flowInstances"
SEARCH_QUERY = {
    "action": "search",
    "userId": DEMO_CREDENTIALS.user_id,
    "orgId": DEMO_CREDENTIALS.org_id,
}

Request = Callable[[requests.Session], requests.Response]


def access_token(base_url: str) -> str:
    """A token from the emulator's token service."""
    now = int(time.time() * 1000)
    creds = DEMO_CREDENTIALS
    body = {
        "appKey": creds.access_key,
        "encryption": token_encryption(creds.access_key, now, creds.secret_key),
        "timestamp": now,
    }
    return requests.post(
        base_url + "/apim-token-service/v2.0/token/get", json=body, timeout=10
    ).json()["data"]["accessToken"]


def signed(
    session: requests.Session, base_url: str, token: str, method: str, path: str,
    params: dict[str, str], body: str,
) -> requests.Response:  # fmt: skip
    """One API call signed as EnOS documents."""
    stamp = int(time.time() * 1000)
    signature = request_signature(token, params.items(), body, stamp, DEMO_CREDENTIALS.secret_key)
    headers = {
        "apim-accesstoken": token,
        "apim-timestamp": str(stamp),
        "apim-signature": signature,
        "Content-Type": "application/json",
    }
    return session.request(
        method, base_url + path, params=params, data=body.encode(), headers=headers, timeout=10
    )


def search_bodies(config: EmulatorConfig, pages_per_day: int) -> list[str]:
    """Every page of every day's type-1 search, as signed-ready JSON texts."""
    tz = parse_server_timezone(config.server_timezone)
    first, last = config.days()
    bodies = []
    for offset in range((last - first).days + 1):
        window = day_window(first + timedelta(days=offset), tz)
        for page in range(1, pages_per_day + 1):
            body = {
                "type": 1, "expression": "", "owner": "", "status": "",
                "fromTriggerTime": window.start_ms, "toTriggerTime": window.end_ms,
                "pagination": {
                    "pageNo": page, "pageSize": PAGE_SIZE,
                    "sorters": [{"field": "trigger_time", "order": "ASC"}],
                },
            }  # fmt: skip
            bodies.append(json.dumps(body, separators=(",", ":")))
    return bodies


def measure(threads: int, seconds: float, request_for: Callable[[int], Request]) -> float:
    """Requests per second that ``threads`` clients complete in ``seconds``.

    Raises:
        RuntimeError: a request was not answered with HTTP 200 and code 0.
    """
    done = [0] * threads
    failures: list[str] = []
    deadline = time.perf_counter() + seconds

    def client(index: int) -> None:
        request = request_for(index)
        with requests.Session() as session:
            while time.perf_counter() < deadline:
                response = request(session)
                if response.status_code != 200 or not response.content.startswith(b'{"code":0,'):
                    failures.append(response.text[:200])
                    return
                done[index] += 1

    began = time.perf_counter()
    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise RuntimeError(f"the emulator answered an error: {failures[0]}")
    return sum(done) / (time.perf_counter() - began)


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--per-day", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    config = EmulatorConfig(
        start_day=date(2026, 3, 1),
        end_day=date(2026, 3, 1) + timedelta(days=args.days - 1),
        per_day=args.per_day,
    )
    began = time.perf_counter()
    emulator = Emulator(config)
    built = time.perf_counter() - began
    with emulator:
        base_url = emulator.base_url
        token = access_token(base_url)
        per_day = len(emulator.truth(*_first_day(config), scheduling_type=1))
        bodies = search_bodies(config, -(-per_day // PAGE_SIZE))

        def time_request(_: int) -> Request:
            params = {"action": "getCurrentTime"}
            return lambda session: signed(session, base_url, token, "GET", TIME_PATH, params, "")

        def search_request(index: int) -> Request:
            cycle = itertools.cycle(bodies[index * 97 % len(bodies) :] + bodies)

            def request(session: requests.Session) -> requests.Response:
                body = next(cycle)
                return signed(session, base_url, token, "POST", SEARCH_PATH, SEARCH_QUERY, body)

            return request

        measure(4, max(1.0, args.seconds / 2), search_request)  # fill the record caches
        total = len(emulator.truth())
        print(
            f"EnOS emulator: {args.days} days x {args.per_day} instances/day ({total} instances, "
            f"built in {built:.2f} s), search pageSize {PAGE_SIZE}"
        )
        print(f"{'threads':>7}  {'getCurrentTime/s':>16}  {'search/s':>9}  {'search/baseline':>15}")
        for threads in (1, 4):
            baseline = measure(threads, args.seconds, time_request)
            search = measure(threads, args.seconds, search_request)
            print(f"{threads:>7}  {baseline:>16.0f}  {search:>9.0f}  {search / baseline:>15.2f}")
        stats = emulator.stats()
        print(f"served {stats['requests']} requests, {stats['searches']} searches")


def _first_day(config: EmulatorConfig) -> tuple[int, int]:
    window = day_window(config.days()[0], parse_server_timezone(config.server_timezone))
    return window.start_ms, window.end_ms


if __name__ == "__main__":
    main()
