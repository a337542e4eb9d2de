"""A whole ``flowinst-etl backfill`` beside the fetch-and-parse floor, at several gateway
latencies and record sizes.

The emulator serves in a process of its own with a per-request latency, as a gateway would, and
logs every search it serves (``--request-log``). Against it, alternating, each client runs as its
own process so that its CPU (user + system) and peak RSS are its own (``wait4``):

  floor     fetch and parse only: FLOWINST_MAX_WORKERS threads (8), one ``requests.Session``
            each, every page of every (day, scheduling type) window fanned out once page 1 gave
            the count, orjson on page bodies and on every ``graph``; nothing is written. No
            client could do less.
  backfill  the real ``flowinst-etl backfill START END`` with default settings (Dagster start-up,
            extraction, flattening, writing and checks included).
  naive     the script a first user would write: one Session, sequential pages per window until a
            short page, ``r.json()``, ``pandas.json_normalize`` of the records and of the graphs'
            tasks, ``to_parquet`` per day. Only with ``--clients``: minutes at 100 ms.
  extract   the backfill's own extraction alone: ``Extractor.extract_many`` over the same days with
            default settings, records read back and dropped; no Dagster, nothing flattened or
            written. It tells the extraction's share of the backfill from the rest.

The emulator makes each day's instances on the first request for it, so one floor pass, not
measured, goes first: no client pays for what the gateway would have ready.

For every (record weight, latency) pair (``--record-weight``: the emulator's records about N
times as heavy; ``--latency-ms``) the clients of ``--clients`` run ``--rounds`` times over
``--days`` days and the medians are reported. From the gateway's request log, per client: the
search requests it sent, the mean requests in flight from its first request to its last answer
and the share of that time with FLOWINST_MAX_WORKERS or more in flight, and where its wall time
went: start-up (process start to the first search received), serving (first search received to
last answered) and finish (last answer to process exit: the last commit). The floor's page bytes
per instance give each weight's record size.

At each weight and the lowest latency (where a client is busiest and holds most), the backfill
runs alone over a longer range (``--long-days``), whose peak RSS must stay that of the shorter
one, and the clients for one big day. Every figure is a ratio to another measured in the same
run, so a shared or busy machine shifts all of them alike. The emulator serves at most 200,000
instances per server day (``EmulatorConfig.per_day``) and takes about a minute to generate that
many; a partition day (UTC) holds about ``--per-day`` instances.

    .venv/bin/python bench/bench_backfill.py [--days 30] [--per-day 3000] [--big-day 200000]
        [--rounds 2] [--latency-ms 20 100] [--record-weight 1 2] [--skip-big] [--long-days 90]
        [--clients floor backfill extract [naive]]

A smoke run of about a minute:

    .venv/bin/python bench/bench_backfill.py --days 3 --per-day 500 --latency-ms 20
        --record-weight 1 --rounds 1 --skip-big --long-days 0
"""

from __future__ import annotations

import argparse
import functools
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
# be fetch-and-parse alone, so pandas and pyarrow are imported where the other clients need them;
# and the measuring process stays light too, as every child's peak RSS starts at its size.

SEARCH_PATH = "/batch-processing-service/v2.1/flowInstances"
TOKEN_PATH = "/apim-token-service/v2.0/token/get"
PAGE_SIZE = 50  # ENOS_PAGE_SIZE's default: every client asks for the same pages
SCHEDULING_TYPES = (0, 1, 2)
CLIENTS = ("floor", "backfill", "naive", "extract")
DEFAULT_CLIENTS = ("floor", "backfill", "extract")
#: backfill/floor wall goals by gateway latency (ms); other latencies are reported without one.
WALL_GOALS = {20: 2.0, 100: 1.15}
RANGE_RSS_GOAL_MB = 400
BIG_DAY_RSS_GOAL_MB = 1024
LONG_RANGE_RSS_GOAL = 1.1  # long range peak / short range peak: flat in days
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


