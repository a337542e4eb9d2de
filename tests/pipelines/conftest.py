"""Fixtures for the code location: an emulator and the ENOS_* environment pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from flowinst_etl.emulator import Emulator, EmulatorConfig

FIRST_DAY = date(2026, 11, 1)


def enos_environment(emulator: Emulator) -> dict[str, str]:
    """The variables a deployment sets, pointing at ``emulator``."""
    credentials = emulator.config.credentials
    return {
        "ENOS_API_URL": emulator.base_url,
        "ENOS_ACCESS_KEY": credentials.access_key,
        "ENOS_SECRET_KEY": credentials.secret_key,
        "ENOS_ORG_ID": credentials.org_id,
        "ENOS_USER_ID": credentials.user_id,
    }


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    config = EmulatorConfig(
        seed=21, start_day=date(2026, 10, 31), end_day=date(2026, 11, 8), per_day=150
    )
    with Emulator(config) as running:
        yield running


@pytest.fixture
def enos_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The ENOS_* variables set for one test, as a deployment would set them."""
    for name, value in enos_environment(emulator).items():
        monkeypatch.setenv(name, value)
    return emulator
