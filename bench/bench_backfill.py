"""A whole ``flowinst-etl backfill`` beside the fetch-and-parse floor and a naive script.

The emulator serves in a process of its own with a per-request latency, as a gateway would. Against
it, alternating, each client runs as its own process so that its CPU (user + system) and peak RSS
are its own:

  floor     fetch and parse only: 8 threads, one ``requests.Session`` each, every page of every
            (day, scheduling type) window fanned out once page 1 gave the count, orjson on page
            bodies and on every ``graph``; nothing is written. No client could do less.
  backfill  the real ``flowinst-etl backfill START END`` with default settings (Dagster start-up,
            extraction, flattening, writing and checks included).
  naive     the script a first user would write: one Session, sequential pages per window until a
            short page, ``r.json()``, ``pandas.json_normalize`` of the records and of the graphs'
            tasks, ``to_parquet`` per day.
  extract   the backfill's own extraction alone: ``Extractor.extract_many`` over the same days with
            default settings, records read back and dropped; no Dagster, nothing flattened or
            written. It tells the extraction's share of the backfill from the rest.

The emulator makes each day's instances on the first request for it, so one floor pass, not
measured, goes first: no client pays for what the gateway would have ready.

Then the backfill alone over a longer range (``--long-days``), whose peak RSS must stay that of the
shorter one, and the four clients for one big day. Every figure is a ratio to another measured in
the same run, so a shared or busy machine shifts all of them alike. The emulator serves at most
200,000 instances per server day (``EmulatorConfig.per_day``) and takes about a minute to
generate that many; a partition day (UTC) holds about ``--per-day`` instances.

    .venv/bin/python bench/bench_backfill.py [--days 30] [--per-day 3000] [--big-day 200000]
        [--rounds 2] [--latency-ms 20] [--skip-big] [--long-days 90]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import requests

# Only light modules at the top: the floor runs this file as its own process and its figures must
# be fetch-and-parse alone, so pandas and pyarrow are imported where the other clients need them.

SEARCH_PATH = "/batch-processing-service/v2.1/flowInstances"
TOKEN_PATH = "/apim-token-service/v2.0/token/get"
PAGE_SIZE = 50  # ENOS_PAGE_SIZE's default: every client asks for the same pages
FLOOR_THREADS = 8
SCHEDULING_TYPES = (0, 1, 2)
CLIENTS = ("floor", "backfill", "naive", "extract")
_DAY_MS = 86_400_000
_LISTENING = re.compile(r"listening on (\S+)")


@dataclass(frozen=True)
class Gateway:
    """Where the emulator listens and the credentials it accepts (the bench chooses them)."""

    url: str
    access_key: str = "bench-access-key"
    secret_key: str = "bench-secret-key"
    org_id: str = "o15000000000001"
    user_id: str = "u15000000000001"

    @classmethod
    def from_environment(cls) -> Gateway:
        """The gateway a client process was given in its ``ENOS_*`` variables."""
        env = os.environ
        return cls(
            env["ENOS_API_URL"],
            env["ENOS_ACCESS_KEY"],
            env["ENOS_SECRET_KEY"],
            env["ENOS_ORG_ID"],
            env["ENOS_USER_ID"],
        )

    def emulator_flags(self) -> list[str]:
        return [
            f"--access-key={self.access_key}",
            f"--secret-key={self.secret_key}",
            f"--org-id={self.org_id}",
            f"--user-id={self.user_id}",
        ]

    def environment(self) -> dict[str, str]:
        """The ``ENOS_*`` settings of every client; every other setting at its default."""
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("ENOS_", "FLOWINST_", "DAGSTER_"))
        }
        env.update(
            ENOS_API_URL=self.url,
            ENOS_ACCESS_KEY=self.access_key,
            ENOS_SECRET_KEY=self.secret_key,
            ENOS_ORG_ID=self.org_id,
            ENOS_USER_ID=self.user_id,
        )
        return env


# --- the two baselines, each run as `bench_backfill.py floor|naive FIRST DAYS OUT` --------------


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def access_token(session: requests.Session, gateway: Gateway) -> str:
    """A token from the token service: ``encryption = sha256(appKey + timestamp + appSecret)``."""
    stamp = int(time.time() * 1000)
    body: dict[str, str | int] = {
        "appKey": gateway.access_key,
        "encryption": sha256_hex(f"{gateway.access_key}{stamp}{gateway.secret_key}"),
        "timestamp": stamp,
    }
    answer = session.post(gateway.url + TOKEN_PATH, json=body, timeout=30).json()
    return str(answer["data"]["accessToken"])


def search(
    session: requests.Session, gateway: Gateway, token: str, window: tuple[int, int, int], page: int
) -> requests.Response:
    """One signed List Flow Instances page of ``window`` = (scheduling type, from ms, to ms).

    Signature (EnOS "Invoke API with access token"): sha256 of token, the query parameters sorted
    by name as ``namevalue``, the raw body, the timestamp and the secret.
    """
    kind, start_ms, end_ms = window
    body = orjson.dumps(
        {
            "type": kind,
            "expression": "",
            "owner": "",
            "fromTriggerTime": start_ms,
            "toTriggerTime": end_ms,
            "status": "",
            "pagination": {
                "pageNo": page,
                "pageSize": PAGE_SIZE,
                "sorters": [{"field": "trigger_time", "order": "ASC"}],
            },
        }
    )
    params = {"action": "search", "orgId": gateway.org_id, "userId": gateway.user_id}
    stamp = int(time.time() * 1000)
    signed = "".join(name + params[name] for name in sorted(params)) + body.decode()
    headers = {
        "Content-Type": "application/json;charset=utf-8",
        "apim-accesstoken": token,
        "apim-timestamp": str(stamp),
        "apim-signature": sha256_hex(f"{token}{signed}{stamp}{gateway.secret_key}"),
    }
    response = session.post(
        gateway.url + SEARCH_PATH, params=params, data=body, headers=headers, timeout=60
    )
    response.raise_for_status()
    return response


def day_windows(first: date, days: int, kinds: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(scheduling type, from ms, to ms) of each UTC day (the default partition timezone)."""
    start = int(datetime(first.year, first.month, first.day, tzinfo=timezone.utc).timestamp())
    return [
        (kind, start * 1000 + n * _DAY_MS, start * 1000 + (n + 1) * _DAY_MS)
        for n in range(days)
        for kind in kinds
    ]


