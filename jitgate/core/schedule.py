"""AccessPolicy schedules: whether a policy's window is open at an instant, and when it next
opens or closes.

A window is local wall-clock time in the schedule's IANA time zone, so it follows daylight
saving: `Mon-Fri 09:00-17:00 Europe/Berlin` opens at 09:00 Berlin time in winter and in
summer. Whether an instant is inside is read from its local time. The instants where that
answer can change are the local boundaries (each window's start and end, and midnight, where
the weekday changes) mapped to UTC, both readings of an hour that repeats when clocks go back,
and the moment clocks change itself, which is where a boundary that does not exist that day
(02:30 on the day clocks spring forward) takes effect. `next_change` looks only at those.

Pure: the clock is always a parameter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from jitgate.core.api import WEEKDAYS, Schedule, ScheduleWindow
from jitgate.core.clock import format_time

# How far ahead `next_change` looks: a week covers every weekly schedule, the extra day a
# window that runs past midnight into the week after.
_HORIZON_DAYS = 8
_MIDNIGHT = dt.time(0, 0)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _window_open(window: ScheduleWindow, weekday: int, minute: int) -> bool:
    start, end = _minutes(window.start), _minutes(window.end)
    today = WEEKDAYS[weekday] in window.days
    if start < end:
        return today and start <= minute < end
    # Past midnight: from start on a listed day until end on the day after.
    yesterday = WEEKDAYS[(weekday - 1) % 7] in window.days
    return (today and minute >= start) or (yesterday and minute < end)


def is_open(schedule: Schedule, at: dt.datetime) -> bool:
    """Whether any window is open at the instant `at` (aware)."""
    local = at.astimezone(zone(schedule.time_zone))
    minute = local.hour * 60 + local.minute
    return any(_window_open(w, local.weekday(), minute) for w in schedule.windows)


def _boundaries(schedule: Schedule) -> set[dt.time]:
    times = {_MIDNIGHT}
    for window in schedule.windows:
        for text in (window.start, window.end):
            if text != "24:00":
                minutes = _minutes(text)
                times.add(dt.time(minutes // 60, minutes % 60))
    return times


def _transition(tz: ZoneInfo, before: dt.datetime, after: dt.datetime) -> dt.datetime:
    """The instant in (before, after] where the zone's offset changes, to the second."""
    offset = before.astimezone(tz).utcoffset()
    low, high = before, after
    while high - low > dt.timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def _candidates(schedule: Schedule, after: dt.datetime) -> list[dt.datetime]:
    """Every instant within the horizon where `is_open` may change, in order."""
    tz = zone(schedule.time_zone)
    first_day = after.astimezone(tz).date() - dt.timedelta(days=1)
    found: set[dt.datetime] = set()
    times = _boundaries(schedule)
    for offset in range(_HORIZON_DAYS + 2):
        day = first_day + dt.timedelta(days=offset)
        for time in times:
            for fold in (0, 1):
                local = dt.datetime.combine(day, time, tzinfo=tz).replace(fold=fold)
                found.add(local.astimezone(dt.UTC))
    ordered = sorted(found)
    # Where the clocks change between two candidates, that moment may be a change too.
    for earlier, later in pairwise(ordered):
        if earlier.astimezone(tz).utcoffset() != later.astimezone(tz).utcoffset():
            found.add(_transition(tz, earlier, later))
    return sorted(c for c in found if c > after)


def next_change(schedule: Schedule, at: dt.datetime) -> dt.datetime | None:
    """The first instant after `at` at which the window opens (if closed at `at`) or closes
    (if open); None when that does not happen within a week (always open, or never)."""
    now_open = is_open(schedule, at)
    return next((c for c in _candidates(schedule, at) if is_open(schedule, c) != now_open), None)


def _days(days: Iterable[str]) -> str:
    """`Mon-Fri`, `Sat, Sun`, `Mon, Wed-Fri`: runs of three or more consecutive days joined."""
    indexes = sorted({WEEKDAYS.index(d) for d in days})
    runs: list[list[int]] = []
    for index in indexes:
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{WEEKDAYS[run[0]]}-{WEEKDAYS[run[-1]]}")
        else:
            parts.extend(WEEKDAYS[i] for i in run)
    return ", ".join(parts)


def describe(schedule: Schedule) -> str:
    """`Mon-Fri 09:00-17:00 Europe/Berlin`; several windows joined with `and`."""
    windows = " and ".join(f"{_days(w.days)} {w.start}-{w.end}" for w in schedule.windows)
    return f"{windows} {schedule.time_zone}"


def local_time(schedule: Schedule, at: dt.datetime) -> str:
    """`2026-12-07 09:00 CET (2026-12-07T08:00:00Z)`: how a person reads a window's edge."""
    local = at.astimezone(zone(schedule.time_zone))
    return f"{local.strftime('%a %Y-%m-%d %H:%M %Z')} ({format_time(at)})"


@dataclass(frozen=True)
class WindowState:
    """A scheduled policy at one instant: open or not, and (worked out only when asked, as
    the webhook rarely needs it) when that next changes."""

    open: bool
    schedule: Schedule
    at: dt.datetime

    @cached_property
    def changes_at(self) -> dt.datetime | None:
        return next_change(self.schedule, self.at)

    def next_opening(self) -> str:
        """`it opens next at Mon 2026-12-07 09:00 CET (…Z)` (only meaningful when closed)."""
        if self.changes_at is None:
            return "it does not open within the next week"
        return f"it opens next at {local_time(self.schedule, self.changes_at)}"


def state(schedule: Schedule, at: dt.datetime) -> WindowState:
    return WindowState(is_open(schedule, at), schedule, at)
