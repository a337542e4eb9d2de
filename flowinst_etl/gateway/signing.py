"""The EnOS API-gateway signature rules, shared by the client and the emulator so both sign alike.

Rules from EnOS "Invoke API with access token": the token request carries
``sha256(appKey + timestamp + appSecret)``; every API call carries
``sha256(accessToken + sorted query "namevalue" pairs + raw body + timestamp + appSecret)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def sha256_hex(text: str) -> str:
    """Lower-case hex SHA-256 of the UTF-8 bytes of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def token_encryption(app_key: str, timestamp_ms: int, app_secret: str) -> str:
    """The ``encryption`` field of a token get/refresh request."""
    return sha256_hex(f"{app_key}{timestamp_ms}{app_secret}")


def canonical_params(query: Iterable[tuple[str, str]], body: str) -> str:
    """Query parameters sorted by name as ``name1value1name2value2...``, then the raw body.

    Values are the decoded ones, as the gateway reads them.
    """
    pairs = sorted(query, key=lambda pair: pair[0])
    return "".join(name + value for name, value in pairs) + body


def request_signature(
    access_token: str,
    query: Iterable[tuple[str, str]],
    body: str,
    timestamp_ms: int,
    app_secret: str,
) -> str:
    """The ``apim-signature`` header of one API call."""
    return sha256_hex(f"{access_token}{canonical_params(query, body)}{timestamp_ms}{app_secret}")