def floor_client(gateway: Gateway, first: date, days: int) -> dict[str, int]:
    """Fetch and parse every page, 8 threads, nothing kept: the least any client must do."""
    token = access_token(requests.Session(), gateway)
    local = threading.local()

    def fetch(window: tuple[int, int, int], page: int) -> tuple[int, int]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        data = orjson.loads(search(local.session, gateway, token, window, page).content)["data"]
        for record in data["flowInsts"]:
            orjson.loads(record["graph"])
        return int(data["count"]), len(data["flowInsts"])

    instances = requests_sent = 0
    with ThreadPoolExecutor(FLOOR_THREADS) as pool:
        windows = day_windows(first, days, SCHEDULING_TYPES)
        firsts = [(window, pool.submit(fetch, window, 1)) for window in windows]
        rest: list[Future[tuple[int, int]]] = []
        for window, future in firsts:
            count, got = future.result()
            instances += got
            pages = math.ceil(count / PAGE_SIZE)
            rest += [pool.submit(fetch, window, page) for page in range(2, pages + 1)]
        for future in rest:
            instances += future.result()[1]
        requests_sent = len(firsts) + len(rest)
    return {"instances": instances, "requests": requests_sent}


def naive_client(gateway: Gateway, first: date, days: int, out: Path) -> dict[str, int]:
    """Sequential pages until a short one, ``r.json()``, ``json_normalize``, ``to_parquet``."""
    import pandas as pd

    session = requests.Session()
    token = access_token(session, gateway)
    instances = requests_sent = 0
    for n in range(days):
        records: list[dict[str, Any]] = []
        for window in day_windows(first + timedelta(days=n), 1, SCHEDULING_TYPES):
            page = 1
            while True:
                batch = search(session, gateway, token, window, page).json()["data"]["flowInsts"]
                requests_sent += 1
                records += batch
                if len(batch) < PAGE_SIZE:
                    break
                page += 1
        instances += len(records)
        graphs = [json.loads(record["graph"]) for record in records]
        tasks = pd.json_normalize(graphs, record_path="tasks", meta=["id", "name"])
        folder = out / f"trigger_date={first + timedelta(days=n)}"
        folder.mkdir(parents=True)
        pd.json_normalize(records).to_parquet(folder / "instances.parquet", index=False)
        tasks.to_parquet(folder / "tasks.parquet", index=False)
    return {"instances": instances, "requests": requests_sent}


