"""EnosClient: List Flow Instances and the server-time calls over one pooled, signed Session."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

import requests

from flowinst_etl.config import EnosSettings
from flowinst_etl.exceptions import (
    ApiError,
    FatalApiError,
    ResponseFormatError,
    RetriableApiError,
    TransportError,
)
from flowinst_etl.gateway.answers import Answer
from flowinst_etl.gateway.auth import EnosTokenAuth
from flowinst_etl.gateway.transport import Attempts, Transport
from flowinst_etl.windows import parse_server_timezone, server_zone

log = logging.getLogger(__name__)

SEARCH_PATH = "/batch-processing-service/v2.1/flowInstances"
TIME_PATH = "/batch-processing-service/v2.1/time"

#: What the user should do about each EnOS business error code.
_API_HINTS: dict[int, tuple[type[ApiError], str]] = {
    62101: (FatalApiError, "ENOS_USER_ID does not exist or does not belong to ENOS_ORG_ID"),
    62102: (FatalApiError, "the gateway refused the request as invalid"),
    62103: (
        FatalApiError,
        "the user has no privilege on the Batch Processing Service; ask an org admin",
    ),
    62104: (FatalApiError, "the workflow cannot be used this way"),
    62105: (FatalApiError, "the user account is locked; ask an org admin"),
    62109: (RetriableApiError, "internal error of the Batch Processing Service; try again later"),
}
_PREVIEW = 60


#: Every FlowInstanceStatus code the documents list (-1 FAIL .. 10 SKIP), as ``status`` takes them.
EVERY_STATUS = ",".join(str(code) for code in range(-1, 11))


@dataclass(frozen=True)
class SearchQuery:
    """One List Flow Instances request: a trigger window, a scheduling type, one page, sorted by
    ``sorter_field`` in ``order`` ("ASC" or "DESC").

    ``owner`` and ``status`` empty mean every owner and every status, ``expression`` empty every
    instance (EnOS zh docs); ``None`` leaves the field out of the body.
    """

    scheduling_type: int
    from_ms: int
    to_ms: int
    page_no: int
    page_size: int
    sorter_field: str
    expression: str | None = ""
    order: str = "ASC"
    owner: str | None = ""
    status: str = ""

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        body: dict[str, Any] = {
            "type": self.scheduling_type,
            "expression": self.expression,
            "owner": self.owner,
            "fromTriggerTime": self.from_ms,
            "toTriggerTime": self.to_ms,
            "status": self.status,
            "pagination": {
                "pageNo": self.page_no,
                "pageSize": self.page_size,
                "sorters": [{"field": self.sorter_field, "order": self.order}],
            },
        }
        return {key: value for key, value in body.items() if value is not None}


@dataclass(frozen=True)
class SearchPage:
    """The records of one page, the gateway's ``count``, what it took to get them, and the
    size of the answer's body in bytes (what its records weigh as JSON, with the envelope)."""

    records: list[dict[str, Any]]
    count: int | None
    attempts: Attempts = field(default_factory=Attempts)
    body_bytes: int = 0


@dataclass
class _ServerFacts:
    timezone: tzinfo | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class EnosClient:
    """A thread-safe client of one EnOS gateway.

    Args:
        settings: where the gateway is and how to authenticate.
    """

    def __init__(self, settings: EnosSettings) -> None:
        self.settings = settings
        self._base = settings.api_url.rstrip("/")
        self._transport = Transport(settings)
        self._auth = EnosTokenAuth(settings, self._transport)
        self._facts = _ServerFacts(
            server_zone(settings.server_timezone) if settings.server_timezone else None
        )

    def __enter__(self) -> EnosClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections."""
        self._transport.close()

    def search(self, query: SearchQuery) -> SearchPage:
        """One page of List Flow Instances.

        Raises:
            ApiError: the gateway answered an EnOS error code; ``AuthenticationError`` when it
                refused the credentials, after renewing the token where that can help.
            TransportError: the gateway could not be reached or kept failing.
            ResponseFormatError: the answer was not an EnOS envelope.
        """
        params = {
            "action": "search",
            "userId": self.settings.user_id,
            "orgId": self.settings.org_id,
        }
        body = json.dumps(query.body(), separators=(",", ":")).encode()
        response, attempts = self._send("POST", SEARCH_PATH, params, body)
        try:
            data = self._data(response)
        except ApiError as error:
            error.attempts = attempts
            raise
        records = data.get("flowInsts") if isinstance(data, dict) else None
        if records is None and isinstance(data, dict) and "flowInsts" in data:
            records = []  # an empty page may come as "flowInsts": null
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ResponseFormatError("the search answer has no flowInsts list of objects")
        count = data.get("count")
        count = count if isinstance(count, int) else None
        return SearchPage(records, count, attempts, len(response.body))

    def server_timezone(self) -> tzinfo:
        """The gateway's timezone: the configured override, else Get Timezone (asked once)."""
        with self._facts.lock:
            if self._facts.timezone is None:
                data = self._data(self._send("GET", TIME_PATH, {"action": "getTimeZone"})[0])
                text = data.get("timezone") if isinstance(data, dict) else None
                if not isinstance(text, str):
                    raise ResponseFormatError("Get Timezone answered without a timezone")
                self._facts.timezone = parse_server_timezone(text)
            return self._facts.timezone

    def clock_skew_ms(self) -> int:
        """Gateway clock minus local clock, from Get Current Time (midpoint of the round trip)."""
        sent = time.time()
        data = self._data(self._send("GET", TIME_PATH, {"action": "getCurrentTime"})[0])
        received = time.time()
        if not isinstance(data, int):
            raise ResponseFormatError("Get Current Time answered without an epoch-ms number")
        return data - int((sent + received) * 500)

    def _send(
        self, method: str, path: str, params: dict[str, str], body: bytes | None = None
    ) -> tuple[Answer, Attempts]:
        headers = {"Content-Type": "application/json;charset=utf-8"} if body is not None else {}
        request = requests.Request(
            method, self._base + path, params=params, data=body, headers=headers
        )
        return self._transport.send(request, self._auth)

    def _data(self, answer: Answer) -> Any:
        """The ``data`` of an EnOS envelope (v2.1 ``code`` or v2.0 ``status``), or a typed error."""
        payload = answer.payload
        if not isinstance(payload, dict):
            raise ResponseFormatError(
                f"the gateway answered HTTP {answer.status} "
                f"({answer.content_type or 'no content type'}) with a body that is "
                f"not a JSON object: {_preview(answer.body)}"
            )
        if answer.status >= 400 and "code" not in payload and "status" not in payload:
            raise TransportError(f"the gateway answered HTTP {answer.status}: check ENOS_API_URL")
        code = payload.get("code", payload.get("status"))
        if not isinstance(code, int):
            raise ResponseFormatError("the gateway's answer carries neither a code nor a status")
        if code != 0:
            raise _api_error(code, str(payload.get("msg", "")), payload.get("requestId"))
        return payload.get("data")


def _api_error(code: int, message: str, request_id: Any) -> ApiError:
    request = str(request_id) if request_id else None
    kind, hint = _API_HINTS.get(code, (FatalApiError, ""))
    return kind(code, message, hint, request)


def _preview(body: bytes) -> str:
    text = body[:_PREVIEW].decode("utf-8", "replace")
    if not text:
        return "(empty body)"
    return repr(" ".join(text.split())) + ("…" if len(body) > _PREVIEW else "")
