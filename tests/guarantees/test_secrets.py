"""Secrets stay secret: the secret key and every access token, signature and token-request proof the
gateway saw appear nowhere in what a run leaves behind, and TLS verification is on by default.

Runs go through a recording proxy in front of the emulator, which yields every access token the
gateway issued and every signed value the client sent. What is scanned: stdout and stderr of the
command line, Python logging, Dagster's event-log storage on disk and the events' metadata, the
manifests, and the Parquet files both as bytes and as decoded values (the files are compressed).
"""

from __future__ import annotations

import logging
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from flowinst_etl.config import EnosSettings, PipelineSettings
from flowinst_etl.emulator import Credentials, Emulator, EmulatorConfig
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.windows import day_window, zone
from pipelines.assets import build_flow_instance_tables
from pipelines.partitions import daily_partitions
from pipelines.resources import EnosGateway, run_resources
from tests.guarantees.harness import (
    RecordingProxy,
    backfill_args,
    cli_environment,
    describe,
    run_cli,
    self_signed_tls,
    text_of_files,
)

DAY = date(2026, 11, 24)
NEXT = DAY + timedelta(days=1)
TIMEZONE = "UTC"
SECRET = f"SECRET-{uuid.uuid4().hex}-unique"
WRONG_SECRET = f"SECRET-{uuid.uuid4().hex}-wrong"
CREDENTIALS = Credentials(
    access_key="AK-guarantees", secret_key=SECRET, org_id="o-guarantees", user_id="u-guarantees"
)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    config = EmulatorConfig(
        seed=71,
        start_day=DAY - timedelta(days=1),
        end_day=NEXT + timedelta(days=1),
        per_day=80,
        credentials=CREDENTIALS,
        malformed_graph_rate=0.1,
    )
    with Emulator(config) as running:
        yield running


@pytest.fixture
def proxy(emulator: Emulator) -> Iterator[RecordingProxy]:
    with RecordingProxy(emulator.base_url) as recording:
        yield recording


def forbidden(proxy: RecordingProxy) -> dict[str, str]:
    """Every secret value a run had, by what it is; at least one token and signature."""
    seen = proxy.secrets_seen()
    assert seen["token"] and seen["signature"] and seen["encryption"], seen
    values = {"secret key": SECRET, "wrong secret key": WRONG_SECRET}
    for kind, found in seen.items():
        values.update({f"{kind} {value[:6]}…": value for value in found})
    return values


def parquet_values(root: Path) -> str:
    """Every value of every Parquet file under ``root``, as text."""
    texts = []
    for path in sorted(root.rglob("*.parquet")):
        texts += [repr(row) for row in pq.read_table(path).to_pylist()]
    return "\n".join(texts)


def assert_nowhere(secrets: dict[str, str], places: Iterable[tuple[str, bytes | str]]) -> int:
    """No secret occurs in any place (text or bytes); returns how many places were scanned."""
    scanned = 0
    for where, content in places:
        data = content.encode() if isinstance(content, str) else content
        for what, value in secrets.items():
            assert value.encode() not in data, f"{what} found in {where}"
        scanned += 1
    return scanned


def files_under(*roots: Path) -> Iterator[tuple[str, bytes]]:
    for root in roots:
        for path, data in text_of_files(root):
            yield str(path), data


