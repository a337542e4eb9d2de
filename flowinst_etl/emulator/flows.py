"""The emulated tenant's workflows, generated once from the seed and re-run daily like cron."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta, timezone

#: Kinds of flow and the scheduling type of their instances.
KIND_TYPES = {"daily": 1, "hourly": 1, "minute": 1, "manual": 0, "temporary": 2}
#: The share of a day's instances each kind of flow runs (after the UTC-midnight handful).
_KIND_SHARES = (
    ("daily", 0.40),
    ("hourly", 0.25),
    ("minute", 0.15),
    ("manual", 0.12),
    ("temporary", 0.08),
)
#: Flows whose instances trigger at 00:00:00 UTC; they cycle through these scheduling types.
_UTC_TYPES = (1, 0, 2, 1, 1)

_OWNERS = ("alice.wang", "bo.chen", "carlos.diaz", "dana.li", "erik.berg", "fang.zhou", "gita.rao")
_OWNER_WEIGHTS = (30, 22, 15, 12, 9, 7, 5)
_DO_AS = ("db_energy", "db_ops", "db_analytics", "db_finance")
_DOMAINS = tuple("wind solar grid meter asset alarm billing weather storage ops".split())
_ENTITIES = tuple(
    "power yield events status forecast kpi inventory readings curtailment availability".split()
)
_CN_DOMAINS = ("风电", "光伏", "储能", "电网")
_CN_ENTITIES = ("功率", "发电量", "告警", "状态")
_VERBS = ("extract", "load", "clean", "merge", "aggregate", "export", "check", "sync", "compute")
_NOUNS = ("orders", "readings", "alarms", "kpi", "meters", "assets", "events", "weather", "tariffs")
_KEY_STYLES = ("camel", "snake", "mixed", "zh")
_KEY_STYLE_WEIGHTS = (35, 20, 30, 15)
_MINUTE_STEPS = (1, 5, 10, 15, 30)


@dataclass(frozen=True)
class TaskSpec:
    """One task node of a flow: its id, name and canvas position."""

    task_id: int
    name: str
    x: float
    y: float


@dataclass(frozen=True)
class Edge:
    """A dependency from one task to another, by index into the flow's tasks."""

    source: int
    target: int
    cycle_gap: str
    rerun: bool


@dataclass(frozen=True)
class Upstream:
    """An external flow this flow depends on, feeding the task at index ``target``."""

    flow_id: int
    name: str
    is_virtual: bool
    x: float
    y: float
    target: int
    cycle_gap: str
    rerun: bool


@dataclass(frozen=True)
class Flow:
    """A workflow definition whose runs become flow instances."""

    flow_id: int
    name: str
    scheduling_type: int
    cycle: str
    freq: str
    owner: str
    owners: str
    creator: str
    do_as: str
    alert_mode: int
    parameters: str
    virtual: bool
    has_edit_pri: bool
    key_style: str
    tasks: tuple[TaskSpec, ...]
    edges: tuple[Edge, ...]
    upstream: tuple[Upstream, ...]


