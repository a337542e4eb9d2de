"""EnOS access-token authentication as a ``requests`` auth: the client itself knows no auth scheme.

The token comes from the gateway's token service and is cached until shortly before it expires.
Every request is signed over the exact bytes sent; when the gateway says the token expired (HTTP
401, status 1203, ``apim_status`` 4011/4012) the token is refreshed (or fetched anew) and the
request is re-signed and sent once more.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from flowinst_etl.config import EnosSettings
from flowinst_etl.exceptions import AuthenticationError, ResponseFormatError
from flowinst_etl.gateway.signing import request_signature, token_encryption
from flowinst_etl.gateway.transport import raise_if_retries_exhausted

TOKEN_GET_PATH = "/apim-token-service/v2.0/token/get"
TOKEN_REFRESH_PATH = "/apim-token-service/v2.0/token/refresh"

#: Renew a token this long before the gateway would expire it.
EXPIRY_MARGIN_S = 60.0

_TOKEN_EXPIRED_STATUS = 1203
_TOKEN_EXPIRED_APIM = {4011, 4012}
_SHORT_BODY = 1024
_TOKEN_HINTS = {
    1002: "the access key (ENOS_ACCESS_KEY) is not known to the gateway",
    1003: "the secret key (ENOS_SECRET_KEY) does not match the access key",
    1004: "the token request was refused as invalid; check the machine clock",
    1202: "a credential is empty",
    1203: "the access token expired",
    1204: "the access token could not be refreshed",
}

Clock = Callable[[], float]


class EnosTokenAuth(requests.auth.AuthBase):
    """Signs requests with an EnOS access token, fetching and renewing the token as needed.

    One instance is shared by every thread of a client; token renewal is serialised by a lock.
    """

    def __init__(
        self, settings: EnosSettings, session: requests.Session, clock: Clock = time.time
    ) -> None:
        self._api_url = settings.api_url.rstrip("/")
        self._access_key = settings.access_key
        self._secret_key = settings.secret_key
        self._session = session
        self._timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self._max_retries = settings.max_retries
        self._verify = settings.verify_tls
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.renewals = 0

    def __repr__(self) -> str:
        return f"EnosTokenAuth(api_url={self._api_url!r}, access_key={self._access_key!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.token()
        self._sign(request, token)
        request.register_hook("response", self._renew_and_resend_once)
        return request

    def token(self) -> str:
        """The current access token, fetched or renewed when missing or about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._renew(stale=self._token)
            assert self._token is not None
            return self._token

    def _sign(self, request: requests.PreparedRequest, token: str) -> None:
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

    def _renew_and_resend_once(
        self, response: requests.Response, **kwargs: Any
    ) -> requests.Response:
        if not _says_token_expired(response):
            return response
        sent_token = response.request.headers.get("apim-accesstoken")
        with self._lock:
            if self._token == sent_token:
                self._renew(stale=sent_token)
            token = self._token
        assert token is not None
        response.content  # noqa: B018 - drain the body so the connection returns to the pool
        response.close()
        retry = response.request.copy()
        retry.hooks["response"] = []
        self._sign(retry, token)
        resent = response.connection.send(retry, **kwargs)
        resent.history.append(response)
        resent.request = retry
        return resent

    def _renew(self, stale: str | None) -> None:
        """Refresh ``stale`` if there is one, else (or if refresh fails) get a new token."""
        if stale is not None:
            try:
                self._store(self._token_call(TOKEN_REFRESH_PATH, accessToken=stale))
                return
            except AuthenticationError:
                pass
        self._store(self._token_call(TOKEN_GET_PATH))

    def _store(self, data: dict[str, Any]) -> None:
        token, expire = data.get("accessToken"), data.get("expire")
        if not isinstance(token, str) or not token or not isinstance(expire, (int, float)):
            raise ResponseFormatError("the token service answered without accessToken/expire")
        self._token = token
        self._renew_at = self._clock() + max(float(expire) - EXPIRY_MARGIN_S, float(expire) / 2)
        self.renewals += 1

    def _token_call(self, path: str, **extra: str) -> dict[str, Any]:
        timestamp = self._timestamp_ms()
        body: dict[str, str | int] = {
            "appKey": self._access_key,
            "encryption": token_encryption(self._access_key, timestamp, self._secret_key),
            "timestamp": timestamp,
            **extra,
        }
        response = self._session.post(
            self._api_url + path,
            json=body,
            timeout=self._timeout,
            auth=_unsigned,
            verify=self._verify,
        )
        raise_if_retries_exhausted(response, self._max_retries)
        try:
            payload = response.json()
        except ValueError as exc:
            raise ResponseFormatError(
                f"the token service answered HTTP {response.status_code} without JSON"
            ) from exc
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

    def _timestamp_ms(self) -> int:
        return int(self._clock() * 1000)


def _unsigned(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Token calls carry their own proof and must not be signed with the session's token."""
    return request


def _says_token_expired(response: requests.Response) -> bool:
    """Whether the gateway rejected the token (not the signature or the account)."""
    if response.status_code != 401 and len(response.content or b"") > _SHORT_BODY:
        return False  # token errors are short; a page of records is not worth parsing twice
    try:
        payload = json.loads(response.content or b"null")
    except ValueError:
        return response.status_code == 401
    if not isinstance(payload, dict):
        return response.status_code == 401
    if payload.get("apim_status") in _TOKEN_EXPIRED_APIM:
        return True
    return payload.get("status") == _TOKEN_EXPIRED_STATUS or (
        response.status_code == 401 and payload.get("status") is None
    )
