"""HTTP transport for the gateway: one pooled Session, a shared rate limit, and retries.

urllib3 would repeat a request with the headers it was first given, but an EnOS signature covers a
timestamp and a token that may be renewed between attempts (enos-api.md 6a). So every attempt is
prepared and signed anew, while urllib3's ``Retry`` still decides whether to try again, counts the
attempts of each kind and computes the backoff and the ``Retry-After`` wait. Every attempt, token
calls and resends after a renewal included, first takes a slot from the shared rate limiter.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from dataclasses import dataclass
from itertools import takewhile
from typing import Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import DecodeError, InvalidHeader, MaxRetryError, ProtocolError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from flowinst_etl.config import EnosSettings
from flowinst_etl.exceptions import TransportError
from flowinst_etl.gateway.answers import Answer, UndecodableAnswer, read_answer

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})

#: Resends of one request after the gateway refused its token (each after a renewal, or after
#: another thread renewed): tokens that die under load, or that another process's refresh
#: invalidates, are survived, while a refusal that renewal cannot cure still ends the request.
RENEWALS_PER_REQUEST = 4

#: The attribute that marks a log record as a retry notice (its value: the attempt about to start).
RETRY_RECORD = "gateway_retry_attempt"

_SECONDS = re.compile(r"^\s*[0-9]+\s*$")


class RateLimiter:
    """A token bucket shared by every thread of a client: at most ``rate`` requests per second."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        self._interval = 1.0 / rate
        self._capacity = float(burst)
        self._tokens = float(burst)
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a request may be sent; returns the seconds waited."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(
                self._capacity, self._tokens + (now - self._updated) / self._interval
            )
            self._updated = now
            self._tokens -= 1.0
            wait = -self._tokens * self._interval if self._tokens < 0 else 0.0
        if wait:
            time.sleep(wait)
        return wait


class GatewayRetry(Retry):
    """urllib3 ``Retry`` that always backs off and reads ``Retry-After`` defensively.

    urllib3 retries the first failure at once (and ``Retry-After: 0`` would too); here every retry
    waits. A ``Retry-After`` of whole seconds or an HTTP-date is obeyed up to ``backoff_max``; one
    that cannot be read (``1.5``, ``-3``, ``soon``) is ignored in favour of the backoff, where
    urllib3 would raise ``InvalidHeader``.
    """

    def get_backoff_time(self) -> float:
        failures = len(
            list(takewhile(lambda h: h.redirect_location is None, reversed(self.history)))
        )
        if failures == 0:
            return 0.0
        value = self.backoff_factor * 2 ** (failures - 1) + random.random() * self.backoff_jitter
        return float(min(self.backoff_max, value))

    def next_wait(self, response: BaseHTTPResponse | None) -> tuple[float, str]:
        """Seconds to wait before the next attempt, and a note on a ``Retry-After`` not obeyed."""
        text = response.headers.get("Retry-After") if response is not None else None
        if text is None or not self.respect_retry_after_header:
            return self.get_backoff_time(), ""
        if not readable_retry_after(text):
            return (
                self.get_backoff_time(),
                f"; unreadable Retry-After {text.strip()[:40]!r} ignored",
            )
        asked = super().parse_retry_after(text)
        if asked > self.backoff_max:
            return float(self.backoff_max), f"; Retry-After {text.strip()} s capped"
        return (asked if asked > 0 else self.get_backoff_time()), ""


def readable_retry_after(text: str) -> bool:
    """Whether ``Retry-After`` is whole seconds or an HTTP-date (RFC 9110 10.2.3)."""
    return bool(_SECONDS.match(text)) or email.utils.parsedate_tz(text) is not None


class SigningAuth(Protocol):
    """What the transport needs of an auth that can find its token refused and renew it."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest: ...

    def refusal(self, answer: Answer) -> Refusal | None:
        """The gateway's refusal of the token or signature in ``answer``, if it is one."""
        ...

    def renew(self, refused: requests.PreparedRequest) -> None:
        """Make sure the next signature uses a token newer than the one ``refused`` carried."""
        ...

    def obtained(self) -> int:
        """Tokens the calling thread has obtained from the token service so far."""
        ...


@dataclass(frozen=True)
class Refusal:
    """The gateway refused a request's credentials.

    Attributes:
        renewable: a new token may cure it (expired or unknown token).
        error: what to raise when renewal cannot cure it.
    """

    renewable: bool
    error: Exception


@dataclass
class Attempts:
    """What one request took beyond its first attempt.

    Attributes:
        retries: attempts repeated after a 429, 502-504 or a failed connection or read.
        throttled: of those, the ones that answered HTTP 429.
        resends: attempts repeated after the gateway refused the token.
        token_renewals: tokens obtained from the token service while serving this request.
        limiter_wait_s: time spent waiting for the client's own rate limit.
    """

    retries: int = 0
    throttled: int = 0
    resends: int = 0
    token_renewals: int = 0
    limiter_wait_s: float = 0.0


