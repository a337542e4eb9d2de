"""A gateway drawn at random from every switch the emulator has: each committed day is exact
around what changed while it was read, and every other day is refused with one line.

Derandomized here; ``bench/bench_adversarial.py`` runs the same property with more examples.
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.extract import Extractor
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.load import load_days
from flowinst_etl.tables.schema import TABLES
from flowinst_etl.windows import zone
from tests.guarantees.harness import assert_days_bracket_changes, days_from, visible_days
from tests.support import day_truth, settings_for

DAYS = days_from(date(2026, 11, 10), 2)
TIMEZONE = "Asia/Shanghai"

GATEWAYS = st.fixed_dictionaries(
    {},
    optional={
        "page_base": st.sampled_from(["one", "one_strict", "zero"]),
        "count_mode": st.sampled_from(["total", "page"]),
        "sorter_names": st.sampled_from(["snake", "camel", "both"]),
        "to_bound": st.sampled_from(["exclusive", "inclusive"]),
        "from_bound": st.sampled_from(["inclusive", "exclusive"]),
        "tie_order": st.sampled_from(["stable", "by_page"]),
        "envelope": st.sampled_from(["v2.1", "v2.0"]),
        "page_size_cap": st.integers(2, 30),
        "null_lists": st.booleans(),
        "expression_matches": st.sampled_from(["both", "id", "name"]),
        "hide_every": st.sampled_from([0, 5]),
        "insert_every": st.integers(0, 6),
        "move_every": st.integers(0, 6),
        "delete_every": st.integers(0, 6),
        "status_change_rate": st.sampled_from([0.0, 0.2]),
        "error_rate": st.sampled_from([0.0, 0.05]),
        "blank_filters": st.sampled_from([(), ("status",), ("owner",), ("expression",)]),
        "window_unit": st.sampled_from(["ms", "s"]),
    },
)


def check_gateway(switches: dict[str, Any], page_size: int, per_day: int, seed: int) -> None:
    """Back-fill ``DAYS`` from one drawn gateway and check the one property."""
    config = EmulatorConfig(
        seed=seed,
        start_day=DAYS[0] - timedelta(days=1),
        end_day=DAYS[-1] + timedelta(days=1),
        per_day=per_day,
        **switches,
    )
    hide = switches.get("hide_every", 0)
    with Emulator(config) as emulator, tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        before = {
            day: {
                t.record["instanceId"]
                for t in day_truth(emulator, day, TIMEZONE)
                if not hide or t.record["flowId"] % hide
            }
            for day in DAYS
        }
        with EnosClient(settings_for(emulator, page_size=page_size)) as client:
            results = list(
                load_days(Extractor(client, max_workers=4), DAYS, zone(TIMEZONE), folder)
            )
        for result in results:
            if result.error is not None:
                assert "\n" not in result.error, result.error
                for table in TABLES:
                    assert result.day.isoformat() not in visible_days(root, table)
        assert_days_bracket_changes(
            emulator,
            root,
            before,
            TIMEZONE,
            lambda t: not hide or t.record["flowId"] % hide != 0,
        )


@settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    switches=GATEWAYS,
    page_size=st.integers(2, 60),
    per_day=st.integers(20, 160),
    seed=st.integers(0, 1000),
)
def test_any_gateway_ends_each_day_exact_or_refused(
    switches: dict[str, Any], page_size: int, per_day: int, seed: int
) -> None:
    check_gateway(switches, page_size, per_day, seed)
