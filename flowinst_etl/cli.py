"""The flowinst-etl command line; ``main(argv)`` returns the process exit code.

Exit codes: 0 success, 1 some days failed (the others are committed), 2 bad input or an unusable
gateway or dataset root (nothing was written), 130 interrupted by SIGINT or SIGTERM (the days
committed before stay committed, no day is half-written).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import io
import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import NoReturn

from rich.console import Console

from flowinst_etl.changes import plan_refresh
from flowinst_etl.config import (
    RANGES,
    EnosSettings,
    PipelineSettings,
    collect,
    load_dotenv_file,
    optional_setting,
    out_of_range,
)
from flowinst_etl.emulator import DEMO_CREDENTIALS, Emulator, EmulatorConfig
from flowinst_etl.emulator import command as emulator_command
from flowinst_etl.exceptions import ConfigError, FlowinstError
from flowinst_etl.extract import Extractor
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.load import DayResult, load_days
from flowinst_etl.memory import return_freed_memory
from flowinst_etl.preflight import check_dagster_home, check_data_root, check_days
from flowinst_etl.progress import (
    BackfillProgress,
    StderrLines,
    refresh_report,
    requests_report,
    summary_table,
)
from flowinst_etl.storage.root import RootRecord
from flowinst_etl.storage.write import run_format
from flowinst_etl.windows import consecutive_ranges, parse_day, zone

EXIT_OK, EXIT_DAYS_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
PROG = "flowinst-etl"
DEMO_MAX_DAYS = 60
DEMO_MAX_PER_DAY = 5000


class _Parser(argparse.ArgumentParser):
    """argparse with errors as one line (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{PROG}: error: {message} (see --help)\n")


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in ``low..high`` (argparse names the flag on error)."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        problem = out_of_range("", value, low, high)
        if problem:
            raise argparse.ArgumentTypeError(problem.strip())
        return value

    return convert


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog=PROG, description="EnOS flow instances as daily Parquet partitions.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version(PROG)}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    emulator_command.configure_parser(
        commands.add_parser("emulator", help="serve the built-in EnOS API emulator")
    )
    backfill = commands.add_parser(
        "backfill", help="extract and commit every day from START to END (inclusive)"
    )
    _add_range(backfill)
    backfill.set_defaults(handler=_backfill)
    refresh = commands.add_parser(
        "refresh",
        help="re-extract the committed days from START to END that the gateway changed since "
        "they were read, and extract those not committed yet",
    )
    _add_range(refresh)
    refresh.set_defaults(handler=_refresh)
    demo = commands.add_parser(
        "demo",
        help="backfill the last days from the built-in emulator into ./data, recorded in "
        "DAGSTER_HOME (unset: ./.dagster_home)",
    )
    demo.add_argument(
        "--days",
        type=_whole_number(1, DEMO_MAX_DAYS),
        default=7,
        help="how many days up to yesterday (default %(default)s)",
    )
    demo.add_argument(
        "--per-day",
        type=_whole_number(1, DEMO_MAX_PER_DAY),
        default=EmulatorConfig.per_day,
        help="instances per emulated day (default %(default)s, as the emulator command's: both "
        "serve the same data for a day)",
    )
    _add_pipeline_options(demo)
    demo.set_defaults(handler=_demo)
    return parser