def day_plan(per_day: int) -> dict[str, int]:
    """How many instances of each kind of flow one day holds; the counts sum to ``per_day``."""
    utc = min(5, per_day // 20)
    rest = per_day - utc
    exact = [(kind, share * rest) for kind, share in _KIND_SHARES]
    plan = {kind: math.floor(value) for kind, value in exact}
    by_remainder = sorted(exact, key=lambda item: item[1] - math.floor(item[1]), reverse=True)
    for kind, _ in by_remainder[: rest - sum(plan.values())]:
        plan[kind] += 1
    plan["utc"] = utc
    return plan


def build_flows(
    seed: int, per_day: int, tz: timezone, record_weight: int = 1
) -> dict[str, tuple[Flow, ...]]:
    """Every flow of the tenant, grouped by kind (``daily``, ``hourly``, ..., ``utc``).

    The flows depend only on ``seed``, ``per_day``, the server timezone and ``record_weight``, so
    the same flows run every day whatever range of days an emulator serves. A ``record_weight``
    above 1 makes each flow heavier (see ``_heavier``) from draws of its own, so the same flows
    run at the same times whatever the weight.
    """
    rng = random.Random(f"{seed}:flows:{per_day}")
    plan = day_plan(per_day)
    sizes = {
        "daily": plan["daily"],
        "hourly": math.ceil(plan["hourly"] / 24),
        "minute": math.ceil(plan["minute"] / 12),
        "manual": math.ceil(plan["manual"] / 3),
        "temporary": math.ceil(plan["temporary"] / 2),
        "utc": plan["utc"],
    }
    total = sum(sizes.values())
    flow_ids = iter(rng.sample(range(1000, 1000 + 10 * total + 100), total))
    first_task_id = 100_000 + rng.randrange(1000)
    task_ids = iter(range(first_task_id, 10**9, 3))
    # The tasks a heavier weight adds take ids of another residue, so no id is taken twice.
    added_task_ids = iter(range(first_task_id + 1, 10**9, 3))
    utc_offset = tz.utcoffset(None)
    # Only scheduled flows (type 1) can be upstream; kept as they are built so choosing an
    # upstream does not rescan every earlier flow (a day of many flows stays linear).
    scheduled: list[Flow] = []
    pools: dict[str, tuple[Flow, ...]] = {}
    for kind, size in sizes.items():
        pool = []
        for index in range(size):
            scheduling_type = (
                _UTC_TYPES[index % len(_UTC_TYPES)] if kind == "utc" else KIND_TYPES[kind]
            )
            cycle, freq = _schedule(rng, kind, utc_offset)
            flow = _flow(
                rng, next(flow_ids), kind, scheduling_type, cycle, freq, task_ids, scheduled
            )
            if record_weight > 1:
                flow = _heavier(flow, record_weight, seed, added_task_ids)
            pool.append(flow)
            if flow.scheduling_type == 1:
                scheduled.append(flow)
        pools[kind] = tuple(pool)
    return pools


def _schedule(rng: random.Random, kind: str, utc_offset: timedelta) -> tuple[str, str]:
    if kind == "daily":
        return "D", "0 0 0 * * ? *"
    if kind == "hourly":
        return "H", "0 0 * * * ? *"
    if kind == "utc":
        local = (timedelta(days=1) + utc_offset) % timedelta(days=1)
        minutes = int(local.total_seconds()) // 60
        return "D", f"0 {minutes % 60} {minutes // 60} * * ? *"
    if kind == "minute":
        pick = rng.random()
        if pick < 0.1:
            return "W", "0 0 0 ? * 2 *"
        if pick < 0.2:
            return "M", "0 0 0 1 * ? *"
        return "mi", f"0 0/{rng.choice(_MINUTE_STEPS)} * * * ? *"
    return rng.choice((("D", "0 0 0 * * ? *"), ("H", "0 0 * * * ? *"), ("D", "0 30 2 * * ? *")))


def _flow(
    rng: random.Random,
    flow_id: int,
    kind: str,
    scheduling_type: int,
    cycle: str,
    freq: str,
    task_ids: Iterator[int],
    scheduled: list[Flow],
) -> Flow:
    owner = rng.choices(_OWNERS, _OWNER_WEIGHTS)[0]
    co_owners = [owner, *rng.sample([o for o in _OWNERS if o != owner], rng.randrange(3))]
    name = _flow_name(rng, kind)
    tasks = _tasks(rng, task_ids)
    parameters = "[]"
    if rng.random() < 0.4:
        parameters = f'[{{"key":"path","value":"/user/{owner}/{name}"}}]'
    return Flow(
        flow_id=flow_id,
        name=name,
        scheduling_type=scheduling_type,
        cycle=cycle,
        freq=freq,
        owner=owner,
        owners=";" + ";".join(co_owners) + ";",
        creator=owner if rng.random() < 0.8 else rng.choice(_OWNERS),
        do_as=rng.choice(_DO_AS),
        alert_mode=rng.randrange(4),
        parameters=parameters,
        virtual=rng.random() < 0.02,
        has_edit_pri=rng.random() < 0.85,
        key_style=rng.choices(_KEY_STYLES, _KEY_STYLE_WEIGHTS)[0],
        tasks=tasks,
        edges=_edges(rng, len(tasks), cycle),
        upstream=_upstream(rng, scheduled, len(tasks), cycle),
    )


def _flow_name(rng: random.Random, kind: str) -> str:
    suffix = {
        "daily": "daily",
        "hourly": "hourly",
        "minute": "rt",
        "manual": "adhoc",
        "temporary": "tmp",
        "utc": "utc_daily",
    }[kind]
    pick = rng.random()
    if pick < 0.05:
        return f"{rng.choice(_CN_DOMAINS)}_{rng.choice(_CN_ENTITIES)}_{suffix}"
    words = [rng.choice(_DOMAINS), rng.choice(_ENTITIES), suffix]
    if pick < 0.08:
        return "-".join(words)
    if pick < 0.18:
        return "_".join(word.capitalize() for word in words)
    return "_".join(words)


def _tasks(rng: random.Random, task_ids: Iterator[int]) -> tuple[TaskSpec, ...]:
    count = min(30, 1 + int(rng.expovariate(1 / 4)))
    names: set[str] = set()
    tasks = []
    for index in range(count):
        name = f"{rng.choice(_VERBS)}_{rng.choice(_NOUNS)}"
        if name in names:
            name = f"{name}_{index}"
        names.add(name)
        tasks.append(TaskSpec(next(task_ids), name, round(rng.random(), 4), round(rng.random(), 4)))
    return tuple(tasks)


def _edges(rng: random.Random, count: int, cycle: str, first: int = 1) -> tuple[Edge, ...]:
    """Edges into tasks ``first``..``count - 1``: one from an earlier task each, and a quarter as
    many again between any two tasks."""
    pairs = {(rng.randrange(target), target) for target in range(first, count)}
    for _ in range((count - first + 1) // 4):
        low, high = sorted(rng.sample(range(count), 2))
        pairs.add((low, high))
    return tuple(Edge(s, t, f"{cycle}0", rng.random() < 0.3) for s, t in sorted(pairs))


def _heavier(flow: Flow, weight: int, seed: int, task_ids: Iterator[int]) -> Flow:
    """``flow`` with records about ``weight`` times as heavy: ``weight`` times the tasks and
    edges, and longer flow and task names and parameters.

    Its tasks come first and keep their places, so upstream links into it still hold; the draws
    are the flow's own (seeded by the seed, weight and flow id).
    """
    rng = random.Random(f"{seed}:weight:{weight}:{flow.flow_id}")

    def longer(name: str) -> str:
        words = (f"{rng.choice(_DOMAINS)}_{rng.choice(_ENTITIES)}" for _ in range(2 * weight - 2))
        return "_".join((name, *words))

    name = longer(flow.name)
    tasks = [replace(task, name=longer(task.name)) for task in flow.tasks]
    names = {task.name for task in tasks}
    for index in range(len(tasks), len(tasks) * weight):
        task_name = longer(f"{rng.choice(_VERBS)}_{rng.choice(_NOUNS)}")
        if task_name in names:
            task_name = f"{task_name}_{index}"
        names.add(task_name)
        tasks.append(
            TaskSpec(next(task_ids), task_name, round(rng.random(), 4), round(rng.random(), 4))
        )
    known = {(edge.source, edge.target) for edge in flow.edges}
    added = _edges(rng, len(tasks), flow.cycle, first=len(flow.tasks))
    parameters = json.loads(flow.parameters) + [
        {"key": f"{rng.choice(_NOUNS)}_{n}", "value": f"/user/{flow.owner}/{name}/{n}/${{bizdate}}"}
        for n in range(1, 2 * weight - 1)
    ]
    return replace(
        flow,
        name=name,
        parameters=json.dumps(parameters, ensure_ascii=False, separators=(",", ":")),
        tasks=tuple(tasks),
        edges=flow.edges + tuple(e for e in added if (e.source, e.target) not in known),
    )


def _upstream(
    rng: random.Random, candidates: list[Flow], task_count: int, cycle: str
) -> tuple[Upstream, ...]:
    """Links to up to three of ``candidates`` (the scheduled flows built before this one)."""
    if not candidates or rng.random() < 0.5:
        return ()
    chosen = rng.sample(candidates, min(len(candidates), 1 + rng.randrange(3)))
    links = []
    for flow in chosen:
        is_virtual = rng.random() < 0.15
        name = f"{flow.tasks[0].task_id}({flow.tasks[0].name})" if is_virtual else flow.name
        gap = f"{cycle}0" if rng.random() < 0.8 else "D-1"
        links.append(
            Upstream(
                flow.flow_id,
                name,
                is_virtual,
                round(rng.random(), 4),
                round(rng.random(), 4),
                rng.randrange(task_count),
                gap,
                rng.random() < 0.3,
            )
        )
    return tuple(links)
