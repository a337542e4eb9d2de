"""Exactly once per day through ``flowinst-etl backfill`` while the gateway misbehaves.

Each case runs the real command in a subprocess against an emulator injecting one fault, then all
of them at once, and compares every day with the emulator's ground truth as it is after the run
(instances inserted while paging included). Each case also proves its fault really happened.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest

from flowinst_etl import read_table
from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.store import read_manifest
from tests.guarantees.harness import (
    ALL_BEHAVIOURS,
    assert_days_exact,
    assert_whole_days,
    backfill_args,
    days_from,
    describe,
    emulator_environment,
    run_cli,
)

FIRST = date(2026, 11, 14)
DAYS = days_from(FIRST, 3)
SHANGHAI, UTC = "Asia/Shanghai", "UTC"


@dataclass(frozen=True)
class Fault:
    """One fault case.

    Attributes:
        switches: emulator settings.
        timezone: the partition timezone of the backfill.
        revoke_gap_s: when set, every issued token is revoked again and again while the run
            pages, at least this long apart.
        proof: emulator counters (``renewals``: tokens obtained beyond each process's first) that
            must have reached these values, or the fault never happened.
    """

    switches: dict[str, object]
    timezone: str
    revoke_gap_s: float | None = None
    proof: dict[str, int] = field(default_factory=dict)


FAULTS = {
    "10% 5xx answers": Fault({"error_rate": 0.1}, SHANGHAI, proof={"faults_5xx": 1}),
    "10% dropped connections": Fault({"drop_rate": 0.1}, UTC, proof={"faults_dropped": 1}),
    "429 with Retry-After 0": Fault(
        {"rate_limit_per_s": 10.0, "retry_after_s": 0}, SHANGHAI, proof={"rate_limited": 1}
    ),
    "429 with Retry-After 1": Fault(
        {"rate_limit_per_s": 10.0, "retry_after_s": 1}, UTC, proof={"rate_limited": 1}
    ),
    "tokens expire every second": Fault(
        {"token_lifetime_s": 1, "latency_ms": 200}, SHANGHAI, proof={"renewals": 1}
    ),
    "tokens revoked while paging": Fault(
        {"latency_ms": 30}, UTC, revoke_gap_s=0.3, proof={"auth_failures": 1, "renewals": 1}
    ),
    "instances inserted while paging": Fault(
        {"insert_every": 3, "insert_count": 2}, SHANGHAI, proof={"inserted": 1}
    ),
    "statuses change while paging": Fault(
        {"status_change_rate": 0.3}, UTC, proof={"status_changes": 1}
    ),
    "malformed graphs": Fault({"malformed_graph_rate": 0.2}, SHANGHAI),
    "answers labelled gzip over a plain body": Fault(
        {"gzip_label_every": 5}, UTC, proof={"faults_mislabelled": 1}
    ),
    # Every attempt is signed when it is sent, so a token that dies between a request's retries
    # is renewed and the next attempt carries the new one.
    "every fault and behaviour at once": Fault(
        {
            **ALL_BEHAVIOURS,
            "error_rate": 0.05,
            "drop_rate": 0.05,
            "rate_limit_per_s": 10.0,
            "retry_after_s": 0,
            "token_lifetime_s": 3,
            "latency_ms": 30,
            "insert_every": 4,
            "insert_count": 2,
            "status_change_rate": 0.2,
            "malformed_graph_rate": 0.1,
            "gzip_label_every": 9,
        },
        SHANGHAI,
        revoke_gap_s=4.0,
        proof={
            "faults_5xx": 1,
            "faults_dropped": 1,
            "rate_limited": 1,
            "renewals": 1,
            "auth_failures": 1,
            "inserted": 1,
            "status_changes": 1,
            "faults_mislabelled": 1,
        },
    ),
}
#: Searches between two revocations.
REVOKE_EVERY_SEARCHES = 4


@contextmanager
def revoking(emulator: Emulator, gap_s: float | None) -> Iterator[list[int]]:
    """While the block runs, revoke every issued token each time the run has made a few more
    searches, at least ``gap_s`` apart; yields a one-item list counting the revocations."""
    count = [0]
    if gap_s is None:
        yield count
        return
    stop = threading.Event()

    def revoke() -> None:
        last = emulator.stats()["searches"]
        while not stop.wait(0.005):
            searches = emulator.stats()["searches"]
            if searches - last >= REVOKE_EVERY_SEARCHES:
                emulator.revoke_tokens()
                count[0] += 1
                last = searches
                stop.wait(gap_s)

    thread = threading.Thread(target=revoke, daemon=True)
    thread.start()
    try:
        yield count
    finally:
        stop.set()
        thread.join()


def unreadable(graph: object) -> bool:
    """Whether a graph is not a JSON object's text (the emulator truncates malformed ones)."""
    try:
        return not isinstance(json.loads(graph), dict)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_backfill_stays_exact_under_gateway_faults(fault: Fault, tmp_path: Path) -> None:
    root, switches, timezone = tmp_path / "data", fault.switches, fault.timezone
    config = EmulatorConfig(
        seed=47,
        start_day=DAYS[0] - timedelta(days=1),
        end_day=DAYS[-1] + timedelta(days=2),
        per_day=150,
        **switches,  # type: ignore[arg-type]
    )
    with Emulator(config) as emulator:
        env = emulator_environment(emulator, ENOS_PAGE_SIZE="20", ENOS_MAX_RETRIES="10")
        with revoking(emulator, fault.revoke_gap_s) as revocations:
            done = run_cli(
                *backfill_args(DAYS[0], DAYS[-1], root, "--timezone", timezone),
                env=env,
                cwd=tmp_path,
            )
        assert done.returncode == 0, describe(done)
        truths = assert_days_exact(emulator, root, DAYS, timezone)
        stats = emulator.stats()
    assert assert_whole_days(root) == {day.isoformat() for day in DAYS}
    # each of the two processes (pre-flight, then the run) needs one token to start with
    stats["renewals"] = stats["token_gets"] + stats["token_refreshes"] - 2
    for counter, least in fault.proof.items():
        assert stats[counter] >= least, f"the fault did not happen: {counter} in {stats}"
    assert revocations[0] > 0 or fault.revoke_gap_s is None
    malformed_total = 0
    for day, truth in truths.items():
        frame = read_table("flow_instances", str(root), day, day)
        flagged = frame[frame["graph_error"].notna()]
        malformed = {t.record["instanceId"]: t.record["graph"] for t in truth}
        malformed = {i: g for i, g in malformed.items() if unreadable(g)}
        malformed_total += len(malformed)
        assert set(flagged["instance_id"]) == set(malformed), day
        assert all(unreadable(text) for text in flagged["graph"]), "the raw text is kept"
        if not switches.get("status_change_rate"):  # task statuses are part of the graph text
            assert dict(zip(flagged["instance_id"], flagged["graph"], strict=True)) == malformed
        assert (flagged["task_count"].isna()).all()
        figures = read_manifest(str(root), "flow_instances", day)["reconciliation"]
        assert figures["graph_errors"] == len(malformed), figures
        assert figures["instances"] == len(truth), figures
    if switches.get("malformed_graph_rate"):
        assert malformed_total > 0, "no graph was malformed; the case proves nothing"
