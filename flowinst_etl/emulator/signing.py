"""The gateway's side of the EnOS signature rules, written from the documentation alone.

enos-api.md 6a ("Invoke API with access token"): a token request carries
``encryption = sha256_hex(appKey + timestamp + appSecret)``; an API call carries
``apim-signature = sha256_hex(accessToken + paramsData + timestamp + appSecret)``, where
``paramsData`` is every URL query parameter sorted by name in ASCII order, written as
``name1value1name2value2...`` with decoded values, followed by the raw request body. Hex is lower
case and text is UTF-8. The emulator checks clients with this module, never with theirs.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import sha256


def expected_encryption(app_key: str, timestamp_ms: int, app_secret: str) -> str:
    """The ``encryption`` a token get/refresh request must carry."""
    return sha256((app_key + str(timestamp_ms) + app_secret).encode("utf-8")).hexdigest()


def expected_signature(
    access_token: str,
    query: Iterable[tuple[str, str]],
    body: str,
    timestamp_ms: int,
    app_secret: str,
) -> str:
    """The ``apim-signature`` an API call must carry."""
    digest = sha256(access_token.encode("utf-8"))
    for name, value in sorted(query, key=lambda item: item[0].encode("ascii", "replace")):
        digest.update(name.encode("utf-8"))
        digest.update(value.encode("utf-8"))
    digest.update(body.encode("utf-8"))
    digest.update(str(timestamp_ms).encode("utf-8"))
    digest.update(app_secret.encode("utf-8"))
    return digest.hexdigest()
