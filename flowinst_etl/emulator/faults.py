"""Injected transport faults (drops, 429 throttling, gateway 5xx, mislabelled bodies),
reproducible from the seed."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

from flowinst_etl.emulator.config import EmulatorConfig

_HTML_PAGE = "<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
_GATEWAY_STATUSES = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass(frozen=True)
class Fault:
    """What to do instead of answering a request.

    Attributes:
        kind: ``"drop"`` (close the connection without a response), ``"garbled"`` (an answer
            whose status line or headers cannot be read), ``"rate_limited"`` (HTTP 429) or
            ``"gateway_error"`` (a 5xx answer of a failing proxy).
        status: the HTTP status to answer; 0 for a drop.
        body: the answer's body, an HTML page or nothing.
    """

    kind: str
    status: int = 0
    body: bytes = b""


DROP = Fault("drop")
#: Unreadable answers, written raw: a status code that is not a number, and a length given twice.
GARBLED = (
    Fault("garbled", body=b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}"),
    Fault("garbled", body=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
)
RATE_LIMITED = Fault("rate_limited", 429, b'{"status":429,"msg":"too many requests"}')


class FaultInjector:
    """Decides, per request, whether a fault replaces the answer; safe to share between threads.

    Drops are decided first, then garbled answers, then the token bucket of ``rate_limit_per_s``
    (capacity one second of requests), then ``error_rate``. Random draws come from one generator
    seeded by the config seed.
    """

    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(f"{seed}:faults")
        self._rate: float | None = None
        self._answers = 0
        self._tokens = 0.0
        self._refilled_at = time.monotonic()

    def pick(self, config: EmulatorConfig) -> Fault | None:
        """The fault for the next request, or ``None`` to answer it normally."""
        with self._lock:
            if config.drop_rate and self._rng.random() < config.drop_rate:
                return DROP
            if config.garbled_rate and self._rng.random() < config.garbled_rate:
                return self._rng.choice(GARBLED)
            if config.rate_limit_per_s is not None and not self._take(config.rate_limit_per_s):
                return RATE_LIMITED
            if config.error_rate and self._rng.random() < config.error_rate:
                status = self._rng.choice(tuple(_GATEWAY_STATUSES))
                body = b""
                if self._rng.random() < 0.5:
                    title = f"{status} {_GATEWAY_STATUSES[status]}"
                    body = _HTML_PAGE.format(title=title).encode()
                return Fault("gateway_error", status, body)
        return None

    def mislabels(self, config: EmulatorConfig) -> bool:
        """Whether the next endpoint answer goes out labelled ``Content-Encoding: gzip`` over
        its plain body: every ``gzip_label_every``-th one."""
        if not config.gzip_label_every:
            return False
        with self._lock:
            self._answers += 1
            return self._answers % config.gzip_label_every == 0

    def _take(self, rate: float) -> bool:
        """Take one token from the bucket; a changed rate starts a full bucket."""
        now = time.monotonic()
        capacity = max(1.0, rate)
        if rate != self._rate:
            self._rate, self._tokens = rate, capacity
        else:
            self._tokens = min(capacity, self._tokens + (now - self._refilled_at) * rate)
        self._refilled_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
