"""The error tree of flowinst-etl; every error says what went wrong and what to do about it.

FlowinstError
├── ConfigError (also ValueError)       a setting or argument is missing or invalid
├── TransportError                      the gateway could not be reached or kept failing
├── ResponseFormatError                 the gateway answered something that is not an EnOS envelope
├── ApiError                            the gateway answered with an EnOS error code
│   ├── AuthenticationError             credentials or tokens were refused (1002, 1003, 1203, ...)
│   ├── FatalApiError                   retrying will not help (62101, 62102, 62103, ...)
│   └── RetriableApiError               the service failed internally (62109); try again later
├── IncompleteExtractionError           completeness of a window could not be established
├── UnreliableChangeTest                the gateway's answers show refresh's change test fails
└── StoreError                          a partition could not be written or read
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowinst_etl.gateway.transport import Attempts


class FlowinstError(Exception):
    """Root of every error raised by flowinst-etl."""


class ConfigError(FlowinstError, ValueError):
    """A setting or argument is missing or invalid."""


class TransportError(FlowinstError):
    """The gateway could not be reached, or kept failing after all retries."""


class ResponseFormatError(FlowinstError):
    """The gateway answered with something that is not a readable EnOS JSON envelope."""


class ApiError(FlowinstError):
    """The gateway answered with a non-zero EnOS code.

    Attributes:
        code: the EnOS code (``code`` in v2.1 envelopes, ``status`` in v2.0 and token replies).
        api_message: the ``msg`` text the gateway sent.
        request_id: the gateway's ``requestId``, when it sent one; quote it to EnOS support.
        attempts: what the request took (retries, token renewals), where the client knows it.
    """

    def __init__(
        self, code: int, api_message: str, hint: str = "", request_id: str | None = None
    ) -> None:
        self.code = code
        self.api_message = api_message
        self.request_id = request_id
        self.attempts: Attempts | None = None
        text = f"EnOS error {code}: {api_message}"
        if hint:
            text += f". {hint}"
        if request_id:
            text += f" (requestId {request_id})"
        super().__init__(text)


class AuthenticationError(ApiError):
    """The gateway refused the credentials or the access token."""


class FatalApiError(ApiError):
    """An EnOS error that a retry cannot fix: the request or the account must change."""


class RetriableApiError(ApiError):
    """An internal EnOS error: the same request may succeed later."""


class IncompleteExtractionError(FlowinstError):
    """The extractor could not prove that it received every instance of a window."""


class UnreliableChangeTest(FlowinstError):
    """The gateway's answers show that a belief the change test relies on is false (its update
    times, its update-time sorter), so which days changed cannot be told without reading them."""


class StoreError(FlowinstError):
    """A partition could not be written or read."""
