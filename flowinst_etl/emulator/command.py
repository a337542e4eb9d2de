"""``flowinst-etl emulator``: serve the EnOS emulator to manual runs and other processes."""

from __future__ import annotations

import argparse
import math
import re
import signal
import sys
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from types import FrameType
from typing import Any

from flowinst_etl.emulator.config import (
    AUTH_ERROR_STYLES,
    BODY_FAULTS,
    COUNT_MODES,
    DEFECTS,
    DEMO_CREDENTIALS,
    ENVELOPES,
    EXPRESSION_MATCHES,
    FROM_BOUNDS,
    PAGE_BASES,
    SORTER_NAMES,
    TIE_ORDERS,
    TIMESTAMP_SHOWS,
    TO_BOUNDS,
    UPDATE_TIMES,
    WINDOW_UNITS,
    Credentials,
    EmulatorConfig,
)
from flowinst_etl.emulator.days import iso_day, server_zone
from flowinst_etl.emulator.server import Emulator
from flowinst_etl.exceptions import ConfigError

_OFFSET = re.compile(r"^[+-]?\d+$")
#: A flag: (flag, config field, value type, choices or None, help).
Switch = tuple[str, str, Callable[[str], Any], tuple[str, ...] | None, str]
_SWITCHES: tuple[Switch, ...] = (
    ("--page-base", "page_base", str, PAGE_BASES, "pageNo numbering"),
    ("--count-mode", "count_mode", str, COUNT_MODES, "'count': all matches or the page length"),
    ("--sorter-names", "sorter_names", str, SORTER_NAMES, "accepted sorter field names"),
    ("--to-bound", "to_bound", str, TO_BOUNDS, "whether toTriggerTime is in the window"),
    ("--tie-order", "tie_order", str, TIE_ORDERS, "order of records tied on every sort key"),
    ("--envelope", "envelope", str, ENVELOPES, "response envelope shape"),
    ("--latency-ms", "latency_ms", int, None, "delay added to every request"),
    (
        "--latency-jitter-ms",
        "latency_jitter_ms",
        int,
        None,
        "up to this much more delay, drawn per request (answers come back in any order)",
    ),
    ("--error-rate", "error_rate", float, None, "fraction of requests answered 502/503/504"),
    ("--drop-rate", "drop_rate", float, None, "fraction of connections closed unanswered"),
    (
        "--rate-limit",
        "rate_limit_per_s",
        float,
        None,
        "requests per second before HTTP 429, unset: no limit",
    ),
    ("--retry-after", "retry_after_s", int, None, "Retry-After seconds of a 429"),
    ("--token-lifetime", "token_lifetime_s", int, None, "seconds an access token lives"),
    ("--insert-every", "insert_every", int, None, "every N-th search inserts runs (0 = off)"),
    ("--insert-count", "insert_count", int, None, "runs inserted each time"),
    (
        "--status-change-rate",
        "status_change_rate",
        float,
        None,
        "share of matches moved on per search",
    ),
    (
        "--malformed-graph-rate",
        "malformed_graph_rate",
        float,
        None,
        "share of broken graph strings",
    ),
    ("--forced-error", "forced_error", int, None, "EnOS code every search answers, e.g. 62109"),
    ("--body-fault", "body_fault", str, BODY_FAULTS, "broken HTTP 200 body on every search"),
)


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names, as a tuple."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


# Gateway deviations, each independent (``--null-lists`` is a plain on/off flag).
_DEVIATIONS: tuple[Switch, ...] = (
    ("--page-size-cap", "page_size_cap", int, None, "most records a page holds"),
    ("--from-bound", "from_bound", str, FROM_BOUNDS, "whether fromTriggerTime is in the window"),
    ("--expression-matches", "expression_matches", str, EXPRESSION_MATCHES, "what it searches"),
    ("--hide-every", "hide_every", int, None, "hide flows whose id is a multiple of N after LIMIT"),
    ("--move-every", "move_every", int, None, "every N-th search moves a trigger 1 s later"),
    ("--delete-every", "delete_every", int, None, "every N-th search deletes a row paged past"),
    ("--record-timezone", "record_timezone", str, None, "IANA zone of record time strings"),
    ("--defect", "defect", str, DEFECTS, "break a documented promise, to see it refused"),
    ("--timestamp-shows", "timestamp_shows", str, TIMESTAMP_SHOWS, "what 'timestamp' holds"),
    ("--update-times", "update_times", str, UPDATE_TIMES, "whether a change moves update_time"),
    ("--blank-filters", "blank_filters", _names, None, "fields (owner,status) whose '' filters"),
    ("--window-unit", "window_unit", str, WINDOW_UNITS, "what the trigger-time bounds count"),
)
# Gateway switches: how tokens die and how a refusal or a 429 is worded.
_GATEWAY_SWITCHES: tuple[Switch, ...] = (
    (
        "--token-lifetime-calls",
        "token_lifetime_calls",
        int,
        None,
        "API calls an access token serves (0 = no limit)",
    ),
    (
        "--auth-error-style",
        "auth_error_style",
        str,
        AUTH_ERROR_STYLES,
        "shape of a refused token: HTTP 401, HTTP 200 code 1203, or HTTP 200 apim_status 4011",
    ),
    (
        "--retry-after-header",
        "retry_after_header",
        str,
        None,
        "Retry-After text of a 429, verbatim",
    ),
    ("--garbled-rate", "garbled_rate", float, None, "fraction of answers with unreadable headers"),
    (
        "--gzip-label-every",
        "gzip_label_every",
        int,
        None,
        "every N-th answer labelled Content-Encoding: gzip over a plain body (0 = off)",
    ),
)


