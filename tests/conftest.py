"""Shared fixtures: EnOS emulators started per test over fixed days, stopped afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest

from flowinst_etl.emulator import Emulator, EmulatorConfig
from tests.support import S3, s3_bucket

#: The days a test emulator serves unless the test says otherwise (fixed, so data never drifts).
TEST_START_DAY = date(2026, 3, 1)
TEST_END_DAY = date(2026, 3, 3)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` first, the others in their order: workers of a parallel run start
    the longest tests at once instead of one of them finishing alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def emulator() -> Iterator[Callable[..., Emulator]]:
    """A factory: ``emulator(**settings)`` starts an emulator over 2026-03-01..03 (GMT+8 days,
    200 instances a day unless ``settings`` say otherwise); every one stops after the test."""
    started: list[Emulator] = []

    def start(**settings: Any) -> Emulator:
        values: dict[str, Any] = {"start_day": TEST_START_DAY, "end_day": TEST_END_DAY}
        emu = Emulator(EmulatorConfig(**{**values, **settings})).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


@pytest.fixture
def s3() -> Iterator[S3]:
    """A bucket on a real S3-compatible server on loopback, stopped after the test."""
    with s3_bucket() as bucket:
        yield bucket