def _add_range(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("start", metavar="START", help="first day, YYYY-MM-DD")
    parser.add_argument("end", metavar="END", help="last day, YYYY-MM-DD")
    _add_pipeline_options(parser)


def _add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    low, high = RANGES["FLOWINST_MAX_WORKERS"]
    parser.add_argument(
        "--data-dir",
        help="dataset root, a path or s3://bucket/prefix (default FLOWINST_DATA_DIR, else data)",
    )
    parser.add_argument(
        "--timezone",
        help="IANA timezone of partition days (default FLOWINST_TIMEZONE, else UTC)",
    )
    parser.add_argument(
        "--workers",
        type=_whole_number(int(low), int(high)),
        help="requests in flight (default FLOWINST_MAX_WORKERS, else 8)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show informational logs, Dagster's log and the traceback of each failure",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return its exit code.

    Settings come from the environment and from ``.env`` in the working directory; a variable
    of the file wins over the environment, as in ``dg`` and ``dagster``.
    """
    _survive_any_encoding()
    return_freed_memory()
    args = build_parser().parse_args(argv)
    _show_logs(verbose=getattr(args, "verbose", False))
    # SIGTERM ends a run the way Ctrl-C does (Dagster maps both to one handler during a run too).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        load_dotenv_file()
        return int(args.handler(args))
    except FlowinstError as error:
        print(f"{PROG}: error: {_one_line(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED


def _survive_any_encoding() -> None:
    """Text the console's encoding cannot show (a root named in another script, under
    ``PYTHONIOENCODING=ascii``) is printed as backslash escapes, as Python does on stderr,
    instead of stopping the command with a ``UnicodeEncodeError``."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def _show_logs(verbose: bool) -> None:
    """Warnings of the library (a retried request, a capped wait, TLS off) as one stderr line
    each; failed days are reported by the command itself, so error records are left out."""
    logger = logging.getLogger("flowinst_etl")
    for handler in [h for h in logger.handlers if isinstance(h, StderrLines)]:
        logger.removeHandler(handler)
    level = logging.INFO if verbose else logging.WARNING
    handler = StderrLines(level, detailed=verbose)
    if not verbose:
        handler.addFilter(lambda record: record.levelno < logging.ERROR)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # retries are logged by the transport


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _pipeline_settings(args: argparse.Namespace) -> PipelineSettings:
    """The ``FLOWINST_*`` settings with the command's flags in place of their variables."""
    flags = {
        "data_dir": ("FLOWINST_DATA_DIR", args.data_dir),
        "timezone": ("FLOWINST_TIMEZONE", args.timezone),
        "max_workers": ("FLOWINST_MAX_WORKERS", args.workers),
    }
    given = {name: value for name, (_, value) in flags.items() if value is not None}
    if args.data_dir is not None and not args.data_dir.strip():
        raise ConfigError("--data-dir is empty: give a path or s3://bucket/prefix")
    overridden = {flags[name][0] for name in given}
    settings = PipelineSettings.from_env(
        {name: value for name, value in os.environ.items() if name not in overridden}
    )
    return replace(settings, **given)


def _data_dir_name(args: argparse.Namespace) -> str:
    return "--data-dir" if args.data_dir is not None else "FLOWINST_DATA_DIR"


def _root_record(settings: PipelineSettings) -> RootRecord:
    return RootRecord(partition_timezone=settings.timezone, table_format=settings.table_format)


def _day(text: str, name: str) -> date:
    try:
        return parse_day(text)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from exc


def _checked_range(args: argparse.Namespace) -> tuple[list[date], PipelineSettings, EnosSettings]:
    """The days, settings and gateway of a range command, every pre-flight check passed but
    the gateway's (all problems of the input in one error)."""
    problems: list[str] = []
    first = collect(problems, _day, args.start, "START")
    last = collect(problems, _day, args.end, "END")
    settings = collect(problems, _pipeline_settings, args)
    enos = collect(problems, EnosSettings.from_env)
    if problems or first is None or last is None or settings is None or enos is None:
        raise ConfigError("; ".join(problems))
    check_days(first, last, settings)
    check_data_root(settings.data_dir, _data_dir_name(args), _root_record(settings))
    run_format(settings.data_dir, settings.table_format)
    check_dagster_home()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)], settings, enos


def _backfill(args: argparse.Namespace) -> int:
    days, settings, enos = _checked_range(args)
    with EnosClient(enos) as client:
        Extractor(client).check_access()
    return _run_days(days, settings, args.verbose, "flowinst-etl backfill").code