def extract_client(first: date, days: int) -> dict[str, int]:
    """The backfill's extraction of the same UTC days, records read back and dropped."""
    from flowinst_etl.config import EnosSettings
    from flowinst_etl.extract import Extractor
    from flowinst_etl.gateway.client import EnosClient
    from flowinst_etl.load import CHUNK_INSTANCES
    from flowinst_etl.windows import day_window

    windows = [day_window(first + timedelta(days=n), timezone.utc) for n in range(days)]
    instances = 0
    with EnosClient(EnosSettings.from_env()) as client:
        extractor = Extractor(client)
        for _, outcome in extractor.extract_many(windows):
            if isinstance(outcome, Exception):
                raise outcome
            with outcome:
                instances += sum(len(chunk) for chunk in outcome.chunks(CHUNK_INSTANCES))
    return {"instances": instances}


def client_main(argv: list[str]) -> None:
    """Run one baseline in this process and print what it fetched as one JSON line."""
    kind, first, days, out = argv[0], date.fromisoformat(argv[1]), int(argv[2]), Path(argv[3])
    if kind == "floor":
        figures = floor_client(Gateway.from_environment(), first, days)
    elif kind == "naive":
        figures = naive_client(Gateway.from_environment(), first, days, out)
    else:
        figures = extract_client(first, days)
    print(json.dumps(figures))


# --- the measuring side -------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """One client process: wall and CPU seconds, peak RSS in MB, instances it reports."""

    wall_s: float
    cpu_s: float
    rss_mb: float
    instances: int