_ALL_SWITCHES = _SWITCHES + _DEVIATIONS + _GATEWAY_SWITCHES
#: The flag of each EmulatorConfig field, so an invalid value is reported as the user typed it.
_FLAGS = {
    "host": "--host",
    "port": "--port",
    "seed": "--seed",
    "per_day": "--per-day",
    "record_weight": "--record-weight",
    "request_log": "--request-log",
    "server_timezone": "--server-timezone",
    "clock_skew_ms": "--clock-skew-ms",
    **{name: flag for flag, name, _, _, _ in _ALL_SWITCHES},
}


def _finite(text: str) -> float:
    """An argparse type: a finite number (``nan`` and ``inf`` are refused, naming the flag)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's flags to ``parser`` and make ``run`` its handler."""
    defaults = EmulatorConfig()
    parser.description = "Serve the EnOS API emulator until SIGINT or SIGTERM."
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--host", default=defaults.host, help="address to bind")
    parser.add_argument("--port", type=int, default=defaults.port, help="port; 0 picks a free one")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="dataset seed")
    parser.add_argument(
        "--days",
        default="-7:0",
        help="served days A:B, ISO dates (2026-11-01:2026-11-07) or offsets from today "
        "(write --days=-7:0)",
    )
    parser.add_argument("--per-day", type=int, default=defaults.per_day, help="instances per day")
    parser.add_argument(
        "--record-weight",
        type=int,
        default=defaults.record_weight,
        help="heavier records: N times the tasks per graph, longer names and parameters "
        "(JSON 1.9x at 2, 58x at 20)",
    )
    parser.add_argument(
        "--request-log",
        metavar="PATH",
        default=defaults.request_log,
        help="append one JSON line per search served: received and answered epoch seconds, "
        "HTTP status",
    )
    parser.add_argument(
        "--access-key", default=DEMO_CREDENTIALS.access_key, help="the accepted access key"
    )
    parser.add_argument(
        "--secret-key", default=DEMO_CREDENTIALS.secret_key, help="the accepted secret key"
    )
    parser.add_argument("--org-id", default=DEMO_CREDENTIALS.org_id, help="the organisation id")
    parser.add_argument("--user-id", default=DEMO_CREDENTIALS.user_id, help="the user id")
    parser.add_argument("--server-timezone", default=defaults.server_timezone, help="e.g. GMT+8")
    parser.add_argument("--clock-skew-ms", type=int, default=0, help="added to getCurrentTime")
    parser.add_argument(
        "--null-lists", action="store_true", help='empty pages answer "flowInsts": null'
    )
    for flag, name, kind, choices, text in _ALL_SWITCHES:
        metavar = None if choices else flag[2:].upper().replace("-", "_")
        parser.add_argument(
            flag,
            dest=name,
            type=_finite if kind is float else kind,
            choices=choices,
            metavar=metavar,
            default=getattr(defaults, name),
            help=text,
        )
    parser.add_argument(
        "--refresh-invalidates",
        action="store_true",
        help="a token refresh retires the previous token at once",
    )
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator settings the parsed flags describe.

    Raises:
        ConfigError: a value is invalid.
    """
    tz = server_zone(args.server_timezone)
    start_day, end_day = parse_days(args.days, tz) if args.days else (None, None)
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        seed=args.seed,
        start_day=start_day,
        end_day=end_day,
        per_day=args.per_day,
        record_weight=args.record_weight,
        request_log=args.request_log,
        server_timezone=args.server_timezone,
        credentials=Credentials(args.access_key, args.secret_key, args.org_id, args.user_id),
        clock_skew_ms=args.clock_skew_ms,
        **{name: getattr(args, name) for _, name, _, _, _ in _ALL_SWITCHES},
        null_lists=args.null_lists,
        refresh_invalidates=args.refresh_invalidates,
    )


def _flag_named(message: str) -> str:
    """A config error with its leading field name replaced by the flag that sets it."""
    field, _, rest = message.partition(" ")
    return f"{_FLAGS[field]} {rest}" if field in _FLAGS and rest else message


def parse_days(text: str, tz: timezone) -> tuple[date, date]:
    """``A:B`` as two days; each side an ISO date or a day offset from today in ``tz``.

    Raises:
        ConfigError: not of that form.
    """
    sides = text.split(":")
    if len(sides) != 2:
        raise ConfigError(f"--days {text!r}: expected A:B such as 2026-11-01:2026-11-07 or -7:0")
    today = datetime.now(tz).date()
    first, last = (
        today + timedelta(days=int(side)) if _OFFSET.match(side.strip()) else iso_day(side.strip())
        for side in sides
    )
    return first, last


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 after a clean stop, 2 for bad settings, an address that
    cannot be bound (a busy port) or a request log that cannot be opened."""
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"flowinst-etl emulator: error: {_flag_named(str(exc))}", file=sys.stderr)
        return 2
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            emulator = Emulator(config).start()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            where = (
                f"cannot open --request-log {exc.filename}"
                if exc.filename is not None
                else f"cannot listen on {config.host}:{config.port}"
            )
            print(f"flowinst-etl emulator: error: {where}: {reason}", file=sys.stderr)
            return 2
        first, last = config.days()
        weight = f", record weight {config.record_weight}" if config.record_weight > 1 else ""
        details = (
            f"seed {config.seed}, days {first}..{last}, {config.per_day}/day{weight}, "
            f"{config.server_timezone}, access key {config.credentials.access_key}"
        )
        print(f"EnOS emulator listening on {emulator.base_url} ({details})", flush=True)
        while not stopping.wait(0.2):
            pass
        emulator.stop()
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