def floor_client(gateway: Gateway, first: date, days: int, threads: int) -> dict[str, int]:
    """Fetch and parse every page on ``threads`` threads, nothing kept: the least any client
    must do. Also counts the page body bytes, which give the served record size."""
    token = access_token(requests.Session(), gateway)
    local = threading.local()

    def fetch(window: tuple[int, int, int], page: int) -> tuple[int, int, int]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        body = search(local.session, gateway, token, window, page).content
        data = orjson.loads(body)["data"]
        for record in data["flowInsts"]:
            orjson.loads(record["graph"])
        return int(data["count"]), len(data["flowInsts"]), len(body)

    instances = requests_sent = received = 0
    with ThreadPoolExecutor(threads) as pool:
        windows = day_windows(first, days, SCHEDULING_TYPES)
        firsts = [(window, pool.submit(fetch, window, 1)) for window in windows]
        rest: list[Future[tuple[int, int, int]]] = []
        for window, future in firsts:
            count, got, size = future.result()
            instances += got
            received += size
            pages = math.ceil(count / PAGE_SIZE)
            rest += [pool.submit(fetch, window, page) for page in range(2, pages + 1)]
        for future in rest:
            _, got, size = future.result()
            instances += got
            received += size
        requests_sent = len(firsts) + len(rest)
    return {"instances": instances, "requests": requests_sent, "bytes": received}


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
    """Run one baseline in this process and print what it fetched as one JSON line;
    ``argv`` = kind, first day, days, output folder, threads (of the floor)."""
    kind, first, days, out = argv[0], date.fromisoformat(argv[1]), int(argv[2]), Path(argv[3])
    if kind == "floor":
        figures = floor_client(Gateway.from_environment(), first, days, int(argv[4]))
    elif kind == "naive":
        figures = naive_client(Gateway.from_environment(), first, days, out)
    else:
        figures = extract_client(first, days)
    print(json.dumps(figures))


# --- the measuring side -------------------------------------------------------------------------


@dataclass(frozen=True)
class Traffic:
    """What the gateway saw of one client process, from its request log (seconds).

    Attributes:
        requests: search requests the client sent.
        mean_in_flight: mean requests in flight from the first received to the last answered.
        share_full: share of that time with ``workers`` or more requests in flight.
        startup_s: process start to the first search received by the gateway.
        serving_s: first search received to last answered.
        finish_s: last answer to process exit (the last commit).
    """

    requests: int
    mean_in_flight: float
    share_full: float
    startup_s: float
    serving_s: float
    finish_s: float


def traffic(lines: list[dict[str, Any]], started: float, exited: float, workers: int) -> Traffic:
    """The ``Traffic`` of a client from the request-log lines it caused and its process's start
    and exit (wall-clock epoch seconds, the clock the emulator logs in)."""
    if not lines:
        return Traffic(0, 0.0, 0.0, exited - started, 0.0, 0.0)
    first = min(line["received"] for line in lines)
    last = max(line["answered"] for line in lines)
    span = max(last - first, 1e-9)
    # Ends sort before starts at the same instant: a request answered as another is received
    # does not count them both in flight.
    events = sorted(
        [(line["received"], 1) for line in lines] + [(line["answered"], -1) for line in lines]
    )
    in_flight, since, full = 0, first, 0.0
    for moment, step in events:
        if in_flight >= workers:
            full += moment - since
        in_flight, since = in_flight + step, moment
    busy = sum(line["answered"] - line["received"] for line in lines)
    return Traffic(
        len(lines), busy / span, full / span, first - started, last - first, exited - last
    )


