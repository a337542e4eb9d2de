"""Emulator settings as one frozen, validated value, so a run is reproducible from its config."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flowinst_etl.emulator.days import server_zone
from flowinst_etl.exceptions import ConfigError

PAGE_BASES = ("one", "one_strict", "zero")
COUNT_MODES = ("total", "page")
SORTER_NAMES = ("snake", "camel", "both")
TO_BOUNDS = ("exclusive", "inclusive")
TIE_ORDERS = ("stable", "by_page")
ENVELOPES = ("v2.1", "v2.0")
BODY_FAULTS = ("html", "empty", "truncated", "non_finite")
FROM_BOUNDS = ("inclusive", "exclusive")
EXPRESSION_MATCHES = ("both", "id", "name")
AUTH_ERROR_STYLES = ("http401", "code1203", "apim4011")
DEFECTS = (
    "oversized_pages",
    "unsorted",
    "ignores_type",
    "ignores_expression",
    "fractional_triggers",
    "cut_before_sort",
    "caps_expression",
    "mixed_page_bases",
)
TIMESTAMP_SHOWS = ("update", "create")
UPDATE_TIMES = ("move", "frozen")
BLANK_FIELDS = ("owner", "status", "expression")
WINDOW_UNITS = ("ms", "s")

#: Settings fixed when the dataset is generated or the socket bound; ``reconfigure`` refuses them.
STRUCTURAL_FIELDS = frozenset(
    {
        "host",
        "port",
        "seed",
        "start_day",
        "end_day",
        "per_day",
        "server_timezone",
        "malformed_graph_rate",
        "timestamp_shows",
        "record_weight",
        "request_log",
    }
)

_MAX_PER_DAY = 200_000
_MAX_INSTANCES = 3_000_000
_MAX_RECORD_WEIGHT = 20


@dataclass(frozen=True)
class Credentials:
    """An EnOS application's keys and the user/organisation pair the batch service checks.

    Attributes:
        access_key: the application's AccessKey (``appKey`` of token requests).
        secret_key: the application's SecretKey; never shown by ``repr``.
        org_id: the organisation id every search must name.
        user_id: the user id every search must name.
    """

    access_key: str
    secret_key: str = field(repr=False)
    org_id: str
    user_id: str

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"credentials: {item.name} must be a non-empty string")


DEMO_CREDENTIALS = Credentials(
    "demo-access-key", "demo-secret-key", "o15000000000001", "u15000000000001"
)


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes an emulator: address, dataset, protocol behaviours and faults.

    Invalid values raise ``ConfigError``; ``dataclasses.replace`` validates again.

    Attributes:
        host / port: the address to bind; port 0 picks a free one.
        seed: the dataset and fault seed; the same config serves byte-identical records.
        start_day / end_day: served server-local days, inclusive; ``None`` means seven days ago
            and today in the server timezone (resolved when the config is built).
        per_day: instances per day, all scheduling types together.
        record_weight: heavier records: N times the tasks and edges per graph, longer flow and
            task names and parameters (each record's JSON about 1.9 times as heavy at 2, 6 at
            5, 58 at 20: graphs grow faster than N); the same instances run
            at the same times whatever the weight, and 1 serves the records as they always were.
        server_timezone: what Get Timezone answers (``GMT+8``); record times are written in it.
        credentials: the one application and user/organisation pair the gateway accepts.
        clock_skew_ms: added to the server clock (getCurrentTime and timestamp checks).
        page_base: "one" (pageNo 0 read as 1), "one_strict" (pageNo 0 is 62102) or "zero".
        count_mode: ``count`` is every match ("total") or the page length ("page").
        sorter_names: sorter fields accepted: "snake" (trigger_time), "camel" (triggerTime), "both".
        to_bound: whether toTriggerTime is "exclusive" or "inclusive".
        tie_order: records tied on every sort key come "stable" (by instance id) or "by_page"
            (a permutation seeded by the page, as SQL LIMIT/OFFSET may do).
        envelope: "v2.1" (``code``/"OK") or "v2.0" (``status``/"Success").
        latency_ms: sleep before answering each request.
        latency_jitter_ms: up to this much more sleep, drawn per request, so requests sent
            together are answered in any order (as behind a load balancer).
        error_rate / drop_rate: share of requests answered 502/503/504, or dropped unanswered.
        rate_limit_per_s / retry_after_s: token bucket over all requests; excess gets HTTP 429
            with ``Retry-After: retry_after_s``. ``None`` turns it off.
        token_lifetime_s: life of issued access tokens.
        token_lifetime_calls: API calls an issued token serves before it expires; 0 = no limit.
            Like ``token_lifetime_s``, it applies to tokens issued after it is set.
        refresh_invalidates: a refresh retires the token it replaces at once.
        auth_error_style: how a refused token or signature is answered: "http401" (HTTP 401),
            "code1203" (HTTP 200 envelope with the code) or "apim4011" (HTTP 200 with
            ``apim_status``).
        garbled_rate: share of requests answered with an unreadable status line or conflicting
            ``Content-Length`` headers (alternately), then closed.
        gzip_label_every: every N-th answer of an endpoint (token, time or search) carries
            ``Content-Encoding: gzip`` over its plain body, as a misconfigured proxy sends it;
            0 labels none.
        retry_after_header: sent verbatim as the ``Retry-After`` of a 429 instead of
            ``retry_after_s`` (e.g. "1.5", "soon" or an HTTP-date).
        insert_every / insert_count: every N-th search appends that many runs to its window.
        status_change_rate: each search moves about this share of its matches one status on.
        malformed_graph_rate: share of instances whose ``graph`` string is truncated JSON.
        forced_error: an EnOS code every search answers instead of data.
        body_fault: "html", "empty" or "truncated" HTTP 200 bodies on every search, or
            "non_finite": each record gains a ``score`` of ``NaN`` (JSON Python's json reads and
            strict parsers refuse).
        failing_window_ms: searches whose trigger window overlaps this ``(start, end)`` epoch-ms
            range answer 62109, so one day of a range can fail while the others succeed.
        request_log: a file that gains one JSON line per search request served (see
            ``request_log.RequestLog``), so a benchmark can tell the requests in flight over
            time; ``None`` keeps none.

    Deviations no EnOS document rules out, each independent of the others:
        page_size_cap: the most records a page holds whatever ``pageSize`` asks (offsets follow
            the capped size); ``None`` serves the size asked.
        null_lists: a page without records answers ``"flowInsts": null``.
        from_bound: whether fromTriggerTime is "inclusive" or "exclusive".
        expression_matches: what ``expression`` is found in: "both" (instanceId or flowName),
            "id" or "name".
        hide_every: instances of flows whose id is a multiple of N are dropped from each page
            after LIMIT (a privilege filter), so pages come short; 0 hides nothing.
        move_every: every N-th search moves one instance of its window a second later, as a
            rescheduled run would; 0 moves nothing.
        delete_every: every N-th search first deletes one instance of its window, anywhere in
            it (as retention or a user deleting a run would); 0 deletes nothing.
        record_timezone: an IANA zone the record time strings are written in, while Get Timezone
            still answers ``server_timezone`` (a gateway in a zone with daylight saving time);
            ``None`` writes them in ``server_timezone``.
        timestamp_shows: what a record's ``timestamp`` shows: "update", the instance's last
            update (the ``update_time`` sort key; the documentation's samples have it after
            ``endTime``), or "create", its creation (as the documentation's field table says).
        blank_filters: request fields ("owner", "status", "expression") that filter when sent
            blank, as a server that filters on every field present would (``owner = ''``,
            ``status IN ()``): a search sending one of them as "" finds nothing, and ``owner``
            may be left out (no filter) instead of being mandatory; () reads blanks as the
            EnOS zh docs do, as no filter.
        window_unit: what ``fromTriggerTime`` and ``toTriggerTime`` count: "ms" (epoch
            milliseconds, as documented) or "s" (epoch seconds).
        update_times: "move": every change of an instance (a status moved on, a late change)
            gives it a new update time; "frozen": changes leave the update time as it was, so
            sorting by ``update_time`` does not show them.

    Defects, breaking what every reading of the documents promises (for refusals to be seen):
        defect: "oversized_pages" (one row more than ``pageSize`` where more match),
            "unsorted" (each page in descending trigger order), "ignores_type" (every scheduling
            type answers the instances of all three), "ignores_expression" (``expression``
            matches every instance), "fractional_triggers" (trigger times
            written with half a second), "cut_before_sort" (a page cut from the matches in id
            order, then sorted by trigger time), "caps_expression" (a search with an
            ``expression`` holds at most ``EXPRESSION_CAP`` rows a page, whatever ``pageSize``
            asks, and its offsets follow that size), "mixed_page_bases" (every other search reads
            ``pageNo`` a page further on, as behind a load balancer in front of two gateway
            versions that count pages from 1 and from 0); ``None`` for none.
    """

    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 7
    start_day: date | None = None
    end_day: date | None = None
    per_day: int = 200
    record_weight: int = 1
    server_timezone: str = "GMT+8"
    credentials: Credentials = DEMO_CREDENTIALS
    clock_skew_ms: int = 0
    page_base: str = "one"
    count_mode: str = "total"
    sorter_names: str = "snake"
    to_bound: str = "exclusive"
    tie_order: str = "stable"
    envelope: str = "v2.1"
    latency_ms: int = 0
    latency_jitter_ms: int = 0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    rate_limit_per_s: float | None = None
    retry_after_s: int = 1
    token_lifetime_s: int = 7200
    token_lifetime_calls: int = 0
    refresh_invalidates: bool = False
    auth_error_style: str = "http401"
    retry_after_header: str | None = None
    garbled_rate: float = 0.0
    gzip_label_every: int = 0
    insert_every: int = 0
    insert_count: int = 3
    status_change_rate: float = 0.0
    malformed_graph_rate: float = 0.0
    forced_error: int | None = None
    body_fault: str | None = None
    failing_window_ms: tuple[int, int] | None = None
    request_log: str | None = None
    page_size_cap: int | None = None
    null_lists: bool = False
    from_bound: str = "inclusive"
    expression_matches: str = "both"
    hide_every: int = 0
    move_every: int = 0
    delete_every: int = 0
    record_timezone: str | None = None
    defect: str | None = None
    timestamp_shows: str = "update"
    update_times: str = "move"
    blank_filters: tuple[str, ...] = ()
    window_unit: str = "ms"

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError("host must be a non-empty string such as '127.0.0.1'")
        _integer(self, "port", 0, 65535)
        _integer(self, "seed")
        _integer(self, "per_day", 0, _MAX_PER_DAY)
        _integer(self, "record_weight", 1, _MAX_RECORD_WEIGHT)
        if not isinstance(self.server_timezone, str):
            raise ConfigError("server_timezone must be a string such as 'GMT+8'")
        tz = server_zone(self.server_timezone)
        today = datetime.now(tz).date()
        if self.start_day is None:
            object.__setattr__(self, "start_day", today - timedelta(days=7))
        if self.end_day is None:
            object.__setattr__(self, "end_day", today)
        first, last = self.days()
        for name, day in (("start_day", first), ("end_day", last)):
            if not isinstance(day, date) or isinstance(day, datetime):
                raise ConfigError(f"{name} must be a datetime.date, not {day!r}")
        if last < first:
            raise ConfigError(f"end_day {last} is before start_day {first}")
        if ((last - first).days + 1) * self.per_day > _MAX_INSTANCES:
            raise ConfigError(
                f"days x per_day exceeds {_MAX_INSTANCES} instances: shorten the range or per_day"
            )
        if not isinstance(self.credentials, Credentials):
            raise ConfigError("credentials must be a Credentials value")
        _integer(self, "clock_skew_ms")
        for name, choices in (
            ("page_base", PAGE_BASES),
            ("count_mode", COUNT_MODES),
            ("sorter_names", SORTER_NAMES),
            ("to_bound", TO_BOUNDS),
            ("tie_order", TIE_ORDERS),
            ("envelope", ENVELOPES),
        ):
            _choice(self, name, choices)
        if self.body_fault is not None:
            _choice(self, "body_fault", BODY_FAULTS)
        _integer(self, "latency_ms", 0, 600_000)
        _integer(self, "latency_jitter_ms", 0, 600_000)
        for name in ("error_rate", "drop_rate", "status_change_rate", "malformed_graph_rate"):
            _fraction(self, name)
        if self.rate_limit_per_s is not None:
            rate = self.rate_limit_per_s
            if (
                isinstance(rate, bool)
                or not isinstance(rate, (int, float))
                or not math.isfinite(rate)
                or not rate > 0
            ):
                raise ConfigError(
                    f"rate_limit_per_s must be a finite number > 0 (None: no limit), not {rate!r}"
                )
        _integer(self, "retry_after_s", 0)
        _integer(self, "token_lifetime_s", 1, 10**7)
        _integer(self, "token_lifetime_calls", 0, 10**9)
        if not isinstance(self.refresh_invalidates, bool):
            raise ConfigError(
                f"refresh_invalidates must be True or False, not {self.refresh_invalidates!r}"
            )
        _choice(self, "auth_error_style", AUTH_ERROR_STYLES)
        _fraction(self, "garbled_rate")
        _integer(self, "gzip_label_every", 0)
        header = self.retry_after_header
        if header is not None and (not isinstance(header, str) or not header.isprintable()):
            raise ConfigError(f"retry_after_header must be printable text or None, not {header!r}")
        _integer(self, "insert_every", 0)
        _integer(self, "insert_count", 0, 10_000)
        if self.forced_error is not None:
            _integer(self, "forced_error")
            if self.forced_error == 0:
                raise ConfigError(
                    "forced_error must be a non-zero EnOS code such as 62103, or None"
                )
        log = self.request_log
        if log is not None and (not isinstance(log, str) or not log):
            raise ConfigError(f"request_log must be a file path or None, not {log!r}")
        self._check_deviations()

        if self.failing_window_ms is not None:
            window = self.failing_window_ms
            if (
                not isinstance(window, tuple)
                or len(window) != 2
                or not all(isinstance(edge, int) for edge in window)
                or window[0] >= window[1]
            ):
                raise ConfigError(
                    f"failing_window_ms must be (start_ms, end_ms) with start < end, not {window!r}"
                )

    def _check_deviations(self) -> None:
        if self.page_size_cap is not None:
            _integer(self, "page_size_cap", 1)
        if not isinstance(self.null_lists, bool):
            raise ConfigError(f"null_lists must be True or False, not {self.null_lists!r}")
        _choice(self, "from_bound", FROM_BOUNDS)
        _choice(self, "expression_matches", EXPRESSION_MATCHES)
        _integer(self, "hide_every", 0)
        _integer(self, "move_every", 0)
        _integer(self, "delete_every", 0)
        _choice(self, "timestamp_shows", TIMESTAMP_SHOWS)
        _choice(self, "update_times", UPDATE_TIMES)
        _choice(self, "window_unit", WINDOW_UNITS)
        if self.record_timezone is not None:
            self.record_tz()
        if self.defect is not None:
            _choice(self, "defect", DEFECTS)
        blanks = self.blank_filters
        if not isinstance(blanks, tuple) or not set(blanks) <= set(BLANK_FIELDS):
            raise ConfigError(
                f"blank_filters must be a tuple of {', '.join(BLANK_FIELDS)}, not {blanks!r}"
            )

    def record_tz(self) -> tzinfo:
        """The zone record time strings are written in.

        Raises:
            ConfigError: ``record_timezone`` is not an IANA zone.
        """
        if self.record_timezone is None:
            return self.tz()
        try:
            return ZoneInfo(self.record_timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"record_timezone must be an IANA zone such as 'Europe/Berlin', not "
                f"{self.record_timezone!r}"
            ) from exc

    def hides(self, flow_id: int) -> bool:
        """Whether the instances of a flow are hidden from the searching user."""
        return self.hide_every > 0 and flow_id % self.hide_every == 0

    def fails(self, from_ms: int, to_ms: int) -> bool:
        """Whether a search over ``[from_ms, to_ms)`` falls in ``failing_window_ms``."""
        window = self.failing_window_ms
        return window is not None and from_ms < window[1] and window[0] < to_ms

    def tz(self) -> timezone:
        """The server timezone as a fixed offset."""
        return server_zone(self.server_timezone)

    def days(self) -> tuple[date, date]:
        """The first and last server-local day of the dataset, inclusive."""
        assert self.start_day is not None and self.end_day is not None
        return self.start_day, self.end_day


def _integer(
    config: EmulatorConfig, name: str, low: int | None = None, high: int | None = None
) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, not {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name} must be {bounds}, not {value}")


def _fraction(config: EmulatorConfig, name: str) -> None:
    value = getattr(config, name)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or math.isnan(value)
        or not 0.0 <= value <= 1.0
    ):
        raise ConfigError(f"{name} must be a fraction between 0 and 1, not {value!r}")


def _choice(config: EmulatorConfig, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
