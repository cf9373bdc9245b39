"""The one place that reads time, so TTLs and deadlines can be tested with a manual clock."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class ManualClock:
    """A clock that only moves when told to; thread-safe so servers in threads can share it."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        start = start or dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time.")
        self._now = start.astimezone(dt.UTC)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: dt.datetime) -> None:
        with self._lock:
            self._now = when.astimezone(dt.UTC)


SYSTEM_CLOCK: Clock = SystemClock()


def format_time(when: dt.datetime) -> str:
    """RFC 3339 in UTC with a `Z`, second precision, as Kubernetes writes timestamps."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_seconds(when: dt.datetime) -> dt.datetime:
    """`when` in UTC as `format_time` writes it: a stored time reads back equal."""
    return when.astimezone(dt.UTC).replace(microsecond=0)


def parse_time(text: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp (with `Z` or an offset) into an aware UTC datetime."""
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no timezone")
    return parsed.astimezone(dt.UTC)
