"""Benchmark: flattening and storing a day of instances, against a naive pandas approach.

Generates realistic List Flow Instances records in memory (graphs of 1-30 tasks in every key
style, upstream flows, relations), then times per 1000 instances:

  (a) baseline: ``pandas.json_normalize`` of the records, their times converted to UTC, and of
      the parsed graphs' tasks (``record_path="tasks"``), both frames written with ``to_parquet``;
  (b) flowinst_etl: ``flatten_instances`` (all four tables, checked and typed) and ``write_day``.

Run: ``python bench/bench_flatten_store.py [--instances 20000] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from flowinst_etl.model import FoundInstance
from flowinst_etl.store import write_day
from flowinst_etl.tables.flatten import flatten_instances

SERVER_TZ = timezone(timedelta(hours=8))
DAY = date(2019, 8, 12)
STATUSES = {-1: "FAIL", 0: "INIT", 1: "SUCCESS", 2: "RUNNING", 8: "CANCEL"}
#: Graph key spellings seen in the documented samples: camelCase, snake_case, and the v2.1 List
#: sample's mix.
STYLES = (
    {"taskName": "taskName", "taskInstId": "taskInstId", "taskId": "taskId", "nodeId": "nodeId"},
    {
        "taskName": "task_name",
        "taskInstId": "task_inst_id",
        "taskId": "task_id",
        "nodeId": "node_id",
    },
    {"taskName": "task_name", "taskInstId": "taskInstId", "taskId": "task_id", "nodeId": "nodeId"},
)


def make_graph(rng: random.Random, flow_id: int, stamp: str, style: dict[str, str]) -> str:
    """A graph JSON string with 1-30 chained tasks and, for some flows, an upstream flow; canvas
    positions have 4 decimals, like the documented samples."""
    ids = [flow_id * 100 + number for number in range(1, rng.randint(1, 30) + 1)]
    tasks = [
        {
            style["taskName"]: f"task_{task_id}",
            style["taskInstId"]: f"{task_id}-{stamp}",
            "x": round(rng.random(), 4),
            "y": round(rng.random(), 4),
            style["taskId"]: task_id,
            style["nodeId"]: f"t_{task_id}",
            "status": "SUCCESS",
        }
        for task_id in ids
    ]
    relations = [
        {"source": f"t_{a}", "target": f"t_{b}", "cycleGap": "D0", "rerun": False}
        for a, b in zip(ids, ids[1:], strict=False)
    ]
    flows = []
    if rng.random() < 0.3:
        upstream = rng.randrange(1000, 2000)
        flows.append(
            {
                "flowId": str(upstream),
                "flowName": f"flow_{upstream}",
                "nodeId": f"f_{upstream}",
                "isVirtual": False,
                "x": 0.5,
                "y": 0.5,
                "flowInstId": f"{upstream}-{stamp}",
                "status": "NONE",
            }
        )
        relations.append(
            {"source": f"f_{upstream}", "target": f"t_{ids[0]}", "cycleGap": "D0", "rerun": True}
        )
    graph = {
        "creator": "alice",
        "freq": "0 0 0 * * ? *",
        "alertMode": 3,
        "owners": ";alice;bob;",
        "cycle": "D",
        "doAs": "db_alice",
        "flows": flows,
        "name": f"flow_{flow_id}",
        "instId": f"{flow_id}-{stamp}",
        "id": flow_id,
        "relations": relations,
        "parameters": "[]",
        "tasks": tasks,
    }
    return json.dumps(graph)


def make_records(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` records triggered on one day, with every status and key style."""
    rng = random.Random(seed)
    records = []
    for number in range(count):
        flow_id = 2000 + number
        trigger = datetime(2019, 8, 12) + timedelta(seconds=rng.randrange(86_400))
        stamp = trigger.strftime("%Y%m%d%H%M%S")
        status = rng.choice(list(STATUSES))

        def at(seconds: int, moment: datetime = trigger) -> str:
            return (moment + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")

        records.append(
            {
                "instanceId": f"{flow_id}-{stamp}",
                "flowId": flow_id,
                "flowName": f"flow_{flow_id}",
                "freq": "0 0 0 * * ? *",
                "cycle": "D",
                "parameters": '[{"key":"path","value":"/user/alice"}]',
                "doAs": "db_alice",
                "graph": make_graph(rng, flow_id, stamp, STYLES[number % len(STYLES)]),
                "status": status,
                "statusDesc": STATUSES[status],
                "triggerTime": at(0),
                "startTime": None if status == 0 else at(8),
                "endTime": None if status in (0, 2) else at(10),
                "timestamp": at(146) + ".0",
                "virtual": False,
                "owner": "alice",
                "hasEditPri": True,
                "hasReadPri": True,
                "isCancelled": status == 8,
            }
        )
    return records


def baseline(records: list[dict[str, Any]], out: Path) -> None:
    """The naive way: json_normalize of records and of graph tasks, UTC times, to_parquet."""
    instances = pd.json_normalize(records)
    for column in ("triggerTime", "startTime", "endTime", "timestamp"):
        local = pd.to_datetime(instances[column]).dt.tz_localize(SERVER_TZ)
        instances[column] = local.dt.tz_convert("UTC")
    graphs = [json.loads(record["graph"]) for record in records]
    tasks = pd.json_normalize(graphs, record_path="tasks", meta=["instId"])
    instances.to_parquet(out / "instances.parquet", index=False)
    tasks.to_parquet(out / "tasks.parquet", index=False)


def ours(records: list[dict[str, Any]], out: Path) -> None:
    """flowinst_etl: every table flattened, checked and typed, then committed as one day."""
    found = [FoundInstance(1, record) for record in records]
    tables = flatten_instances(found, SERVER_TZ, datetime.now(timezone.utc))
    write_day(str(out), DAY, tables.as_dict(), {"instances": len(found)})


def timed(
    step: Callable[[list[dict[str, Any]], Path], None], records: list[dict[str, Any]]
) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads of this process) of one step."""
    with tempfile.TemporaryDirectory() as folder:
        wall, cpu = time.perf_counter(), time.process_time()
        step(records, Path(folder))
        return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    """Time both approaches, alternating, and print the median per 1000 instances."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    records = make_records(args.instances, args.seed)
    tasks = sum(len(json.loads(record["graph"])["tasks"]) for record in records)
    graph_mb = sum(len(record["graph"]) for record in records) / 1e6
    print(
        f"{args.instances} instances, {tasks} tasks, {graph_mb:.0f} MB of graph JSON; "
        f"median of {args.repeat} runs each"
    )
    runs: dict[str, list[tuple[float, float]]] = {"baseline": [], "ours": []}
    for _ in range(args.repeat):
        runs["baseline"].append(timed(baseline, records))
        runs["ours"].append(timed(ours, records))
    per_1000 = {
        name: [statistics.median(run[i] for run in times) / args.instances * 1000 for i in (0, 1)]
        for name, times in runs.items()
    }
    labels = {
        "baseline": "(a) json_normalize + to_parquet",
        "ours": "(b) flatten_instances + write_day",
    }
    print(f"{'per 1000 instances':<46} {'wall s':>7} {'CPU s':>7}")
    for name, label in labels.items():
        wall, cpu = per_1000[name]
        print(f"{label:<46} {wall:7.3f} {cpu:7.3f}")
    wall_ratio = per_1000["baseline"][0] / per_1000["ours"][0]
    cpu_ratio = per_1000["baseline"][1] / per_1000["ours"][1]
    print(f"speed-up (a)/(b): {wall_ratio:.1f}x wall-clock (target >= 3x), {cpu_ratio:.1f}x CPU")


if __name__ == "__main__":
    main()
