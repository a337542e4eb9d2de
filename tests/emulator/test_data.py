"""The synthetic dataset: deterministic, shaped like a real scheduler's, equal to what is served."""

from __future__ import annotations

import hashlib
import json
import statistics
from collections import Counter
from datetime import date, datetime, timedelta

import pytest

from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.emulator.status import STATUS_NAMES
from flowinst_etl.exceptions import ConfigError
from flowinst_etl.windows import day_window, parse_server_timezone, server_time_to_epoch_ms

from .signed import day_ms, search_body

RECORD_KEYS = [
    "instanceId", "flowId", "flowName", "freq", "cycle", "parameters", "doAs", "graph", "status",
    "statusDesc", "triggerTime", "startTime", "endTime", "timestamp", "virtual", "owner",
    "hasEditPri", "hasReadPri", "isCancelled",
]  # fmt: skip
TZ = parse_server_timezone("GMT+8")
DAYS = (date(2026, 3, 1), date(2026, 3, 3))


@pytest.fixture(scope="module")
def big():
    """A larger emulator (not started): 3 days of 1000 instances."""
    return Emulator(EmulatorConfig(start_day=DAYS[0], end_day=DAYS[1], per_day=1000))


def test_the_same_config_serves_identical_data(emulator, client):
    first, second = emulator(), emulator()
    other_seed = emulator(seed=8)
    start, end = day_ms(DAYS[0])
    body = search_body(start, end, pagination={"pageNo": 2, "pageSize": 40})

    def served(emu):
        return client(emu).search(body).json()["data"]

    assert first.truth() == second.truth()
    assert served(first) == served(second)
    assert served(first) != served(other_seed)


