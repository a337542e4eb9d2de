"""The deterministic synthetic dataset: each day's runs of the flows, with realistic statuses."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import date, timedelta, timezone, tzinfo

from flowinst_etl.emulator.config import EmulatorConfig
from flowinst_etl.emulator.days import midnight_ms
from flowinst_etl.emulator.flows import Flow, build_flows, day_plan
from flowinst_etl.emulator.records import Instance
from flowinst_etl.emulator.status import (
    CANCEL,
    FAIL,
    INIT,
    INTERNAL_ERROR,
    NOT_ENDED,
    NOT_STARTED,
    READY,
    RERUN,
    RUNNING,
    SKIP,
    SUCCESS,
    SUSPEND,
    TIMEOUT,
    WAIT,
)

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000

# Status weights of runs well in the past, of runs on the last day (many still in flight), and of
# runs the scheduler has just created.
_PAST = {
    SUCCESS: 820,
    FAIL: 50,
    SKIP: 25,
    CANCEL: 20,
    TIMEOUT: 15,
    INTERNAL_ERROR: 10,
    RERUN: 15,
    SUSPEND: 10,
    RUNNING: 10,
    INIT: 10,
    WAIT: 8,
    READY: 7,
}
_RECENT = {
    SUCCESS: 400,
    INIT: 180,
    WAIT: 80,
    READY: 60,
    RUNNING: 160,
    FAIL: 40,
    SKIP: 15,
    CANCEL: 15,
    TIMEOUT: 10,
    INTERNAL_ERROR: 10,
    RERUN: 10,
    SUSPEND: 20,
}
_NEW = {INIT: 50, WAIT: 20, READY: 15, RUNNING: 15}


@dataclass(frozen=True)
class Dataset:
    """The generated flows and instances of one emulator.

    Attributes:
        flows_by_type: every flow, by the scheduling type of its instances.
        instances: every instance, in generation order.
    """

    flows_by_type: dict[int, tuple[Flow, ...]]
    instances: list[Instance]


def generate(config: EmulatorConfig) -> Dataset:
    """The dataset of ``config``: the same config always gives the same records."""
    tz, strings_tz, rate = config.tz(), config.record_tz(), config.malformed_graph_rate
    shows = config.timestamp_shows
    pools = build_flows(config.seed, config.per_day, tz, config.record_weight)
    plan = day_plan(config.per_day)
    first, last = config.days()
    recent_from = midnight_ms(last, tz)
    instances = []
    day = first
    while day <= last:
        rng = random.Random(f"{config.seed}:day:{day.isoformat()}:{config.per_day}")
        for flow, trigger_ms in _day_triggers(rng, day, tz, pools, plan):
            weights = _RECENT if trigger_ms >= recent_from else _PAST
            instances.append(
                _run(rng, flow, trigger_ms, weights, strings_tz, config.seed, rate, shows)
            )
        day += timedelta(days=1)
    flows_by_type = {
        kind: tuple(f for pool in pools.values() for f in pool if f.scheduling_type == kind)
        for kind in (0, 1, 2)
    }
    return Dataset(flows_by_type, instances)


def new_run(
    rng: random.Random,
    flow: Flow,
    trigger_ms: int,
    tz: tzinfo,
    seed: int,
    malformed_rate: float,
    timestamp_shows: str,
) -> Instance:
    """A run the scheduler has just created (INIT, WAIT, READY or RUNNING)."""
    return _run(rng, flow, trigger_ms, _NEW, tz, seed, malformed_rate, timestamp_shows)


def advance(rng: random.Random, instance: Instance, update_ms: int) -> None:
    """Move a not-final instance one step on: waiting -> RUNNING, RUNNING -> SUCCESS or FAIL;
    ``update_ms`` becomes its update time."""
    if instance.status == RUNNING:
        assert instance.start_ms is not None
        status = SUCCESS if rng.random() < 0.85 else FAIL
        start_ms: int | None = instance.start_ms
        end_ms: int | None = instance.start_ms + _duration_ms(rng)
    else:
        status, start_ms, end_ms = RUNNING, _start_ms(rng, instance.trigger_ms), None
    instance.change_status(status, start_ms, end_ms, update_ms)


def _day_triggers(
    rng: random.Random,
    day: date,
    tz: timezone,
    pools: dict[str, tuple[Flow, ...]],
    plan: dict[str, int],
) -> list[tuple[Flow, int]]:
    """Every (flow, trigger epoch ms) of one server-local day."""
    midnight = midnight_ms(day, tz)
    utc_midnight = -(-midnight // _DAY_MS) * _DAY_MS
    hourly_slots = [(flow, hour) for flow in pools["hourly"] for hour in range(24)]
    triggers = [(flow, midnight) for flow in pools["daily"]]
    triggers += [
        (flow, midnight + hour * _HOUR_MS)
        for flow, hour in rng.sample(hourly_slots, plan["hourly"])
    ]
    triggers += [(flow, utc_midnight) for flow in pools["utc"]]
    taken = {(flow.flow_id, trigger_ms) for flow, trigger_ms in triggers}
    for kind in ("minute", "manual", "temporary"):
        for _ in range(plan[kind]):
            flow, trigger_ms = rng.choice(pools[kind]), midnight + rng.randrange(86_400) * 1000
            while (flow.flow_id, trigger_ms) in taken:
                flow, trigger_ms = rng.choice(pools[kind]), midnight + rng.randrange(86_400) * 1000
            taken.add((flow.flow_id, trigger_ms))
            triggers.append((flow, trigger_ms))
    return triggers


def _run(
    rng: random.Random,
    flow: Flow,
    trigger_ms: int,
    weights: dict[int, int],
    tz: tzinfo,
    seed: int,
    malformed_rate: float,
    timestamp_shows: str,
) -> Instance:
    status = rng.choices(tuple(weights), tuple(weights.values()))[0]
    start_ms = end_ms = None
    if status not in NOT_STARTED and not (status == CANCEL and rng.random() < 0.5):
        start_ms = _start_ms(rng, trigger_ms)
        if status not in NOT_ENDED:
            end_ms = start_ms + _duration_ms(rng)
    create_ms = trigger_ms + rng.randrange(3000)
    malformed = _unit(f"{seed}:graph:{flow.flow_id}:{trigger_ms}") < malformed_rate
    return Instance(
        flow, trigger_ms, status, start_ms, end_ms, create_ms, tz, malformed, timestamp_shows
    )


def _start_ms(rng: random.Random, trigger_ms: int) -> int:
    return trigger_ms + rng.randrange(91) * 1000


def _duration_ms(rng: random.Random) -> int:
    return int(min(6 * 3600, max(1.0, rng.lognormvariate(4.0, 1.2)))) * 1000


def _unit(key: str) -> float:
    """A uniform number in [0, 1) fixed by ``key``, independent of every other draw."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