def _refresh(args: argparse.Namespace) -> int:
    days, settings, enos = _checked_range(args)
    partition_tz = zone(settings.timezone)
    with EnosClient(enos) as client:
        # One client and extractor for the check and every day read: the gateway's token,
        # timezone and conventions are asked once.
        extractor = Extractor(
            client,
            max_workers=settings.max_workers,
            records_memory_bytes=settings.records_memory_bytes,
        )
        extractor.check_access()
        try:
            plan = plan_refresh(extractor, settings.data_dir, days, partition_tz, verify=True)
        except FlowinstError as error:  # the gateway answered the checks above: not bad input
            print(
                f"{PROG}: the check for changes failed, no day was refreshed: "
                f"{_one_line(str(error))}",
                file=sys.stderr,
            )
            return EXIT_DAYS_FAILED
        print(refresh_report(plan))
        if plan.untrusted:
            _warn_untrusted(plan.untrusted)

        def load(chosen: list[date]) -> _Loaded:
            def run(on_day: Callable[[DayResult], None]) -> str | None:
                for result in load_days(
                    extractor,
                    chosen,
                    partition_tz,
                    settings.data_dir,
                    table_format=settings.table_format,
                    retention_hours=settings.delta_retention_hours,
                ):
                    on_day(result)
                return None

            return _shown(chosen, settings, "flowinst-etl refresh", run)

        loaded = load(plan.to_read()) if plan.to_read() else _Loaded([], EXIT_OK)
        proofs = [r.changes.violation for r in loaded.results if r.changes and r.changes.violation]
        rest = [day for day in days if day not in plan.to_read()]
        if proofs and plan.untrusted is None and loaded.code != EXIT_INTERRUPTED and rest:
            _warn_untrusted(proofs[0])
            more = load(rest)
            loaded = _Loaded([*loaded.results, *more.results], max(loaded.code, more.code))
    print(requests_report(plan, loaded.results))
    return loaded.code


def _warn_untrusted(reason: str) -> None:
    print(
        f"{PROG}: warning: the change test cannot be relied on on this gateway, so every day "
        f"of the range is re-read: {_one_line(reason)} (see docs/refresh.md)",
        file=sys.stderr,
    )


@dataclass(frozen=True)
class _Loaded:
    """The days a command extracted and committed (or failed), and its exit code."""

    results: list[DayResult]
    code: int


def _run_backfill(first: date, last: date, settings: PipelineSettings, verbose: bool) -> int:
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return _run_days(days, settings, verbose, "flowinst-etl backfill").code


def _run_days(days: list[date], settings: PipelineSettings, verbose: bool, title: str) -> _Loaded:
    """Extract and commit ``days`` through the Dagster assets, a run per range of consecutive
    days."""
    from pipelines.backfill import run_backfill, run_error  # the Dagster layer, loaded when needed

    gc.freeze()  # the modules just loaded live for the whole run: keep them out of collections

    def run(on_day: Callable[[DayResult], None]) -> str | None:
        stopped = None
        for first, last in consecutive_ranges(days):
            outcome = run_backfill(first, last, settings, on_day, verbose=verbose)
            if not outcome.success:
                stopped = stopped or run_error(outcome) or "see the Dagster log (--verbose)"
        return stopped

    return _shown(days, settings, title, run)


def _shown(
    days: list[date],
    settings: PipelineSettings,
    title: str,
    run: Callable[[Callable[[DayResult], None]], str | None],
) -> _Loaded:
    """``run(on_day)`` extracting and committing ``days`` (it returns why it stopped short, if
    it did), shown with a bar per day, then a summary titled ``title`` and each failure."""
    console = Console()
    progress = BackfillProgress(days, console)
    try:
        with progress:
            stopped = run(progress.on_day)
    except KeyboardInterrupt:
        _report_interrupt(progress.results, days)
        return _Loaded(progress.results, EXIT_INTERRUPTED)
    console.print(summary_table(progress.results, days, title))
    for result in sorted(progress.results, key=lambda r: r.day):
        if not result.ok:
            print(f"{result.day} failed: {_one_line(str(result.error))}", file=sys.stderr)
    reported = {result.day for result in progress.results}
    if len(reported) < len(days):
        reason = _one_line(stopped or "see the Dagster log (--verbose)")
        print(
            f"{PROG}: {len(days) - len(reported)} days never reported, the run stopped: {reason}",
            file=sys.stderr,
        )
    # one line, as given: a path to copy, not markup to render
    console.print(f"data: {settings.data_dir}", soft_wrap=True, markup=False, highlight=False)
    committed = sum(1 for result in progress.results if result.ok)
    success = stopped is None and committed == len(days)
    return _Loaded(progress.results, EXIT_OK if success else EXIT_DAYS_FAILED)


