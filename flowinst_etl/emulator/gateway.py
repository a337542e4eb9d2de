"""The API gateway in front of the batch service: access tokens and per-request signature checks.

Token calls answer HTTP 200 with ``{"status", "msg", "business": "apim-token-service", "data"}``;
``status`` is 0 or one of the documented token codes (1002 appKey not found, 1003 invalid
encryption, 1004 invalid parameter, 1202 empty parameter, 1203 unknown access token, 1204 refresh
failed). A field that is absent is 1004, one that is present but empty is 1202.

API calls that fail the gateway checks are refused with a code: a missing or empty ``apim-*``
header is 1202, an unknown token 1203 with ``apim_status`` 4012, an expired token 1203 with
``apim_status`` 4011 ("access token expired"), an ``apim-timestamp`` that is not epoch ms or is
more than five minutes from the server clock 1004, and a wrong ``apim-signature`` 1003 ("invalid
signature"). Rejections other than the two token cases carry ``apim_status`` 4010. Timestamps are
judged against the server clock, which includes ``clock_skew_ms``. ``auth_error_style`` chooses
the shape of the refusal: "http401" answers HTTP 401 with ``{"status", "msg", "apim_status"}``;
"code1203" answers HTTP 200 with the batch envelope's ``code`` (``status`` in v2.0) set to the code
and ``data`` null; "apim4011" answers HTTP 200 with ``{"apim_status", "msg"}``, as the vendor's
SDK expects.

A token dies ``token_lifetime_s`` seconds after it is issued, or after ``token_lifetime_calls``
API calls made with it when that is set. A refresh issues a new token; the old one lives on until
it expires unless ``refresh_invalidates`` is set.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flowinst_etl.emulator.config import EmulatorConfig
from flowinst_etl.emulator.signing import expected_encryption, expected_signature

TOKEN_BUSINESS = "apim-token-service"
MAX_CLOCK_DIFFERENCE_MS = 5 * 60 * 1000
APIM_EXPIRED = 4011
APIM_UNKNOWN_TOKEN = 4012
APIM_REJECTED = 4010

_EPOCH_MS = re.compile(r"^\s*\d{1,15}\s*$")
_SIGNED_HEADERS = ("apim-accesstoken", "apim-timestamp", "apim-signature")


class GatewayRejection(Exception):
    """An API call the gateway refuses with HTTP 401."""

    def __init__(self, code: int, message: str, apim_status: int = APIM_REJECTED) -> None:
        self.code = code
        self.message = message
        self.apim_status = apim_status
        super().__init__(f"{code}: {message}")

    def answer(self, style: str, envelope: str) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON body of the refusal in ``style`` (see the module docstring)."""
        if style == "code1203":
            key = "code" if envelope == "v2.1" else "status"
            return 200, {key: self.code, "msg": self.message, "data": None}
        if style == "apim4011":
            return 200, {"apim_status": self.apim_status, "msg": self.message}
        return 401, {"status": self.code, "msg": self.message, "apim_status": self.apim_status}


class _TokenError(Exception):
    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass
class _Token:
    app_key: str
    expires_at: float  # time.monotonic()
    calls_left: int | None = None

    def alive(self) -> bool:
        return self.expires_at > time.monotonic() and self.calls_left != 0


