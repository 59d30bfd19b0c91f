"""Slack's request signature, checked on the raw bytes before anything else reads them.

The rule (Slack, "Verifying requests from Slack"): `X-Slack-Signature` is `v0=` plus the hex
HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{raw body}` under the signing secret, and a
timestamp more than 5 minutes from now is refused. slack-sdk's `SignatureVerifier.is_valid`
implements it but calls `int()` on the timestamp and compares `str` signatures, so a
non-numeric or 5,000-digit timestamp, or a non-ASCII signature, raises instead of refusing
(a 500 with a traceback for unauthenticated garbage). This check only parses what has the
documented shape: ASCII digits, `v0=` and 64 hex digits, and compares bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from typing import Optional

#: Seconds either side of now that a request may be timestamped (Slack: 5 minutes).
MAX_SKEW = 300
_TIMESTAMP = re.compile(rb"[0-9]{1,12}")
_SIGNATURE = re.compile(rb"v0=[0-9a-f]{64}")


def _ascii(value: Optional[str]) -> Optional[bytes]:
    if value is None:
        return None
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        return None


class SlackSignature:
    def __init__(self, signing_secret: str, clock: Callable[[], float] = time.time) -> None:
        self._secret = signing_secret.encode("utf-8")
        self._clock = clock

    def valid(self, body: bytes, timestamp: Optional[str], signature: Optional[str]) -> bool:
        """True only for a well-formed, fresh timestamp and a matching signature; never raises."""
        stamp, given = _ascii(timestamp), _ascii(signature)
        if stamp is None or given is None or not _TIMESTAMP.fullmatch(stamp) or not _SIGNATURE.fullmatch(given):
            return False
        if abs(self._clock() - int(stamp)) > MAX_SKEW:
            return False
        expected = b"v0=" + hmac.new(self._secret, b"v0:" + stamp + b":" + body, hashlib.sha256).hexdigest().encode()
        return hmac.compare_digest(expected, given)