def _report_interrupt(results: Sequence[DayResult], days: Sequence[date]) -> None:
    committed = sorted(result.day.isoformat() for result in results if result.ok)
    listed = f" ({', '.join(committed)})" if committed else ""
    print(
        f"{PROG}: interrupted: {len(committed)} of {len(days)} days committed{listed}; "
        "every other day keeps its previous version",
        file=sys.stderr,
    )


def _demo(args: argparse.Namespace) -> int:
    settings = _pipeline_settings(args)
    today = datetime.now(zone(settings.timezone)).date()
    first, last = today - timedelta(days=args.days), today - timedelta(days=1)
    if first < settings.start_date:
        fitting = (today - settings.start_date).days
        shorter = f"use --days {fitting} or " if fitting >= 1 else ""
        raise ConfigError(
            f"--days {args.days} starts at {first}, before FLOWINST_START_DATE "
            f"{settings.start_date}, the first partition day: {shorter}"
            "set FLOWINST_START_DATE earlier"
        )
    check_data_root(settings.data_dir, _data_dir_name(args), _root_record(settings))
    run_format(settings.data_dir, settings.table_format)
    check_dagster_home()
    home = _demo_dagster_home()
    # Served up to today in the emulator's own timezone, as `flowinst-etl emulator --days A:0`
    # serves: the newest served day's runs are still moving, so both serve the same data only
    # when they end on the same day.
    config = EmulatorConfig(start_day=first - timedelta(days=1), per_day=args.per_day)
    with Emulator(config) as emulator:
        os.environ.update(_demo_environment(emulator.base_url))
        print(f"EnOS emulator on {emulator.base_url}; backfilling {first} .. {last}")
        code = _run_backfill(first, last, settings, args.verbose)
    if code != EXIT_INTERRUPTED:
        print(_next_steps(settings.data_dir, first, last, home))
    return code


def _demo_dagster_home() -> str:
    """Where the demo records its runs: ``DAGSTER_HOME``, else ``.dagster_home`` in the working
    directory (created), so the Dagster UI that README opens next shows the demo's days."""
    home = optional_setting("DAGSTER_HOME")
    if home is None:
        home = str(Path.cwd() / ".dagster_home")
        Path(home).mkdir(exist_ok=True)
        os.environ["DAGSTER_HOME"] = home
    return home


def _demo_environment(api_url: str) -> dict[str, str]:
    return {
        "ENOS_API_URL": api_url,
        "ENOS_ACCESS_KEY": DEMO_CREDENTIALS.access_key,
        "ENOS_SECRET_KEY": DEMO_CREDENTIALS.secret_key,
        "ENOS_ORG_ID": DEMO_CREDENTIALS.org_id,
        "ENOS_USER_ID": DEMO_CREDENTIALS.user_id,
    }


def _installed(command: str) -> str:
    """How to call a console script installed beside this interpreter, from the working
    directory (``.venv/bin/dagster`` after the quickstart)."""
    folder = Path(sys.executable).parent
    try:
        return str(folder.relative_to(Path.cwd()) / command)
    except ValueError:
        return str(folder / command)


def _next_steps(root: str, first: date, last: date, home: str) -> str:
    read = (
        f"import flowinst_etl as f; print(f.read_table('flow_instances', '{root}', "
        f"start='{first}', end='{last}').groupby('trigger_date').size())"
    )
    return f"""
Read the data (more recipes in README 'Output and reading'):
  {_installed("python")} -c "{read}"

Open the Dagster UI on these days, with the emulator for more (README 'Daily operation'):
  export DAGSTER_HOME={shlex.quote(home)}   # where the demo recorded its runs
  {_installed(PROG)} emulator --port 8090 --days 2026-11-01:0 &   # the demo's data, more days
  cp -n .env.example .env               # points ENOS_* at it (-n: keeps an existing .env)
  {_installed("dg")} dev                          # then open http://127.0.0.1:3000
"""


def entry() -> NoReturn:
    """The console script: ``main`` with the process arguments, then exit at once.

    What must run at exit (atexit handlers: logging, temporary directories) runs; the teardown
    of every module and object after it, most of a second of CPU with Dagster loaded, is skipped.
    """
    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
