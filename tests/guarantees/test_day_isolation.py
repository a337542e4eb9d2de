"""Whatever goes wrong inside one day's work fails that day only, with its message.

The failure here is not one of the product's own errors: a storage backend that raises a plain
``RuntimeError`` while one day's data file is written, reached through fsspec's URL resolution
exactly as ``s3://`` would be. The other days are committed and exact.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import fsspec

from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.extract import Extractor
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.load import load_days
from flowinst_etl.tables.schema import TABLES
from flowinst_etl.windows import zone
from tests.guarantees.harness import assert_days_exact, days_from, visible_days
from tests.guarantees.killing_storage import KillingFileSystem
from tests.support import settings_for

PROTOCOL = "brokenday"
DAYS = days_from(date(2026, 11, 2), 3)
BROKEN = DAYS[1]


class BrokenDayFileSystem(KillingFileSystem):
    """The local disk, except that writing any file of ``BROKEN`` (staged data, commit record)
    raises ``RuntimeError``."""

    protocol = (PROTOCOL,)

    def _open(self, path: Any, mode: str = "rb", **kwargs: Any) -> Any:
        if "w" in mode and BROKEN.isoformat() in str(path):
            raise RuntimeError("the disk controller gave up")
        return super()._open(path, mode, **kwargs)


fsspec.register_implementation(PROTOCOL, BrokenDayFileSystem, clobber=True)


def test_an_unexpected_exception_fails_its_day_only(tmp_path: Path) -> None:
    config = EmulatorConfig(
        seed=5, start_day=DAYS[0] - timedelta(days=1), end_day=DAYS[-1] + timedelta(days=1)
    )
    root = f"{PROTOCOL}://{tmp_path.as_posix()}"
    with Emulator(config) as emulator, EnosClient(settings_for(emulator)) as client:
        results = {r.day: r for r in load_days(Extractor(client), DAYS, zone("UTC"), root)}
        assert sorted(results) == DAYS
        assert results[BROKEN].error == "RuntimeError: the disk controller gave up"
        # days are extracted concurrently and yielded as they end, in no set order
        assert sorted(day for day, r in results.items() if r.ok) == [DAYS[0], DAYS[2]]
        assert_days_exact(emulator, tmp_path, [DAYS[0], DAYS[2]], "UTC")
    assert all(BROKEN.isoformat() not in visible_days(tmp_path, table) for table in TABLES)
