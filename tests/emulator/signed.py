"""A minimal client for the emulator's tests: a token, then calls signed as EnOS documents."""

from __future__ import annotations

import json
import time
from datetime import date
from typing import Any

import requests

from flowinst_etl.emulator import DEMO_CREDENTIALS, Credentials
from flowinst_etl.gateway.signing import request_signature, token_encryption
from flowinst_etl.windows import day_window, parse_server_timezone

TOKEN_GET = "/apim-token-service/v2.0/token/get"
TOKEN_REFRESH = "/apim-token-service/v2.0/token/refresh"
TIME_PATH = "/batch-processing-service/v2.1/time"
SEARCH_PATH = "/batch-processing-service/v2.1/flowInstances"
TIMEOUT_S = 10


def day_ms(day: date, server_timezone: str = "GMT+8") -> tuple[int, int]:
    """The ``[start, end)`` epoch-ms window of a server-local day."""
    window = day_window(day, parse_server_timezone(server_timezone))
    return window.start_ms, window.end_ms


def search_body(from_ms: int, to_ms: int, **fields: Any) -> dict[str, Any]:
    """A valid List Flow Instances body for type 1, every owner and status; ``fields`` override."""
    body: dict[str, Any] = {
        "type": 1,
        "expression": "",
        "owner": "",
        "fromTriggerTime": from_ms,
        "toTriggerTime": to_ms,
        "status": "",
        "pagination": {"pageNo": 1, "pageSize": 100},
    }
    body.update(fields)
    return body


class SignedClient:
    """Talks to an emulator the documented way: get a token, then sign every API call."""

    def __init__(self, base_url: str, credentials: Credentials = DEMO_CREDENTIALS) -> None:
        self.base_url = base_url
        self.credentials = credentials
        self.session = requests.Session()
        self.access_token: str | None = None

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def token_call(self, path: str = TOKEN_GET, **fields: Any) -> requests.Response:
        """A token get/refresh request with a valid encryption unless ``fields`` override it."""
        now = int(time.time() * 1000)
        creds = self.credentials
        body = {
            "appKey": creds.access_key,
            "encryption": token_encryption(creds.access_key, now, creds.secret_key),
            "timestamp": now,
        }
        body.update(fields)
        return self.session.post(self.base_url + path, json=body, timeout=TIMEOUT_S)

    def token(self) -> str:
        """A valid access token, fetched once."""
        if self.access_token is None:
            reply = self.token_call().json()
            assert reply["status"] == 0, reply
            self.access_token = reply["data"]["accessToken"]
        return self.access_token

    def call(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: str = "",
        *,
        token: str | None = None,
        timestamp_ms: int | None = None,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """A signed API call; keyword arguments build deliberately wrong signatures;
        ``stream`` leaves the body unread (to read it raw)."""
        params = params or {}
        token = token if token is not None else self.token()
        stamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        secret = secret if secret is not None else self.credentials.secret_key
        signed = {
            "apim-accesstoken": token,
            "apim-timestamp": str(stamp),
            "apim-signature": request_signature(token, params.items(), body, stamp, secret),
            "Content-Type": "application/json;charset=UTF-8",
        }
        signed.update(headers or {})
        return self.session.request(
            method,
            self.base_url + path,
            params=params,
            data=body.encode("utf-8") if body else None,
            headers=signed,
            timeout=TIMEOUT_S,
            stream=stream,
        )

    def time(self, action: str) -> requests.Response:
        """``GET time?action=...``."""
        return self.call("GET", TIME_PATH, {"action": action})

    def search(self, body: dict[str, Any] | str, **params: str) -> requests.Response:
        """``POST flowInstances?action=search`` for the client's user and organisation."""
        query = {
            "action": "search",
            "userId": self.credentials.user_id,
            "orgId": self.credentials.org_id,
        }
        query.update(params)
        text = body if isinstance(body, str) else json.dumps(body)
        return self.call("POST", SEARCH_PATH, query, text)

    def search_data(self, body: dict[str, Any]) -> dict[str, Any]:
        """The ``data`` of a search that must succeed."""
        reply = self.search(body)
        assert reply.status_code == 200, reply.text
        payload = reply.json()
        assert payload["code"] == 0, payload
        return payload["data"]

    def page_all(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Every record of a search, from the body's page on, until a short page."""
        records: list[dict[str, Any]] = []
        page_size = body["pagination"]["pageSize"]
        page = body["pagination"]["pageNo"]
        while True:
            pagination = {**body["pagination"], "pageNo": page}
            found = self.search_data({**body, "pagination": pagination})["flowInsts"]
            records += found
            if len(found) < page_size:
                return records
            page += 1
