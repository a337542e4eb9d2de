"""Loading days through the library: each day committed on its own, with its reconciliation."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flowinst_etl import ConfigError, read_manifest, read_table
from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.extract import Extractor
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.load import load_days
from flowinst_etl.windows import day_window, zone
from tests.support import day_truth, expected_rows, settings_for

DAYS = [date(2026, 11, 2) + timedelta(days=n) for n in range(3)]
UTC = zone("UTC")


def emulator_config(**switches: object) -> EmulatorConfig:
    return EmulatorConfig(
        seed=9, start_day=date(2026, 11, 1), end_day=date(2026, 11, 5), per_day=80, **switches
    )


def test_each_day_is_committed_with_its_reconciliation(tmp_path: Path) -> None:
    with Emulator(emulator_config()) as emulator, EnosClient(settings_for(emulator)) as client:
        results = list(load_days(Extractor(client), DAYS, UTC, str(tmp_path)))
        truths = {day: day_truth(emulator, day, "UTC") for day in DAYS}
    assert sorted(r.day for r in results) == DAYS and all(r.ok for r in results)
    for day in DAYS:
        frame = read_table("flow_instances", str(tmp_path), day, day)
        assert sorted(frame["instance_id"]) == sorted(t.record["instanceId"] for t in truths[day])
        manifest = read_manifest(str(tmp_path), "flow_instances", day)
        assert manifest is not None
        assert manifest["reconciliation"]["instances"] == len(truths[day])


def test_a_failing_day_is_reported_and_the_others_committed(tmp_path: Path) -> None:
    broken = day_window(DAYS[1], UTC)
    config = emulator_config(failing_window_ms=(broken.start_ms, broken.end_ms - 1))
    with Emulator(config) as emulator, EnosClient(settings_for(emulator)) as client:
        results = {r.day: r for r in load_days(Extractor(client), DAYS, UTC, str(tmp_path))}
    assert not results[DAYS[1]].ok and "62109" in str(results[DAYS[1]].error)
    assert results[DAYS[0]].ok and results[DAYS[2]].ok
    assert not (tmp_path / "flow_instances" / f"trigger_date={DAYS[1]}").exists()
    assert read_manifest(str(tmp_path), "flow_instances", DAYS[2]) is not None


def test_clock_skew_is_noted_and_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Emulator(emulator_config(clock_skew_ms=120_000)) as emulator:
        with EnosClient(settings_for(emulator)) as client, caplog.at_level(logging.WARNING):
            (result,) = load_days(Extractor(client), DAYS[:1], UTC, str(tmp_path))
    assert abs(result.reconciliation["clock_skew_ms"] - 120_000) < 5_000
    assert "clock is +1" in caplog.text


def test_a_day_waiting_on_disk_is_written_in_parts_and_exact(tmp_path: Path) -> None:
    # No record is held in memory and the day is written 9 instances at a time; each page's
    # last second, read again by the next request, is compared with the records on disk.
    config = emulator_config(tie_order="by_page")
    with Emulator(config) as emulator, EnosClient(settings_for(emulator)) as client:
        extractor = Extractor(client, records_memory_bytes=0)
        (result,) = load_days(extractor, DAYS[:1], UTC, str(tmp_path), chunk_instances=9)
        truth = day_truth(emulator, DAYS[0], "UTC")
    assert result.ok, result.error
    assert result.rows == expected_rows(truth)
    frame = read_table("flow_instances", str(tmp_path), DAYS[0], DAYS[0])
    received = {t.record["instanceId"]: t.record for t in truth}
    assert sorted(frame["instance_id"]) == sorted(received)
    for row in frame.itertuples():
        assert row.flow_name == received[row.instance_id]["flowName"]
        assert row.graph == received[row.instance_id]["graph"]
    triggers = frame["trigger_time"].tolist()
    assert triggers == sorted(triggers)
    groups = pq.ParquetFile(result.paths["flow_instances"]).metadata
    assert groups.num_row_groups == -(-len(truth) // 9)
    assert all(groups.row_group(i).num_rows <= 9 for i in range(groups.num_row_groups))
    assert result.reconciliation["duplicates_dropped"] > 0, "no row read twice: nothing read back"


def test_graphs_of_a_hundred_kilobytes_are_written_in_chunks_of_bounded_bytes(
    tmp_path: Path,
) -> None:
    """A chunk is bounded by what its records weigh, not by their count, so no Arrow string
    array of a chunk outgrows its bound (one array holds 2 GiB at most); records beyond the
    memory budget wait on disk, and the day comes out exact."""
    config = EmulatorConfig(
        seed=9, start_day=DAYS[0], end_day=DAYS[0], per_day=60, record_weight=20
    )
    chunk_bytes = 1 << 20
    with Emulator(config) as emulator, EnosClient(settings_for(emulator)) as client:
        extractor = Extractor(client, records_memory_bytes=2 << 20)
        (result,) = load_days(extractor, DAYS[:1], UTC, str(tmp_path), chunk_bytes=chunk_bytes)
        truth = day_truth(emulator, DAYS[0], "UTC")
    assert result.ok, result.error
    assert result.rows == expected_rows(truth)
    graphs = {t.record["instanceId"]: t.record["graph"] for t in truth}
    assert sum(map(len, graphs.values())) / len(graphs) > 80_000, "graphs of ~100 kB"
    assert max(map(len, graphs.values())) < chunk_bytes
    instances = pq.ParquetFile(result.paths["flow_instances"])
    assert instances.metadata.num_row_groups > 2
    for group in range(instances.metadata.num_row_groups):
        frame = instances.read_row_group(group, columns=["instance_id", "graph"]).to_pandas()
        assert sum(len(graphs[i]) for i in frame["instance_id"]) <= chunk_bytes
        assert frame["graph"].tolist() == [graphs[i] for i in frame["instance_id"]]


def test_a_chunk_beyond_what_one_arrow_array_holds_is_refused(tmp_path: Path) -> None:
    with Emulator(emulator_config()) as emulator, EnosClient(settings_for(emulator)) as client:
        with pytest.raises(ConfigError, match="chunk_bytes"):
            next(load_days(Extractor(client), DAYS, UTC, str(tmp_path), chunk_bytes=2**31))
    assert not any(tmp_path.iterdir())