class Transport:
    """Sends requests to one gateway: rate-limited, each attempt signed when it is sent.

    Args:
        settings: retries, backoff, timeouts and the request rate.
    """

    def __init__(self, settings: EnosSettings) -> None:
        self.settings = settings
        self.limiter = (
            RateLimiter(settings.max_requests_per_s) if settings.max_requests_per_s else None
        )
        self.session = build_session(settings)
        self.retry = GatewayRetry(
            total=settings.max_retries,
            connect=settings.max_retries,
            read=settings.max_retries,
            status=settings.max_retries,
            other=0,
            redirect=False,
            allowed_methods=frozenset({"GET", "POST"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=settings.backoff_s,
            backoff_jitter=settings.backoff_s,
            backoff_max=settings.max_backoff_s,
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        self._timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self._options: dict[str, dict[str, object]] = {}

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()

    def _signed_in_turn(
        self, request: requests.Request, auth: SigningAuth | None, attempts: Attempts
    ) -> requests.PreparedRequest:
        """``request`` signed just before it may go under the rate limit.

        Signing may wait for a token call (which takes a slot of its own). The slot is taken
        once a token is at hand, and the request is signed again after it with a fresh
        timestamp; if a new token arrived meanwhile (signing waited again), it queues again, so
        requests that waited for one token never leave together.
        """
        if self.limiter is None:
            return self.session.prepare_request(request)
        while True:
            self.session.prepare_request(request)
            tokens = auth.obtained() if auth is not None else 0
            attempts.limiter_wait_s += self.limiter.acquire()
            prepared = self.session.prepare_request(request)
            if auth is None or auth.obtained() == tokens:
                return prepared

    def send(
        self, request: requests.Request, auth: SigningAuth | None = None
    ) -> tuple[Answer, Attempts]:
        """Send ``request`` until it is answered for good, or retries or renewals run out.

        ``auth`` signs each attempt and is asked whether the gateway refused it; without it the
        request's own auth (or none) prepares each attempt. Every answer is read here, once,
        by :func:`~flowinst_etl.gateway.answers.read_answer`: one that cannot be decoded (a
        body not in its ``Content-Encoding`` or charset) is retried like a body cut short.

        Each retry logs one WARNING on this module's logger: what failed, the path (never the
        query, headers or body), the wait and the attempt; the record carries the attempt
        number as ``RETRY_RECORD``.

        Raises:
            TransportError: the gateway could not be reached, read or decoded after every
                retry, kept answering a status in ``RETRY_STATUSES``, or TLS verification
                failed; the message counts the retries made.
            Exception: ``auth``'s refusal error, when renewal does not cure a refusal.
        """
        if auth is not None:
            request.auth = auth
        elif request.auth is None:
            request.auth = _unsigned
        method, url = str(request.method), str(request.url)
        path = urlsplit(url).path
        retry: Retry = self.retry
        attempts = Attempts()
        before = auth.obtained() if auth is not None else 0
        try:
            while True:
                prepared = self._signed_in_turn(request, auth, attempts)
                try:
                    response = self.session.send(prepared, **self._send_options(prepared))
                    answer = read_answer(response)
                except requests.exceptions.SSLError as exc:
                    raise TransportError(
                        f"TLS verification of {urlsplit(url).netloc} failed; fix the "
                        "certificate chain (ENOS_VERIFY_TLS=false only for testing)"
                    ) from exc
                except (requests.exceptions.RequestException, UndecodableAnswer) as exc:
                    error = _urllib3_error(exc)
                    try:
                        retry = retry.increment(method, path, error=error)
                    except MaxRetryError:
                        raise TransportError(_gave_up(url, exc, attempts.retries)) from exc
                    self._wait(retry, None, f"{method} {path} failed: {_kind(error)}")
                    attempts.retries += 1
                    continue
                refusal = auth.refusal(answer) if auth is not None else None
                if auth is not None and refusal is not None:
                    if not refusal.renewable or attempts.resends >= RENEWALS_PER_REQUEST:
                        raise refusal.error
                    auth.renew(prepared)
                    attempts.resends += 1
                    continue
                has_retry_after = bool(response.headers.get("Retry-After"))
                if not retry.is_retry(method, response.status_code, has_retry_after):
                    return answer, attempts
                try:
                    retry = retry.increment(method, path, response=response.raw)
                except MaxRetryError:
                    raise TransportError(
                        f"the gateway kept answering HTTP {response.status_code} "
                        f"{_after_retries(attempts.retries)}"
                    ) from None
                response.close()
                what = f"{method} {path} answered HTTP {response.status_code}"
                self._wait(retry, response.raw, what)
                attempts.retries += 1
                attempts.throttled += response.status_code == 429
        finally:
            attempts.token_renewals = (auth.obtained() if auth is not None else 0) - before

    def _send_options(self, prepared: requests.PreparedRequest) -> dict[str, object]:
        """Proxies and certificates from the environment, as ``Session.request`` would merge
        them; verification stays the configured one.

        Read once per scheme and host for the life of the transport, like every other setting:
        requests reads the whole environment again for every request, a fifth of the CPU of a
        page of records.
        """
        url = str(prepared.url)
        scheme, host = urlsplit(url)[:2]
        key = f"{scheme}://{host}"
        options = self._options.get(key)
        if options is None:
            merged = self.session.merge_environment_settings(
                url, {}, False, self.settings.verify_tls, None
            )
            options = self._options[key] = {**merged, "timeout": self._timeout}
        return options

    def _wait(self, retry: Retry, response: BaseHTTPResponse | None, what: str) -> None:
        assert isinstance(retry, GatewayRetry)
        seconds, note = retry.next_wait(response)
        attempt = len(retry.history) + 1
        log.warning(
            "%s; attempt %d of %d in %.2f s%s",
            what,
            attempt,
            self.settings.max_retries + 1,
            seconds,
            note,
            extra={RETRY_RECORD: attempt},
        )
        time.sleep(seconds)


def build_session(settings: EnosSettings) -> requests.Session:
    """A Session with pooled connections that tries each request once (``Transport`` retries)."""
    adapter = HTTPAdapter(max_retries=0, pool_connections=4, pool_maxsize=64)
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


def _after_retries(count: int) -> str:
    """``"after 1 retry"``, ``"after 6 retries"``: how long a request was tried, in words."""
    return f"after {count} {'retry' if count == 1 else 'retries'}"


def _unsigned(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Token calls carry their own proof and are not signed with a token."""
    return request


class _Undecodable(ProtocolError):
    """An answer that arrived but could not be decoded: retried as a read failure.

    Attributes:
        detail: what could not be decoded, in words.
    """

    def __init__(self, detail: str, cause: Exception) -> None:
        super().__init__(f"answer undecodable: {detail}", cause)
        self.detail = detail


def _urllib3_error(exc: Exception) -> Exception:
    """The urllib3 error behind a failed attempt, as ``Retry.increment`` classifies them.

    A header or body that cannot be read, or decoded (a body that is not in its
    ``Content-Encoding`` or charset), counts as a read failure, retried like a dropped
    connection.
    """
    if isinstance(exc, UndecodableAnswer):
        return _Undecodable(str(exc), exc)
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError) and cause.reason is not None:
        cause = cause.reason
    if isinstance(cause, DecodeError):
        return _Undecodable(_first_sentence(cause), exc)
    if isinstance(cause, Exception) and not isinstance(cause, InvalidHeader):
        return cause
    return ProtocolError(f"unreadable answer: {type(exc).__name__}", exc)


def _first_sentence(error: Exception) -> str:
    """urllib3's own words (``Received response with content-encoding: gzip, but failed to
    decode it``), without the decoder's message after them."""
    text = str(error.args[0] if error.args else error).split(".", 1)[0].strip()[:120]
    return text[:1].lower() + text[1:]


def _kind(error: Exception) -> str:
    """A failure in words, without the URL or anything from the request."""
    if isinstance(error, _Undecodable):
        return str(error.args[0])
    reason = _reason(error)
    if reason == type(error).__name__ and isinstance(error, ProtocolError) and len(error.args) > 1:
        return f"{type(error.args[1]).__name__} (connection closed or answer unreadable)"
    return reason


def _gave_up(url: str, exc: Exception, retries: int) -> str:
    host = urlsplit(url).netloc
    after = _after_retries(retries)
    if isinstance(exc, requests.exceptions.Timeout):
        return f"{host} did not answer in time {after}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"cannot reach the gateway at {host}: {_reason(exc)} ({after})"
    error = _urllib3_error(exc)
    if isinstance(error, _Undecodable):
        return f"the answers of {host} could not be decoded {after}: {error.detail}"
    return f"request to {host} failed {after}: {type(exc).__name__}"


def _reason(exc: BaseException) -> str:
    """The innermost cause of a connection failure, in words (no URL, no headers)."""
    text = str(exc)
    for marker, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host name"),
        ("nodename nor servname", "unknown host name"),
        ("Failed to resolve", "unknown host name"),
        ("timed out", "timed out"),
        ("RemoteDisconnected", "the connection was closed without an answer"),
        ("Connection aborted", "the connection was closed without an answer"),
        ("BadStatusLine", "the answer's status line was unreadable"),
    ):
        if marker in text:
            return reason
    return type(exc).__name__
