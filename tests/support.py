"""Helpers shared by tests: the real client pointed at an emulator, and its expected output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from flowinst_etl.config import EnosSettings
from flowinst_etl.emulator import Emulator, TruthInstance


def settings_for(emulator: Emulator, **overrides: Any) -> EnosSettings:
    """Client settings for ``emulator``'s credentials, with quick retries for fast fault tests."""
    credentials = emulator.config.credentials
    settings = EnosSettings(
        api_url=emulator.base_url,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        org_id=credentials.org_id,
        user_id=credentials.user_id,
        backoff_s=0.01,
        max_backoff_s=0.2,
        read_timeout_s=10.0,
        max_retries=8,
    )
    return replace(settings, **overrides)


def expected_rows(truth: list[TruthInstance]) -> dict[str, int]:
    """Rows each table should hold for ``truth``, counted straight from the graph JSON."""
    counts = {
        "flow_instances": len(truth),
        "flow_instance_tasks": 0,
        "flow_instance_relations": 0,
        "flow_instance_upstream_flows": 0,
    }
    for instance in truth:
        try:
            graph = json.loads(instance.record["graph"])
        except (TypeError, ValueError):
            continue
        counts["flow_instance_tasks"] += len(graph.get("tasks") or [])
        counts["flow_instance_relations"] += len(graph.get("relations") or [])
        counts["flow_instance_upstream_flows"] += len(graph.get("flows") or [])
    return counts


def day_bounds_ms(day: date, timezone: str) -> tuple[int, int]:
    """Epoch ms of ``day``'s local midnight and the next one in the IANA zone ``timezone``,
    computed with the standard library alone (not with the product's windows)."""
    tz = ZoneInfo(timezone)
    following = day + timedelta(days=1)
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    end = datetime(following.year, following.month, following.day, tzinfo=tz)
    return round(start.timestamp() * 1000), round(end.timestamp() * 1000)


def day_truth(emulator: Emulator, day: date, timezone: str) -> list[TruthInstance]:
    """The emulator's instances of one partition day."""
    return emulator.truth(*day_bounds_ms(day, timezone))


class S3(NamedTuple):
    """A bucket on an S3-compatible server: the dataset root in it, the fsspec options that
    reach it, and a boto3 client."""

    root: str
    options: dict[str, Any]
    client: Any


@contextmanager
def s3_bucket() -> Iterator[S3]:
    """A bucket on a real S3-compatible server on loopback (see :func:`s3_server`)."""
    import boto3

    with s3_server() as aws:
        endpoint = aws["AWS_ENDPOINT_URL"]
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="flowinst")
        options = {
            "client_kwargs": {"endpoint_url": endpoint},
            "key": "testing",
            "secret": "testing",
        }
        yield S3("s3://flowinst/dataset", options, client)


@contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """An S3-compatible server (moto) on loopback and the AWS variables that reach it; on exit
    its buckets are forgotten (moto keeps them in this process's memory) and it stops.

    moto is imported here, not at the top: the dependency-floor run of CI has no test extras."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    aws = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        yield aws
    finally:
        reset = urllib.request.Request(aws["AWS_ENDPOINT_URL"] + "/moto-api/reset", method="POST")
        urllib.request.urlopen(reset).close()
        server.stop()


def stop_process_group(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM the process group ``process`` leads (started with ``start_new_session``), and
    SIGKILL it if it has not ended within ``timeout_s``."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
