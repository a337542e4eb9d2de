"""Fixtures of the emulator's own tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from flowinst_etl.emulator import DEMO_CREDENTIALS, Credentials, Emulator

from .signed import SignedClient


@pytest.fixture
def client() -> Iterator[Callable[..., SignedClient]]:
    """A signed client for an emulator; sessions close afterwards."""
    made: list[SignedClient] = []

    def connect(emu: Emulator, credentials: Credentials = DEMO_CREDENTIALS) -> SignedClient:
        signed = SignedClient(emu.base_url, credentials)
        made.append(signed)
        return signed

    yield connect
    for signed in made:
        signed.close()