class RequestLog:
    """The emulator's request log, read one client's lines at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def end(self) -> int:
        """The log's size now: where the next client's lines begin."""
        return self.path.stat().st_size if self.path.exists() else 0

    def since(self, offset: int) -> list[dict[str, Any]]:
        """The lines written from ``offset`` on, once the log has stopped growing (a line is
        written just after its answer, so it may land a moment after the client exits)."""
        size = -1
        while size != self.end():
            size = self.end()
            time.sleep(0.05)
        with self.path.open("rb") as log:
            log.seek(offset)
            return [json.loads(line) for line in log.read().splitlines()]


@dataclass(frozen=True)
class Measure:
    """One client process: wall and CPU seconds, peak RSS in MB, instances it reports, page body
    bytes it received (the floor's; 0 for the others) and what the gateway saw of it."""

    wall_s: float
    cpu_s: float
    rss_mb: float
    instances: int
    body_bytes: int
    traffic: Traffic


@dataclass(frozen=True)
class Served:
    """A running emulator: its gateway, its request log, its record weight and latency."""

    gateway: Gateway
    log: RequestLog
    weight: int
    latency_ms: int


@contextmanager
def emulator(
    first: date, last: date, per_day: int, latency_ms: int, weight: int
) -> Iterator[Served]:
    """``flowinst-etl emulator`` in its own process, serving ``first``..``last`` server-local,
    logging every search into a temporary file."""
    with tempfile.TemporaryDirectory(prefix="bench-backfill-log-") as folder:
        log = Path(folder) / "requests.jsonl"
        command = [
            *cli(),
            "emulator",
            f"--days={first}:{last}",
            f"--per-day={per_day}",
            f"--latency-ms={latency_ms}",
            f"--record-weight={weight}",
            f"--request-log={log}",
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
            yield Served(Gateway(found.group(1)), RequestLog(log), weight, latency_ms)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def cli() -> list[str]:
    """The ``flowinst-etl`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("flowinst-etl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "flowinst_etl.cli"]


@dataclass(frozen=True)
class Process:
    """One finished child: wall s, CPU s (user + sys), peak RSS MB, its stdout, and when it
    started and exited (wall-clock epoch seconds)."""

    wall_s: float
    cpu_s: float
    rss_mb: float
    stdout: str
    started: float
    exited: float


def measured(command: list[str], env: dict[str, str]) -> Process:
    """Run one child process to its end and measure it (``wait4``).

    Exits the bench if the child fails: a figure of a failed run means nothing.
    """
    with tempfile.TemporaryFile("w+") as output:
        started_at, started = time.time(), time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall, exited_at = time.perf_counter() - started, time.time()
        process.returncode = os.waitstatus_to_exitcode(status)
        errors = process.stderr.read().decode() if process.stderr else ""
        output.seek(0)
        text = output.read()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{errors}{text}")
    cpu = usage.ru_utime + usage.ru_stime
    return Process(wall, cpu, usage.ru_maxrss / 1024, text, started_at, exited_at)


def in_child(code: str) -> str:
    """What Python ``code`` prints, run in a child process.

    The measuring process imports neither pyarrow nor the product: a child's peak RSS as
    ``wait4`` reports it is at least the size of the process that forked it.
    """
    command = [sys.executable, "-c", code]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


@functools.cache
def max_workers() -> int:
    """FLOWINST_MAX_WORKERS's default: what the backfill keeps in flight, and so the floor."""
    code = "from flowinst_etl.config import PipelineSettings; print(PipelineSettings().max_workers)"
    return int(in_child(code))


def run_client(client: str, served: Served, first: date, days: int) -> Measure:
    """Run one client over ``days`` UTC days from ``first``, into a fresh directory."""
    last = first + timedelta(days=days - 1)
    env = served.gateway.environment()
    offset = served.log.end()
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as folder:
        if client == "backfill":
            command = [*cli(), "backfill", str(first), str(last), "--data-dir", folder]
            run = measured(command, env)
            table = str(Path(folder) / "flow_instances")
            rows = in_child(
                "import pyarrow.parquet as pq; "
                f"print(pq.read_table({table!r}, columns=['instance_id']).num_rows)"
            )
            figures = {"instances": int(rows)}
        else:
            command = [sys.executable, __file__, client, str(first), str(days), folder]
            run = measured([*command, str(max_workers())], env)
            figures = json.loads(run.stdout.splitlines()[-1])
    seen = traffic(served.log.since(offset), run.started, run.exited, max_workers())
    return Measure(
        run.wall_s,
        run.cpu_s,
        run.rss_mb,
        figures["instances"],
        figures.get("bytes", 0),
        seen,
    )


def compare(
    served: Served, first: date, days: int, rounds: int, clients: tuple[str, ...]
) -> dict[str, list[Measure]]:
    """Every client ``rounds`` times, alternating, against the same gateway (made ready by one
    floor pass first)."""
    run_client("floor", served, first, days)
    runs: dict[str, list[Measure]] = {client: [] for client in clients}
    for round_no in range(rounds):
        for client in clients:
            result = run_client(client, served, first, days)
            runs[client].append(result)
            print(
                f"  round {round_no + 1} {client:8s} {result.wall_s:7.2f} s wall "
                f"{result.cpu_s:7.2f} s CPU {result.rss_mb:7.0f} MB  {result.instances} instances",
                flush=True,
            )
    return runs


def medians(runs: list[Measure]) -> Measure:
    """The median of each figure over a client's rounds."""

    def median(figure: Any) -> Any:
        return statistics.median(figure(r) for r in runs)

    return Measure(
        median(lambda r: r.wall_s),
        median(lambda r: r.cpu_s),
        median(lambda r: r.rss_mb),
        runs[0].instances,
        median(lambda r: r.body_bytes),
        Traffic(
            median(lambda r: r.traffic.requests),
            median(lambda r: r.traffic.mean_in_flight),
            median(lambda r: r.traffic.share_full),
            median(lambda r: r.traffic.startup_s),
            median(lambda r: r.traffic.serving_s),
            median(lambda r: r.traffic.finish_s),
        ),
    )


def wall_goal(latency_ms: int) -> str:
    goal = WALL_GOALS.get(latency_ms)
    return f"goal <= {goal:g}x at {latency_ms} ms" if goal else f"no goal at {latency_ms} ms"


def report(title: str, runs: dict[str, list[Measure]], latency_ms: int) -> dict[str, Measure]:
    """Print the medians of each client, what the gateway saw of it, and the ratios the goals
    are stated in."""
    median = {client: medians(client_runs) for client, client_runs in runs.items()}
    workers = max_workers()
    print(f"{title}, medians of {len(runs['floor'])}:")
    print(
        f"  {'client':9s} {'wall s':>7s} {'CPU s':>7s} {'RSS MB':>7s} {'instances':>9s} "
        f"{'requests':>8s} {'in flight':>9s} {f'>={workers}':>6s} "
        f"{'start-up s':>10s} {'serving s':>9s} {'finish s':>8s}"
    )
    for client, m in median.items():
        seen = m.traffic
        print(
            f"  {client:9s} {m.wall_s:7.2f} {m.cpu_s:7.2f} {m.rss_mb:7.0f} {m.instances:9d} "
            f"{seen.requests:8.0f} {seen.mean_in_flight:9.2f} {seen.share_full:6.0%} "
            f"{seen.startup_s:10.2f} {seen.serving_s:9.2f} {seen.finish_s:8.2f}"
        )
    floor, ours = median["floor"], median["backfill"]
    counts = {m.instances for m in median.values()}
    print(
        f"  backfill/floor wall {ours.wall_s / floor.wall_s:5.2f}x ({wall_goal(latency_ms)}), "
        f"serving {ours.traffic.serving_s / floor.traffic.serving_s:5.2f}x, "
        f"CPU {ours.cpu_s / floor.cpu_s:5.2f}x   "
        f"backfill peak RSS {ours.rss_mb:.0f} MB   "
        f"same instance counts: {'yes' if len(counts) == 1 else f'NO {sorted(counts)}'}"
    )
    if "extract" in median:
        extract = median["extract"]
        print(
            f"  extraction alone/floor wall {extract.wall_s / floor.wall_s:5.2f}x, "
            f"CPU {extract.cpu_s / floor.cpu_s:5.2f}x; the rest of the backfill (Dagster, "
            f"flattening, writing, checks) {ours.cpu_s - extract.cpu_s:.2f} s CPU"
        )
    if "naive" in median:
        print(f"  naive/backfill wall {median['naive'].wall_s / ours.wall_s:5.2f}x")
    print(flush=True)
    return median


@dataclass(frozen=True)
class Plan:
    """The runs one invocation makes (from the command line)."""

    days: int
    per_day: int
    big_day: int
    rounds: int
    latencies: tuple[int, ...]
    weights: tuple[int, ...]
    clients: tuple[str, ...]
    skip_big: bool
    long_days: int
    last: date

    @property
    def first(self) -> date:
        return self.last - timedelta(days=self.days - 1)

    @property
    def long_first(self) -> date:
        return self.last - timedelta(days=max(self.days, self.long_days) - 1)


@dataclass
class Results:
    """The medians of each (weight, latency), and the memory runs of each weight."""

    ranges: dict[tuple[int, int], dict[str, Measure]]
    longs: dict[int, Measure]
    bigs: dict[int, dict[str, Measure]]


def run_weight(plan: Plan, weight: int, results: Results) -> None:
    """Every latency at one record weight; the long range and the big day at the lowest."""
    memory_latency = min(plan.latencies)
    for latency in plan.latencies:
        memory = latency == memory_latency
        first = plan.long_first if memory and plan.long_days else plan.first
        print(f"record weight {weight}, {latency} ms latency", flush=True)
        with emulator(first, plan.last + timedelta(days=1), plan.per_day, latency, weight) as em:
            runs = compare(em, plan.first, plan.days, plan.rounds, plan.clients)
            title = f"{plan.days} days, record weight {weight}, {latency} ms"
            results.ranges[weight, latency] = report(title, runs, latency)
            if memory and plan.long_days:
                results.longs[weight] = long = run_client("backfill", em, first, plan.long_days)
                print(
                    f"  backfill over {plan.long_days} days: {long.wall_s:.2f} s wall, "
                    f"{long.cpu_s:.2f} s CPU, peak RSS {long.rss_mb:.0f} MB\n",
                    flush=True,
                )
        if memory and not plan.skip_big:
            day = plan.last
            with emulator(day, day + timedelta(days=1), plan.big_day, latency, weight) as em:
                runs = compare(em, day, 1, plan.rounds, plan.clients)
            title = f"big day, record weight {weight}, {latency} ms"
            results.bigs[weight] = report(title, runs, latency)


def summary(plan: Plan, results: Results) -> None:
    """The ratios the goals are stated in, one line per goal and run."""
    print("goals (medians):")
    first_weight = plan.weights[0]
    light = results.ranges[first_weight, plan.latencies[0]]["floor"]
    for weight in plan.weights:
        floor = results.ranges[weight, plan.latencies[0]]["floor"]
        size, base = floor.body_bytes / floor.instances, light.body_bytes / light.instances
        print(
            f"  record weight {weight}: {size:,.0f} bytes of page body per instance "
            f"({size / base:.2f}x weight {first_weight}'s)"
        )
    for (weight, latency), median in results.ranges.items():
        ours, floor = median["backfill"], median["floor"]
        print(
            f"  weight {weight}, {latency:4d} ms: backfill/floor wall "
            f"{ours.wall_s / floor.wall_s:5.2f}x ({wall_goal(latency)}); backfill "
            f"{ours.traffic.mean_in_flight:.1f} in flight, {ours.traffic.share_full:.0%} of its "
            f"serving at {max_workers()} (floor {floor.traffic.mean_in_flight:.1f}, "
            f"{floor.traffic.share_full:.0%}); {plan.days}-day peak RSS {ours.rss_mb:.0f} MB "
            f"(goal <= {RANGE_RSS_GOAL_MB} MB)"
        )
    memory_latency = min(plan.latencies)
    for weight, long in results.longs.items():
        small = results.ranges[weight, memory_latency]["backfill"]
        print(
            f"  weight {weight}: {plan.long_days}-day backfill peak RSS {long.rss_mb:.0f} MB = "
            f"{long.rss_mb / small.rss_mb:.2f}x the {plan.days}-day peak "
            f"(goal <= {LONG_RANGE_RSS_GOAL}x: flat in days)"
        )
    for weight, median in results.bigs.items():
        big, small = median["backfill"], results.ranges[weight, memory_latency]["backfill"]
        per_small = (small.wall_s / small.instances, small.cpu_s / small.instances)
        per_big = (big.wall_s / big.instances, big.cpu_s / big.instances)
        print(
            f"  weight {weight}: big day of {big.instances} instances peak RSS "
            f"{big.rss_mb:.0f} MB (goal <= {BIG_DAY_RSS_GOAL_MB} MB at record weight 2); "
            f"cost per instance vs the {plan.days}-day range: wall "
            f"{per_big[0] / per_small[0]:.2f}x, CPU {per_big[1] / per_small[1]:.2f}x "
            f"(goal <= 1.3x)"
        )
    print(f"  load average now {os.getloadavg()[0]:.1f}")


def parse_plan(argv: list[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="days of the range (30)")
    parser.add_argument("--per-day", type=int, default=3000, help="instances per day (3000)")
    parser.add_argument("--big-day", type=int, default=200_000, help="instances of the big day")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each client (2)")
    parser.add_argument(
        "--latency-ms", type=int, nargs="+", default=[20, 100], help="gateway latencies (20 100)"
    )
    parser.add_argument(
        "--record-weight", type=int, nargs="+", default=[1, 2], help="record weights (1 2)"
    )
    parser.add_argument(
        "--clients",
        nargs="+",
        choices=CLIENTS,
        default=list(DEFAULT_CLIENTS),
        help="clients to run; floor and backfill always ("
        + " ".join(DEFAULT_CLIENTS)
        + "; naive takes minutes at 100 ms)",
    )
    parser.add_argument("--skip-big", action="store_true", help="leave out the big day")
    parser.add_argument(
        "--long-days", type=int, default=90, help="days of the longer range for RSS (90; 0: skip)"
    )
    args = parser.parse_args(argv)
    if min(args.days, args.per_day, args.big_day, args.rounds, *args.record_weight) < 1:
        parser.error("--days, --per-day, --big-day, --rounds and --record-weight must be >= 1")
    if min(args.latency_ms) < 0 or args.long_days < 0:
        parser.error("--latency-ms and --long-days must be >= 0")
    # floor and backfill first: every ratio is of one to the other
    clients = ("floor", "backfill", *(c for c in CLIENTS[2:] if c in args.clients))
    # Complete UTC days well in the past; the emulator's server-local days (GMT+8) cover them.
    return Plan(
        days=args.days,
        per_day=args.per_day,
        big_day=args.big_day,
        rounds=args.rounds,
        latencies=tuple(dict.fromkeys(args.latency_ms)),
        weights=tuple(dict.fromkeys(args.record_weight)),
        clients=clients,
        skip_big=args.skip_big,
        long_days=args.long_days,
        last=datetime.now(timezone.utc).date() - timedelta(days=2),
    )


def main() -> None:
    plan = parse_plan()
    load = os.getloadavg()
    print(
        f"{plan.days} days x {plan.per_day} instances/day, "
        f"big day {'skipped' if plan.skip_big else plan.big_day}, "
        f"latencies {' '.join(map(str, plan.latencies))} ms, "
        f"record weights {' '.join(map(str, plan.weights))}, clients {' '.join(plan.clients)}, "
        f"pageSize {PAGE_SIZE}, FLOWINST_MAX_WORKERS {max_workers()}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}",
        flush=True,
    )
    results = Results({}, {}, {})
    for weight in plan.weights:
        run_weight(plan, weight, results)
    summary(plan, results)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in CLIENTS and sys.argv[1] != "backfill":
        client_main(sys.argv[1:])
    else:
        main()
