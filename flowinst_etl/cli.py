"""The flowinst-etl command line; ``main(argv)`` returns the process exit code.

Exit codes: 0 success, 1 some days failed (the others are committed), 2 bad input or an unusable
gateway (nothing was written).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta

from rich.console import Console

from flowinst_etl.config import EnosSettings, PipelineSettings
from flowinst_etl.emulator import DEMO_CREDENTIALS, Emulator, EmulatorConfig
from flowinst_etl.emulator import command as emulator_command
from flowinst_etl.exceptions import ConfigError, FlowinstError
from flowinst_etl.extract import Extractor
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.gateway.transport import RETRY_RECORD
from flowinst_etl.progress import BackfillProgress, summary_table
from flowinst_etl.windows import parse_day, zone

EXIT_OK, EXIT_DAYS_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="flowinst-etl", description="EnOS flow instances as daily Parquet partitions."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    emulator_command.configure_parser(
        commands.add_parser("emulator", help="serve the built-in EnOS API emulator")
    )
    backfill = commands.add_parser(
        "backfill", help="extract and commit every day from START to END (inclusive)"
    )
    backfill.add_argument("start", metavar="START", help="first day, YYYY-MM-DD")
    backfill.add_argument("end", metavar="END", help="last day, YYYY-MM-DD")
    _add_pipeline_options(backfill)
    backfill.set_defaults(handler=_backfill)
    demo = commands.add_parser(
        "demo", help="backfill the last days from the built-in emulator into ./data"
    )
    demo.add_argument("--days", type=int, default=7, help="how many days up to yesterday (7)")
    demo.add_argument("--per-day", type=int, default=400, help="instances per emulated day")
    _add_pipeline_options(demo)
    demo.set_defaults(handler=_demo)
    return parser


def _add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        help="dataset root, a path or s3://bucket/prefix (FLOWINST_DATA_DIR, default data)",
    )
    parser.add_argument(
        "--timezone", help="IANA timezone of partition days (FLOWINST_TIMEZONE, default UTC)"
    )
    parser.add_argument("--workers", type=int, help="concurrent extractions (FLOWINST_MAX_WORKERS)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return its exit code."""
    args = build_parser().parse_args(argv)
    handlers = set(logging.getLogger().handlers)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # retries are counted per day instead
    for handler in set(logging.getLogger().handlers) - handlers:
        handler.addFilter(_not_a_retry)
    try:
        return int(args.handler(args))
    except FlowinstError as error:
        print(f"flowinst-etl: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _not_a_retry(record: logging.LogRecord) -> bool:
    """Retry notices stay off stderr, as urllib3's do: each day's reconciliation counts them."""
    return not hasattr(record, RETRY_RECORD)


def _pipeline_settings(args: argparse.Namespace) -> PipelineSettings:
    settings = PipelineSettings.from_env()
    overrides = {
        name: value
        for name, value in (
            ("data_dir", args.data_dir),
            ("timezone", args.timezone),
            ("max_workers", args.workers),
        )
        if value is not None
    }
    return replace(settings, **overrides)


def _backfill(args: argparse.Namespace) -> int:
    settings = _pipeline_settings(args)
    first, last = parse_day(args.start), parse_day(args.end)
    if first > last:
        raise ConfigError(f"START {first} is after END {last}")
    today = datetime.now(zone(settings.timezone)).date()
    if last >= today:
        raise ConfigError(
            f"END {last} is not over yet in {settings.timezone}; "
            f"the last complete day is {today - timedelta(days=1)}"
        )
    with EnosClient(EnosSettings.from_env()) as client:
        Extractor(client).check_access()
    return _run_backfill(first, last, settings)


def _run_backfill(first: date, last: date, settings: PipelineSettings) -> int:
    from pipelines.backfill import run_backfill  # the Dagster layer, loaded only when needed

    console, errors = Console(), Console(stderr=True)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    with BackfillProgress(days, console) as progress:
        outcome = run_backfill(first, last, settings, progress.on_day)
    console.print(summary_table(progress.results, days))
    for result in sorted(progress.results, key=lambda r: r.day):
        if not result.ok:
            errors.print(f"[red]{result.day} failed: {result.error}")
    reported = {result.day for result in progress.results}
    if len(reported) < len(days):
        errors.print(
            f"[red]{len(days) - len(reported)} days never reported: the run stopped early "
            "(see the Dagster log above)"
        )
    console.print(f"data: {settings.data_dir}")
    committed = sum(1 for result in progress.results if result.ok)
    return EXIT_OK if outcome.success and committed == len(days) else EXIT_DAYS_FAILED


def _demo(args: argparse.Namespace) -> int:
    settings = _pipeline_settings(args)
    if not 1 <= args.days <= 60:
        raise ConfigError("--days must be between 1 and 60")
    today = datetime.now(zone(settings.timezone)).date()
    first, last = today - timedelta(days=args.days), today - timedelta(days=1)
    config = EmulatorConfig(
        start_day=first - timedelta(days=1), end_day=today, per_day=args.per_day
    )
    with Emulator(config) as emulator:
        os.environ.update(_demo_environment(emulator.base_url))
        print(f"EnOS emulator on {emulator.base_url}; backfilling {first} .. {last}")
        code = _run_backfill(first, last, settings)
    print(_DEMO_NEXT_STEPS.format(root=settings.data_dir))
    return code


def _demo_environment(api_url: str) -> dict[str, str]:
    return {
        "ENOS_API_URL": api_url,
        "ENOS_ACCESS_KEY": DEMO_CREDENTIALS.access_key,
        "ENOS_SECRET_KEY": DEMO_CREDENTIALS.secret_key,
        "ENOS_ORG_ID": DEMO_CREDENTIALS.org_id,
        "ENOS_USER_ID": DEMO_CREDENTIALS.user_id,
    }


_DEMO_NEXT_STEPS = """
Read the data:
  pandas  python -c "import flowinst_etl as f; print(f.read_table('flow_instances', '{root}'))"
  DuckDB  SELECT trigger_date, count(*) FROM read_parquet('{root}/flow_instances/*/*.parquet',
          hive_partitioning=true) GROUP BY ALL ORDER BY 1;

Open the Dagster UI against the emulator:
  flowinst-etl emulator --port 8090 &     # the built-in EnOS API emulator
  cp .env.example .env                     # points ENOS_* at it with the demo credentials
  dagster dev                              # then open http://127.0.0.1:3000
"""


if __name__ == "__main__":
    sys.exit(main())