class TokenService:
    """Issues, refreshes and checks access tokens; safe to share between request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._current: dict[str, str] = {}

    def get(self, body: str, config: EmulatorConfig, now_ms: int) -> dict[str, Any]:
        """Answer ``token/get``: the app's live token, or a new one when it has none."""
        try:
            app_key = _check(body, ("appKey", "encryption", "timestamp"), config, now_ms)[0]
            with self._lock:
                token = self._current.get(app_key)
                entry = self._tokens.get(token) if token else None
                if token is None or entry is None or not entry.alive():
                    return _issued(*self._issue(app_key, config))
                return _issued(token, entry.expires_at - time.monotonic())
        except _TokenError as exc:
            return _token_reply(exc.code, exc.message, None)

    def refresh(self, body: str, config: EmulatorConfig, now_ms: int) -> dict[str, Any]:
        """Answer ``token/refresh``: a new token with a fresh lifetime; the old one dies if
        ``refresh_invalidates`` is set."""
        fields = ("appKey", "encryption", "timestamp", "accessToken")
        try:
            app_key, payload = _check(body, fields, config, now_ms)
            old = payload["accessToken"]
            if not isinstance(old, str):
                raise _TokenError(1204, "refresh failed: accessToken must be a string")
            with self._lock:
                entry = self._tokens.get(old)
                if entry is None:
                    raise _TokenError(1203, "invalid access token")
                if entry.app_key != app_key:
                    raise _TokenError(
                        1204, "refresh failed: the access token belongs to another appKey"
                    )
                if config.refresh_invalidates:
                    del self._tokens[old]
                return _issued(*self._issue(app_key, config))
        except _TokenError as exc:
            return _token_reply(exc.code, exc.message, None)

    def verify(
        self,
        headers: Mapping[str, str],
        query: Iterable[tuple[str, str]],
        body: str,
        config: EmulatorConfig,
        now_ms: int,
    ) -> None:
        """Check the token and signature headers of one API call.

        Raises:
            GatewayRejection: the call must be refused with HTTP 401.
        """
        values = [headers.get(name) for name in _SIGNED_HEADERS]
        for name, value in zip(_SIGNED_HEADERS, values, strict=True):
            if not value:
                raise GatewayRejection(1202, f"empty parameter: header {name} is missing")
        token, timestamp, signature = (value or "" for value in values)
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None:
                raise GatewayRejection(1203, "invalid access token", APIM_UNKNOWN_TOKEN)
            if not entry.alive():
                raise GatewayRejection(1203, "access token expired", APIM_EXPIRED)
            timestamp_ms = _epoch_ms(timestamp, "apim-timestamp", now_ms, GatewayRejection)
            expected = expected_signature(
                token, query, body, timestamp_ms, config.credentials.secret_key
            )
            if signature.strip().lower() != expected:
                raise GatewayRejection(1003, "invalid signature")
            if entry.calls_left is not None:
                entry.calls_left -= 1

    def revoke_all(self) -> None:
        """Forget every issued token, as a gateway restart would."""
        with self._lock:
            self._tokens.clear()
            self._current.clear()

    def _issue(self, app_key: str, config: EmulatorConfig) -> tuple[str, float]:
        token = secrets.token_urlsafe(24)
        lifetime_s = config.token_lifetime_s
        calls = config.token_lifetime_calls or None
        self._tokens[token] = _Token(app_key, time.monotonic() + lifetime_s, calls)
        self._current[app_key] = token
        return token, float(lifetime_s)


def _check(
    body: str, fields: tuple[str, ...], config: EmulatorConfig, now_ms: int
) -> tuple[str, dict[str, Any]]:
    """Validate a token request; returns its appKey and payload."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _TokenError(1004, "invalid parameter: the body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise _TokenError(1004, "invalid parameter: the body must be a JSON object")
    for name in fields:
        if name not in payload:
            raise _TokenError(1004, f"invalid parameter: {name} is missing")
    for name in fields:
        if payload[name] is None or payload[name] == "":
            raise _TokenError(1202, f"empty parameter: {name}")
    app_key, encryption = payload["appKey"], payload["encryption"]
    if not isinstance(app_key, str) or not isinstance(encryption, str):
        raise _TokenError(1004, "invalid parameter: appKey and encryption must be strings")
    if app_key != config.credentials.access_key:
        raise _TokenError(1002, "appKey not found")
    timestamp = payload["timestamp"]
    text = (
        str(timestamp)
        if isinstance(timestamp, int) and not isinstance(timestamp, bool)
        else timestamp
    )
    if not isinstance(text, str):
        raise _TokenError(1004, "invalid parameter: timestamp must be epoch milliseconds")
    timestamp_ms = _epoch_ms(text, "timestamp", now_ms, _TokenError)
    if encryption.lower() != expected_encryption(
        app_key, timestamp_ms, config.credentials.secret_key
    ):
        raise _TokenError(1003, "invalid encryption")
    return app_key, payload


def _epoch_ms(
    text: str, name: str, now_ms: int, error: type[_TokenError] | type[GatewayRejection]
) -> int:
    """Epoch milliseconds within five minutes of the server clock, or ``error`` 1004."""
    if not _EPOCH_MS.match(text):
        raise error(1004, f"invalid parameter: {name} must be epoch milliseconds")
    value = int(text)
    if abs(value - now_ms) > MAX_CLOCK_DIFFERENCE_MS:
        raise error(1004, f"invalid parameter: {name} is more than 5 minutes from the server clock")
    return value


def _issued(token: str, seconds_left: float) -> dict[str, Any]:
    return _token_reply(
        0, "SUCCESS", {"accessToken": token, "expire": max(0, math.floor(seconds_left))}
    )


def _token_reply(status: int, message: str, data: dict[str, Any] | None) -> dict[str, Any]:
    return {"status": status, "msg": message, "business": TOKEN_BUSINESS, "data": data}
