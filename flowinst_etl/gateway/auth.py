"""EnOS access-token authentication as a ``requests`` auth: the client itself knows no auth scheme.

The token comes from the gateway's token service (enos-api.md 6a) and is cached until shortly
before it expires. Every attempt is signed when it is sent, over the exact bytes sent, with the
token current then. A refused token is recognised in every shape a gateway answers it: HTTP 401 or
403 with any body; HTTP 200 with ``code`` or ``status`` 1203 (the v2.1 envelope and the token
service); HTTP 200 with ``apim_status`` 4011 or 4012 (what the vendor's ``enos-poseidon`` SDK looks
for). The transport then renews the token, shared by every thread, and sends again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from flowinst_etl.config import EnosSettings
from flowinst_etl.exceptions import AuthenticationError, ResponseFormatError
from flowinst_etl.gateway.answers import Answer
from flowinst_etl.gateway.signing import request_signature, token_encryption
from flowinst_etl.gateway.transport import (
    RENEWALS_PER_REQUEST,
    Refusal,
    Transport,
)

log = logging.getLogger(__name__)

TOKEN_GET_PATH = "/apim-token-service/v2.0/token/get"
TOKEN_REFRESH_PATH = "/apim-token-service/v2.0/token/refresh"

#: Renew a token this long before the gateway would expire it.
EXPIRY_MARGIN_S = 60.0

#: Gateway codes of enos-api.md section 5 (token errors), in ``code`` or ``status``.
_GATEWAY_CODES = {1001, 1002, 1003, 1004, 1005, 1202, 1203, 1204}
#: Of those, and of the SDK's ``apim_status`` values, the ones a new token cures.
_TOKEN_EXPIRED = 1203
_APIM_RENEWABLE = {4011, 4012}
_TOKEN_HINTS = {
    1002: "the access key (ENOS_ACCESS_KEY) is not known to the gateway",
    1003: "the secret key (ENOS_SECRET_KEY) does not match the access key",
    1004: "the token request was refused as invalid; check the machine clock",
    1202: "a credential is empty",
    1203: "the access token is not known to the token service",
    1204: "the access token could not be refreshed",
}
_CALL_HINTS = {
    1001: "the gateway took the request for a duplicate",
    1003: "the gateway refused the request signature",
    1004: "the gateway refused the request timestamp or parameters; check the machine clock",
    1202: "the gateway found a signing header empty",
}

Clock = Callable[[], float]


class EnosTokenAuth(requests.auth.AuthBase):
    """Signs requests with an EnOS access token, fetching and renewing the token as needed.

    One instance is shared by every thread of a client; token renewal is serialised by a lock,
    so a token refused under many threads at once is renewed once.

    Args:
        settings: the credentials and the gateway's address.
        transport: sends the token calls (rate-limited and retried like every request).
        clock: seconds since the epoch; timestamps and token lifetimes are read from it.
    """

    def __init__(self, settings: EnosSettings, transport: Transport, clock: Clock = time.time):
        self._api_url = settings.api_url.rstrip("/")
        self._access_key = settings.access_key
        self._secret_key = settings.secret_key
        self._transport = transport
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"EnosTokenAuth(api_url={self._api_url!r}, access_key={self._access_key!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.token()
        timestamp = self._timestamp_ms()
        body = request.body or b""
        if not isinstance(body, (bytes, str)):
            raise TypeError("EnOS requests are signed over a body of bytes or text, not a stream")
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        query = parse_qsl(urlsplit(request.url or "").query, keep_blank_values=True)
        request.headers["apim-accesstoken"] = token
        request.headers["apim-timestamp"] = str(timestamp)
        request.headers["apim-signature"] = request_signature(
            token, query, text, timestamp, self._secret_key
        )
        return request

    def token(self) -> str:
        """The current access token, fetched or renewed when missing or about to expire.

        Raises:
            AuthenticationError: the token service refused the credentials.
        """
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._renew()
            assert self._token is not None
            return self._token

    def renew(self, refused: requests.PreparedRequest) -> None:
        """Renew the token ``refused`` carried, unless another thread already did."""
        sent = refused.headers.get("apim-accesstoken")
        with self._lock:
            if self._token is None or self._token == sent:
                self._renew()

    def obtained(self) -> int:
        """Tokens the calling thread obtained to replace a previous one."""
        return int(getattr(self._local, "renewals", 0))

    def refusal(self, answer: Answer) -> Refusal | None:
        """Whether the gateway refused the credentials of ``answer``'s request, and how.

        Returns ``None`` for any other answer, business errors included.
        """
        status = answer.status
        fields: dict[str, Any] = answer.payload if isinstance(answer.payload, dict) else {}
        apim = fields.get("apim_status")
        code = fields.get("code", fields.get("status"))
        apim = apim if isinstance(apim, int) and not isinstance(apim, bool) else None
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        renewable = apim in _APIM_RENEWABLE or code == _TOKEN_EXPIRED
        if status not in (401, 403) and not renewable:
            if code not in _GATEWAY_CODES and apim is None:
                return None
        elif code is None and apim is None:
            renewable = True  # a bare 401/403: the token is the first suspect
        message = str(fields.get("msg") or "") or f"HTTP {status}"
        number = code if code is not None else apim if apim is not None else status
        if renewable:
            hint = (
                f"the gateway kept refusing the access token after {RENEWALS_PER_REQUEST} "
                f"renewals (HTTP {status})"
            )
        else:
            hint = f"{_CALL_HINTS.get(number, 'the gateway refused the request')} (HTTP {status})"
        request_id = fields.get("requestId")
        error = AuthenticationError(number, message, hint, str(request_id) if request_id else None)
        return Refusal(renewable, error)

    def _renew(self) -> None:
        """Refresh the current token if there is one, else (or if refresh fails) get a new one.

        Raises:
            AuthenticationError: the token service refused to get one; a refresh refused before
                it is its ``__cause__``.
        """
        stale, refused = self._token, None
        if stale is not None:
            try:
                self._store(self._token_call(TOKEN_REFRESH_PATH, accessToken=stale), renewal=True)
                return
            except AuthenticationError as exc:
                log.info("token refresh refused (%s); getting a new token", exc)
                refused = exc
        try:
            data = self._token_call(TOKEN_GET_PATH)
        except AuthenticationError as exc:
            raise exc from refused
        self._store(data, renewal=stale is not None)

    def _store(self, data: dict[str, Any], renewal: bool) -> None:
        token, expire = data.get("accessToken"), data.get("expire")
        if not isinstance(token, str) or not token or not isinstance(expire, (int, float)):
            raise ResponseFormatError("the token service answered without accessToken/expire")
        self._token = token
        self._renew_at = self._clock() + max(float(expire) - EXPIRY_MARGIN_S, float(expire) / 2)
        if renewal:
            self._local.renewals = self.obtained() + 1

    def _token_call(self, path: str, **extra: str) -> dict[str, Any]:
        proof = _TokenProof(self, extra)
        request = requests.Request("POST", self._api_url + path, json={}, auth=proof)
        answer, _ = self._transport.send(request)
        payload = answer.payload
        if payload is None:
            raise ResponseFormatError(
                f"the token service answered HTTP {answer.status} without JSON"
            )
        status = payload.get("status") if isinstance(payload, dict) else None
        if status != 0:
            code = status if isinstance(status, int) else -1
            message = str(payload.get("msg", "")) if isinstance(payload, dict) else ""
            raise AuthenticationError(
                code, message or "token request refused", _TOKEN_HINTS.get(code, "")
            )
        data = payload.get("data")
        if not isinstance(data, dict):
            raise ResponseFormatError("the token service answered without a data object")
        return data

    def proof(self, **extra: str) -> dict[str, str | int]:
        """A token request body, its ``timestamp`` and ``encryption`` made now."""
        timestamp = self._timestamp_ms()
        return {
            "appKey": self._access_key,
            "encryption": token_encryption(self._access_key, timestamp, self._secret_key),
            "timestamp": timestamp,
            **extra,
        }

    def _timestamp_ms(self) -> int:
        return int(self._clock() * 1000)


class _TokenProof(requests.auth.AuthBase):
    """Writes a token call's body at each attempt, so a retry is not a replayed ``encryption``
    (which the gateway may refuse as a duplicate, 1001)."""

    def __init__(self, auth: EnosTokenAuth, extra: dict[str, str]) -> None:
        self._auth = auth
        self._extra = extra

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.prepare_body(None, None, json=self._auth.proof(**self._extra))
        return request