def test_every_day_holds_per_day_instances_split_like_a_scheduler(big):
    for offset in range(3):
        window = day_window(DAYS[0] + timedelta(days=offset), TZ)
        day = big.truth(window.start_ms, window.end_ms)
        local = [datetime.fromtimestamp(t.trigger_ms / 1000, TZ) for t in day]
        types = Counter(t.scheduling_type for t in day)
        midnight = sum(moment.hour == moment.minute == moment.second == 0 for moment in local)
        on_the_hour = sum(moment.minute == moment.second == 0 for moment in local)

        assert len(day) == 1000
        assert 0.35 <= midnight / 1000 <= 0.45
        assert 0.60 <= on_the_hour / 1000 <= 0.70
        assert 0.76 <= types[1] / 1000 <= 0.84
        assert 0.10 <= types[0] / 1000 <= 0.14
        assert 0.06 <= types[2] / 1000 <= 0.10
        utc_midnight = -(-window.start_ms // 86_400_000) * 86_400_000
        assert sum(t.trigger_ms == utc_midnight for t in day) >= 3


def test_records_have_the_documented_fields_and_consistent_values(big):
    truth = big.truth()
    records = [t.record for t in truth]
    ids = [r["instanceId"] for r in records]

    assert len(set(ids)) == len(ids)
    assert {s for s in (r["status"] for r in records)} == set(STATUS_NAMES)
    assert 5 <= len({r["owner"] for r in records}) <= 8
    assert sum("-" in r["flowName"] for r in records) < 0.1 * len(records)
    for item in truth:
        record = item.record
        assert list(record) == RECORD_KEYS
        assert record["statusDesc"] == STATUS_NAMES[record["status"]]
        assert server_time_to_epoch_ms(record["triggerTime"], TZ) == item.trigger_ms
        stamp = datetime.fromtimestamp(item.trigger_ms / 1000, TZ).strftime("%Y%m%d%H%M%S")
        assert record["instanceId"] == f"{record['flowId']}-{stamp}"
        assert isinstance(json.loads(record["parameters"]), list)
        assert record["isCancelled"] == (record["status"] == 8)
        if record["status"] in (0, 5, 6):
            assert record["startTime"] is None and record["endTime"] is None
        if record["status"] == 2:
            assert record["startTime"] is not None and record["endTime"] is None
        if record["status"] == 1:
            assert record["triggerTime"] <= record["startTime"] <= record["endTime"]
        assert record["timestamp"][:19] >= record["triggerTime"]
        assert len(record["timestamp"]) in (21, 22, 23)


def test_the_last_day_has_many_runs_in_flight(big):
    last = day_window(DAYS[1], TZ)
    first = day_window(DAYS[0], TZ)

    def in_flight(window):
        truth = big.truth(window.start_ms, window.end_ms)
        return sum(t.record["status"] in (0, 2, 5, 6) for t in truth) / len(truth)

    assert in_flight(last) > 0.3 > 0.1 > in_flight(first)


def _style(graph):
    task = graph["tasks"][0]
    if "task_inst_id" in task:
        return "snake"
    if "task_name" in task:
        return "mixed"
    return "zh" if "do_as" in graph else "camel"


def test_graphs_follow_the_documented_structure_in_every_key_style(big):
    styles = Counter()
    for item in big.truth(*day_ms(DAYS[0])):
        record = item.record
        graph = json.loads(record["graph"])
        style = _style(graph)
        styles[style] += 1
        tasks = graph["tasks"]
        key = {"snake": "task_id", "mixed": "task_id"}.get(style, "taskId")
        inst_key = "task_inst_id" if style == "snake" else "taskInstId"
        task_nodes = {f"t_{task[key]}" for task in tasks}
        flow_nodes = {f"f_{flow.get('flowId', flow.get('flow_id'))}" for flow in graph["flows"]}

        assert graph.get("instId", graph.get("inst_id")) == record["instanceId"]
        assert graph["id"] == record["flowId"] and graph["name"] == record["flowName"]
        assert graph["owners"].startswith(";") and graph["freq"] == record["freq"]
        assert isinstance(json.loads(graph["parameters"]), list)
        assert 1 <= len(tasks) <= 30
        stamp = record["instanceId"].rsplit("-", 1)[1]
        assert all(task[inst_key] == f"{task[key]}-{stamp}" for task in tasks)
        assert ("status" in tasks[0]) == (style != "mixed")
        for relation in graph["relations"]:
            assert relation["target"] in task_nodes
            assert relation["source"] in task_nodes | flow_nodes
            assert relation.get("cycleGap", relation.get("cycle_gap"))
        assert _acyclic(graph["relations"], task_nodes)
    assert set(styles) == {"camel", "snake", "mixed", "zh"}


def _acyclic(relations, nodes):
    edges = [(r["source"], r["target"]) for r in relations if r["source"] in nodes]
    remaining = set(nodes)
    while remaining:
        sources = {n for n in remaining if not any(t == n and s in remaining for s, t in edges)}
        if not sources:
            return False
        remaining -= sources
    return True


def test_truth_and_dump_equal_paging_through_everything(emulator, client, tmp_path):
    emu = emulator(per_day=150)
    api = client(emu)
    start, _ = day_ms(DAYS[0])
    end = day_ms(DAYS[1])[1]
    served = []
    for kind in (0, 1, 2):
        body = search_body(start, end, type=kind, pagination={"pageNo": 1, "pageSize": 37})
        served += [(kind, record) for record in api.page_all(body)]

    emu.dump(tmp_path / "truth.jsonl")
    lines = (tmp_path / "truth.jsonl").read_text(encoding="utf-8").splitlines()
    dumped = [json.loads(line) for line in lines]
    truth = emu.truth()

    assert len(truth) == 3 * 150

    def position(pair):
        return server_time_to_epoch_ms(pair[1]["triggerTime"], TZ), pair[1]["instanceId"]

    assert sorted(served, key=position) == [(t.scheduling_type, t.record) for t in truth]
    assert dumped == [t._asdict() for t in truth]


def test_truth_filters_and_returns_copies(emulator):
    emu = emulator()
    start, end = day_ms(DAYS[1])
    window = emu.truth(start, end, 2)

    assert window and all(t.scheduling_type == 2 for t in window)
    assert all(start <= t.trigger_ms < end for t in window)
    assert window == sorted(window, key=lambda t: (t.trigger_ms, t.record["instanceId"]))
    window[0].record["status"] = 99
    assert emu.truth(start, end, 2)[0].record["status"] != 99
    with pytest.raises(ConfigError):
        emu.truth(scheduling_type=3)


#: sha256 of the compact JSON lines of ``truth()`` of seed 7, 2026-03-01..02, 300 a day, as
#: served before records had a weight: weight 1 must keep serving exactly these bytes.
WEIGHT_1_DIGEST = "6699a15916501170fe6df362cc59c9819f2afbddd87f4f855b82b47205bb5720"


def _record_lines(emu):
    return [
        json.dumps(t.record, ensure_ascii=False, separators=(",", ":")).encode()
        for t in emu.truth()
    ]


def test_record_weight_1_serves_the_records_as_before():
    config = EmulatorConfig(start_day=DAYS[0], end_day=date(2026, 3, 2), per_day=300)
    lines = _record_lines(Emulator(config))

    assert hashlib.sha256(b"".join(line + b"\n" for line in lines)).hexdigest() == WEIGHT_1_DIGEST
    assert config.record_weight == 1


def test_record_weight_2_serves_the_same_runs_about_twice_as_heavy(big, emulator, client):
    heavy = emulator(start_day=DAYS[0], end_day=DAYS[1], per_day=1000, record_weight=2)
    start, end = day_ms(DAYS[0])
    light_day, heavy_day = big.truth(start, end), heavy.truth(start, end)
    sizes = [
        statistics.mean(
            len(json.dumps(t.record, ensure_ascii=False, separators=(",", ":")).encode())
            for t in day
        )
        for day in (light_day, heavy_day)
    ]
    owner_of_task: dict[int, int] = {}
    for light, weighty in zip(light_day, heavy_day, strict=True):
        light_graph, graph = json.loads(light.record["graph"]), json.loads(weighty.record["graph"])
        style = _style(graph)
        key = {"snake": "task_id", "mixed": "task_id"}.get(style, "taskId")
        task_ids = [task[key] for task in graph["tasks"]]
        for task_id in task_ids:
            assert owner_of_task.setdefault(task_id, graph["id"]) == graph["id"]
        assert (light.trigger_ms, light.scheduling_type) == (
            weighty.trigger_ms,
            weighty.scheduling_type,
        )
        assert {
            k: v for k, v in light.record.items() if k not in ("flowName", "parameters", "graph")
        } == {
            k: v for k, v in weighty.record.items() if k not in ("flowName", "parameters", "graph")
        }
        assert len(graph["tasks"]) == 2 * len(light_graph["tasks"])
        assert task_ids[: len(light_graph["tasks"])] == [t[key] for t in light_graph["tasks"]]
        assert len(weighty.record["flowName"]) > len(light.record["flowName"])
        assert len(weighty.record["parameters"]) > len(light.record["parameters"])
        assert _acyclic(graph["relations"], {f"t_{task_id}" for task_id in task_ids})

    page = search_body(start, end, pagination={"pageNo": 3, "pageSize": 50})
    served = client(heavy).search(page).json()["data"]["flowInsts"]
    assert served == [t.record for t in heavy.truth(start, end, 1)][100:150]
    assert 1.7 <= sizes[1] / sizes[0] <= 2.5, sizes


@pytest.mark.parametrize("weight", [0, 21, True, 1.5])
def test_a_record_weight_outside_1_to_20_is_refused(weight):
    with pytest.raises(ConfigError, match="record_weight must be"):
        EmulatorConfig(record_weight=weight)