def test_a_backfill_leaves_no_secret_behind(
    emulator: Emulator, proxy: RecordingProxy, tmp_path: Path
) -> None:
    root, home = tmp_path / "data", tmp_path / "dagster_home"
    home.mkdir()
    env = cli_environment(proxy.base_url, CREDENTIALS, DAGSTER_HOME=str(home))
    args = backfill_args(DAY, NEXT, root, "--timezone", TIMEZONE)
    runs: dict[str, subprocess.CompletedProcess[str]] = {}

    runs["backfill"] = run_cli(*args, env=env, cwd=tmp_path)
    runs["wrong secret"] = run_cli(
        *args, env={**env, "ENOS_SECRET_KEY": WRONG_SECRET}, cwd=tmp_path
    )
    window = day_window(NEXT, zone(TIMEZONE))
    emulator.reconfigure(failing_window_ms=(window.start_ms, window.end_ms - 1))
    try:
        runs["failing day"] = run_cli(*args, env=env, cwd=tmp_path)
    finally:
        emulator.reconfigure(failing_window_ms=None)

    assert [done.returncode for done in runs.values()] == [0, 2, 1], [
        describe(done) for done in runs.values()
    ]
    assert "1003" in runs["wrong secret"].stderr and "62109" in runs["failing day"].stderr
    places = [
        *(
            (f"{name} {stream}", getattr(done, stream))
            for name, done in runs.items()
            for stream in ("stdout", "stderr")
        ),
        *files_under(root, home),
        ("decoded Parquet values", parquet_values(root)),
    ]
    assert assert_nowhere(forbidden(proxy), places) > 10
    storage = b"".join(data for _, data in files_under(home))
    assert b"flow_instances" in storage, "the Dagster run was not stored under DAGSTER_HOME"
    some_instance = emulator.truth(window.start_ms - 86_400_000, window.start_ms)[0]
    assert some_instance.record["instanceId"] in parquet_values(root)


def materialize(root: Path, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    partitions = daily_partitions(PipelineSettings(timezone=TIMEZONE, start_date=DAY))
    return dg.materialize(
        [build_flow_instance_tables(partitions, str(root))],
        instance=instance,
        resources=run_resources(PipelineSettings(data_dir=str(root), max_workers=2)),
        partition_key=DAY.isoformat(),
        raise_on_error=False,
    )


def test_a_dagster_run_leaves_no_secret_behind(
    proxy: RecordingProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    root, home = tmp_path / "data", tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in cli_environment(proxy.base_url, CREDENTIALS).items():
        if name.startswith("ENOS_"):
            monkeypatch.setenv(name, value)
    with caplog.at_level(logging.DEBUG), dg.DagsterInstance.get() as instance:
        good = materialize(root, instance)
        monkeypatch.setenv("ENOS_SECRET_KEY", WRONG_SECRET)
        refused = materialize(root, instance)
    assert good.success and not refused.success
    events = [str(event) for result in (good, refused) for event in result.all_events]
    assert any("1003" in event for event in events)
    logged = [caplog.text, *(str(record.__dict__) for record in caplog.records)]
    places = [
        *(("Python logging", text) for text in logged),
        *(("Dagster event", event) for event in events),
        *files_under(root, home),
        ("decoded Parquet values", parquet_values(root)),
    ]
    assert assert_nowhere(forbidden(proxy), places) > 10
    assert b"dagster/row_count" in b"".join(data for _, data in files_under(home))


# urllib3 warns on every unverified request; that warning is expected here.
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verification_is_on_unless_turned_off_with_a_warning(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    required = {
        name: value
        for name, value in cli_environment(emulator.base_url, CREDENTIALS).items()
        if name.startswith("ENOS_")
    }
    assert EnosSettings.from_env(required).verify_tls is True
    assert EnosGateway.from_env().verify_tls is True

    args = backfill_args(DAY, DAY, tmp_path / "data", "--timezone", TIMEZONE)
    with RecordingProxy(emulator.base_url, tls=self_signed_tls(tmp_path)) as gateway:
        refused = run_cli(*args, env=cli_environment(gateway.base_url, CREDENTIALS), cwd=tmp_path)
    assert refused.returncode == 2, describe(refused)
    assert f"TLS verification of {gateway.base_url[8:]} failed" in refused.stderr
    assert not (tmp_path / "data").exists()

    off = run_cli(
        *args,
        env=cli_environment(emulator.base_url, CREDENTIALS, ENOS_VERIFY_TLS="false"),
        cwd=tmp_path,
    )
    assert off.returncode == 0, describe(off)
    warning = "flowinst-etl: warning: TLS certificate verification is OFF"
    assert warning in off.stderr
    settings = replace(EnosSettings.from_env(required), verify_tls=False)
    with caplog.at_level(logging.WARNING):
        EnosClient(settings).close()
    assert "TLS certificate verification is OFF (ENOS_VERIFY_TLS=false)" in caplog.text