@contextmanager
def emulator(first: date, last: date, per_day: int, latency_ms: int) -> Iterator[Gateway]:
    """``flowinst-etl emulator`` in its own process, serving ``first``..``last`` server-local."""
    command = [
        *cli(),
        "emulator",
        f"--days={first}:{last}",
        f"--per-day={per_day}",
        f"--latency-ms={latency_ms}",
        "--seed=11",
        *Gateway("").emulator_flags(),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = _LISTENING.search(line)
        if found is None:
            raise SystemExit(f"the emulator did not start: {' '.join(command)}")
        yield Gateway(found.group(1))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def cli() -> list[str]:
    """The ``flowinst-etl`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("flowinst-etl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "flowinst_etl.cli"]


def measured(command: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Wall s, CPU s (user + sys) and peak RSS MB of one child process (``wait4``), and its stdout.

    Exits the bench if the child fails: a figure of a failed run means nothing.
    """
    with tempfile.TemporaryFile("w+") as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        errors = process.stderr.read().decode() if process.stderr else ""
        output.seek(0)
        text = output.read()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{errors}{text}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def run_client(client: str, gateway: Gateway, first: date, days: int) -> Measure:
    """Run one client over ``days`` UTC days from ``first``, into a fresh directory."""
    import pyarrow.parquet as pq

    last = first + timedelta(days=days - 1)
    env = gateway.environment()
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as folder:
        if client == "backfill":
            command = [*cli(), "backfill", str(first), str(last), "--data-dir", folder]
            wall, cpu, rss, _ = measured(command, env)
            table = pq.read_table(Path(folder) / "flow_instances", columns=["instance_id"])
            return Measure(wall, cpu, rss, table.num_rows)
        command = [sys.executable, __file__, client, str(first), str(days), folder]
        wall, cpu, rss, text = measured(command, env)
        return Measure(wall, cpu, rss, json.loads(text.splitlines()[-1])["instances"])


def compare(gateway: Gateway, first: date, days: int, rounds: int) -> dict[str, list[Measure]]:
    """Every client ``rounds`` times, alternating, against the same gateway (made ready by one
    floor pass first)."""
    run_client("floor", gateway, first, days)
    runs: dict[str, list[Measure]] = {client: [] for client in CLIENTS}
    for round_no in range(rounds):
        for client in CLIENTS:
            result = run_client(client, gateway, first, days)
            runs[client].append(result)
            print(
                f"  round {round_no + 1} {client:8s} {result.wall_s:7.2f} s wall "
                f"{result.cpu_s:7.2f} s CPU {result.rss_mb:7.0f} MB  {result.instances} instances",
                flush=True,
            )
    return runs


def medians(runs: list[Measure]) -> Measure:
    return Measure(
        statistics.median(r.wall_s for r in runs),
        statistics.median(r.cpu_s for r in runs),
        statistics.median(r.rss_mb for r in runs),
        runs[0].instances,
    )


def report(title: str, runs: dict[str, list[Measure]]) -> dict[str, Measure]:
    """Print the medians of each client and the ratios the goals are stated in."""
    median = {client: medians(runs[client]) for client in CLIENTS}
    print(f"{title}, medians of {len(runs['floor'])}:")
    print(f"  {'client':9s} {'wall s':>8s} {'CPU s':>8s} {'peak RSS MB':>12s} {'instances':>10s}")
    for client, m in median.items():
        print(f"  {client:9s} {m.wall_s:8.2f} {m.cpu_s:8.2f} {m.rss_mb:12.0f} {m.instances:10d}")
    floor, ours, naive = median["floor"], median["backfill"], median["naive"]
    extract = median["extract"]
    counts = {m.instances for m in median.values()}
    print(
        f"  extraction alone/floor wall {extract.wall_s / floor.wall_s:5.2f}x, "
        f"CPU {extract.cpu_s / floor.cpu_s:5.2f}x; the rest of the backfill (Dagster, "
        f"flattening, writing, checks) {ours.cpu_s - extract.cpu_s:.2f} s CPU"
    )
    print(
        f"  backfill/floor wall {ours.wall_s / floor.wall_s:5.2f}x (goal <= 1.5x)   "
        f"naive/backfill wall {naive.wall_s / ours.wall_s:5.2f}x (goal >= 5x)   "
        f"backfill/floor CPU {ours.cpu_s / floor.cpu_s:5.2f}x (goal <= 2x)   "
        f"backfill peak RSS {ours.rss_mb:.0f} MB   "
        f"same instance counts: {'yes' if len(counts) == 1 else f'NO {sorted(counts)}'}"
    )
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="days of the range (30)")
    parser.add_argument("--per-day", type=int, default=3000, help="instances per day (3000)")
    parser.add_argument("--big-day", type=int, default=200_000, help="instances of the big day")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each client (2)")
    parser.add_argument("--latency-ms", type=int, default=20, help="gateway latency (20)")
    parser.add_argument("--skip-big", action="store_true", help="leave out the big day")
    parser.add_argument(
        "--long-days", type=int, default=90, help="days of the longer range for RSS (90; 0: skip)"
    )
    args = parser.parse_args()
    # Complete UTC days well in the past; the emulator's server-local days (GMT+8) cover them.
    last = datetime.now(timezone.utc).date() - timedelta(days=2)
    first = last - timedelta(days=args.days - 1)
    long_first = last - timedelta(days=max(args.days, args.long_days) - 1)
    load = os.getloadavg()
    print(
        f"{args.days} days x {args.per_day} instances/day, "
        f"big day {'skipped' if args.skip_big else args.big_day}, "
        f"{args.latency_ms} ms latency, pageSize {PAGE_SIZE}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}",
        flush=True,
    )
    with emulator(long_first, last + timedelta(days=1), args.per_day, args.latency_ms) as gateway:
        runs = compare(gateway, first, args.days, args.rounds)
        small = report(f"{args.days} days", runs)["backfill"]
        if args.long_days:
            long = run_client("backfill", gateway, long_first, args.long_days)
            print(
                f"  backfill over {args.long_days} days: {long.wall_s:.2f} s wall, "
                f"{long.cpu_s:.2f} s CPU, peak RSS {long.rss_mb:.0f} MB = "
                f"{long.rss_mb / small.rss_mb:.2f}x the {args.days}-day peak (goal <= 1.1x)",
                flush=True,
            )
    if args.skip_big:
        return
    with emulator(last, last + timedelta(days=1), args.big_day, args.latency_ms) as gateway:
        runs = compare(gateway, last, 1, args.rounds)
    big = report("big day", runs)["backfill"]
    per_small = (small.wall_s / small.instances, small.cpu_s / small.instances)
    per_big = (big.wall_s / big.instances, big.cpu_s / big.instances)
    print(
        f"  backfill cost per instance, big day vs {args.days}-day range: "
        f"wall {per_big[0] * 1e6:.0f} vs {per_small[0] * 1e6:.0f} us "
        f"({per_big[0] / per_small[0]:.2f}x), CPU {per_big[1] * 1e6:.0f} vs "
        f"{per_small[1] * 1e6:.0f} us ({per_big[1] / per_small[1]:.2f}x) (goal <= 1.3x)   "
        f"peak RSS {big.rss_mb:.0f} MB (goal <= 1024 MB)   "
        f"load average now {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in CLIENTS and sys.argv[1] != "backfill":
        client_main(sys.argv[1:])
    else:
        main()
