"""The time expressions the audit commands accept: spans back from now and points in time."""

from __future__ import annotations

import datetime as dt
import re

from jitgate.core.clock import parse_time
from jitgate.core.durations import DurationError, parse_duration

_DAYS = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(.*)$")


def parse_span(text: str) -> dt.timedelta:
    """A positive span: Go durations (`90s`, `2h`, `1h30m`) plus days and weeks (`30d`, `2w`)."""
    match = _DAYS.match(text.strip())
    if match is None or not text.strip():
        raise ValueError(f"{text!r} is not a duration such as 30d, 2h or 1h30m")
    weeks, days, rest = match.groups()
    span = dt.timedelta(weeks=int(weeks or 0), days=int(days or 0))
    if rest:
        try:
            span += parse_duration(rest)
        except DurationError as error:
            raise ValueError(f"{text!r} is not a duration such as 30d, 2h or 1h30m") from error
    if span <= dt.timedelta(0):
        raise ValueError(f"duration {text!r} must be positive")
    return span


def parse_when(text: str, now: dt.datetime) -> dt.datetime:
    """An RFC 3339 time, a date (midnight UTC), or a span back from `now` (`30d` = 30 days ago)."""
    text = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    if "T" in text or " " in text:
        try:
            return parse_time(text)
        except ValueError as error:
            raise ValueError(
                f"{text!r} is not an RFC 3339 time such as 2026-11-21T10:00:00Z"
            ) from error
    try:
        return now - parse_span(text)
    except ValueError as error:
        raise ValueError(
            f"{text!r} is neither an RFC 3339 time nor a relative time such as 30d or 2h"
        ) from error
