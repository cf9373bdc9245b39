"""Go-style durations (`90s`, `15m`, `1h30m`), the syntax Kubernetes users already write."""

from __future__ import annotations

import datetime as dt
import functools
import re
from decimal import Decimal, InvalidOperation

# The same units as Go's time.ParseDuration; a bare number is rejected as in Go.
_UNITS: dict[str, Decimal] = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
# Kept in sync with _PART; used as the CRD `pattern` so the API server rejects garbage too.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$"
MAX_DURATION = dt.timedelta(days=3650)


class DurationError(ValueError):
    """A duration that is not a positive Go-style duration."""


def parse_duration(text: str) -> dt.timedelta:
    """Parse a positive Go-style duration; zero, negative and malformed values are errors."""
    if not isinstance(text, str) or not text:
        raise DurationError("a duration must be a non-empty string such as 15m or 1h30m")
    return _parsed(text)


# Policies' durations are parsed again on every decision that names them (a denial's hint
# at the default duration): each text once.
@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> dt.timedelta:
    if text.startswith("-"):
        raise DurationError(f"duration {text!r} is negative; it must be positive")
    position = 0
    seconds = Decimal(0)
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        try:
            seconds += Decimal(match.group(1)) * _UNITS[match.group(2)]
        except InvalidOperation as error:  # pragma: no cover - the regex admits only numbers
            raise DurationError(f"duration {text!r} has an invalid number") from error
        position = match.end()
    if position != len(text):
        raise DurationError(
            f"duration {text!r} is not a Go duration; use a number and a unit "
            "(ns, us, ms, s, m, h), e.g. 90s, 15m or 1h30m"
        )
    if seconds <= 0:
        raise DurationError(f"duration {text!r} is zero; it must be positive")
    if seconds > Decimal(MAX_DURATION.total_seconds()):
        raise DurationError(f"duration {text!r} is longer than ten years")
    whole = int(seconds)
    micros = int((seconds - whole) * 1_000_000)
    return dt.timedelta(seconds=whole, microseconds=micros)


def format_duration(value: dt.timedelta) -> str:
    """Format like Go's Duration.String for whole seconds: `1h30m0s` becomes `1h30m`."""
    if value <= dt.timedelta(0):
        raise DurationError("only positive durations can be formatted")
    total_micros = value // dt.timedelta(microseconds=1)
    hours, rest = divmod(total_micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, micros = divmod(rest, 1_000_000)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if seconds or micros:
        if micros:
            fraction = f"{micros:06d}".rstrip("0")
            parts.append(f"{seconds}.{fraction}s")
        else:
            parts.append(f"{seconds}s")
    return "".join(parts)
