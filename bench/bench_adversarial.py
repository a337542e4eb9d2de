"""The adversarial gateway property of ``tests/guarantees/test_adversarial.py``, with more examples.

Each process draws gateways from every emulator switch, combined at random (its own Hypothesis
seed), back-fills two days from each and checks the one property: every committed day is exactly
the emulator's truth around what changed while it was read, and every other day is refused with
one line. A falsifying example is shrunk and printed with the process's seed, so it can be run
again; the exit status is 1 when any process found one.

    .venv/bin/python bench/bench_adversarial.py [--examples 100] [--processes 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.guarantees.test_adversarial import GATEWAYS, check_gateway  # noqa: E402


def run(job: tuple[int, int]) -> tuple[int, str | None]:
    """Run ``examples`` drawn gateways from Hypothesis seed ``process_seed``: the falsifying
    example's report, or None."""
    process_seed, examples = job
    logging.disable(logging.CRITICAL)

    @seed(process_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        switches=GATEWAYS,
        page_size=st.integers(2, 60),
        per_day=st.integers(20, 160),
        emulator_seed=st.integers(0, 1000),
    )
    def prop(switches: dict, page_size: int, per_day: int, emulator_seed: int) -> None:
        check_gateway(switches, page_size, per_day, emulator_seed)

    try:
        prop()
    except Exception:  # noqa: BLE001 - the report is the product of this bench
        return process_seed, traceback.format_exc(limit=3)
    return process_seed, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100, help="examples per process")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="first process's Hypothesis seed")
    args = parser.parse_args()
    jobs = [(args.seed + i, args.examples) for i in range(args.processes)]
    started = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
        results = pool.map(run, jobs)
    failed = [(s, report) for s, report in results if report is not None]
    print(
        f"{args.processes * args.examples} gateways drawn in {time.monotonic() - started:.0f} s "
        f"({args.processes} processes x {args.examples}): {len(failed)} process(es) falsified"
    )
    for process_seed, report in failed:
        print(f"--- seed {process_seed}:\n{report}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
