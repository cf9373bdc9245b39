"""Whether an interaction really comes from Slack, recently, and for the first time.

Slack signs every request to an app with the app's signing secret (version `v0`):
`X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{X-Slack-Request-Timestamp}:{raw body}">`.
A request is accepted only with a valid signature (compared in constant time), a timestamp
within five minutes of our clock either way, and a signature not seen before within that
window (a captured request replayed soon after is refused; one replayed later is stale).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections import OrderedDict
from typing import Final

from jitgate.core.clock import Clock

SIGNATURE_HEADER: Final = "X-Slack-Signature"
TIMESTAMP_HEADER: Final = "X-Slack-Request-Timestamp"
REPLAY_WINDOW: Final = dt.timedelta(minutes=5)
_SEEN_MAX = 100_000  # signatures remembered within the window; beyond that, refuse (fail closed)


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The `v0=` signature Slack sends for this timestamp and body."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()


class Verifier:
    """Checks signature, age and novelty of each request; remembers what it accepted."""

    def __init__(self, secret: bytes, clock: Clock, window: dt.timedelta = REPLAY_WINDOW) -> None:
        if not secret:
            raise ValueError("the Slack signing secret is empty")
        self._secret = secret
        self._clock = clock
        self._window = window.total_seconds()
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature → when accepted

    def refusal(self, timestamp: str | None, given: str | None, body: bytes) -> str | None:
        """Why this request is refused, or None to accept it (and remember it)."""
        if not timestamp or not given:
            return f"no {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header"
        try:
            sent = int(timestamp)
        except ValueError:
            return f"{TIMESTAMP_HEADER} is not a number of seconds"
        now = self._clock.now().timestamp()
        if abs(now - sent) > self._window:
            return (
                "the request's timestamp is more than 5 minutes away from now (stale or replayed)"
            )
        expected = signature(self._secret, timestamp, body)
        if not hmac.compare_digest(expected.encode("ascii"), given.encode("ascii", "replace")):
            return "the signature does not match the signing secret"
        self._forget_before(now - self._window)
        if given in self._seen:
            return "this request was already handled (replayed)"
        if len(self._seen) >= _SEEN_MAX:
            return "too many requests within 5 minutes"
        self._seen[given] = now
        return None

    def _forget_before(self, cutoff: float) -> None:
        while self._seen:
            oldest, when = next(iter(self._seen.items()))
            if when >= cutoff:
                return
            del self._seen[oldest]
