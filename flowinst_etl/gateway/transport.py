"""HTTP transport for the gateway: one pooled Session, urllib3 retries, a shared rate limit.

Retries come from urllib3's ``Retry`` mounted on the Session. The subclass here changes three
things only: every retry waits (urllib3 retries the first failure at once, and ``Retry-After: 0``
would too), a huge ``Retry-After`` is capped and logged, and each retry takes a slot from the
shared rate limiter so retries never push the client above its configured request rate.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from itertools import takewhile
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from flowinst_etl.config import EnosSettings
from flowinst_etl.exceptions import TransportError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})


class RateLimiter:
    """A token bucket shared by every thread of a client: at most ``rate`` requests per second."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        self._interval = 1.0 / rate
        self._capacity = float(burst)
        self._tokens = float(burst)
        self._updated = time.monotonic()
        self._lock = threading.Lock()
        self.waited_s = 0.0

    def acquire(self) -> None:
        """Block until a request may be sent."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(
                self._capacity, self._tokens + (now - self._updated) / self._interval
            )
            self._updated = now
            self._tokens -= 1.0
            wait = -self._tokens * self._interval if self._tokens < 0 else 0.0
            self.waited_s += wait
        if wait:
            time.sleep(wait)


class GatewayRetry(Retry):
    """urllib3 ``Retry`` that always backs off, caps ``Retry-After`` and obeys the rate limiter."""

    limiter: RateLimiter | None = None

    def new(self, **kw: Any) -> GatewayRetry:
        retry = super().new(**kw)
        retry.limiter = self.limiter
        return retry

    def get_backoff_time(self) -> float:
        failures = len(
            list(takewhile(lambda h: h.redirect_location is None, reversed(self.history)))
        )
        if failures == 0:
            return 0.0
        value = self.backoff_factor * 2 ** (failures - 1) + random.random() * self.backoff_jitter
        return float(min(self.backoff_max, value))

    def parse_retry_after(self, retry_after: str) -> float:
        seconds = super().parse_retry_after(retry_after)
        if seconds >= self.retry_after_max:
            log.warning(
                "gateway asked to wait %s s before retrying; waiting %s s instead",
                retry_after.strip(),
                self.retry_after_max,
            )
        return seconds

    def sleep(self, response: Any = None) -> None:
        super().sleep(response)
        if self.limiter is not None:
            self.limiter.acquire()


def build_session(settings: EnosSettings, limiter: RateLimiter | None) -> requests.Session:
    """A Session with pooled connections and the retry policy mounted for http and https."""
    retry = GatewayRetry(
        total=settings.max_retries,
        connect=settings.max_retries,
        read=settings.max_retries,
        status=settings.max_retries,
        other=0,
        allowed_methods=frozenset({"GET", "POST"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=settings.backoff_s,
        backoff_jitter=settings.backoff_s,
        backoff_max=settings.max_backoff_s,
        retry_after_max=int(settings.max_backoff_s),
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    retry.limiter = limiter
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=64)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = settings.verify_tls
    session.headers["User-Agent"] = "flowinst-etl"
    if not settings.verify_tls:
        log.warning(
            "TLS certificate verification is OFF (ENOS_VERIFY_TLS=false): use only for testing"
        )
    return session


def raise_if_retries_exhausted(response: requests.Response, retries: int) -> None:
    """A retryable status that survived every retry becomes a TransportError."""
    if response.status_code in RETRY_STATUSES:
        raise TransportError(
            f"the gateway kept answering HTTP {response.status_code} after {retries} retries"
        )


def attempts_of(response: requests.Response) -> tuple[int, int]:
    """How many retries one response took, and how many of them answered 429."""
    retries = getattr(response.raw, "retries", None)
    history = getattr(retries, "history", ()) or ()
    return len(history), sum(1 for attempt in history if attempt.status == 429)
